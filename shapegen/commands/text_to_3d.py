"""``shapegen text-to-3d``: shapes from a text prompt, by one of two methods (``--method``).

``--method msdf`` (the default unless a VSD option such as ``--model`` is given): the shipped
text-conditioned Mosaic-SDF model (or ``--checkpoint``) samples ``--num`` shapes in seconds,
offline, on a CPU (:func:`shapegen.methods.text_msdf.text_to_shape`); it writes ``shape.glb``
(``shape_XX.glb`` for several), ``preview.png`` and ``turntable.mp4`` (``.gif`` without ffmpeg).
``--set`` takes :class:`~shapegen.methods.text_msdf.TextToShapeConfig` keys then.

``--method vsd``: VSD (ProlificDreamer) with a Stable Diffusion prior, stage by stage (the command
around :func:`shapegen.methods.text_to_3d.text_to_3d`).

``--stages`` picks the stages of ProlificDreamer to run, in this order: ``nerf`` (VSD on a
NeRF; the default, as before), ``geometry`` (DMTet from the NeRF, SDS on normal renders) and
``texture`` (VSD on a texture field over the frozen mesh). A stage that is not listed but
needed by a listed one must have finished in ``OUT_DIR`` before (its checkpoint is read);
``--init-mesh MESH`` starts the geometry stage from any mesh's SDF instead of a NeRF;
``--init msdf`` (a shape generated from the prompt) or ``--init MESH`` starts the NeRF stage's
density from a shape (``init.*``; fitted once, when the NeRF stage starts, written as ``init.glb``).
Every listed stage that has a checkpoint in ``OUT_DIR`` continues from it (the others start);
``--fresh`` starts every listed stage over (``--resume``, the old flag, is the default now).

Writes into ``-o OUT_DIR``: ``config.yaml`` (the resolved config); NeRF stage: ``model.glb``
(one ``particle_K.glb`` per particle when K > 1; mesh of the density field with albedo vertex
colours), ``turntable.mp4`` (``.gif`` without ffmpeg), ``renders/`` (intermediate renders),
``losses.png`` and ``history.json`` (per-step VSD and LoRA losses), ``loss.csv`` and ``loss.png``
(the total loss), ``checkpoints/last.ckpt``; geometry stage:
``geometry.glb`` (the refined mesh), ``renders/geometry_*.png`` (normal renders),
``history_geometry.json``, ``checkpoints/geometry/last.ckpt``; texture stage: ``textured.glb``
(UV atlas, baked base colour (+ roughness/metallic) textures, glTF PBR material),
``turntable_textured.mp4`` (or ``.gif``), ``renders/texture_*.png``, ``history_texture.json``,
``checkpoints/texture/last.ckpt``. ``--devices``, ``--strategy``, ``--precision`` and
``--accelerator`` set the run (``train.*``) of every stage.
Heavy imports happen inside ``run`` so that ``shapegen --help`` stays fast.
"""

from __future__ import annotations

import argparse

from shapegen.commands.base import Command
from shapegen.commands.methods import add_run_args
from shapegen.errors import ShapegenError

PRESETS = ("tiny", "cpu", "fast", "paper", "default")


def parse_stages(text: str) -> list[str]:
    """``"nerf,geometry"`` -> ``["nerf", "geometry"]`` in pipeline order.

    Raises:
        ShapegenError: an unknown, repeated or missing stage, or an empty list.
    """
    from shapegen.methods.text_to_3d import check_stages

    return check_stages([n.strip() for n in text.split(",") if n.strip()])


def add_prior_args(p: argparse.ArgumentParser) -> None:
    """The prior and preset options shared by ``text-to-3d`` and ``texture`` (see :func:`apply_prior_args`)."""
    p.add_argument("--model", help="Stable Diffusion hub id or local diffusers folder; 'render-prior' for the shipped offline "
                   "prior (with --preset cpu); 'tiny-random' for the offline tiny random model")
    p.add_argument("--tiny-random-prior", action="store_true", help="same as --model tiny-random (smoke runs; the result is meaningless)")
    p.add_argument("--allow-download", action="store_true", help="download the model if it is not in the local cache")
    p.add_argument("--preset", dest="config", choices=PRESETS, help="tiny (CPU, seconds), cpu (CPU, minutes, the shipped render prior), fast or paper (GPU); "
                   "default: default (= paper)")
    p.add_argument("--config", metavar="FILE", help="YAML preset (a file, or a name under configs/vsd/)")


#: VSD-only options (their argparse destinations) that pick ``--method vsd`` when none is given.
VSD_OPTIONS = {"model": "--model", "tiny_random_prior": "--tiny-random-prior", "allow_download": "--allow-download",
               "config": "--preset/--config", "particles": "--particles", "fresh": "--fresh", "resume": "--resume",
               "init_mesh": "--init-mesh", "init": "--init", "stages": "--stages", "no_progress": "--no-progress"}


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", help='text prompt, e.g. "a round table on a single pedestal" (msdf) or "a DSLR photo of a hamburger" (vsd)')
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--method", choices=["msdf", "vsd"],
                   help="msdf: the shipped text-conditioned Mosaic-SDF model (offline, seconds on a CPU); vsd: ProlificDreamer with a "
                        "Stable Diffusion prior (--model). Default: vsd when a VSD option (--model, --preset, --stages...) is given, else msdf")
    p.add_argument("--num", type=int, help="msdf: number of shapes (default 1)")
    p.add_argument("--checkpoint", help="msdf: a text-conditioned msdf checkpoint instead of the shipped model")
    add_prior_args(p)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value (repeatable), e.g. --set steps=100")
    p.add_argument("--particles", type=int, help="number of particles K sharing the LoRA model")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--fresh", action="store_true", help="start every listed stage over instead of continuing from its checkpoint in OUT_DIR/checkpoints/")
    p.add_argument("--resume", action="store_true", help="accepted for old command lines; continuing each listed stage from its checkpoint is the default now")
    p.add_argument(
        "--init-mesh",
        metavar="MESH",
        help="start the geometry stage from this mesh's SDF instead of the NeRF (e.g. a Mosaic-SDF or LAS result); needs --stages geometry[,texture]",
    )
    p.add_argument(
        "--init",
        metavar="SHAPE",
        help="start the NeRF's density from a shape: 'msdf' (generated from the prompt by the Mosaic-SDF model) or a mesh file; "
        "fitted once when the NeRF stage starts (sets init.mesh)",
    )
    p.add_argument(
        "--stages", help="comma-separated stages to run, in order: nerf, geometry, texture (default: nerf; the paper runs all three)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_run_args(p)


def apply_prior_args(cfg, args: argparse.Namespace) -> None:
    """The prior, seed and prompt options shared by ``text-to-3d`` and ``texture`` into ``cfg`` (a ``VSDConfig``)."""
    if args.tiny_random_prior:
        cfg.model = "tiny-random"
    elif args.model:
        cfg.model = args.model
    if args.allow_download:
        cfg.allow_download = True
    if args.seed is not None:
        cfg.seed = args.seed
    cfg.prompt = args.prompt


def pick_method(args: argparse.Namespace) -> str:
    """``--method``, or ``vsd`` when a VSD option is given and ``msdf`` otherwise.

    Raises:
        ShapegenError: ``--method msdf`` with VSD options or run flags, or ``--method vsd`` with msdf options.
    """
    from shapegen.commands.methods import run_overrides

    vsd_given = [flag for dest, flag in VSD_OPTIONS.items() if getattr(args, dest, None) not in (None, False)]
    method = args.method or ("vsd" if vsd_given else "msdf")
    if method == "msdf" and (vsd_given or run_overrides(args)):
        flags = vsd_given or ["--devices/--strategy/--precision/--accelerator/--num-nodes"]
        raise ShapegenError(f"{', '.join(flags)} apply to --method vsd only; drop them or pass --method vsd")
    msdf_given = [flag for dest, flag in (("num", "--num"), ("checkpoint", "--checkpoint")) if getattr(args, dest) is not None]
    if method == "vsd" and msdf_given:
        raise ShapegenError(f"{', '.join(msdf_given)} apply to --method msdf only (vsd: --particles, --model)")
    return method


def _run_msdf(args: argparse.Namespace) -> None:
    import sys

    from shapegen.config import load_config
    from shapegen.methods.text_msdf import TextToShapeConfig, text_to_shape
    from shapegen.progress import report

    report("loading")
    cfg = load_config(TextToShapeConfig, None, args.overrides)
    result = text_to_shape(args.prompt, args.output, num=1 if args.num is None else args.num, seed=args.seed or 0,
                           checkpoint=args.checkpoint, config=cfg, warn=lambda line: print(f"warning: {line}", file=sys.stderr))
    written = [*result.meshes, result.preview, *result.turntables]
    report("done", 1, 1)
    print(f"wrote {', '.join(str(p) for p in written)} in {result.seconds:.1f} s")
    if result.empty:
        print(f"note: samples {result.empty} decoded to no surface; try another --seed")


def _run(args: argparse.Namespace, _unused=None) -> None:
    if pick_method(args) == "msdf":
        _run_msdf(args)
        return
    from shapegen.commands.methods import run_overrides
    from shapegen.config import load_config, resolve_preset
    from shapegen.methods.text_to_3d import text_to_3d
    from shapegen.methods.vsd import VSDConfig

    # The schema lives with the method (heavy imports), so --config/--set are handled here.
    cfg = load_config(VSDConfig, resolve_preset(args.config or "default", "vsd"), [*args.overrides, *run_overrides(args)])
    if args.particles is not None:
        if args.particles < 1:
            raise ShapegenError(f"--particles must be at least 1, got {args.particles}")
        cfg.particles = args.particles
    apply_prior_args(cfg, args)
    stages = parse_stages(args.stages or "nerf")
    if args.init is not None:
        if "nerf" not in stages:
            raise ShapegenError(f"--init starts the NeRF stage, but --stages {','.join(stages)} does not run it; "
                                "use --init-mesh MESH to start the geometry stage from a mesh")
        cfg.init.mesh = args.init
    if args.fresh and args.resume:
        raise ShapegenError("--fresh and --resume contradict each other; give one (resuming is the default)")
    result = text_to_3d(cfg, args.output, stages=stages, fresh=args.fresh, init_mesh=args.init_mesh, progress=not args.no_progress)
    written = [*result.meshes, *result.videos, *result.plots]
    print(f"wrote {', '.join(str(p) for p in written)} and renders in {result.renders}")


COMMANDS = [
    Command(
        "text-to-3d",
        "text-to-3D: the shipped Mosaic-SDF text model (--method msdf, offline, seconds) or VSD (ProlificDreamer) stages -> GLB, turntable",
        _args,
        _run,
    ),
]
