"""Method commands: ``train`` and ``generate`` for any entry of :data:`shapegen.methods.METHODS`,
and ``eval-generation`` (COV / MMD / 1-NNA of generated against reference meshes).

``train`` and ``generate`` take ``--method NAME``; the config schema, the presets folder
(``configs/NAME/``) and the system class come from the method, so ``--config`` and ``--set`` are
added here rather than by the generic parser. Heavy imports happen inside ``run`` functions.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from shapegen.commands.base import Command
from shapegen.errors import ShapegenError

if TYPE_CHECKING:  # torch is imported inside the commands, so `shapegen --help` starts fast
    import torch


def method_class(name: str):
    """The LightningModule class registered as ``name`` in ``METHODS``.

    Raises:
        ShapegenError: for a name that is not in the table.
    """
    from shapegen.methods import METHODS

    if name not in METHODS:
        raise ShapegenError(f"unknown method '{name}'; choose one of: {', '.join(sorted(METHODS)) or '(none yet)'}")
    module, _, cls = METHODS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def _method_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", required=True, help="method name, e.g. msdf")


def _require(system, name: str, *attrs: str):
    """Check that a method's system supports the generic commands (some methods have their own)."""
    missing = [a for a in attrs if not hasattr(system, a)]
    if missing:
        raise ShapegenError(f"method '{name}' does not support this generic command (no {', '.join(missing)}); "
                            f"see 'shapegen --help' for its own commands")
    return system


# -------------------------------------------------------------------------------------- train
TRAIN_MAY_DIFFER = ("train.max_steps", "train.checkpoint_every", "train.log_every", "train.preview_every",
                    "train.accelerator", "train.init_from", "data.root", "data.num_workers")
"""Settings a resumed ``train`` run may change: how long it runs, how often it logs, where the data is."""

def _train_args(p: argparse.ArgumentParser) -> None:
    _method_arg(p)
    p.add_argument("-o", "--output", help="run folder for checkpoints, loss plot and previews (default: runs/METHOD)")
    p.add_argument("--config", metavar="FILE", help="YAML preset (a file, or a name under configs/METHOD/, e.g. tiny)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value (repeatable), e.g. --set data.root=data/msdf")
    p.add_argument("--fresh", action="store_true", help="start over instead of resuming from OUTPUT/checkpoints/last.ckpt")
    p.add_argument("--stage", help="train one stage of a multi-stage method (las: occupancy, sdf or both; same as "
                   "--set train.stage=...); a checkpoint of another stage in OUTPUT is loaded, not resumed, and keeps its weights")


def write_loss_plot(steps: list[int], losses: list[float], path: str | Path, title: str = "training loss") -> Path:
    """Draw loss against step (log-scaled loss axis) into a PNG with Pillow (no matplotlib needed)."""
    from PIL import Image, ImageDraw

    from shapegen.io import atomic_path

    w, h, m = 640, 400, 50
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    d.rectangle([m, m // 2, w - m // 2, h - m], outline="black")
    d.text((m, 5), title, fill="black")
    pts = [(s, math.log10(max(v, 1e-12))) for s, v in zip(steps, losses) if math.isfinite(v)]
    if len(pts) >= 2:
        s0, s1 = pts[0][0], max(pts[-1][0], pts[0][0] + 1)
        lo, hi = min(p[1] for p in pts), max(p[1] for p in pts)
        hi = hi if hi > lo else lo + 1.0

        def xy(s: float, v: float) -> tuple[float, float]:
            return m + (s - s0) / (s1 - s0) * (w - 1.5 * m), (h - m) - (v - lo) / (hi - lo) * (h - 1.5 * m)

        d.line([xy(*p) for p in pts], fill=(30, 90, 200), width=2)
        d.text((5, m // 2), f"{10 ** hi:.3g}", fill="black")
        d.text((5, h - m - 10), f"{10 ** lo:.3g}", fill="black")
        d.text((m, h - m + 5), f"step {s0}", fill="black")
        d.text((w - 2 * m - 20, h - m + 5), f"step {pts[-1][0]}", fill="black")
    path = Path(path)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path


def _callbacks(out: Path, every: int, preview_every: int):
    import pytorch_lightning as pl

    class LossLog(pl.Callback):
        """Keeps the per-step loss; writes ``loss.csv`` and ``loss.png`` every ``every`` steps and at the end."""

        def __init__(self) -> None:
            self.steps: list[int] = []
            self.losses: list[float] = []

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            self.steps.append(int(trainer.global_step))
            self.losses.append(float(loss))
            if every and trainer.global_step % every == 0:
                self.flush()

        # The history travels in the checkpoint, so a resumed run's plot starts at step 1, not
        # at the resumed step (loss.csv is only flushed every ``every`` steps).
        def state_dict(self) -> dict:
            return {"steps": list(self.steps), "losses": list(self.losses)}

        def load_state_dict(self, state_dict: dict) -> None:
            self.steps, self.losses = list(state_dict["steps"]), list(state_dict["losses"])

        def flush(self) -> None:
            if not self.steps:
                return
            from shapegen.io import atomic_path

            with atomic_path(out / "loss.csv") as tmp, open(tmp, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["step", "loss"])
                writer.writerows(zip(self.steps, self.losses))
            write_loss_plot(self.steps, self.losses, out / "loss.png")

        def on_train_end(self, trainer, module) -> None:
            self.flush()

    class Previews(pl.Callback):
        """Samples, decodes and renders a sheet every ``preview_every`` steps and at the end."""

        def _write(self, trainer, module) -> None:
            if not hasattr(module, "write_samples"):
                return
            try:
                module.write_samples(out / "previews" / f"step_{trainer.global_step:07d}", num=4, seed=0)
            except ShapegenError as exc:  # e.g. decoding not available: training goes on
                print(f"note: no preview at step {trainer.global_step}: {exc}")

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            if preview_every > 0 and trainer.global_step % preview_every == 0:
                self._write(trainer, module)

        def on_train_end(self, trainer, module) -> None:
            if preview_every >= 0:
                self._write(trainer, module)

    return [LossLog(), Previews()]


def _train(args: argparse.Namespace, _config) -> None:
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from shapegen.checkpoints import RNGCheckpoint, SafeCheckpointIO, fit, resume_from
    from shapegen.config import load_config, resolve_preset, save_config
    from shapegen.io import make_output_dir

    system = _require(method_class(args.method), args.method, "CONFIG", "for_training")
    path = resolve_preset(args.config, args.method) if args.config else None
    overrides = list(args.overrides)
    if args.stage is not None:
        if not hasattr(getattr(system.CONFIG(), "train", None), "stage"):
            raise ShapegenError(f"method '{args.method}' has no training stages; drop --stage")
        overrides.append(f"train.stage={args.stage}")
    cfg = load_config(system.CONFIG, path, overrides)
    out = Path(args.output or f"runs/{args.method}")
    last = out / "checkpoints" / "last.ckpt"
    other_stage = last.is_file() and not args.fresh and hasattr(system, "resumable") and not system.resumable(cfg, last)
    if other_stage:
        # Another stage wrote this checkpoint: start this stage from its weights, keep the rest.
        print(f"{last} was trained with another stage; training stage '{cfg.train.stage}' from its weights")
        cfg.train.init_from = str(last)
    pl.seed_everything(cfg.train.seed, workers=True, verbose=False)
    model, datamodule = system.for_training(cfg)
    # Compared with what this run would save (after for_training filled in what the data decides).
    resume = None if other_stage else resume_from(last, dict(model.hparams), fresh=args.fresh, may_differ=TRAIN_MAY_DIFFER)
    make_output_dir(out)  # removed again if the run fails before writing anything into it
    save_config(model.config, out / "config.yaml")
    tc = cfg.train
    checkpoint = ModelCheckpoint(dirpath=out / "checkpoints", save_last=True, save_top_k=0,
                                 every_n_train_steps=max(1, tc.checkpoint_every))
    trainer = pl.Trainer(
        max_steps=tc.max_steps, accelerator=tc.accelerator, devices=1, precision="32-true",
        gradient_clip_val=tc.grad_clip or None, log_every_n_steps=max(1, tc.log_every), logger=False,
        callbacks=[checkpoint, RNGCheckpoint(tc.seed), *_callbacks(out, max(1, tc.log_every) * 10, tc.preview_every)],
        default_root_dir=out, enable_model_summary=False, plugins=[SafeCheckpointIO()],
    )
    fit(trainer, model, datamodule=datamodule, ckpt_path=resume)
    trainer.save_checkpoint(last, weights_only=False)  # the full state, so a later run can resume it
    print(f"wrote {last}, {out / 'loss.png'} and {out / 'config.yaml'}")


# ----------------------------------------------------------------------------------- generate
def _generate_args(p: argparse.ArgumentParser) -> None:
    _method_arg(p)
    p.add_argument("--checkpoint", required=True, help="a .ckpt written by 'shapegen train'")
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
class GenerateConfig:
    """``shapegen generate`` settings beyond the flags (``--set``); they apply to methods that decode M-SDFs."""

    close_holes: bool = True
    """Close the decoded surfaces where the cubes leave gaps (false: open there)."""
    min_component_fraction: float = 0.05
    """Drop connected components below this share of a mesh's area (0 keeps every piece)."""


def load_system(method: str, checkpoint: str | Path, device: torch.device | str = "cpu"):
    """Load a trained system from a checkpoint (one-line errors for every user mistake)."""
    system = _require(method_class(method), method, "load_from_checkpoint", "write_samples")
    ckpt = Path(checkpoint)
    if not ckpt.is_file():
        raise ShapegenError(f"checkpoint '{ckpt}' not found; train one with 'shapegen train --method {method}'")
    from shapegen.checkpoints import load_module

    try:
        model = load_module(system, ckpt, map_location=device)
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
    device = choose_device(args.device)
    model = load_system(args.method, args.checkpoint, device)
    if args.cls is not None:
        model.class_index(args.cls)  # fail fast on an unknown class, before any sampling
    mesh_options = {"close_holes": cfg.close_holes, "min_component_fraction": cfg.min_component_fraction}
    if not set(mesh_options) <= set(inspect.signature(model.write_samples).parameters):
        if mesh_options != vars(GenerateConfig()):
            raise ShapegenError(f"method '{args.method}' meshes its samples its own way; close_holes and "
                                "min_component_fraction apply to msdf only")
        mesh_options = {}
    result = model.write_samples(args.output, num=args.num, cls=args.cls, prompt=args.prompt, seed=args.seed, steps=args.steps,
                                 solver=args.solver, guidance=args.guidance, resolution=args.resolution, **mesh_options)
    print(f"wrote {len(result.msdf_files)} M-SDF files, {len(result.mesh_files)} meshes and {result.preview} in {result.out_dir}")
    if result.empty:
        print(f"note: samples {result.empty} decoded to no surface (an under-trained model?); they have no GLB")


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


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("generated", help="folder of generated meshes (.glb/.obj/.ply) or .msdf.npz files")
    p.add_argument("reference", help="folder of reference (held-out) meshes or .msdf.npz files")
    p.add_argument("--baseline", metavar="DIR", help="training shapes: the same metrics against the reference, to read the figures by")
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
    report = evaluate_generation(args.generated, args.reference, args.baseline, num_points=cfg.num_points,
                                 dense_factor=cfg.dense_factor, normalize=cfg.normalize, seed=cfg.seed,
                                 loader=_shape_loader(cfg.resolution))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("\n".join(report.lines()))


COMMANDS = [
    Command("train", "train a generative method (--method msdf) with Lightning; resumes from OUTPUT/checkpoints/last.ckpt", _train_args, _train),
    Command("generate", "sample shapes from a trained checkpoint: M-SDF files, GLB meshes and a preview sheet", _generate_args, _generate,
            GenerateConfig),
    Command("eval-generation", "COV, MMD and 1-NNA (Chamfer-L2 on FPS point clouds) of generated against reference shapes",
            _eval_args, _eval_generation, EvalGenerationConfig),
]
