"""VSD NeRF-stage benchmark: seconds per iteration and peak memory of the tiny preset.

Each configuration runs in a fresh subprocess: the tiny preset (``configs/vsd/tiny.yaml``,
tiny random Stable Diffusion) with the given overrides, through the package's training loop
(:func:`shapegen.engine.fit`: occupancy update, render, VAE encode, prior + LoRA UNet passes,
backward, AdamW). The first ``--warmup`` steps are not timed; the table gives the median and
best time of the next ``--steps`` steps. Peak memory: on CPU the peak resident set size (``VmHWM``, reset through
``/proc/self/clear_refs`` once the model is built) minus the RSS at that point, i.e. what
training adds on top of the loaded model; on CUDA ``torch.cuda.max_memory_allocated``.

    python scripts/bench_vsd.py                  # CPU, writes the "vsd" section of docs/benchmarks.md
    python scripts/bench_vsd.py --threads 1      # torch intra-op threads (default: torch's)
    python scripts/bench_vsd.py --device cuda    # on a GPU (adds 512^2 rows)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

CONFIGS = [
    ("VSD", "tiny", 32, ["guidance.mode=vsd"]),
    ("SDS", "tiny", 32, ["guidance.mode=sds", "guidance.guidance_scale=100"]),
    ("VSD", "tiny", 64, ["guidance.mode=vsd"]),
    # The offline preset: the shipped render prior (a real trained model, pixel space), its 32x32 cameras.
    ("VSD", "cpu", 32, ["guidance.mode=vsd"]),
    ("SDS", "cpu", 32, ["guidance.mode=sds", "guidance.guidance_scale=100"]),
]
CUDA_CONFIGS = [("VSD", "tiny", 512, ["guidance.mode=vsd", "render.samples_per_ray=256"])]


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def _child(args: argparse.Namespace) -> None:
    import dataclasses
    import logging
    import tempfile
    import warnings

    import torch
    from pytorch_lightning.callbacks import Callback

    from shapegen.config import CONFIG_ROOT, load_config
    from shapegen.engine import fit
    from shapegen.logs import quiet_lightning
    from shapegen.methods.text_to_3d import stage_run
    from shapegen.methods.vsd import VSDConfig, VSDSystem

    warnings.filterwarnings("ignore")
    quiet_lightning(logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    side = args.resolution
    overrides = [*args.override, f"render.resolutions=[{side}]", "render.milestones=[]",
                 f"steps={args.warmup + args.steps}", "export.render_every=0", "render.occupancy_update_every=16"]
    cfg = load_config(VSDConfig, CONFIG_ROOT / "vsd" / f"{args.preset}.yaml", overrides)
    model = VSDSystem(cfg)
    times: list[float] = []

    class Timer(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t0)

    cuda = args.device == "cuda"
    if cuda:
        model.cuda()
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")
    base = _status_kib("VmRSS")
    run = stage_run(cfg, "nerf")
    run = dataclasses.replace(run, accelerator="gpu" if cuda else "cpu", checkpoint_every=10**9, preview_every=-1)
    with tempfile.TemporaryDirectory() as tmp:  # fit() keeps a final checkpoint; the benchmark does not
        fit(model, run, tmp, callbacks=[Timer()], loss_log=False, progress=False)
    timed = times[args.warmup:]
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else (_status_kib("VmHWM") - base) / 1024
    print(json.dumps({"median": statistics.median(timed), "best": min(timed), "peak_mib": peak,
                      "threads": torch.get_num_threads()}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--no-write", action="store_true", help="print the table without updating docs/benchmarks.md")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--resolution", type=int, default=32, help=argparse.SUPPRESS)
    p.add_argument("--preset", default="tiny", help=argparse.SUPPRESS)
    p.add_argument("--override", action="append", default=[], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(args)
        return
    from shapegen.config import CONFIG_ROOT, load_config
    from shapegen.methods.vsd import VSDConfig
    from shapegen.testing.bench import run_child, table, write_section

    rows = []
    configs = CONFIGS + (CUDA_CONFIGS if args.device == "cuda" else [])
    for mode, preset, side, overrides in configs:
        cmd = [sys.executable, __file__, "--child", "--device", args.device, "--threads", str(args.threads),
               "--warmup", str(args.warmup), "--steps", str(args.steps), "--resolution", str(side), "--preset", preset]
        for o in overrides:
            cmd += ["--override", o]
        load = os.getloadavg()[0]
        r = run_child(cmd)
        steps = load_config(VSDConfig, CONFIG_ROOT / "vsd" / f"{preset}.yaml").steps
        rows.append([mode, preset, f"{side}x{side}", args.device, r["threads"], r["median"], r["best"],
                     f"{r['median'] * steps / 60:.1f} ({steps})" if steps >= 100 else "-", r["peak_mib"], f"{load:.1f}"])
        print(rows[-1], flush=True)
    mem = "peak CUDA MiB" if args.device == "cuda" else "peak RSS added MiB"
    body = (
        "Presets `tiny` (tiny random Stable Diffusion: UNet widths 16/32 on 16x16x4 latents, 32x32 prior input; "
        "4-level hash grid; 32 samples across the cube; K=1) and `cpu` (the shipped render prior, a trained "
        "pixel-space model at 32x32; 8-level hash grid, 48 samples per ray with the occupancy grid; K=1), full "
        "Lightning training step. Minutes per run: the median step times the preset's steps (`tiny` is a test-size "
        "preset of 3 steps). "
        f"{args.warmup} warm-up steps, then {args.steps} timed. 64x64 renders are resized to the prior's 32x32. "
        "The load average (1 min) is that of the shared machine when the row started; at a load of about 16 "
        "on 2 cores every figure is several times what an idle machine gives.\n\n"
        + table(["guidance", "preset", "render", "device", "threads", "s/it median", "s/it best", "min per run (steps)", mem,
                 "load avg"], rows)
    )
    write_section("vsd", "VSD NeRF stage (tiny and cpu presets)", body, dry_run=args.no_write)


if __name__ == "__main__":
    main()
