"""Benchmark ``shapegen las prepare`` with one and with several worker processes.

Writes the ``las-prepare-workers`` section of docs/benchmarks.md.

Procedural meshes (``--per-class`` of each class, seed 0) are prepared twice from scratch at the
LAS demo settings (SDF ``--resolution``, sketches of ``--sketch`` px, two styles x five views):
with ``workers=1`` and with ``--workers`` processes (worker start-up included). Both runs must
write the same ``index.json`` and volumes, which the script checks before it reports a time.
The machine is shared: the load average at the start is recorded beside the numbers.

Run: ``python scripts/bench_las_prepare.py [--per-class 8] [--resolution 32] [--sketch 64] [--workers 2] [--no-write]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from shapegen.data.las_prepare import LASPrepareConfig, prepare_dataset
from shapegen.data.procedural import DEMO_CLASSES, generate, to_mesh
from shapegen.geometry.export import export_mesh
from shapegen.testing import bench as bl


def same_output(a: Path, b: Path) -> bool:
    """Both folders hold the same index and the same volumes."""
    ia, ib = (json.loads((d / "index.json").read_text()) for d in (a, b))
    if ia != ib:
        return False
    for rec in ia["shapes"].values():
        with np.load(a / rec["file"], allow_pickle=False) as x, np.load(b / rec["file"], allow_pickle=False) as y:
            if not all(np.array_equal(x[k], y[k]) for k in x.files):
                return False
    return True


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=8, help="procedural meshes per class")
    ap.add_argument("--resolution", type=int, default=32, help="SDF grid side")
    ap.add_argument("--sketch", type=int, default=64, help="sketch side in pixels")
    ap.add_argument("--workers", type=int, default=2, help="processes of the parallel run")
    ap.add_argument("--no-write", action="store_true", help="print the section instead of writing docs/benchmarks.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    cfg = LASPrepareConfig(resolution=args.resolution, sketch_size=args.sketch)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for cls in DEMO_CLASSES:
            (root / "meshes" / cls).mkdir(parents=True)
            for i in range(args.per_class):
                export_mesh(to_mesh(generate(cls, i, seed=0), 64), root / "meshes" / cls / f"{cls}_{i:05d}.ply")
        seconds = {}
        for workers in (1, args.workers):
            t0 = time.perf_counter()
            rep = prepare_dataset(root / "meshes", root / f"w{workers}", cfg, progress=False, workers=workers)
            seconds[workers] = time.perf_counter() - t0
            print(f"workers={workers}: {len(rep.prepared)} prepared, {len(rep.skipped)} skipped in {seconds[workers]:.1f} s")
        if not same_output(root / "w1", root / f"w{args.workers}"):
            raise SystemExit("error: the parallel run wrote other data than the serial one; not reporting a time")
    n = args.per_class * len(DEMO_CLASSES)
    rows = [[w, n, f"{s:.1f}", f"{n / s:.2f}", f"{seconds[1] / s:.2f}x"] for w, s in seconds.items()]
    body = (f"1-min load average {load:.1f} at the start. `las prepare` of {n} procedural meshes (SDF {args.resolution}^3, "
            f"sketches {args.sketch} px, 2 styles x 5 views), from scratch, worker start-up included; both runs wrote the "
            f"same index and volumes (checked).\n\n" + bl.table(["workers", "meshes", "seconds", "meshes/s", "speed-up vs 1 worker"], rows))
    bl.write_section("las-prepare-workers", "LAS data preparation: worker processes", body, dry_run=args.no_write)


if __name__ == "__main__":
    main()
