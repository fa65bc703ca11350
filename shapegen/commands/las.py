"""LAS-Diffusion commands: ``las prepare`` (data), ``las eval`` (held-out metrics), ``sketch-to-3d`` (inference)
and ``las-view`` (the view classifier sketch-to-3d uses when no view is given).

Training and category sampling go through the generic ``shapegen train/generate --method las``
(:mod:`shapegen.commands.methods`). The work is library code (:mod:`shapegen.data.las_prepare`,
:mod:`shapegen.methods.las_eval`, :func:`shapegen.methods.las.sketch_to_3d`); heavy imports happen
inside ``run`` functions.
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
from shapegen.methods.las_view import LASViewConfig


# --------------------------------------------------------------------------------- las prepare / eval
def _las_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["prepare", "eval"], help="prepare: TSDF volumes, occupancy shells and synthetic sketches "
                   "of MESH_DIR's meshes; eval: voxel IoUs of a sketch-to-3D model on the prepared held-out shapes in DATA_DIR")
    p.add_argument("mesh_dir", metavar="MESH_DIR|DATA_DIR", help="prepare: folder of meshes (sub-folder names become categories); "
                   "eval: a folder written by 'las prepare' (shapes never trained on)")
    p.add_argument("-o", "--output", help="prepare: data folder to write (resumable)")
    p.add_argument("--category", help="prepare: category of every mesh (default: sub-folder name)")
    p.add_argument("--workers", type=int, default=1, help="prepare: meshes prepared at once in separate processes (same result as 1)")
    p.add_argument("--fresh", action="store_true", help="prepare: prepare every mesh again instead of reusing the data already in OUTPUT")
    p.add_argument("--shard", metavar="K/N", help="prepare only block K of N of the sorted mesh files (cluster array jobs sharing "
                   "OUTPUT; its index goes to index.shard-K-of-N.json); once all N have finished, 'shapegen data merge-shards "
                   "OUTPUT' writes index.json as one run would")
    g = p.add_argument_group("eval")
    g.add_argument("--checkpoint", help="a LAS .ckpt (default: the shipped model, assets/models/las_demo/las_demo.ckpt)")
    g.add_argument("--train-data", metavar="DIR", help="the training shapes prepared alike: adds the typical-shape and nearest-shape rows")
    g.add_argument("--guidance", metavar="W[,W...]", help="guidance weight; several (with --val): choose the best on the validation shapes")
    g.add_argument("--val", metavar="DIR", help="validation shapes prepared alike (neither trained on nor evaluated) that choose --guidance")
    g.add_argument("--scale", action="store_true", help="add rows of each true shape against itself moved by a quarter and half a voxel")
    g.add_argument("--seed", type=int, default=0, help="noise seed of the sketch samples")
    g.add_argument("--export", metavar="CKPT", help="also write the model in the shipped form (EMA weights only, the chosen guidance)")
    g.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device (auto: CUDA if available)")


_EVAL_ONLY = ("checkpoint", "train_data", "guidance", "val", "export", "json")
_PREPARE_ONLY = ("output", "category", "shard")


def _las(args: argparse.Namespace, cfg: LASPrepareConfig) -> None:
    if args.action == "eval":
        wrong = [f"--{k.replace('_', '-')}" for k in _PREPARE_ONLY if getattr(args, k) is not None] + (["--fresh"] if args.fresh else [])
        if wrong or getattr(args, "overrides", None) or getattr(args, "config", None):
            raise ShapegenError(f"'las eval' takes no {', '.join(wrong) or '--config/--set'} (those are 'las prepare' options)")
        _las_eval(args)
        return
    wrong = [f"--{k.replace('_', '-')}" for k in _EVAL_ONLY if getattr(args, k) not in (None, False)]
    wrong += [flag for flag, used in (("--scale", args.scale), ("--seed", args.seed != 0), ("--device", args.device != "auto")) if used]
    if wrong:
        raise ShapegenError(f"'las prepare' takes no {', '.join(wrong)} (those are 'las eval' options)")
    if args.output is None:
        raise ShapegenError("las prepare needs a data folder to write: shapegen las prepare MESH_DIR -o DATA_DIR")
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


def _guidance_weights(text: str | None) -> list[float]:
    if text is None:
        return []
    try:
        weights = [float(w) for w in text.split(",") if w.strip()]
    except ValueError:
        weights = []
    if not weights or not all(math.isfinite(w) and w >= 0 for w in weights):
        raise ShapegenError(f"--guidance '{text}': give comma-separated weights >= 0, e.g. 1,2")
    return weights


def _las_eval(args: argparse.Namespace) -> None:
    import json
    import sys

    from shapegen.commands.methods import load_system
    from shapegen.devices import choose_device
    from shapegen.methods.las import export_checkpoint
    from shapegen.methods.las_eval import evaluate, result_table

    weights = _guidance_weights(args.guidance)
    if len(weights) > 1 and args.val is None:
        raise ShapegenError("several --guidance weights are chosen between on validation shapes: add --val DIR")
    if args.export is not None and Path(args.export).suffix != ".ckpt":
        raise ShapegenError(f"--export writes a checkpoint: give a path ending in .ckpt instead of '{args.export}'")
    model = load_system("las", args.checkpoint, choose_device(args.device))
    one = weights[0] if len(weights) == 1 and args.val is None else None
    result = evaluate(model, args.mesh_dir, train_dir=args.train_data, guidance=one, val_dir=args.val,
                      guidance_weights=weights if args.val is not None else (), scale=args.scale, seed=args.seed,
                      log=None if args.json else lambda line: print(line, file=sys.stderr, flush=True))
    if args.export is not None:
        model.config.sample.guidance = result.guidance
        export_checkpoint(model, args.export)
    if args.json:
        print(json.dumps(result.to_dict() | ({"export": args.export} if args.export else {})))
        return
    print(f"{result.shapes} shapes, guidance {result.guidance:g}, {result.seconds:.0f} s; headline iou16 from the sketch: "
          f"{result.headline:.3f}\n\niou16 (16^3 occupancy, a cell counts when one of its children touches the shape):\n\n"
          f"{result_table(result, 'iou16')}\n\niou32 (sdf < 0 on the SDF grid):\n\n{result_table(result, 'iou32')}")
    if args.export is not None:
        print(f"wrote {args.export}")


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
    p.add_argument("--checkpoint", help="a LAS .ckpt written by 'shapegen train --method las' (default: the shipped "
                   "model, assets/models/las_demo/las_demo.ckpt)")
    p.add_argument("--view", type=float, help="azimuth of the sketch's view in degrees (LAS views: 0, 45, 90, 135, 180); omitted: "
                   "estimated by the shipped view classifier (assets/models/las_view)")
    p.add_argument("--global-view", action="store_true", help="with no --view: attend to the sketch globally instead of estimating its view")
    p.add_argument("--category", help="category (category-conditioned models)")
    p.add_argument("-o", "--output", required=True, help="output mesh (.glb recommended, .obj, .ply); a PNG preview is written beside it")
    p.add_argument("--seed", type=int, default=0, help="noise seed; the same seed gives the same shape")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device (auto: CUDA if available)")


def _sketch_to_3d(args: argparse.Namespace, cfg: SketchTo3DConfig) -> None:
    from shapegen.devices import choose_device
    from shapegen.methods.las import sketch_to_3d, write_comparison

    out = Path(args.output)
    if out.suffix.lower() not in EXPORT_SUFFIXES:
        raise ShapegenError(f"cannot write '{out.name}': unknown mesh suffix '{out.suffix}'; use one of {', '.join(EXPORT_SUFFIXES)}")
    if args.view is not None and not math.isfinite(args.view):
        raise ShapegenError("--view must be a finite azimuth in degrees, e.g. 45")
    from shapegen.progress import report

    report("loading")
    device = choose_device(args.device)
    if args.view is None and args.global_view:
        print("note: no --view given; the sketch is attended globally (the LAS model never trains this way)")
    if args.view is not None and args.global_view:
        raise ShapegenError("--global-view is for sketches without --view; give one of the two")
    result = sketch_to_3d(args.sketch, category=args.category, view=args.view, checkpoint=args.checkpoint, seed=args.seed,
                          device=device, estimate_view=not args.global_view, **_sampling(cfg))
    if result.view_probs is not None:
        print(f"note: no --view given; estimated view azimuth {result.view:g} (probability {float(result.view_probs.max()):.2f})")
    if result.mesh.num_faces == 0:
        raise ShapegenError("the model produced no surface for this sketch; try another --seed, --view or a better-trained checkpoint")
    from shapegen.geometry.export import export_mesh

    report("writing")
    export_mesh(result.mesh, out)
    png = write_comparison(result.sketch, result.mesh, result.view if result.view is not None else 0.0, out.with_suffix(".png"), cfg.preview_size)
    report("done", 1, 1)
    print(f"wrote {out} ({result.mesh.num_faces} faces) and {png}")


def _sampling(cfg: SketchTo3DConfig) -> dict:
    """The command's settings as :func:`~shapegen.methods.las.sketch_to_3d` arguments (0: the model's own)."""
    return {"guidance": cfg.guidance or None, "radius": cfg.radius or None, "occupancy_steps": cfg.occupancy_steps or None,
            "sdf_steps": cfg.sdf_steps or None}


# --------------------------------------------------------------------------------- las-view
def _view_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, help="folder for las_view.ckpt (assets/models/las_view is the shipped one)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _las_view(args: argparse.Namespace, cfg: LASViewConfig) -> None:
    from shapegen.io import make_output_dir
    from shapegen.methods.las_view import train_view_classifier

    make_output_dir(args.output)
    r = train_view_classifier(cfg, args.output, progress=not args.no_progress)
    styles = ", ".join(f"{k} {v:.3f}" for k, v in r.val_accuracy_by_style.items())
    print(f"wrote {r.checkpoint} ({r.parameters} parameters, {r.train_sketches} training sketches, {r.seconds:.0f} s); "
          f"held-out shapes: view accuracy {r.val_accuracy:.3f} over {r.val_sketches} sketches ({styles})")


COMMANDS = [
    Command("las", "LAS-Diffusion data and evaluation: 'las prepare MESH_DIR -o DATA_DIR' writes TSDF volumes, occupancy shells "
            "and sketches; 'las eval DATA_DIR' scores a sketch-to-3D model on them (voxel IoU per category, baselines)",
            _las_args, _las, LASPrepareConfig, "las_prepare"),
    Command("sketch-to-3d", "LAS-Diffusion: a sketch (and its view) to a mesh, plus a PNG of the sketch beside renders",
            _s2d_args, _sketch_to_3d, SketchTo3DConfig),
    Command("las-view", "LAS-Diffusion: train the view classifier that picks a sketch's view when sketch-to-3d gets no --view "
            "(synthetic sketches of procedural shapes only)", _view_args, _las_view, LASViewConfig, "las_view"),
]
