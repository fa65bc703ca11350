"""Method commands: ``train`` and ``generate`` for any entry of :data:`shapegen.methods.METHODS`,
``export-model`` (a trained checkpoint slimmed to the weights that sampling uses) and
``eval-generation`` (COV / MMD / 1-NNA of generated against reference meshes, and class fidelity
with ``--by-class``).

``train`` and ``generate`` take ``--method NAME``; the config schema, the presets folder
(``configs/NAME/``) and the system class come from the method, so ``--config`` and ``--set`` are
added here rather than by the generic parser. Heavy imports happen inside ``run`` functions.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from shapegen.commands.base import Command
from shapegen.errors import ShapegenError
from shapegen.methods.outputs import MeshOptions

if TYPE_CHECKING:  # torch is imported inside the commands, so `shapegen --help` starts fast
    import torch


def method_class(name: str):
    """The LightningModule class of the method registered as ``name``.

    Raises:
        ShapegenError: for a name that is not in the table.
    """
    from shapegen.methods.base import get_method

    return get_method(name).system_class()


def _method_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", required=True, help="method name (msdf, las, occsdf, vsd)")


def add_run_args(p: argparse.ArgumentParser, prefix: str = "train") -> None:
    """The hardware flags of every training verb; each is the same as ``--set PREFIX.KEY=VALUE``."""
    g = p.add_argument_group(f"devices (the same as --set {prefix}.KEY=VALUE)")
    g.add_argument("--accelerator", help="cpu, gpu or auto (default: the config's, auto)")
    g.add_argument("--devices", type=int, help="devices per node (-1: all); the data's batch_size is per device")
    g.add_argument("--num-nodes", type=int, help="machines (SLURM nodes, torchrun --nnodes)")
    g.add_argument("--strategy", choices=["auto", "ddp", "fsdp", "ddp_spawn"], help="how several devices share the work")
    g.add_argument("--precision", choices=["auto", "32", "bf16-mixed", "16-mixed"], help="numerics (auto: bf16-mixed on a GPU that has it)")


def run_overrides(args: argparse.Namespace, prefix: str = "train") -> list[str]:
    """``--devices 2`` and friends as ``--set`` overrides of the run config at ``prefix``."""
    flags = ("accelerator", "devices", "num_nodes", "strategy", "precision")
    return [f"{prefix}.{flag}={getattr(args, flag)}" for flag in flags if getattr(args, flag, None) is not None]


# -------------------------------------------------------------------------------------- train
def _train_args(p: argparse.ArgumentParser) -> None:
    _method_arg(p)
    p.add_argument("-o", "--output", help="run folder for checkpoints, loss plot and previews (default: runs/METHOD)")
    p.add_argument("--config", metavar="FILE", help="YAML preset (a file, or a name under configs/METHOD/, e.g. tiny or demo)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value (repeatable), e.g. --set data.root=data/msdf")
    p.add_argument("--fresh", action="store_true", help="start over instead of resuming from OUTPUT/checkpoints/last.ckpt")
    p.add_argument("--stage", help="train one stage of a multi-stage method (las: occupancy, sdf or both; same as "
                   "--set train.stage=...); a checkpoint of another stage in OUTPUT is loaded, not resumed, and keeps its weights")
    add_run_args(p)


def _train(args: argparse.Namespace, _config) -> None:
    from shapegen.methods.base import get_method, require
    from shapegen.methods.training import train

    spec = require(get_method(args.method), "train", "be trained with 'shapegen train'")
    overrides = list(args.overrides) + run_overrides(args)
    if args.stage is not None:
        if not spec.stages:
            raise ShapegenError(f"method '{args.method}' has no training stages; drop --stage")
        overrides.append(f"train.stage={args.stage}")
    from shapegen.engine import is_rank_zero

    last = train(spec, args.config, overrides, args.output or f"runs/{args.method}", fresh=args.fresh)
    if is_rank_zero():
        print(f"wrote {last}; loss plot, previews and config.yaml in {args.output or f'runs/{args.method}'}")


# ----------------------------------------------------------------------------------- generate
def _generate_args(p: argparse.ArgumentParser) -> None:
    _method_arg(p)
    p.add_argument("--checkpoint", help="a .ckpt written by 'shapegen train' (default: the method's shipped model in assets/models)")
    cond = p.add_mutually_exclusive_group()
    cond.add_argument("--class", "--category", dest="cls", help="class name (class-conditioned models; --category is the same)")
    cond.add_argument("--prompt", help="text prompt (text-conditioned models)")
    p.add_argument("--num", type=int, default=4, help="number of shapes (default 4)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="noise seed; the same seed gives the same shapes")
    p.add_argument("--steps", type=int, help="solver steps (default: the model's sample.steps)")
    p.add_argument("--solver", choices=["euler", "midpoint", "rk4", "dopri5"], help="ODE solver (default: the model's)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (1: conditional model alone)")
    p.add_argument("--resolution", type=int, default=128, help="marching-cubes resolution for the meshes (default 128)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device (auto: CUDA if available)")


@dataclass
class GenerateConfig(MeshOptions):
    """``shapegen generate`` settings beyond the flags (``--set``); they apply to methods that decode M-SDFs."""


def load_system(method: str, checkpoint: str | Path | None = None, device: torch.device | str = "cpu"):
    """Load a trained system of a method that generates (one-line errors for every user mistake);
    without ``checkpoint``, the method's shipped model."""
    from shapegen.methods.base import default_checkpoint, get_method, require

    spec = require(get_method(method), "generate", "generate shapes")
    ckpt = Path(checkpoint) if checkpoint else default_checkpoint(spec)
    if not ckpt.is_file():
        raise ShapegenError(f"checkpoint '{ckpt}' not found; train one with 'shapegen train --method {method}'")
    from shapegen.checkpoints import load_module

    try:
        model = load_module(spec.system_class(), ckpt, map_location=device)
    except ShapegenError:
        raise
    except Exception as exc:
        first = (str(exc).splitlines() or ["no message"])[0][:120]
        raise ShapegenError(f"cannot load '{ckpt}' as a {method} checkpoint ({type(exc).__name__}: {first})") from exc
    return model.eval()


def _generate(args: argparse.Namespace, cfg: GenerateConfig) -> None:
    import inspect

    from shapegen.devices import choose_device

    if args.num < 1:
        raise ShapegenError(f"--num must be at least 1, got {args.num}")
    cfg = cfg or GenerateConfig()
    if not 0 <= cfg.min_component_fraction <= 1:  # before sampling, so no half-written output is left
        raise ShapegenError(f"min_component_fraction must be in [0, 1], got {cfg.min_component_fraction}")
    from shapegen.progress import report

    report("loading")
    device = choose_device(args.device)
    model = load_system(args.method, args.checkpoint, device)
    if args.cls is not None:
        model.class_index(args.cls)  # fail fast on an unknown class, before any sampling
    mesh_options = cfg.mesh_options()
    if not set(mesh_options) <= set(inspect.signature(model.write_samples).parameters):
        if mesh_options != GenerateConfig().mesh_options():
            raise ShapegenError(f"method '{args.method}' meshes its samples its own way; close_holes, "
                                "min_component_fraction and one_piece apply to msdf only")
        mesh_options = {}
    result = model.write_samples(args.output, num=args.num, cls=args.cls, prompt=args.prompt, seed=args.seed, steps=args.steps,
                                 solver=args.solver, guidance=args.guidance, resolution=args.resolution, **mesh_options)
    report("done", 1, 1)
    print(f"wrote {len(result.msdf_files)} M-SDF files, {len(result.mesh_files)} meshes and {result.preview} in {result.out_dir}")
    if result.empty:
        print(f"note: samples {result.empty} decoded to no surface (an under-trained model?); they have no GLB")


# ------------------------------------------------------------------------------- export-model
def _export_args(p: argparse.ArgumentParser) -> None:
    _method_arg(p)
    p.add_argument("checkpoint", help="a checkpoint written by 'shapegen train' (e.g. RUN/checkpoints/last.ckpt)")
    p.add_argument("-o", "--output", required=True, help="the weights-only .ckpt to write (render_prior: the diffusers folder)")
    p.add_argument("--no-ema", action="store_true", help="keep the trained weights instead of their moving average")


def _export_model(args: argparse.Namespace, _config) -> None:
    from shapegen.methods.base import get_method, require

    spec = get_method(args.method)
    if spec.export and not spec.generate:  # a model shipped in another format (render_prior: a diffusers folder)
        from shapegen.guidance.prior import load_stable_diffusion

        result = spec.export_function()(args.checkpoint, args.output, use_ema=not args.no_ema)
        load_stable_diffusion(str(result.path))  # the folder loads as the VSD pipeline will load it
        step = "" if result.global_step is None else f" after {result.global_step} steps"
        print(f"wrote {result.path} ({result.bytes_out / 1e6:.1f} MB, from {result.bytes_in / 1e6:.1f} MB): "
              f"{'EMA' if result.ema else 'trained'} weights{step} as a diffusers folder")
        return
    export_model = require(spec, "generate", "export a model that generates").export_function()
    load_system(args.method, args.checkpoint)  # a checkpoint of another method fails here, before anything is written
    result = export_model(args.checkpoint, args.output, use_ema=not args.no_ema)
    try:
        load_system(args.method, result.path)
    except ShapegenError:
        result.path.unlink(missing_ok=True)
        raise
    step = "" if result.global_step is None else f" after {result.global_step} steps"
    print(f"wrote {result.path} ({result.bytes_out / 1e6:.1f} MB, from {result.bytes_in / 1e6:.1f} MB): "
          f"{'EMA' if result.ema else 'trained'} weights{step} and the config, no optimiser state")


# ---------------------------------------------------------------------------- eval-generation
@dataclass
class EvalGenerationConfig:
    num_points: int = 2048
    """Points per shape kept by farthest point sampling."""
    dense_factor: int = 4
    """Uniform surface samples per kept point before FPS."""
    normalize: Literal["none", "cube"] = "none"
    """Compare shapes as they are, or each centred and scaled to a longest side of 2."""
    resolution: int = 128
    """Marching-cubes resolution when decoding ``.msdf.npz`` files."""
    seed: int = 0
    """Seed of the surface samples."""
    prefer: Literal["msdf", "mesh"] = "msdf"
    """A shape stored both as ``NAME.msdf.npz`` and as a mesh ``NAME.glb/.ply/...`` counts as its decoded M-SDF or as its mesh
    (``mesh``: the procedural set's true surfaces as the reference, the GLBs of ``shapegen generate``); a file without a twin always counts."""
    baseline_limit: int = 0
    """Use only the first N baseline shapes (per class with ``--by-class``), e.g. as many as were generated; 0: all."""


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("generated", help="folder of generated meshes (.glb/.obj/.ply) or .msdf.npz files")
    p.add_argument("reference", help="folder of reference (held-out) meshes or .msdf.npz files")
    p.add_argument("--baseline", metavar="DIR", help="training shapes: the same metrics against the reference, to read the figures by")
    p.add_argument("--by-class", action="store_true", help="each folder holds one sub-folder per class: also report each class's "
                   "fidelity (share of its generated shapes whose nearest reference shape is of that class) and its COV/MMD/1-NNA")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _shape_loader(resolution: int):
    from shapegen.geometry.mesh_io import load_mesh

    def load(path: Path):
        if path.name.endswith(".msdf.npz"):
            import torch

            from shapegen.data.msdf_dataset import read_msdf_file
            from shapegen.methods.msdf import decode_to_mesh

            tensor, k = read_msdf_file(path)
            return decode_to_mesh(torch.from_numpy(tensor), k, resolution)
        return load_mesh(path)

    return load


def _eval_generation(args: argparse.Namespace, cfg: EvalGenerationConfig) -> None:
    import json

    from shapegen.geometry.generation_eval import evaluate_generation

    if cfg.num_points < 1 or cfg.dense_factor < 1:
        raise ShapegenError("num_points and dense_factor must be at least 1")
    report = evaluate_generation(args.generated, args.reference, args.baseline, by_class=args.by_class,
                                 baseline_limit=cfg.baseline_limit, prefer=cfg.prefer, num_points=cfg.num_points, dense_factor=cfg.dense_factor,
                                 normalize=cfg.normalize, seed=cfg.seed, loader=_shape_loader(cfg.resolution))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("\n".join(report.lines()))


COMMANDS = [
    Command("train", "train a generative method (--method msdf) with Lightning; resumes from OUTPUT/checkpoints/last.ckpt", _train_args, _train),
    Command("generate", "sample shapes from a trained checkpoint: M-SDF files, GLB meshes and a preview sheet", _generate_args, _generate,
            GenerateConfig),
    Command("export-model", "slim a trained checkpoint to the weights sampling uses (EMA) and its config, for shipping",
            _export_args, _export_model),
    Command("eval-generation", "COV, MMD and 1-NNA (Chamfer-L2 on FPS point clouds) of generated against reference shapes; "
            "class fidelity with --by-class",
            _eval_args, _eval_generation, EvalGenerationConfig),
]
