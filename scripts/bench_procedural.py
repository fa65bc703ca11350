"""Benchmark the procedural shape set: shapes per second per class, and the whole writer.

Writes the ``data-procedural`` section of docs/benchmarks.md.

(1) Per class, in this process with one torch thread: drawing the parameters
    (:func:`shapegen.data.procedural.generate`), meshing at the default resolution
    (:func:`~shapegen.data.procedural.to_mesh`, part-wise grid evaluation + one marching-cubes
    pass) and writing a PLY; the mesh quality (watertight, one connected piece), the mean face
    count and file size. For reference, the generic path on a few shapes: sparse
    :func:`~shapegen.geometry.extract.extract_mesh` on the exact SDF.
(2) The data set writer (``shapegen data procedural``) end to end with ``--workers`` processes,
    worker start-up included: shapes per second and the projected time for 1000 and 5000 shapes.

The machine is shared: the load average at the start is recorded beside the numbers.

Run: ``python scripts/bench_procedural.py [--per-class 20] [--resolution 64] [--set-size 40] [--workers 2]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from shapegen.data.procedural import CLASSES, DEFAULT_RESOLUTION, generate, to_mesh
from shapegen.geometry.export import export_mesh
from shapegen.geometry.extract import extract_mesh
from shapegen.geometry.mesh_io import inspect_mesh
from shapegen.testing import bench as bl


def per_class(cls: str, n: int, resolution: int, reference: int, tmp: Path) -> list[object]:
    t_gen = t_mesh = t_write = 0.0
    faces, sizes, watertight, single = [], [], 0, 0
    for i in range(n):
        t0 = time.perf_counter()
        shape = generate(cls, i, seed=0)
        t1 = time.perf_counter()
        mesh = to_mesh(shape, resolution)
        t2 = time.perf_counter()
        path = export_mesh(mesh, tmp / f"{cls}_{i}.ply", normals=False, ply_up="y")
        t3 = time.perf_counter()
        t_gen, t_mesh, t_write = t_gen + t1 - t0, t_mesh + t2 - t1, t_write + t3 - t2
        report = inspect_mesh(mesh)
        watertight += report.watertight
        single += report.num_components == 1
        faces.append(mesh.num_faces)
        sizes.append(path.stat().st_size / 1024)
    t_ref = 0.0
    for i in range(reference):
        shape = generate(cls, i, seed=0)
        t0 = time.perf_counter()
        extract_mesh(shape.sdf, resolution, method="sparse")
        t_ref += time.perf_counter() - t0
    total = t_gen + t_mesh + t_write
    return [
        cls, n, f"{n / total:.1f}", f"{1000 * t_gen / n:.2f}", f"{1000 * t_mesh / n:.0f}", f"{1000 * t_write / n:.0f}",
        f"{1000 * t_ref / max(reference, 1):.0f}", f"{(t_ref / max(reference, 1)) / (t_mesh / n):.1f}x",
        f"{watertight}/{n}", f"{single}/{n}", f"{statistics.mean(faces):,.0f}", f"{statistics.mean(sizes):,.0f}",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=20, help="shapes per class for table 1")
    ap.add_argument("--resolution", type=int, default=DEFAULT_RESOLUTION)
    ap.add_argument("--reference", type=int, default=3, help="shapes per class meshed with the generic sparse path")
    ap.add_argument("--set-size", type=int, default=40, help="shapes per class for the end-to-end writer run")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    load = os.getloadavg()[0]
    torch.set_num_threads(1)
    to_mesh(generate("mug", 0), 16)  # warm-up: pymcubes and its scipy import

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cls in CLASSES:
            rows.append(per_class(cls, args.per_class, args.resolution, args.reference, Path(tmp)))
            print(rows[-1], flush=True)

    from shapegen.data.procedural_set import ProceduralConfig, write_procedural_set

    with tempfile.TemporaryDirectory() as tmp:
        cfg = ProceduralConfig(per_class=args.set_size, resolution=args.resolution, workers=args.workers)
        t0 = time.perf_counter()
        summary = write_procedural_set(cfg, tmp, progress=False)
        wall = time.perf_counter() - t0
        n = summary.written
        size_mb = sum(p.stat().st_size for p in Path(tmp).rglob("*.ply")) / 2**20
    rate = n / wall
    end_to_end = [[n, args.workers, f"{wall:.1f}", f"{rate:.1f}", f"{1000 / rate / 60:.1f}", f"{5000 / rate / 60:.1f}", f"{size_mb / n * 1000 / 1024:.2f}"]]
    print(end_to_end, flush=True)

    body = (
        f"Procedural shapes (seed 0, indices 0..{args.per_class - 1} per class) at resolution {args.resolution}^3 on [-1, 1]^3. "
        f"Load average when the run started: {load:.1f} on {os.cpu_count()} cores (a shared machine: per-shape times scale with it).\n\n"
        "Per class, one process, one torch thread: parameters (`generate`), meshing (`to_mesh`: part-wise grid values + one "
        "marching-cubes pass), PLY writing; `generic ms` is sparse `extract_mesh` on the exact SDF for the first "
        f"{args.reference} shapes (the path `to_mesh` replaces), `speed-up` its ratio to `mesh ms`.\n\n"
        + bl.table(
            ["class", "shapes", "shapes/s", "params ms", "mesh ms", "write ms", "generic ms", "speed-up", "watertight", "one piece", "faces", "PLY KiB"],
            rows,
        )
        + f"\n\nThe whole writer (`write_procedural_set`, all {len(cfg.classes)} classes, {args.set_size} per class, "
        f"{args.workers} worker processes, start-up and index included):\n\n"
        + bl.table(["shapes", "workers", "wall s", "shapes/s", "min per 1000", "min per 5000", "GiB per 1000"], end_to_end)
    )
    bl.write_section("data-procedural", "Procedural shape set: generation speed", body)


if __name__ == "__main__":
    main()
