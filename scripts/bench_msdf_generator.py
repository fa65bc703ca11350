"""Benchmark the Mosaic-SDF generator: sampling time, training throughput, solver accuracy.

Writes the ``msdf-generator`` section of docs/benchmarks.md:

1. Sampling time per shape for 50 function evaluations (midpoint, 25 steps; guidance doubles
   the batch) at the paper's size n = 1024, k = 7, for the ``tiny`` and ``default`` presets.
   The default preset on a CPU is timed for a few evaluations and scaled to 50 (marked "est.").
2. Training throughput in shapes per second (forward + backward + AdamW step).
3. Solver accuracy: a tiny model is trained on synthetic spheres/slabs (n = 64, k = 3) and its
   samples from Euler, midpoint and RK4 at 10-100 evaluations are compared with the adaptive
   dopri5 reference (RMS difference in normalised units, and of the decoded centres).
4. With ``--fidelity``: the class-fidelity check on 3 ShapeNet classes x 3 real meshes
   (steps and wall time until every sample is nearest to its own class), then sample quality
   (1-NNA, COV, MMD, distance to the dopri5 sample) from 10 to 100 evaluations and the
   evaluations dopri5 needs (:mod:`shapegen.testing.msdf_fidelity`).

Every part is cached in ``--cache`` (``results.json``; the fidelity run also keeps its data,
weights and optimiser there and resumes at its last evaluation), so the section can be rebuilt
or extended piecewise: ``--skip-speed`` / ``--skip-solvers`` reuse cached tables.

Usage: ``python scripts/bench_msdf_generator.py [--quick] [--fidelity [--minutes 9]] [--skip-speed] [--skip-solvers]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from shapegen.config import load_config, resolve_preset
from shapegen.devices import choose_device
from shapegen.diffusion.flow_matching import draw_training_batch, flow_matching_loss, sample_noise, solve_ode
from shapegen.methods.msdf import MSDFConfig, MSDFGenerator
from shapegen.testing import bench as bl


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


def _rows_speed(device: str) -> list[list[object]]:
    rows = []
    for preset in ("tiny", "default"):
        model = build(preset, 1024, 7, device)
        params = sum(p.numel() for p in model.net.parameters()) / 1e6
        big = preset == "default" and device == "cpu"
        # The default preset on a CPU: one timed call each, no warm-up (minutes otherwise).
        per_shape, estimated = time_sampling(model, 50, 2 if big else 50, repeat=1 if big else 2, warmup=0 if big else 1)
        shapes_s = time_training(model, 1 if big else 8, repeat=1 if big else 3, warmup=0 if big else 1)
        est = " (est.)" if estimated else ""
        # Fixed-step cost is linear in the evaluations: 50 midpoint steps = 100 evaluations.
        rows.append([preset, f"{params:.2f} M", f"{per_shape:.3g} s{est}", f"{2 * per_shape:.3g} s{est}", f"{shapes_s:.3g}", "1" if big else "8"])
        print(rows[-1], flush=True)
        del model
    return rows


def _load(r: dict) -> str:
    # The CPU is shared: the 1-minute load average before and after the timing puts the numbers in context.
    return "" if "load" not in r else f", load average {r['load'][0]:.1f} before / {r['load'][1]:.1f} after, 2 cores"


def _speed_text(r: dict) -> str:
    return (
        f"Sampling ({r['device']}{_load(r)}): one shape, n = 1024, k = 7 (d = 347), classifier-free guidance (conditional and null "
        "branch in one batch of 2). 50 NFE = midpoint with 25 steps (or Euler with 50); 50 midpoint steps = 100 NFE "
        "(fixed-step cost is linear in the evaluations). \"est.\": timed for 2 evaluations and scaled. Training: one "
        "AdamW step on random tensors, fp32 on CPU (bf16 autocast on capable GPUs). Not yet measured on a GPU.\n\n"
        + bl.table(["preset", "parameters", "sampling / shape, 50 NFE", "sampling / shape, 50 midpoint steps", "training shapes/s", "batch"], r["rows"])
    )


def _solver_text(r: dict) -> str:
    return (
        f"Solver accuracy against dopri5 (rtol = atol = 1e-6, {r['ref_nfe']} evaluations) on a tiny model trained for "
        f"{r['steps']} steps ({r['train_s']:.0f} s) on synthetic spheres and slabs (n = 64, k = 3), 16 samples, "
        "guidance 2. RMS: difference of the normalised tensors; centres: largest difference of a decoded centre "
        "(the shape spans [-1, 1]). With the time features at `100 t` (`model.time_scale`) the errors fall "
        "monotonically at each solver's order; with DiT's `1000 t` (before 2026-12-02) they stalled between 20 and 100 "
        "evaluations and dopri5 needed about 1000-2000 evaluations (see `tests/methods/test_msdf_solver_convergence.py`).\n\n"
        + bl.table(["solver", "NFE", "RMS vs dopri5", "max centre diff"], r["rows"])
    )


def _verdict(q: dict, floor: float | None) -> str:
    """Target 'at most 50 function evaluations without a measurable loss against the adaptive solver'."""
    rows = {(x["solver"], x["steps"]): x for x in q["rows"]}
    ref, m50, m100, m10 = rows[("dopri5", 0)], rows.get(("midpoint", 25)), rows.get(("midpoint", 50)), rows.get(("midpoint", 5))
    if not (m50 and m100 and m10):
        return ""
    pct = lambda v: "-" if v is None else f"{v * 100:.0f}%"
    lines = [
        f"- midpoint at 50 NFE against dopri5 ({ref['nfe_per_shape']:.0f} NFE): 1-NNA {pct(m50['nna'])} vs {pct(ref['nna'])}, "
        f"MMD-CD {m50['mmd']:.3e} vs {ref['mmd']:.3e}, fidelity {pct(m50['fidelity'])} vs {pct(ref['fidelity'])}; "
        f"paired Chamfer to the dopri5 sample {m50['paired_chamfer']:.1e} (10 NFE: {m10['paired_chamfer']:.1e}, "
        f"100 NFE: {m100['paired_chamfer']:.1e}; resampling the same shape: {floor or float('nan'):.1e})",
    ]
    nnas = [x["nna"] for x in q["rows"] if x["nna"] is not None]
    if nnas and min(nnas) > 0.9:
        lines.append(f"- 1-NNA is saturated ({pct(min(nnas))}-{pct(max(nnas))} at every step count: these samples are told apart "
                     "from the training shapes whatever the solver), so it cannot show a loss from fewer steps here; the "
                     "tensor and paired-Chamfer distances to dopri5 are the sensitive measures")
    return "\n\n" + "\n".join(lines)


def _eval_load(evals: list[dict]) -> str:
    loads = [e["load"] for e in evals if "load" in e]
    return f" (1-minute load average {min(loads):.1f}-{max(loads):.1f} at the evaluations)" if loads else ""


def _fidelity_text(r: dict) -> str:
    p = r.get("passed")
    evals = r["evals"]
    cmd = "python scripts/bench_msdf_generator.py --fidelity"
    head = (
        f"Fidelity check (`{cmd}`, resumable cache in `{r['cache']}`; protocol in `shapegen/testing/msdf_fidelity.py`): "
        f"3 ShapeNet classes ({', '.join(r['classes'])}) x 3 meshes from `../shared/data/meshes_shapenet`, converted with "
        "`shapegen msdf encode --n 256 --k 5 --steps 100` "
        f"({r['encode_seconds']:.0f} s for the 9 meshes, cached); `demo` preset (4 x 128, {r['params']:.2f} M parameters), "
        f"batch 8, 1 thread; times are wall clock on the 2-core CPU shared with other jobs{_eval_load(evals)}. "
        f"Every {r['eval_every']} steps 3 samples per class (EMA, midpoint 25 steps = 50 NFE, guidance 2) "
        "are decoded at 64^3 and each is assigned the class of its Chamfer-L2 nearest training shape (512 FPS points, "
        "training shapes decoded the same way); an empty decode counts as a miss.\n\n"
    )
    if p:
        head += (
            f"- **met at step {p['step']}**: every sample nearest to its own class after {p['train_seconds'] / 60:.1f} min of "
            f"training ({p['step'] * 8 / p['train_seconds']:.1f} shapes/s) plus {p['eval_seconds'] / 60:.1f} min of evaluation\n"
        )
    else:
        head += f"- NOT met after {r['step']} steps ({r['train_seconds'] / 60:.1f} min of training)\n"
    head += "\n" + bl.table(
        ["step", "training min", "loss (last batch)", "fidelity", "empty decodes", "predicted classes"],
        [
            [e["step"], f"{e['train_seconds'] / 60:.1f}", f"{e['loss']:.3f}", f"{e['fidelity'] * 100:.0f}%", e["empty"], " ".join(str(x) for x in e["pred"])]
            for e in evals
        ],
    )
    q = r.get("quality")
    if not q:
        return head
    at = f"step {p['step']}" if p else f"step {r['step']} (the check not met)"
    fmt = lambda v, f: "-" if v is None else format(v, f)
    rows = [
        [
            x["solver"],
            x["steps"] or "adaptive",
            f"{x['nfe_per_shape']:.0f}",
            f"{x['fidelity'] * 100:.0f}%",
            x["empty"],
            fmt(x["nna"] and x["nna"] * 100, ".0f") + "%",
            fmt(x["cov"] and x["cov"] * 100, ".0f") + "%",
            fmt(x["mmd"], ".3e"),
            f"{x['paired_chamfer']:.2e}",
            f"{x['rms']:.3g}",
        ]
        for x in q["rows"]
    ]
    head += (
        f"\n\nSample quality against solver steps on the model at {at}: 4 samples per class (12) against the 9 "
        "training shapes; NFE per shape counts both guidance branches as one evaluation; 1-NNA near 50% is best "
        "(with 12 vs 9 clouds one sample moves it by 4.8 points); paired Chamfer / RMS: distance of each sample to the "
        "dopri5 (rtol = atol = 1e-5) sample from the same noise (decoded clouds / normalised tensors). Two 512-point "
        f"samplings of one and the same decoded shape differ by a Chamfer-L2 of {r.get('cd_floor', float('nan')):.1e} on average "
        "(the resolution of these clouds).\n\n"
        + bl.table(["solver", "steps", "NFE / shape", "fidelity", "empty", "1-NNA", "COV", "MMD-CD", "paired CD vs dopri5", "RMS vs dopri5"], rows)
        + _verdict(q, r.get("cd_floor"))
        + "\n\ndopri5 evaluations on the same model (4 samples, RMS of the normalised tensors against rtol = atol = 1e-7), "
        "beside midpoint:\n\n"
        + bl.table(["dopri5 tolerance / solver", "NFE", "RMS vs 1e-7"], [[str(x["tol"]), x["nfe"], f"{x['rms']:.2e}"] for x in q["dopri5"]])
    )
    return head


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and training steps")
    ap.add_argument("--no-write", action="store_true", help="print the section instead of writing docs/benchmarks.md")
    ap.add_argument("--skip-speed", action="store_true", help="do not re-measure sampling/training speed (reuse the cached table if any)")
    ap.add_argument("--skip-solvers", action="store_true", help="do not re-run the solver-accuracy study (reuse the cached table if any)")
    ap.add_argument("--fidelity", action="store_true", help="also run (or resume) the fidelity check on real meshes")
    ap.add_argument("--cache", default="outputs/bench_msdf_generator", help="cache folder (results and the fidelity run)")
    ap.add_argument("--minutes", type=float, default=9.0, help="training wall-time budget of this invocation (fidelity)")
    ap.add_argument("--max-minutes", type=float, default=25.0, help="total training budget of the fidelity check")
    ap.add_argument("--eval-every", type=int, default=250, help="fidelity evaluation interval in steps")
    args = ap.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    res_path = cache / "results.json"
    results = json.loads(res_path.read_text()) if res_path.exists() else {}

    def save() -> None:
        tmp = res_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1, default=str))
        tmp.replace(res_path)

    device = str(choose_device())
    if not args.skip_speed:
        load0 = os.getloadavg()[0]
        results["speed"] = {"device": device, "rows": _rows_speed(device), "load": [load0, os.getloadavg()[0]]}
        save()
    if not args.skip_solvers:
        steps = 150 if args.quick else 400
        acc, train_s = solver_accuracy(steps)
        results["solvers"] = {"rows": acc, "train_s": train_s, "steps": steps, "ref_nfe": acc[0][1]}
        save()
    if args.fidelity:
        from shapegen.testing import msdf_fidelity as fid

        ref = fid.prepare_data(bl.shared_data_root(), cache)
        st = fid.train_until_fidelity(cache, ref, args.minutes, args.max_minutes, args.eval_every)
        model = st.pop("model")
        info = {k: v for k, v in st.items() if k != "losses"}
        info.update(
            classes=ref["classes"],
            encode_seconds=ref["encode_seconds"],
            eval_every=args.eval_every,
            cache=str(cache),
            params=sum(p.numel() for p in model.net.parameters()) / 1e6,
        )
        if st["passed"] is not None or st["train_seconds"] >= args.max_minutes * 60:  # met, or out of budget
            info["quality"] = fid.solver_study(model, ref, cache)
            info["cd_floor"] = fid.chamfer_floor(cache)
        results["fidelity"] = info
        save()
    parts = [_speed_text(results["speed"])] if "speed" in results else []
    parts += [_solver_text(results["solvers"])] if "solvers" in results else []
    parts += [_fidelity_text(results["fidelity"])] if "fidelity" in results else []
    body = "\n\n".join(parts)
    bl.write_section("msdf-generator", "Mosaic-SDF generator: sampling, training throughput, solver accuracy, fidelity", body, dry_run=args.no_write)


if __name__ == "__main__":
    main()
