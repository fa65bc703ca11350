"""``shapegen fuse``: TSDF fusion of an RGB-D sequence's sensor depth into a mesh.

Heavy imports happen inside the ``run`` function, so ``shapegen --help`` stays fast.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from shapegen.commands.base import Command
from shapegen.errors import ShapegenError


def parse_frames(spec: str, n: int) -> list[int]:
    """Frame indices from ``start:stop:step`` (Python slice) or ``i,j,k``, checked against ``n`` frames.

    Raises:
        ShapegenError: a malformed spec, an index out of range, or no frame selected.
    """
    spec = spec.strip()
    try:
        if ":" in spec:
            parts = [int(p) if p.strip() else None for p in spec.split(":")]
            if len(parts) > 3:
                raise ValueError
            idx = list(range(n))[slice(*parts)]
        else:
            idx = [int(p) for p in spec.split(",") if p.strip()]
    except ValueError:
        raise ShapegenError(f"--frames {spec!r} is neither start:stop:step nor a comma-separated list of indices") from None
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise ShapegenError(f"--frames selects frame {bad[0]}, but the sequence has {n} frames (0..{n - 1})")
    if not idx:
        raise ShapegenError(f"--frames {spec!r} selects no frame of {n}")
    return idx


def scene_depth_world(scene):
    """A metric scene's depths, intrinsics, poses and colours in the world frame (metres).

    Returns:
        ``(depths N H W, K N 3 3, c2w N 4 4, colours N H W 3)``.

    Raises:
        ShapegenError: when the scene's depths are priors known only up to scale and shift.
    """
    if not scene.depth_is_metric:
        raise ShapegenError("the scene's depths are monocular priors (known only up to a per-image scale and shift); "
                            "TSDF fusion needs metric sensor depth, e.g. an RGB-D sequence (camera-intrinsics.txt, frames/)")
    smat = scene.scale_mat.double()
    c2w = scene.c2w.double().clone()
    c2w[:, :3, 3] = c2w[:, :3, 3] @ smat[:3, :3].T + smat[:3, 3]
    c2w[:, :3, :3] = scene.c2w[:, :3, :3].double()  # rotations are stored unscaled
    return scene.depths * scene.scale, scene.K, c2w.float(), scene.images


def _fuse_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("scene", help="RGB-D sequence folder (camera-intrinsics.txt, frames/frame-XXXXXX.{color.jpg,depth.png,pose.txt})")
    p.add_argument("-o", "--output", required=True, help="output mesh (.ply, .glb, .gltf, .obj), world frame, metres")
    p.add_argument("--voxel", type=float, default=0.02, help="voxel size in metres (default 0.02)")
    p.add_argument("--trunc", type=float, default=None, help="truncation distance in metres (default 4 x voxel)")
    p.add_argument("--frames", default="", help="frames to fuse (after --stride): start:stop:step or i,j,k (default: all)")
    p.add_argument("--stride", type=int, default=1, help="read every n-th frame of the folder (default 1)")
    p.add_argument("--downscale", type=int, default=1, help="shrink the depth maps by this integer factor (default 1: full resolution)")
    p.add_argument("--max-depth", type=float, default=5.0, help="ignore sensor depth beyond this (metres, default 5)")
    p.add_argument("--bounds", choices=["frusta", "points"], default="frusta",
                   help="volume box: the depth frusta (default) or only the back-projected depth points (smaller)")
    p.add_argument("--no-color", action="store_true", help="do not fuse colours (saves 12 bytes per voxel)")
    p.add_argument("--chunk", type=int, default=1 << 20, help="voxels per integration step (memory bound; default 2^20)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _fuse(args: argparse.Namespace, _config) -> None:
    from shapegen.data.scenes import load_scene
    from shapegen.geometry.export import EXPORT_SUFFIXES, export_mesh
    from shapegen.geometry.tsdf import fuse_depth_maps
    from shapegen.io import check_output_path

    out = Path(args.output)
    if out.suffix.lower() not in EXPORT_SUFFIXES:
        raise ShapegenError(f"unsupported output format '{out.suffix or '(none)'}' for {out}; use .ply, .glb, .gltf or .obj")
    if not args.voxel > 0:
        raise ShapegenError(f"--voxel must be positive, got {args.voxel}")
    if args.trunc is not None and not args.trunc > 0:
        raise ShapegenError(f"--trunc must be positive, got {args.trunc}")
    if args.stride < 1 or args.downscale < 1 or args.chunk < 1 or not args.max_depth > 0:
        raise ShapegenError("--stride, --downscale and --chunk must be at least 1 and --max-depth positive")
    check_output_path(out)
    scene = load_scene(args.scene, downscale=args.downscale, stride=args.stride, max_depth=args.max_depth)
    depths, K, c2w, colors = scene_depth_world(scene)
    if args.frames:
        idx = parse_frames(args.frames, scene.num_images)
        depths, K, c2w, colors = depths[idx], K[idx], c2w[idx], colors[idx]
    t0 = time.perf_counter()
    vol = fuse_depth_maps(depths, K, c2w, voxel_size=args.voxel, trunc=args.trunc, colors=None if args.no_color else colors,
                          bounds=args.bounds, chunk=args.chunk, progress=not args.no_progress)
    fuse_s = time.perf_counter() - t0
    mesh = vol.extract_mesh()
    if mesh.num_faces == 0:
        raise ShapegenError("the fused volume has no surface; check the depth units (millimetre PNGs) and poses")
    export_mesh(mesh, out, ply_up="y")  # PLY keeps the sequence's world frame, so eval-recon can compare it
    nx, ny, nz = vol.shape
    print(f"fused {depths.shape[0]} frames ({depths.shape[2]}x{depths.shape[1]}) into {nx}x{ny}x{nz} voxels of "
          f"{args.voxel * 100:g} cm in {fuse_s:.1f} s ({depths.shape[0] / fuse_s:.2f} frames/s); wrote {out} ({mesh.num_faces} faces)")


COMMANDS = [
    Command("fuse", "TSDF fusion of an RGB-D sequence's sensor depth into a mesh (the usual reference for room reconstruction)",
            _fuse_args, _fuse),
]
