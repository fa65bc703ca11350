"""LAS-Diffusion commands: ``las prepare`` (data) and ``sketch-to-3d`` (inference).

Training and category sampling go through the generic ``shapegen train/generate --method las``
(:mod:`shapegen.commands.methods`); heavy imports happen inside ``run`` functions.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

from shapegen.commands.base import Command
from shapegen.data.las_prepare import LASPrepareConfig
from shapegen.errors import ShapegenError
from shapegen.geometry.export import EXPORT_SUFFIXES


# --------------------------------------------------------------------------------- las prepare
def _las_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["prepare"], help="prepare: TSDF volumes, occupancy shells and synthetic sketches")
    p.add_argument("mesh_dir", help="folder of meshes (sub-folder names become categories)")
    p.add_argument("-o", "--output", required=True, help="data folder to write (resumable)")
    p.add_argument("--category", help="category of every mesh (default: sub-folder name)")
    p.add_argument("--workers", type=int, default=1, help="meshes prepared at once in separate processes (same result as 1)")
    p.add_argument("--fresh", action="store_true", help="prepare every mesh again instead of reusing the data already in OUTPUT")
    p.add_argument("--shard", metavar="K/N", help="prepare only block K of N of the sorted mesh files (cluster array jobs sharing "
                   "OUTPUT; its index goes to index.shard-K-of-N.json); once all N have finished, 'shapegen data merge-shards "
                   "OUTPUT' writes index.json as one run would")


def _las(args: argparse.Namespace, cfg: LASPrepareConfig) -> None:
    from shapegen.data.las_prepare import check_resumable, prepare_dataset
    from shapegen.data.shards import parse_shard

    shard = parse_shard(args.shard) if args.shard is not None else None
    if args.category:
        cfg.category = args.category
    check_resumable(args.output, cfg, args.fresh, shard)
    report = prepare_dataset(args.mesh_dir, args.output, cfg, workers=args.workers, fresh=args.fresh, shard=shard)
    part = f" (shard {shard}; merge with 'shapegen data merge-shards {args.output}' once every shard has finished)" if shard else ""
    print(f"prepared {len(report.prepared)}, reused {len(report.reused)}, skipped {len(report.skipped)} meshes in {args.output}{part}")
    for name, why in report.skipped.items():
        print(f"  skipped {name}: {why}")


# --------------------------------------------------------------------------------- sketch-to-3d
@dataclass
class SketchTo3DConfig:
    """Settings of ``shapegen sketch-to-3d``."""

    radius: float = 0.0
    """Local attention radius in patch widths (0: the model's ``sample.radius``, which its metrics used)."""
    guidance: float = 0.0
    """Classifier-free guidance weight (0: the model's ``sample.guidance``; 1: the conditional model alone)."""
    occupancy_steps: int = 0
    """Stage-1 steps (0: the model's default)."""
    sdf_steps: int = 0
    """Stage-2 steps (0: the model's default)."""
    preview_size: int = 256
    """Side of each tile of the preview PNG."""


def _s2d_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("sketch", help="sketch image (PNG/JPEG; dark strokes on light paper or the reverse)")
    p.add_argument("--checkpoint", required=True, help="a LAS .ckpt written by 'shapegen train --method las'")
    p.add_argument("--view", type=float, help="azimuth of the sketch's view in degrees (LAS views: 0, 45, 90, 135, 180); omitted: no view")
    p.add_argument("--category", help="category (category-conditioned models)")
    p.add_argument("-o", "--output", required=True, help="output mesh (.glb recommended, .obj, .ply); a PNG preview is written beside it")
    p.add_argument("--seed", type=int, default=0, help="noise seed; the same seed gives the same shape")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device (auto: CUDA if available)")


def _sketch_to_3d(args: argparse.Namespace, cfg: SketchTo3DConfig) -> None:
    from shapegen.commands.methods import load_system
    from shapegen.devices import choose_device

    out = Path(args.output)
    if out.suffix.lower() not in EXPORT_SUFFIXES:
        raise ShapegenError(f"cannot write '{out.name}': unknown mesh suffix '{out.suffix}'; use one of {', '.join(EXPORT_SUFFIXES)}")
    if args.view is not None and not math.isfinite(args.view):
        raise ShapegenError("--view must be a finite azimuth in degrees, e.g. 45")
    device = choose_device(args.device)
    model = load_system("las", args.checkpoint, device)
    if not model.config.use_sketch:
        raise ShapegenError(f"checkpoint '{args.checkpoint}' is not sketch-conditioned; use 'shapegen generate --method las'")
    if args.category is not None or model.config.use_category:
        model.class_index(args.category)  # fail fast on an unknown category
    if args.view is None:
        print("note: no --view given; the sketch is attended globally (the LAS model never trains this way)")
    sketch, mesh = sketch_to_mesh(model, args.sketch, args.category, args.view, args.seed, cfg)
    if mesh.num_faces == 0:
        raise ShapegenError("the model produced no surface for this sketch; try another --seed, --view or a better-trained checkpoint")
    from shapegen.geometry.export import export_mesh

    export_mesh(mesh, out)
    png = write_comparison(sketch, mesh, args.view if args.view is not None else 0.0, out.with_suffix(".png"), cfg.preview_size)
    print(f"wrote {out} ({mesh.num_faces} faces) and {png}")


def sketch_to_mesh(model, sketch_path, category: str | None, view: float | None, seed: int = 0,
                   cfg: SketchTo3DConfig | None = None):
    """Sketch-to-3D with a LAS model: ``(ink map, mesh)`` for one sketch file (``sketch-to-3d`` and ``quickstart``).

    Args:
        model: a sketch-conditioned :class:`~shapegen.methods.las.LASDiffusion`.
        sketch_path: the sketch image (read with :func:`~shapegen.data.sketches.load_sketch` at the model's size).
        category: category (None for models without category conditioning).
        view: azimuth in degrees of the sketch's view (None: attended globally).
        seed: noise seed.
        cfg: sampling settings (default: the command's defaults).
    """
    from shapegen.data.sketches import load_sketch

    cfg = cfg or SketchTo3DConfig()
    sketch = load_sketch(sketch_path, model.config.sketch_encoder.image_size)
    result = model.sample(1, category=category, sketch=sketch, azimuth=view, seed=seed,
                          occupancy_steps=cfg.occupancy_steps or None, sdf_steps=cfg.sdf_steps or None,
                          guidance=cfg.guidance or None, radius=cfg.radius or None)
    return sketch, result.meshes[0]


def write_comparison(sketch, mesh, azimuth: float, path: Path, size: int = 256) -> Path:
    """The input sketch beside renders of ``mesh`` from the sketch's view and from two others
    (azimuth + 90 and + 180), all with the LAS camera."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from renderers.preview import render_sheet, save_image
    from shapegen.data.sketches import LAS_FOV, view_c2w

    ink = F.interpolate(sketch[None, None].float(), size=(size, size), mode="area")[0, 0]
    drawing = np.repeat(((1 - ink.clamp(0, 1)) * 255).round().to(torch.uint8).numpy()[..., None], 3, -1)
    views = [view_c2w(az) for az in (azimuth, azimuth + 90.0, azimuth + 180.0)]
    return save_image(path, render_sheet([[drawing, mesh]], size, views=views, fov_deg=LAS_FOV))


COMMANDS = [
    Command("las", "LAS-Diffusion data: 'las prepare MESH_DIR -o DATA_DIR' writes TSDF volumes, occupancy shells and sketches",
            _las_args, _las, LASPrepareConfig),
    Command("sketch-to-3d", "LAS-Diffusion: a sketch (and its view) to a mesh, plus a PNG of the sketch beside renders",
            _s2d_args, _sketch_to_3d, SketchTo3DConfig),
]
