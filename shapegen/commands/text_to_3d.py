"""``shapegen text-to-3d``: VSD (ProlificDreamer) from a text prompt, stage by stage.

``--stages`` picks the stages of ProlificDreamer to run, in this order: ``nerf`` (VSD on a
NeRF; the default, as before), ``geometry`` (DMTet from the NeRF, SDS on normal renders) and
``texture`` (VSD on a texture field over the frozen mesh). A stage that is not listed but
needed by a listed one must have finished in ``OUT_DIR`` before (its checkpoint is read);
``--init-mesh MESH`` starts the geometry stage from any mesh's SDF instead of a NeRF.
Every listed stage that has a checkpoint in ``OUT_DIR`` continues from it (the others start);
``--fresh`` starts every listed stage over (``--resume``, the old flag, is the default now).

Writes into ``-o OUT_DIR``: ``config.yaml`` (the resolved config); NeRF stage: ``model.glb``
(one ``particle_K.glb`` per particle when K > 1; mesh of the density field with albedo vertex
colours), ``turntable.mp4`` (``.gif`` without ffmpeg), ``renders/`` (intermediate renders),
``losses.png`` and ``history.json`` (per-step losses), ``checkpoints/last.ckpt``; geometry stage:
``geometry.glb`` (the refined mesh), ``renders/geometry_*.png`` (normal renders),
``history_geometry.json``, ``checkpoints/geometry/last.ckpt``; texture stage: ``textured.glb``
(UV atlas, baked base colour (+ roughness/metallic) textures, glTF PBR material),
``turntable_textured.mp4`` (or ``.gif``), ``renders/texture_*.png``, ``history_texture.json``,
``checkpoints/texture/last.ckpt``.
Heavy imports happen inside ``run`` so that ``shapegen --help`` stays fast.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

from shapegen.commands.base import Command
from shapegen.errors import ShapegenError

PRESETS = ("tiny", "fast", "paper", "default")
VSD_MAY_DIFFER = ("steps", "*.steps", "checkpoint_every", "*.checkpoint_every", "render_every", "*.render_every",
                  "export.*", "*.turntable_frames", "requires_gpu", "allow_download")
"""Settings a resumed stage may change: run lengths, checkpoint and render cadence, exports."""
STAGES = ("nerf", "geometry", "texture")
"""ProlificDreamer's stages, in order."""


def parse_stages(text: str) -> list[str]:
    """``"nerf,geometry"`` -> ``["nerf", "geometry"]`` in pipeline order.

    Raises:
        ShapegenError: an unknown or repeated stage name, or an empty list.
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ShapegenError(f"--stages is empty; choose from {', '.join(STAGES)} (comma-separated)")
    for n in names:
        if n not in STAGES:
            raise ShapegenError(f"unknown stage {n!r} in --stages; choose from {', '.join(STAGES)} (comma-separated, e.g. nerf,geometry,texture)")
    if len(set(names)) != len(names):
        raise ShapegenError(f"--stages lists a stage twice: {text}")
    return sorted(names, key=STAGES.index)


def stage_checkpoint(out: Path, stage: str) -> Path:
    """Where ``stage`` keeps its last checkpoint under ``out``."""
    return out / "checkpoints" / ("last.ckpt" if stage == "nerf" else f"{stage}/last.ckpt")


def _finished_step(path: Path) -> tuple[int, int]:
    """``(global step, configured steps)`` saved in a stage checkpoint."""
    from shapegen.checkpoints import load_checkpoint

    ckpt = load_checkpoint(path)
    cfg = ckpt["hyper_parameters"]["config"]
    stage = ckpt.get("shapegen_stage", "nerf")
    steps = cfg["steps"] if stage == "nerf" else cfg[stage]["steps"]
    return int(ckpt.get("global_step", 0)), int(steps)


def add_prior_args(p: argparse.ArgumentParser) -> None:
    """The prior and preset options shared by ``text-to-3d`` and ``texture`` (see :func:`apply_prior_args`)."""
    p.add_argument("--model", help="Stable Diffusion hub id or local diffusers folder; 'tiny-random' for the offline tiny random model")
    p.add_argument("--tiny-random-prior", action="store_true", help="same as --model tiny-random (smoke runs; the result is meaningless)")
    p.add_argument("--allow-download", action="store_true", help="download the model if it is not in the local cache")
    p.add_argument("--preset", dest="config", choices=PRESETS, help="tiny (CPU, seconds), fast or paper (GPU); default: default (= paper)")
    p.add_argument("--config", metavar="FILE", help="YAML preset (a file, or a name under configs/vsd/)")


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", help='text prompt, e.g. "a DSLR photo of a hamburger"')
    p.add_argument("-o", "--output", required=True, help="output folder")
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
        "--stages", default="nerf", help="comma-separated stages to run, in order: nerf, geometry, texture (default: nerf; the paper runs all three)"
    )
    p.set_defaults(config="default")


def plot_losses(history: list[dict[str, float]], path: Path, size: tuple[int, int] = (640, 360)) -> None:
    """A PNG line chart of the VSD and LoRA losses per step (each scaled to its own range)."""
    from PIL import Image, ImageDraw

    from renderers.preview import save_image

    w, h = size
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 50, w - 10, 30, h - 30
    draw.rectangle([left, top, right, bottom], outline="black")
    steps = [r["step"] for r in history]
    s0, s1 = (min(steps), max(steps)) if steps else (0.0, 1.0)
    legend_x = left + 5
    for key, color in (("loss_vsd", (200, 40, 40)), ("loss_lora", (40, 80, 200))):
        values = [r[key] for r in history if math.isfinite(r[key])]
        if not values:
            continue
        lo, hi = min(values), max(values)
        pts = [
            (left + (r["step"] - s0) / max(s1 - s0, 1e-9) * (right - left), bottom - (r[key] - lo) / max(hi - lo, 1e-12) * (bottom - top))
            for r in history
            if math.isfinite(r[key])
        ]
        if len(pts) > 1:
            draw.line(pts, fill=color, width=2)
        else:
            draw.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=color)
        draw.text((legend_x, 8), f"{key} [{lo:.3g}, {hi:.3g}]", fill=color)
        legend_x += 260
    draw.text((left, bottom + 8), f"step {s0:.0f}", fill="black")
    draw.text((right - 70, bottom + 8), f"step {s1:.0f}", fill="black")
    import numpy as np

    save_image(path, np.asarray(img))


def apply_prior_args(cfg, args: argparse.Namespace) -> None:
    """The prior, seed and prompt options shared by ``text-to-3d`` and ``texture`` into ``cfg``
    (a ``VSDConfig``); a GPU-sized preset without a GPU is a one-line error."""
    import torch

    if args.tiny_random_prior:
        cfg.model = "tiny-random"
    elif args.model:
        cfg.model = args.model
    if args.allow_download:
        cfg.allow_download = True
    if args.seed is not None:
        cfg.seed = args.seed
    cfg.prompt = args.prompt
    if cfg.requires_gpu and not torch.cuda.is_available():
        raise ShapegenError(
            f"preset '{Path(str(args.config)).stem}' is sized for a GPU (Stable Diffusion at up to "
            f"{max(cfg.render.resolutions)}^2) and no CUDA GPU was found; use --preset tiny on a CPU "
            "(add --tiny-random-prior for an offline smoke run), or --set requires_gpu=false to try anyway"
        )


def _run(args: argparse.Namespace, _unused=None) -> None:

    from shapegen.config import load_config, resolve_preset
    from shapegen.methods.vsd import VSDConfig

    # The schema lives with the method (heavy imports), so --config/--set are handled here.
    cfg = load_config(VSDConfig, resolve_preset(args.config, "vsd"), args.overrides)

    if args.particles is not None:
        if args.particles < 1:
            raise ShapegenError(f"--particles must be at least 1, got {args.particles}")
        cfg.particles = args.particles
    apply_prior_args(cfg, args)
    out = Path(args.output)
    stages = parse_stages(args.stages)
    if args.fresh and args.resume:
        raise ShapegenError("--fresh and --resume contradict each other; give one (resuming is the default)")
    init_mesh = None
    if args.init_mesh:
        if stages[0] != "geometry":
            raise ShapegenError(
                f"--init-mesh starts the geometry stage, but --stages {args.stages} does not begin with it; use --stages geometry or geometry,texture"
            )
        from shapegen.geometry.mesh_io import load_mesh, normalize_mesh

        init_mesh = load_mesh(args.init_mesh)
        if init_mesh.num_faces == 0:
            raise ShapegenError(f"--init-mesh {args.init_mesh} has no faces")
        # The framing the cameras expect (as shapegen texture): largest half-extent texture.mesh_extent.
        init_mesh, _ = normalize_mesh(init_mesh, "cube", padding=cfg.texture.mesh_extent)
    first = STAGES.index(stages[0])
    if first > 0 and init_mesh is None:  # the stage before the first listed one must have finished in OUT_DIR
        before = STAGES[first - 1]
        path = stage_checkpoint(out, before)
        if not path.is_file():
            raise ShapegenError(
                f"stage {stages[0]} needs the {before} stage's result, but {path} does not exist; add {before} to --stages or run it first with the same -o"
            )
        done, total = _finished_step(path)
        if done < total:
            raise ShapegenError(f"the {before} stage in {out} stopped at step {done} of {total}; finish it with --stages {before}")
    for a, b in itertools.pairwise(stages):
        if STAGES.index(b) != STAGES.index(a) + 1:
            missing = STAGES[STAGES.index(a) + 1]
            raise ShapegenError(
                f"--stages {args.stages}: {b} needs {missing}, which is not listed; use --stages {','.join(STAGES[STAGES.index(a) : STAGES.index(b) + 1])}"
            )
    if not 0 <= cfg.geometry.particle < cfg.particles and "nerf" in stages:
        raise ShapegenError(f"geometry.particle={cfg.geometry.particle} but there are {cfg.particles} particle(s)")

    import logging
    import warnings

    # The frozen prior is in eval mode on purpose.
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")

    if not getattr(args, "verbose", False):  # Lightning logs at INFO through its own handler
        for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
    from shapegen.checkpoints import resume_from
    from shapegen.config import save_config, to_dict
    from shapegen.methods.vsd import VSDSystem

    # Every listed stage's checkpoint is checked (and a mismatch refused) before any work.
    resume = {
        s: resume_from(
            stage_checkpoint(out, s),
            to_dict(cfg),
            fresh=args.fresh,
            may_differ=VSD_MAY_DIFFER,
            saved_config=lambda ckpt: ckpt.get("hyper_parameters", {}).get("config"),
        )
        is not None
        for s in stages
    }
    # Build the first system (this loads the prior and fails on an unknown model) before
    # anything is written, so a bad --model leaves no output folder behind.
    if stages[0] == "nerf":
        model = VSDSystem(cfg)
    else:
        from shapegen.methods.vsd_mesh import GeometrySystem, TextureSystem

        model = (GeometrySystem if stages[0] == "geometry" else TextureSystem)(cfg)
    from shapegen.io import make_output_dir

    make_output_dir(out)  # removed again if the run fails before writing anything into it
    save_config(cfg, out / "config.yaml")
    for stage in stages:
        if stage == "geometry":
            model = _run_geometry(cfg, out, model, resume[stage], init_mesh)
        elif stage == "texture":
            model = _run_texture(cfg, out, model, resume[stage])
        else:
            _run_nerf(cfg, out, model, resume[stage])
        model = None


def fit_stage(model, steps: int, ckpt: Path, every: int, callbacks: list, resume: bool, seed: int | None = None) -> None:
    """Train one stage with Lightning: ``last.ckpt`` beside ``ckpt`` every ``every`` steps, resume
    from ``ckpt`` if asked, save the final step to ``ckpt`` (also when ``steps`` is not a multiple of
    ``every``) and leave the model in eval mode. ``seed`` seeds the global generators first (the
    noise and timesteps of score distillation come from them; torch seeds itself randomly at
    start-up), so a run is reproducible; a resumed run gets them back from the checkpoint."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from shapegen.checkpoints import RNGCheckpoint, SafeCheckpointIO, fit

    if seed is not None:
        pl.seed_everything(seed, workers=True, verbose=False)
    trainer = pl.Trainer(
        max_steps=steps,
        accelerator="auto",
        devices=1,
        logger=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        plugins=[SafeCheckpointIO()],
        callbacks=[ModelCheckpoint(dirpath=ckpt.parent, every_n_train_steps=max(1, every), save_top_k=0, save_last=True), RNGCheckpoint(seed), *callbacks],
    )
    fit(trainer, model, ckpt_path=ckpt if resume else None)
    trainer.save_checkpoint(ckpt, weights_only=False)  # the full state, so a later run can resume it
    model.eval()


def _render_callback(every: int, steps: int, render):
    from pytorch_lightning.callbacks import Callback

    class _Renders(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            step = trainer.global_step
            if every > 0 and (step % every == 0 or step == steps):
                render(pl_module, step)

    return _Renders()


def _save_video(frames, stem: Path) -> Path:
    from renderers.preview import save_animation

    try:
        import imageio_ffmpeg  # noqa: F401 (only checks that it is installed)

        video = stem.with_suffix(".mp4")
    except ImportError:
        video = stem.with_suffix(".gif")
    try:
        save_animation(video, frames, fps=24)
    except ValueError as exc:  # renderers cannot raise ShapegenError (one-way imports)
        raise ShapegenError(str(exc)) from exc
    return video


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _run_geometry(cfg, out: Path, model, resume: bool, init_mesh=None):
    """Stage 2: DMTet from the NeRF (or ``init_mesh``), SDS on normal renders; writes geometry.glb."""
    from renderers.preview import save_image
    from shapegen.geometry.export import export_mesh
    from shapegen.io import atomic_path
    from shapegen.methods.vsd_mesh import GeometrySystem, nerf_level_function

    g = cfg.geometry
    model = model if isinstance(model, GeometrySystem) else GeometrySystem(cfg)
    ckpt = stage_checkpoint(out, "geometry")
    if not resume:
        device = _device()
        model.to(device)
        if init_mesh is not None:
            from shapegen.geometry.sdf import MeshSDF

            model.init_from_sdf(MeshSDF(init_mesh.to(device)))
        else:
            model.init_from_sdf(nerf_level_function(stage_checkpoint(out, "nerf"), g.particle, device))

    def render(m, step):
        save_image(out / "renders" / f"geometry_step{step:06d}.png", m.render_view(30.0, 15.0, g.resolution).numpy())

    fit_stage(model, g.steps, ckpt, g.checkpoint_every, [_render_callback(g.render_every, g.steps, render)], resume, cfg.seed)
    mesh = model.extract_mesh()
    path = export_mesh(mesh, out / "geometry.glb")
    with atomic_path(out / "history_geometry.json") as tmp:  # a kill never leaves half a file
        tmp.write_text(json.dumps(model.history))
    print(f"wrote {path} ({mesh.num_faces} faces) and normal renders in {out / 'renders'}")


def _run_texture(cfg, out: Path, model, resume: bool):
    """Stage 3: VSD texture field on the frozen geometry-stage mesh; writes textured.glb."""
    from renderers.preview import save_image
    from shapegen.geometry.export import export_mesh
    from shapegen.io import atomic_path
    from shapegen.methods.vsd_mesh import TextureSystem, dmtet_mesh_from_checkpoint

    t = cfg.texture
    ckpt = stage_checkpoint(out, "texture")
    if resume:
        model = model if isinstance(model, TextureSystem) else TextureSystem(cfg)
    else:
        mesh = dmtet_mesh_from_checkpoint(stage_checkpoint(out, "geometry"))
        if isinstance(model, TextureSystem):
            model.set_mesh(mesh.vertices, mesh.faces)
        else:
            model = TextureSystem(cfg, mesh.vertices, mesh.faces)

    def render(m, step):
        save_image(out / "renders" / f"texture_step{step:06d}.png", m.render_view(30.0, 15.0, t.resolution).numpy())

    fit_stage(model, t.steps, ckpt, t.checkpoint_every, [_render_callback(t.render_every, t.steps, render)], resume, cfg.seed)
    path = export_mesh(model.textured_mesh(), out / "textured.glb")
    frames = [model.render_view(360.0 * i / t.turntable_frames, 15.0, t.resolution).numpy() for i in range(t.turntable_frames)]
    video = _save_video(frames, out / "turntable_textured")
    with atomic_path(out / "history_texture.json") as tmp:  # a kill never leaves half a file
        tmp.write_text(json.dumps(model.history))
    print(f"wrote {path}, {video} and renders in {out / 'renders'}")


def _run_nerf(cfg, out: Path, model, resume: bool) -> None:
    """Stage 1: VSD on NeRF particles (the original ``text-to-3d``)."""
    from renderers.preview import save_animation, save_image
    from shapegen.geometry.export import export_mesh
    from shapegen.io import atomic_path
    from shapegen.methods.vsd import resolution_at

    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"

    def render(m, step):
        side = resolution_at(step, cfg.render)
        for k in range(cfg.particles):
            save_image(out / "renders" / f"step{step:06d}_p{k}.png", m.render_view(k, 30.0, 15.0, side).numpy())

    fit_stage(model, cfg.steps, last, cfg.export.checkpoint_every, [_render_callback(cfg.export.render_every, cfg.steps, render)], resume, cfg.seed)
    written = []
    for k in range(cfg.particles):
        stem = "model" if cfg.particles == 1 else f"particle_{k}"
        mesh = model.extract_mesh(k)
        written.append(export_mesh(mesh, out / f"{stem}.glb"))
        frames = [
            model.render_view(k, 360.0 * i / cfg.export.turntable_frames, 15.0, cfg.export.turntable_resolution).numpy()
            for i in range(cfg.export.turntable_frames)
        ]
        try:
            import imageio_ffmpeg  # noqa: F401 (only checks that it is installed)

            video = out / f"{'turntable' if cfg.particles == 1 else f'turntable_{k}'}.mp4"
        except ImportError:
            video = out / f"{'turntable' if cfg.particles == 1 else f'turntable_{k}'}.gif"
        try:
            save_animation(video, frames, fps=24)
        except ValueError as exc:  # renderers cannot raise ShapegenError (one-way imports)
            raise ShapegenError(str(exc)) from exc
        written.append(video)
    with atomic_path(out / "history.json") as tmp:  # a kill never leaves half a file
        tmp.write_text(json.dumps(model.history))
    plot_losses(model.history, out / "losses.png")
    print(f"wrote {', '.join(str(p) for p in written)}, {out / 'losses.png'} and renders in {out / 'renders'}")


COMMANDS = [
    Command(
        "text-to-3d",
        "VSD (ProlificDreamer) text-to-3D: NeRF, DMTet geometry and texture stages (--stages) -> GLB, turntable, renders",
        _args,
        _run,
    ),
]
