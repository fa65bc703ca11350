"""Occ-SDF benchmark: training cost of a preset, and the hybrid against the SDF-only baseline on
the synthetic room (F-score at 5 cm, recall on thin-structure and dark-region surfaces).

Timing: ``--timing-steps`` optimiser steps of ``--preset`` (after 2 warm-up steps), reported per
1000 iterations by linear extrapolation, with the process's peak resident memory.
Comparison: for every seed, train the hybrid (defaults) and the baseline
(``loss.occupancy=false loss.feature_rgb=false``) for ``--steps`` steps with the same batches,
extract the SDF mesh and evaluate it against ``gt_mesh.ply`` culled to the training frusta.

Example (what fits on a 2-core CPU):
    python scripts/bench_occsdf.py --timing-steps 10 --steps 300 --seeds 0 --preset fast
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchlib import table, write_section

from shapegen.commands.recon import _cameras_world
from shapegen.data.room_synth import LABEL_DARK, LABEL_THIN, RoomSynthConfig, write_room
from shapegen.data.scenes import load_scene
from shapegen.geometry.mesh_io import load_mesh
from shapegen.geometry.recon_metrics import evaluate_meshes
from shapegen.methods.occsdf import build_for_scene, preset_config

BASELINE = ["loss.occupancy=false", "loss.feature_rgb=false"]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train(model, steps: int, t_log: list[float] | None = None) -> None:
    opt_cfg = model.configure_optimizers()
    opt, sched = opt_cfg["optimizer"], opt_cfg["lr_scheduler"]["scheduler"]
    for step in range(steps):
        t0 = time.perf_counter()
        loss = model.compute_losses(step)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if t_log is not None:
            t_log.append(time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--timing-steps", type=int, default=10)
    ap.add_argument("--steps", type=int, default=300, help="training steps per comparison run (0: skip the comparison)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--views", type=int, default=24)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--mesh-resolution", type=int, default=256)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="extra config overrides for both variants")
    ap.add_argument("--room", help="existing synthetic room folder (default: render one)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    room = Path(args.room) if args.room else write_room(
        Path(tempfile.mkdtemp()) / "room", RoomSynthConfig(num_views=args.views, width=args.size, height=args.size))
    synth_s = time.perf_counter() - t0
    scene = load_scene(room)
    print(f"room: {room} ({scene.num_images} views {scene.width}x{scene.height}, rendered in {synth_s:.0f} s)", flush=True)

    # ---------------------------------------------------------------- timing
    cfg = preset_config(args.preset, args.overrides)
    model = build_for_scene(cfg, scene)
    train(model, 2)
    times: list[float] = []
    train(model, args.timing_steps, times)
    per_step = statistics.median(times)
    rows = [[args.preset, cfg.train.rays_per_batch, args.timing_steps, f"{per_step:.3f}", f"{per_step * 1000 / 60:.1f}",
             f"{peak_rss_mib():.0f}", torch.get_num_threads()]]
    made = f"rendered in {synth_s:.0f} s" if not args.room else "an existing folder made by `shapegen room synth`"
    body = (f"Synthetic room: {scene.num_images} views at {scene.width}x{scene.height} (`RoomSynthConfig`), {made}.\n\n### Training cost ({args.preset} preset, CPU)\n\n"
            + table(["preset", "rays/step", "steps timed", "s/step (median)", "min per 1000 it (extrapolated)",
                     "peak RSS MiB (process)", "threads"], rows)
            + "\n\nPer-1000-iteration time is the median step time x 1000 (not measured over 1000 steps).")
    print(body, flush=True)

    # ---------------------------------------------------------------- comparison
    if args.steps > 0:
        gt = load_mesh(room / "gt_mesh.ply", dedupe=False)
        labels = torch.from_numpy(__import__("numpy").load(room / "gt_labels.npy").astype("int64"))
        cams = _cameras_world(room)
        results: dict[str, list[dict]] = {"hybrid": [], "sdf-only": []}
        for seed in args.seeds:
            for name, extra in (("hybrid", []), ("sdf-only", BASELINE)):
                cfg = preset_config(args.preset, [*args.overrides, *extra, f"train.seed={seed}", f"train.max_steps={args.steps}"])
                model = build_for_scene(cfg, scene)
                t1 = time.perf_counter()
                train(model, args.steps)
                mesh = model.extract_world_mesh(args.mesh_resolution)
                m = evaluate_meshes(mesh, gt, num_points=args.points, gt_face_labels=labels,
                                    label_names={LABEL_THIN: "thin", LABEL_DARK: "dark"}, cameras=cams, seed=seed).to_dict()
                m["minutes"] = (time.perf_counter() - t1) / 60
                results[name].append(m)
                print(name, seed, {k: round(v, 4) for k, v in m.items() if isinstance(v, float)}, flush=True)
        keys = ["fscore@5cm", "fscore@2cm", "recall_thin@2cm", "recall_thin@5cm", "recall_dark@5cm", "chamfer_l1", "normal_consistency"]

        def ms(vals: list[float]) -> str:
            return f"{statistics.mean(vals):.4f} ± {statistics.stdev(vals):.4f}" if len(vals) > 1 else f"{vals[0]:.4f}"

        rows = [[name] + [ms([r.get(k, float('nan')) for r in rs]) for k in keys] + [len(rs), f"{statistics.mean(r['minutes'] for r in rs):.1f}"]
                for name, rs in results.items()]
        body += (f"\n\n### Hybrid vs SDF-only ({args.preset} preset, {args.steps} steps, seeds {args.seeds}, culled to the "
                 f"training frusta, {args.points} points per mesh, mesh {args.mesh_resolution}^3)\n\n"
                 + table(["variant", *keys, "runs", "min/run"], rows)
                 + "\n\nmean ± std over seeds (a single value when one seed ran). Distances in metres.")
    write_section("occsdf", "Occ-SDF hybrid: cost per 1000 iterations and hybrid vs SDF-only", body)


if __name__ == "__main__":
    main()
