"""``shapegen avatar`` on the tiny preset end to end on CPU (wall time per phase).

Each configuration runs in a fresh subprocess: ``shapegen avatar "a knight in silver armour"
--preset tiny --preview`` (the preset's 3 steps per stage), then with ``--steps`` steps per stage.
Wall time from process start to exit (imports, the tiny random prior loaded per stage, body-prior
initialisation, geometry and texture stages, UV atlas and PBR bake, rig transfer, GLB export,
rest and pose renders); the phase split is the command's own report.

    python scripts/bench_avatar.py            # writes the "avatar" section of docs/benchmarks.md
    python scripts/bench_avatar.py --no-write
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROMPT = "a knight in silver armour"


def _run(steps: int | None, threads: int, anny_cache: str | None = None) -> list[object]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "knight"
        cmd = [sys.executable, "-m", "shapegen.cli", "avatar", PROMPT, "--preset", "tiny", "--preview", "--no-progress", "-o", str(out)]
        if steps:
            cmd += ["--set", f"vsd.geometry.steps={steps}", "--set", f"vsd.texture.steps={steps}",
                    "--set", f"vsd.geometry.checkpoint_every={steps}", "--set", f"vsd.texture.checkpoint_every={steps}"]
        if anny_cache:
            cmd += ["--body-params", f"kind=anny,anny_cache_dir={anny_cache}"]
        env = dict(os.environ)
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, cwd=REPO)
        wall = time.perf_counter() - t0
        if res.returncode != 0:
            sys.exit(f"error: avatar run failed:\n{res.stderr[-2000:]}")
        phases = {k: float(v) for k, v in re.findall(r"([a-z+]+) ([0-9.]+) s", res.stdout)}
        verts = re.search(r"\((\d+) vertices", res.stdout)
        size = (out / "avatar.glb").stat().st_size / 1e6
        label = f"{steps} per stage" if steps else "preset (3 per stage)"
        return [
            label + (", Anny body" if anny_cache else ""),
            wall,
            phases.get("geometry", float("nan")),
            phases.get("texture", float("nan")),
            phases.get("bake+rig+export", float("nan")),
            phases.get("renders", float("nan")),
            verts.group(1) if verts else "?",
            len(re.findall(r"\w+", res.stdout.split("morph targets:")[1].split(")")[0])) if "morph targets:" in res.stdout else 0,
            f"{size:.2f}",
            f"{load:.1f}",
        ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20, help="steps per stage of the second run")
    p.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of the runs (0: unset)")
    p.add_argument("--anny-cache", help="also run the preset with the Anny body (anny installed, its cache built here)")
    p.add_argument("--no-write", action="store_true", help="print the table without updating docs/benchmarks.md")
    args = p.parse_args()
    from shapegen.testing.bench import table, write_section

    rows = []
    for steps in (None, args.steps):
        rows.append(_run(steps, args.threads))
        print(rows[-1], flush=True)
    if args.anny_cache:
        rows.append(_run(None, args.threads, args.anny_cache))
        print(rows[-1], flush=True)
    body = (
        f'`shapegen avatar "{PROMPT}" --preset tiny --preview` (`configs/avatar/tiny.yaml`: tiny random Stable '
        "Diffusion, analytic body prior, 28^3-vertex tet grid, 32x32 renders, 64x64 PBR textures, rig template at 48), "
        "on CPU. The avatar is the body prior barely changed by random guidance; the timings are the pipeline's own "
        "cost. Phases as reported by the command: geometry and texture include loading the tiny prior and "
        "checkpoints; bake+rig+export is the UV atlas, PBR bake, rig transfer and GLB; renders are rest.png and "
        "poses.png. The Anny row (if any) takes Anny's default body as the prior and its 104-bone rig and 52 ARKit face "
        "blendshapes for the transfer. `wall s` is the whole process including imports. The load average (1 min) is that of the shared "
        "machine when the run started.\n\n"
        + table(["steps", "wall s", "geometry s", "texture s", "bake+rig+export s", "renders s", "GLB vertices", "morph targets", "GLB MB", "load avg"], rows)
    )
    write_section("avatar", "Avatar: tiny preset end to end on CPU", body, dry_run=args.no_write)


if __name__ == "__main__":
    main()
