"""ProlificDreamer's three stages on the tiny preset: end-to-end wall time and seconds per iteration.

Two parts, each configuration in a fresh subprocess:

1. End to end: ``shapegen text-to-3d "a hamburger" --preset tiny --tiny-random-prior --stages
   nerf,geometry,texture`` (the preset's step counts, then ``--e2e-steps`` steps per stage), timed
   from process start to exit (imports, the tiny prior built once per stage, training, mesh
   extraction, UV atlas, baking, GLB export, turntables).
2. Per stage: seconds per training iteration (the system's ``training_step``, backward and
   optimiser step; ``--warmup`` untimed steps, median and best of ``--steps``) at several render
   sides: NeRF (VSD), geometry (DMTet + normal render + SDS at CFG 100 + regularisers) and
   texture (rasterise + texture field + VSD), with the tiny random Stable Diffusion (its UNet
   sees 32x32 images; larger renders are resized before the VAE, so the prior's cost is fixed and
   the rows show the renderer's share growing). On CUDA, 512x512 rows are added.

    python scripts/bench_mesh_stages.py                 # CPU; writes the "mesh-stages" section of docs/benchmarks.md
    python scripts/bench_mesh_stages.py --device cuda   # adds 512^2 rows
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (stage, render side, tet-grid resolution or None, extra overrides)
STAGE_CONFIGS = [
    ("nerf", 32, None, []),
    ("geometry", 32, 12, []),
    ("geometry", 64, 32, []),
    ("geometry", 128, 64, []),
    ("texture", 32, 12, []),
    ("texture", 64, 32, []),
    ("texture", 128, 64, []),
]
CUDA_CONFIGS = [("nerf", 512, None, ["render.samples_per_ray=256"]), ("geometry", 512, 128, []), ("texture", 512, 128, [])]


def _child(args: argparse.Namespace) -> None:
    import logging
    import warnings

    import torch

    from shapegen.config import CONFIG_ROOT, load_config
    from shapegen.devices import choose_device
    from shapegen.logs import quiet_lightning
    from shapegen.methods.vsd import VSDConfig

    warnings.filterwarnings("ignore")
    quiet_lightning(logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = choose_device(args.device)
    side, stage = args.resolution, args.stage
    overrides = [*args.override, f"render.resolutions=[{side}]", "render.milestones=[]",
                 f"geometry.resolution={side}", f"texture.resolution={side}"]
    if args.tet:
        overrides.append(f"geometry.tet_resolution={args.tet}")
    cfg = load_config(VSDConfig, CONFIG_ROOT / "vsd" / "tiny.yaml", overrides)
    faces = 0
    if stage == "nerf":
        from shapegen.methods.vsd import VSDSystem

        system = VSDSystem(cfg).to(device)
    else:
        from shapegen.methods.vsd_mesh import GeometrySystem, TextureSystem

        geo = GeometrySystem(cfg).to(device)
        # A bumpy sphere: an SDF the tet grid resolves with many faces, like a NeRF blob would.
        geo.init_from_sdf(lambda x: x.norm(dim=-1) - 0.4 - 0.03 * torch.sin(12 * x[:, 0]) * torch.sin(12 * x[:, 1]))
        if stage == "geometry":
            system = geo
        else:
            mesh = geo.extract_mesh()
            system = TextureSystem(cfg, mesh.vertices, mesh.faces).to(device)
        faces = geo.extract_mesh().num_faces
    opt = system.configure_optimizers()
    if isinstance(opt, (list, tuple)):
        opt = opt[0]
    system.log_dict = lambda *a, **k: None  # no trainer attached
    times = []
    for i in range(args.warmup + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        if stage == "nerf" and i % cfg.render.occupancy_update_every == 0:
            system.update_occupancy(0, i)
        loss = system.training_step(None, i)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    timed = times[args.warmup:]
    print(json.dumps({"median": statistics.median(timed), "best": min(timed), "faces": faces, "threads": torch.get_num_threads()}))


def _e2e(steps: int | None, threads: int) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "shapegen.cli", "text-to-3d", "a hamburger", "--preset", "tiny", "--tiny-random-prior",
               "--stages", "nerf,geometry,texture", "-o", str(Path(tmp) / "run")]
        if steps:
            cmd += ["--set", f"steps={steps}", "--set", f"geometry.steps={steps}", "--set", f"texture.steps={steps}",
                    "--set", "export.render_every=0", "--set", "geometry.render_every=0", "--set", "texture.render_every=0",
                    "--set", f"export.checkpoint_every={steps}", "--set", f"geometry.checkpoint_every={steps}",
                    "--set", f"texture.checkpoint_every={steps}"]
        env = dict(os.environ)
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, cwd=Path(__file__).resolve().parent.parent)
        wall = time.perf_counter() - t0
        if res.returncode != 0:
            sys.exit(f"error: end-to-end run failed:\n{res.stderr[-2000:]}")
        written = sorted(p.name for p in (Path(tmp) / "run").glob("*.glb"))
        return wall, ", ".join(written)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--e2e-steps", type=int, default=50, help="steps per stage of the second end-to-end run")
    p.add_argument("--no-write", action="store_true", help="print the tables without updating docs/benchmarks.md")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--stage", help=argparse.SUPPRESS)
    p.add_argument("--resolution", type=int, default=32, help=argparse.SUPPRESS)
    p.add_argument("--tet", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--override", action="append", default=[], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(args)
        return
    from shapegen.testing.bench import run_child, table, write_section

    e2e_rows = []
    for steps in (None, args.e2e_steps):
        load = os.getloadavg()[0]
        wall, written = _e2e(steps, args.threads)
        e2e_rows.append([f"{steps} per stage" if steps else "preset (3 per stage)", wall, wall / 60, written, f"{load:.1f}"])
        print(e2e_rows[-1], flush=True)

    rows = []
    configs = STAGE_CONFIGS + (CUDA_CONFIGS if args.device == "cuda" else [])
    for stage, side, tet, overrides in configs:
        cmd = [sys.executable, __file__, "--child", "--stage", stage, "--device", args.device, "--threads", str(args.threads),
               "--warmup", str(args.warmup), "--steps", str(args.steps), "--resolution", str(side), "--tet", str(tet or 0)]
        for o in overrides:
            cmd += ["--override", o]
        load = os.getloadavg()[0]
        r = run_child(cmd)
        rows.append([stage, f"{side}x{side}", f"{tet}^3" if tet else "-", r["faces"] or "-", args.device, r["threads"],
                     r["median"], r["best"], f"{load:.1f}"])
        print(rows[-1], flush=True)
    body = (
        "Tiny preset (`configs/vsd/tiny.yaml`) with the tiny random Stable Diffusion (UNet widths 16/32, 32x32 "
        "prior input): the results are meaningless, the timings show the pipeline's own cost. Target: all three "
        "stages end to end on CPU in under 10 minutes.\n\n"
        "End to end (`shapegen text-to-3d ... --stages nerf,geometry,texture`, wall time of the whole process "
        "including imports and exports):\n\n"
        + table(["steps", "wall s", "wall min", "GLBs written", "load avg"], e2e_rows)
        + "\n\nSeconds per iteration per stage (training_step + backward + optimiser step; "
        f"{args.warmup} warm-up steps, then {args.steps} timed). Geometry and texture run on a bumpy sphere "
        "extracted from the tet grid (faces column); renders above 32x32 are resized to the prior's 32x32. "
        "The load average (1 min) is that of the shared machine when the row started.\n\n"
        + table(["stage", "render", "tet grid", "faces", "device", "threads", "s/it median", "s/it best", "load avg"], rows)
    )
    write_section("mesh-stages", "VSD mesh stages: tiny preset end to end and s/it per stage", body, dry_run=args.no_write)


if __name__ == "__main__":
    main()
