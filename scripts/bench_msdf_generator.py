"""Benchmark the Mosaic-SDF generator: sampling time, training throughput, solver accuracy.

Writes the ``msdf-generator`` section of docs/benchmarks.md:

1. Sampling time per shape for 50 function evaluations (midpoint, 25 steps; guidance doubles
   the batch) at the paper's size n = 1024, k = 7, for the ``tiny`` and ``default`` presets.
   The default preset on a CPU is timed for a few evaluations and scaled to 50 (marked "est.").
2. Training throughput in shapes per second (forward + backward + AdamW step).
3. Solver accuracy: a tiny model is trained on synthetic spheres/slabs (n = 64, k = 3) and its
   samples from Euler, midpoint and RK4 at 10-100 evaluations are compared with the adaptive
   dopri5 reference (RMS difference in normalised units, and of the decoded centres).

Usage: ``python scripts/bench_msdf_generator.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _benchlib as bl  # noqa: E402

from shapegen.config import load_config, resolve_preset  # noqa: E402
from shapegen.diffusion.flow_matching import draw_training_batch, flow_matching_loss, sample_noise, solve_ode  # noqa: E402
from shapegen.methods.msdf import MSDFConfig, MSDFGenerator  # noqa: E402


def build(preset: str, n: int, k: int, device: str) -> MSDFGenerator:
    cfg = load_config(MSDFConfig, resolve_preset(preset, "msdf"), [f"n={n}", f"k={k}", "conditioning=class", "classes=[a,b]"])
    return MSDFGenerator(cfg).to(device)


def time_sampling(model: MSDFGenerator, nfe_budget: int, measure_nfe: int, repeat: int = 2, warmup: int = 1) -> tuple[float, bool]:
    """Seconds per shape for ``nfe_budget`` evaluations with guidance (batch of 1, 2 rows per pass)."""
    x = sample_noise((1, model.config.n, model.dim), seed=0, device=model.device)
    cond = {"labels": torch.zeros(1, dtype=torch.long, device=model.device)}
    steps = max(1, measure_nfe // 2)

    def run():
        with torch.no_grad():
            solve_ode(lambda x, t: model.velocity(x, t, cond, guidance=2.0), x, "midpoint", steps)

    sec = bl.timeit(run, repeat=repeat, warmup=warmup)
    return sec * nfe_budget / (2 * steps), measure_nfe < nfe_budget


def time_training(model: MSDFGenerator, batch: int, repeat: int, warmup: int = 1) -> float:
    """Shapes per second of one optimiser step."""
    opt = torch.optim.AdamW(model.net.parameters(), lr=1e-4)
    x1 = torch.randn(batch, model.config.n, model.dim, device=model.device)
    labels = torch.zeros(batch, dtype=torch.long, device=model.device)

    def step():
        fm = draw_training_batch(x1)
        with model._autocast():
            v = model.net(fm.xt, fm.t, labels)
        loss = flow_matching_loss(v, fm.target)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return batch / bl.timeit(step, repeat=repeat, warmup=warmup)


def _toy_data(num: int, n: int, k: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.linspace(-1, 1, k)
    grid = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    out, labels = [], []
    for i in range(num):
        if i % 2 == 0:  # sphere of radius r: grids on the surface
            r = 0.4 + 0.2 * torch.rand(1, generator=gen).item()
            d = torch.randn(n, 3, generator=gen)
            c = r * d / d.norm(dim=-1, keepdim=True)
            vals = (c[:, None] + 0.3 * grid).norm(dim=-1) - r
        else:  # slab top face at height h
            h = 0.1 + 0.2 * torch.rand(1, generator=gen).item()
            xz = torch.rand(n, 2, generator=gen) * 1.2 - 0.6
            c = torch.stack([xz[:, 0], torch.full((n,), h), xz[:, 1]], -1)
            vals = (c[:, None] + 0.3 * grid)[..., 1] - h
        out.append(torch.cat([c, torch.full((n, 1), 0.3), vals], 1))
        labels.append(i % 2)
    return torch.stack(out), torch.tensor(labels)


def solver_accuracy(steps_train: int) -> tuple[list[list[object]], float]:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    data, labels = _toy_data(64, 64, 3, gen)
    model = build("tiny", 64, 3, "cpu")
    from shapegen.data.msdf_dataset import msdf_statistics

    model.set_normalization(*msdf_statistics(data))
    opt = torch.optim.AdamW(model.net.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for _ in range(steps_train):
        idx = torch.randint(0, data.shape[0], (16,), generator=gen)
        fm = draw_training_batch(model.normalize(data[idx]), 1e-4, gen)
        drop = torch.rand(16, generator=gen) < 0.1
        loss = flow_matching_loss(model.net(fm.xt, fm.t, labels[idx], drop=drop), fm.target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_s = time.perf_counter() - t0
    x0 = sample_noise((16, 64, model.dim), seed=1)
    cond = {"labels": torch.tensor([0, 1] * 8)}

    def f(x, t):
        return model.velocity(x, t, cond, guidance=2.0, use_ema=False)

    with torch.no_grad():
        ref = solve_ode(f, x0, "dopri5", rtol=1e-6, atol=1e-6)
        rows: list[list[object]] = [["dopri5 (reference)", ref.nfe, 0.0, 0.0]]
        for solver, per in (("euler", 1), ("midpoint", 2), ("rk4", 4)):
            for nfe in (10, 20, 50, 100):
                sol = solve_ode(f, x0, solver, max(1, nfe // per))
                rms = float((sol.x - ref.x).pow(2).mean().sqrt())
                centres = float((model.denormalize(sol.x) - model.denormalize(ref.x))[..., :3].abs().max())
                rows.append([solver, sol.nfe, rms, centres])
                print(rows[-1], flush=True)
    return rows, train_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and training steps")
    ap.add_argument("--no-write", action="store_true", help="print the table instead of writing docs/benchmarks.md")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    for preset in ("tiny", "default"):
        model = build(preset, 1024, 7, device)
        params = sum(p.numel() for p in model.net.parameters()) / 1e6
        big = preset == "default" and device == "cpu"
        # The default preset on a CPU: one timed call each, no warm-up (minutes otherwise).
        per_shape, estimated = time_sampling(model, 50, 2 if big else 50, repeat=1 if big else 2, warmup=0 if big else 1)
        shapes_s = time_training(model, 1 if big else 8, repeat=1 if big else 3, warmup=0 if big else 1)
        rows.append([preset, f"{params:.2f} M", f"{per_shape:.3g} s" + (" (est.)" if estimated else ""), f"{shapes_s:.3g}",
                     "1" if big else "8"])
        print(rows[-1], flush=True)
        del model
    body = (
        "Sampling: one shape, n = 1024, k = 7 (d = 347), midpoint with 25 steps = 50 function evaluations, "
        "classifier-free guidance (conditional and null branch in one batch of 2). \"est.\": timed for 2 evaluations and "
        "scaled to 50. Training: one AdamW step, fp32 on CPU (bf16 autocast on capable GPUs).\n\n"
        + bl.table(["preset", "parameters", "sampling / shape (50 NFE)", "training shapes/s", "batch"], rows)
    )
    acc, train_s = solver_accuracy(150 if args.quick else 400)
    body += (
        f"\n\nSolver accuracy against dopri5 (rtol = atol = 1e-6) on a tiny model trained for "
        f"{150 if args.quick else 400} steps ({train_s:.0f} s) on synthetic spheres and slabs (n = 64, k = 3), 16 samples, "
        "guidance 2. RMS: difference of the normalised tensors; centres: largest difference of a decoded centre "
        "(the shape spans [-1, 1]).\n\n"
        + bl.table(["solver", "NFE", "RMS vs dopri5", "max centre diff"], acc)
    )
    if args.no_write:
        print(body)
    else:
        bl.write_section("msdf-generator", "Mosaic-SDF generator: sampling, training throughput, solver accuracy", body)


if __name__ == "__main__":
    main()
