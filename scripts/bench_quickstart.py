"""Wall time of the README's first job, ``shapegen quickstart``, set-up excluded (the target: under 2 minutes).

Runs the installed ``shapegen quickstart`` as a fresh process (imports, model loading, sampling,
decoding, sketch-to-3D, GLB and PNG writing included) ``--repeat`` times into a scratch folder,
beside the same command without the sketch part, and writes the ``quickstart`` section of
docs/benchmarks.md.

Usage: ``python scripts/bench_quickstart.py [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shapegen.testing import bench as bl

TARGET_S = 120.0


def run_once(extra: list[str]) -> tuple[float, int]:
    exe = Path(sys.executable).parent / "shapegen"
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run([str(exe), "quickstart", "-o", tmp, *extra], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"error: shapegen quickstart failed: {proc.stderr.strip().splitlines()[-1]}")
        return wall, len(list(Path(tmp).glob("*.glb")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per variant (the table gives min and max)")
    ap.add_argument("--no-write", action="store_true", help="print instead of writing docs/benchmarks.md")
    args = ap.parse_args()
    variants = [("quickstart (shapes + sketches)", []), ("shapes only (--set sketches=false)", ["--set", "sketches=false"])]
    rows = []
    for name, extra in variants:
        loads, walls, glbs = [], [], 0
        for _ in range(args.repeat):
            loads.append(os.getloadavg()[0])
            wall, glbs = run_once(extra)
            walls.append(wall)
        rows.append([name, glbs, f"{min(walls):.1f}", f"{max(walls):.1f}", f"{max(walls) / TARGET_S * 100:.0f}%",
                     f"{min(loads):.1f}-{max(loads):.1f}"])
        print(rows[-1], flush=True)
    body = (f"`shapegen quickstart -o DIR` as a fresh process ({args.repeat} runs each; set-up excluded, imports included), "
            f"torch's default threads; target: under {TARGET_S:.0f} s. Load: 1-minute load average before each run (2 cores).\n\n"
            + bl.table(["variant", "GLB files", "min s", "max s", "max / target", "load"], rows))
    bl.write_section("quickstart", "Quickstart wall time", body, dry_run=args.no_write)


if __name__ == "__main__":
    main()
