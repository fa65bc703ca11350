"""Benchmark mesh extraction: sparse coarse-to-fine vs dense marching cubes, and MC accuracy.

Writes the ``geometry-extraction`` section of docs/benchmarks.md.

(1) Sparse vs dense at 512^3 on a real mesh's SDF. The exact mesh SDF
    (:class:`shapegen.geometry.sdf.MeshSDF`) at 512^3 = 134M points is too slow to evaluate
    densely on a small CPU, so the field used by BOTH methods is the trilinear interpolation
    (:func:`shapegen.geometry.extract.grid_field`) of the exact SDF sampled once on a
    ``--grid``^3 grid (cached under ~/.cache/shapegen). A second table runs both methods on
    the exact SDF itself at ``--exact-resolution`` (and sparse only at 512^3).
(2) Marching cubes of an analytic sphere at 128^3: area and volume errors, watertightness.

Run: ``python scripts/bench_extraction.py [--mesh PATH] [--resolution 512] [--grid 256]``.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from shapegen.geometry import primitives
from shapegen.geometry.extract import evaluate_grid, extract_mesh, grid_field, marching_cubes
from shapegen.testing import bench as bl

BBOX = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))


def _hausdorff_voxels(a: torch.Tensor, b: torch.Tensor, resolution: int) -> float:
    """Symmetric vertex-to-nearest-vertex Hausdorff distance in voxels (an upper bound on the
    surface-to-surface distance when both meshes sample the same grid edges)."""
    if a.shape[0] == 0 or b.shape[0] == 0:
        return math.inf if a.shape[0] != b.shape[0] else 0.0
    a, b = a.double().numpy(), b.double().numpy()
    d = max(cKDTree(b).query(a)[0].max(), cKDTree(a).query(b)[0].max())
    return float(d / (2.0 / (resolution - 1)))


def _load_sdf(mesh_path: Path):
    from shapegen.geometry.mesh_io import load_mesh, normalize_mesh
    from shapegen.geometry.sdf import MeshSDF

    mesh, _ = normalize_mesh(load_mesh(mesh_path), mode="cube", padding=0.9)
    return MeshSDF(mesh), mesh


def _cached_grid(sdf, mesh_path: Path, g: int) -> tuple[torch.Tensor, float]:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "shapegen" / "bench"
    path = cache / f"{mesh_path.stem}_{mesh_path.stat().st_size}_sdf{g}.npy"
    if path.exists():
        return torch.from_numpy(np.load(path, allow_pickle=False)), 0.0
    t0 = time.perf_counter()
    grid = evaluate_grid(sdf, g, BBOX, chunk_size=1 << 18)
    seconds = time.perf_counter() - t0
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, grid.numpy())
    return grid, seconds


def _keep_fastest(best, run):
    return run if best is None or run[1].seconds < best[1].seconds else best


def _compare(fn, resolution: int, label: str, dense_too: bool = True, repeat: int = 1) -> list[list[object]]:
    """Sparse (and dense) extraction, each ``repeat`` times interleaved; the fastest run of each
    is kept (the CPU is shared, so the minimum is the least disturbed measurement; every run of
    a method gives the same mesh)."""
    rows = []
    sparse = dense = None
    for _ in range(repeat):
        gc.collect()
        sparse = _keep_fastest(sparse, extract_mesh(fn, resolution, BBOX, method="sparse", return_stats=True))
        if dense_too:
            gc.collect()
            dense = _keep_fastest(dense, extract_mesh(fn, resolution, BBOX, method="dense", return_stats=True))
    sparse, ss = sparse
    if dense_too:
        dense, sd = dense
        h = _hausdorff_voxels(sparse.vertices, dense.vertices, resolution)
        same = (sparse.num_vertices, sparse.num_faces) == (dense.num_vertices, dense.num_faces)
        rows.append([label, f"{resolution}^3", "dense", f"{sd.evaluations:,}", sd.seconds, f"{dense.num_faces:,}", "", "", "", ""])
        rows.append([
            label, f"{resolution}^3", "sparse", f"{ss.evaluations:,}", ss.seconds, f"{sparse.num_faces:,}",
            f"{sd.evaluations / ss.evaluations:.1f}x", f"{sd.seconds / ss.seconds:.1f}x", f"{h:.2e}", "yes" if same else "no",
        ])
    else:
        rows.append([
            label, f"{resolution}^3", "sparse", f"{ss.evaluations:,}", ss.seconds, f"{sparse.num_faces:,}",
            f"{resolution**3 / ss.evaluations:.1f}x (vs G^3)", "not run", "", "",
        ])
    print(f"  {label} {resolution}^3: sparse levels {ss.level_cells} evaluations {ss.level_evaluations}", flush=True)
    return rows


def sphere_accuracy(resolution: int = 128, radius: float = 0.6) -> list[list[object]]:
    mesh = marching_cubes(evaluate_grid(primitives.sphere(radius=radius), resolution, BBOX), BBOX)
    tm = mesh.to_trimesh()
    area_err = mesh.area() / (4 * math.pi * radius**2) - 1
    vol_err = mesh.volume() / (4 / 3 * math.pi * radius**3) - 1
    return [[f"sphere r={radius}", f"{resolution}^3", f"{mesh.num_faces:,}", f"{area_err:+.3%}", f"{vol_err:+.3%}",
             "yes" if tm.is_watertight and tm.is_winding_consistent else "no", "yes" if mesh.volume() > 0 else "no"]]


def main(argv: Sequence[str] = ()) -> str:
    """Run the benchmark, write its section of docs/benchmarks.md and return the Markdown body."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mesh", default=None, help="mesh file (default: meshes_classic/bunny_libigl.off in the shared data)")
    p.add_argument("--resolution", type=int, default=512, help="extraction resolution (samples per axis)")
    p.add_argument("--grid", type=int, default=256, help="resolution of the precomputed exact-SDF grid")
    p.add_argument("--exact-resolution", type=int, default=128, help="resolution of the exact-SDF sparse/dense comparison (0: skip)")
    p.add_argument("--repeat", type=int, default=2, help="runs per method on the grid field; the fastest is reported")
    p.add_argument("--no-write", action="store_true", help="print only; do not touch docs/benchmarks.md")
    args = p.parse_args(list(argv))
    torch.set_grad_enabled(False)
    mesh_path = Path(args.mesh) if args.mesh else bl.shared_data_root() / "meshes_classic" / "bunny_libigl.off"
    sdf, mesh = _load_sdf(mesh_path)
    print(f"{mesh_path.name}: {mesh.num_faces} faces, SDF backend {sdf.backend}", flush=True)
    grid, grid_seconds = _cached_grid(sdf, mesh_path, args.grid)
    field = grid_field(grid, BBOX)

    header = ["field", "grid", "method", "field evaluations", "time (s)", "faces", "evals ratio", "time ratio",
              "Hausdorff sparse-dense (voxels)", "same V/F count"]
    rows = _compare(field, args.resolution, f"trilinear {args.grid}^3 SDF grid", repeat=args.repeat)
    if args.exact_resolution:
        rows += _compare(sdf, args.exact_resolution, f"exact MeshSDF ({sdf.backend})")
    rows += _compare(sdf, args.resolution, f"exact MeshSDF ({sdf.backend})", dense_too=False)
    sphere = sphere_accuracy()

    body = (
        f"Mesh: `{mesh_path.name}` ({mesh.num_faces:,} faces), normalised into [-0.9, 0.9]^3, box [-1, 1]^3. "
        f"Fields: (a) trilinear interpolation (`grid_field`) of the exact signed distance sampled once on a "
        f"{args.grid}^3 grid with `MeshSDF` (backend {sdf.backend}"
        + (f", {grid_seconds:.0f} s, cached" if grid_seconds else ", loaded from cache")
        + "), used by both methods, because a dense 512^3 evaluation of the exact SDF (134M closest-point "
        "queries) takes too long on this CPU; (b) the exact `MeshSDF` itself. Sparse: coarse 33^3, "
        "margin 1 (cell half-diagonal). Times: wall clock of the whole extraction (evaluation, marching cubes, "
        f"stitching), best of {args.repeat} interleaved runs for the grid field and single runs for the exact SDF, on a CPU shared "
        "with other jobs (run-to-run spread up to 3x); ratios are dense / sparse. Hausdorff: symmetric vertex-to-nearest-vertex "
        "distance between the two meshes, in voxels.\n\n"
        + bl.table(header, rows)
        + "\n\nMarching cubes accuracy (pymcubes, outward winding):\n\n"
        + bl.table(["shape", "grid", "faces", "area error", "volume error", "watertight", "outward (V > 0)"], sphere)
    )
    if not args.no_write:
        bl.write_section("geometry-extraction", "Mesh extraction: sparse vs dense, marching-cubes accuracy", body)
    else:
        print(body)
    return body


if __name__ == "__main__":
    main(sys.argv[1:])
