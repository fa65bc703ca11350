"""Room reconstruction commands: ``room synth``, ``reconstruct`` (Occ-SDF) and ``eval-recon``.

Heavy imports happen inside the ``run`` functions, so ``shapegen --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from shapegen.commands.base import Command
from shapegen.commands.methods import add_run_args, run_overrides
from shapegen.data.room_synth import RoomSynthConfig
from shapegen.errors import ShapegenError


# ---------------------------------------------------------------------------------- room synth
def _room_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["synth"], help="synth: render the synthetic room with corrupted depth/normal priors")
    p.add_argument("-o", "--output", required=True, help="output folder (MonoSDF layout + gt_mesh.ply + gt_labels.npy); must not exist or be empty")


def _room(args: argparse.Namespace, cfg: RoomSynthConfig) -> None:
    from shapegen.data.room_synth import write_room
    from shapegen.io import check_output_folder

    out = Path(args.output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ShapegenError(f"output {out} already exists and is not an empty folder; choose a new -o folder")
    check_output_folder(out)
    if cfg.num_views < 1 or cfg.width < 2 or cfg.height < 2:
        raise ShapegenError("num_views must be at least 1 and width/height at least 2")
    write_room(out, cfg)
    print(f"wrote {cfg.num_views} views ({cfg.width}x{cfg.height}), gt_mesh.ply and gt_labels.npy to {out}")


# ---------------------------------------------------------------------------------- reconstruct
def _reconstruct_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("scene", help="scene folder: MonoSDF layout (cameras.npz, *_rgb.png, priors) or an RGB-D sequence (camera-intrinsics.txt, frames/)")
    p.add_argument("-o", "--output", required=True, help="output mesh (.glb recommended, .gltf, .obj, .ply), world frame")
    p.add_argument("--preset", default="fast", help="preset under configs/occsdf/ (tiny, fast, rgbd for RGB-D, paper, default) or a YAML file (default: fast)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value (repeatable), e.g. --set train.max_steps=2000 or --set loss.occupancy=false")
    p.add_argument("--fresh", action="store_true", help="start over instead of resuming from RUN_DIR/checkpoints/last.ckpt")
    p.add_argument("--resume", action="store_true", help="accepted for old command lines; resuming is the default now")
    p.add_argument("--run-dir", help="checkpoints, previews and config (default: OUTPUT without suffix + '.run')")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_run_args(p)


def _reconstruct(args: argparse.Namespace, _config) -> None:
    from shapegen.methods.occsdf import preset_config, reconstruct

    if args.fresh and args.resume:
        raise ShapegenError("--fresh and --resume contradict each other; give one (resuming is the default)")
    cfg = preset_config(args.preset, list(args.overrides) + run_overrides(args))
    out = reconstruct(args.scene, args.output, cfg, run_dir=args.run_dir, fresh=args.fresh, progress=not args.no_progress)
    run_dir = Path(args.run_dir) if args.run_dir else out.with_suffix(".run")
    print(f"wrote {out}; checkpoints, loss plot and previews in {run_dir}")


# ---------------------------------------------------------------------------------- eval-recon
@dataclass
class EvalReconConfig:
    """Options of ``shapegen eval-recon``."""

    num_points: int = 200_000
    """Points sampled on each mesh."""
    thresholds: list[float] = field(default_factory=lambda: [0.05, 0.02])
    """Precision/recall/F-score thresholds (mesh units; metres for rooms)."""
    cull: bool = False
    """Keep only points inside some camera frustum (needs ``scene``)."""
    scene: str = ""
    """Scene folder whose cameras define the frusta (default: the GT mesh's folder when it is a scene)."""
    max_depth: float = 0.0
    """Culling: ignore points farther than this from every camera (0: no limit)."""
    cull_seen: bool = False
    """Culling of an RGB-D scene: also drop points no frame saw (more than ``seen_margin`` behind the
    measured depth at their pixel, or where the sensor has no depth): the protocol of RGB-D
    reconstruction papers, which do not score the inside of cupboards or the space behind walls."""
    seen_margin: float = 0.05
    """``cull_seen``: how far behind the measured depth a point still counts as seen (metres)."""
    labels: str = ""
    """Per-face GT labels (.npy; default: gt_labels.npy beside the GT mesh) for thin/dark recall."""
    seed: int = 0
    """Seed of the surface samples."""


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("pred", help="reconstructed mesh")
    p.add_argument("gt", help="ground-truth mesh (e.g. ROOM/gt_mesh.ply from 'shapegen room synth')")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _cameras_world(scene_dir: Path):
    from shapegen.data.scenes import load_scene

    scene = load_scene(scene_dir)
    smat = scene.scale_mat
    c2w = scene.c2w.clone()
    c2w[:, :3, 3] = c2w[:, :3, 3] @ smat[:3, :3].T + smat[:3, 3]
    return c2w, scene.K, scene.width, scene.height


def _eval_recon(args: argparse.Namespace, cfg: EvalReconConfig) -> None:
    import numpy as np
    import torch

    from shapegen.data.room_synth import LABEL_NAMES
    from shapegen.geometry.mesh_io import load_mesh
    from shapegen.geometry.recon_metrics import evaluate_meshes

    if cfg.num_points < 1 or not cfg.thresholds or min(cfg.thresholds) <= 0:
        raise ShapegenError("num_points must be at least 1 and thresholds positive")
    pred = load_mesh(args.pred, dedupe=False)
    gt = load_mesh(args.gt, dedupe=False)
    labels = None
    label_path = Path(cfg.labels) if cfg.labels else Path(args.gt).with_name("gt_labels.npy")
    if cfg.labels and not label_path.is_file():
        raise ShapegenError(f"labels file {label_path} not found")
    if label_path.is_file():
        try:
            labels = torch.from_numpy(np.load(label_path, allow_pickle=False).astype(np.int64))
        except ValueError as exc:  # also an object array, which is never unpickled
            raise ShapegenError(f"cannot read {label_path} as an array of face labels: {str(exc).splitlines()[0]}") from exc
        if labels.shape[0] != gt.num_faces:
            if cfg.labels:
                raise ShapegenError(f"{label_path} has {labels.shape[0]} labels but {args.gt} has {gt.num_faces} faces")
            labels = None
    cameras = depths = None
    if cfg.cull_seen and not cfg.cull:
        raise ShapegenError("cull_seen needs cull=true (and scene=DIR of an RGB-D sequence)")
    if cfg.cull:
        scene_dir = Path(cfg.scene) if cfg.scene else Path(args.gt).parent
        cameras = _cameras_world(scene_dir)
        if cfg.cull_seen:
            from shapegen.commands.fuse import scene_depth_world
            from shapegen.data.scenes import load_scene

            depths = scene_depth_world(load_scene(scene_dir))[0]
    m = evaluate_meshes(pred, gt, num_points=cfg.num_points, thresholds=tuple(cfg.thresholds), gt_face_labels=labels,
                        label_names=LABEL_NAMES, cameras=cameras,
                        max_depth=cfg.max_depth or None, depths=depths,
                        depth_margin=cfg.seen_margin, seed=cfg.seed)
    if args.json:
        print(json.dumps(m.to_dict(), indent=2))
    else:
        print("\n".join(m.lines()))


COMMANDS = [
    Command("room", "render a synthetic room (thin and dark parts, corrupted depth/normal priors) in the MonoSDF layout",
            _room_args, _room, RoomSynthConfig, preset_folder="room"),
    Command("reconstruct", "reconstruct a room mesh from posed images with depth/normal priors (Occ-SDF hybrid); resumable",
            _reconstruct_args, _reconstruct),
    Command("eval-recon", "accuracy, completeness, Chamfer-L1, precision/recall/F-score at 5 and 2 cm and normal consistency of a room mesh",
            _eval_args, _eval_recon, EvalReconConfig),
]
