"""``shapegen text-to-3d``: VSD (ProlificDreamer) NeRF stage from a text prompt.

Writes into ``-o OUT_DIR``: ``config.yaml`` (the resolved config), ``model.glb`` (one
``particle_K.glb`` per particle when K > 1; mesh of the density field with albedo vertex
colours), ``turntable.mp4`` (``.gif`` without ffmpeg), ``renders/`` (intermediate renders),
``losses.png`` and ``history.json`` (per-step losses), ``checkpoints/last.ckpt`` (``--resume``).
Heavy imports happen inside ``run`` so that ``shapegen --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from shapegen.commands.base import Command
from shapegen.errors import ShapegenError

PRESETS = ("tiny", "fast", "paper", "default")


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", help='text prompt, e.g. "a DSLR photo of a hamburger"')
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--model", help="Stable Diffusion hub id or local diffusers folder; 'tiny-random' for the offline tiny random model")
    p.add_argument("--tiny-random-prior", action="store_true", help="same as --model tiny-random (smoke runs; the result is meaningless)")
    p.add_argument("--allow-download", action="store_true", help="download the model if it is not in the local cache")
    p.add_argument("--preset", dest="config", choices=PRESETS, help="tiny (CPU, seconds), fast or paper (GPU); default: default (= paper)")
    p.add_argument("--config", metavar="FILE", help="YAML preset (a file, or a name under configs/vsd/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value (repeatable), e.g. --set steps=100")
    p.add_argument("--particles", type=int, help="number of particles K sharing the LoRA model")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/checkpoints/last.ckpt")
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


def _run(args: argparse.Namespace, _unused=None) -> None:
    import torch

    from shapegen.config import load_config, resolve_preset
    from shapegen.methods.vsd import VSDConfig

    # The schema lives with the method (heavy imports), so --config/--set are handled here.
    cfg = load_config(VSDConfig, resolve_preset(args.config, "vsd"), args.overrides)

    if args.tiny_random_prior:
        cfg.model = "tiny-random"
    elif args.model:
        cfg.model = args.model
    if args.allow_download:
        cfg.allow_download = True
    if args.particles is not None:
        if args.particles < 1:
            raise ShapegenError(f"--particles must be at least 1, got {args.particles}")
        cfg.particles = args.particles
    if args.seed is not None:
        cfg.seed = args.seed
    cfg.prompt = args.prompt
    if cfg.requires_gpu and not torch.cuda.is_available():
        raise ShapegenError(
            f"preset '{Path(str(args.config)).stem}' is sized for a GPU (Stable Diffusion at up to "
            f"{max(cfg.render.resolutions)}^2) and no CUDA GPU was found; use --preset tiny on a CPU "
            "(add --tiny-random-prior for an offline smoke run), or --set requires_gpu=false to try anyway"
        )
    out = Path(args.output)
    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if args.resume and not last.is_file():
        raise ShapegenError(f"--resume: no checkpoint at {last}; run without --resume to start")

    import logging
    import warnings

    import pytorch_lightning as pl

    # The frozen prior is in eval mode on purpose.
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")

    if not getattr(args, "verbose", False):  # Lightning logs at INFO through its own handler
        for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
    from pytorch_lightning.callbacks import Callback, ModelCheckpoint

    from renderers.preview import save_animation, save_image
    from shapegen.config import save_config
    from shapegen.geometry.export import export_mesh
    from shapegen.methods.vsd import VSDSystem, resolution_at

    # Build the system (this loads the prior and fails on an unknown model) before anything is
    # written, so a bad --model leaves no output folder behind.
    model = VSDSystem(cfg)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ShapegenError(f"cannot create output folder {out}: {exc.strerror}; choose another -o path") from exc
    save_config(cfg, out / "config.yaml")

    class _Renders(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            step, every = trainer.global_step, cfg.export.render_every
            if every > 0 and (step % every == 0 or step == cfg.steps):
                side = resolution_at(step, cfg.render)
                for k in range(cfg.particles):
                    save_image(out / "renders" / f"step{step:06d}_p{k}.png", pl_module.render_view(k, 30.0, 15.0, side).numpy())

    trainer = pl.Trainer(
        max_steps=cfg.steps,
        accelerator="auto",
        devices=1,
        logger=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        callbacks=[
            ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=max(1, cfg.export.checkpoint_every), save_top_k=0, save_last=True),
            _Renders(),
        ],
    )
    trainer.fit(model, ckpt_path=str(last) if args.resume else None)

    model.eval()
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
            import imageio_ffmpeg  # noqa: F401

            video = out / f"{'turntable' if cfg.particles == 1 else f'turntable_{k}'}.mp4"
        except ImportError:
            video = out / f"{'turntable' if cfg.particles == 1 else f'turntable_{k}'}.gif"
        try:
            save_animation(video, frames, fps=24)
        except ValueError as exc:  # renderers cannot raise ShapegenError (one-way imports)
            raise ShapegenError(str(exc)) from exc
        written.append(video)
    (out / "history.json").write_text(json.dumps(model.history))
    plot_losses(model.history, out / "losses.png")
    print(f"wrote {', '.join(str(p) for p in written)}, {out / 'losses.png'} and renders in {out / 'renders'}")


COMMANDS = [
    Command(
        "text-to-3d",
        "VSD (ProlificDreamer) text-to-3D NeRF stage: prompt -> GLB, turntable, renders, loss plot",
        _args,
        _run,
    ),
]
