"""Fidelity check and solver-step study of the Mosaic-SDF generator (used by bench_msdf_generator.py).

Everything is cached under one folder so that a run can stop at its time budget and the next one
resumes: ``msdf/<class>/<mesh>.msdf.npz`` (from ``shapegen msdf encode``), ``clouds.pt``
(training-shape point clouds), ``train_state.pt`` (weights, EMA, optimiser, step, wall time and
the evaluation history) and ``quality.json`` (the solver-step study).

Protocol:

1. Data: 3 ShapeNet classes x 3 meshes from ``../shared/data/meshes_shapenet`` (the first three
   files of each class in name order), converted with ``shapegen msdf encode --n 256 --k 5
   --steps 100``.
2. Reference clouds: each training M-SDF decoded at 64^3 (the same decoding the samples get),
   512 FPS points from 2048 area samples.
3. Training: the ``demo`` preset (4 x 128, about 1 M parameters) in a plain loop (flow-matching
   loss, AdamW with warm-up, gradient clipping, EMA), batch 8 drawn from the 9 shapes.
4. Every ``eval_every`` steps: 3 samples per class (fixed seeds, EMA weights, midpoint with 25
   steps = 50 evaluations, guidance 2), decoded at 64^3. A sample *passes* when its Chamfer-L2
   nearest training shape is of its own class (an empty decode fails). The check is met at the
   first evaluation where every sample passes.
5. Solver study on the model at that point: 4 samples per class with midpoint and Euler at 10 to
   100 evaluations and dopri5 (rtol = atol = 1e-5); COV / MMD / 1-NNA of the 12 samples against
   the 9 training shapes, class fidelity, and the paired Chamfer / RMS distance of each sample to
   the dopri5 sample from the same noise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from shapegen.checkpoints import load_checkpoint
from shapegen.config import load_config, resolve_preset
from shapegen.diffusion.flow_matching import draw_training_batch, flow_matching_loss, sample_noise, solve_ode
from shapegen.geometry.generation_eval import farthest_point_sampling
from shapegen.geometry.metrics import chamfer_distance_matrix, generation_metrics
from shapegen.geometry.sampling import sample_surface
from shapegen.methods.msdf import MSDFConfig, MSDFGenerator, build_for_training, decode_to_mesh

CLASSES = ("aeroplane", "chair", "cup")
PER_CLASS = 3
N, K, FIT_STEPS = 256, 5, 100
RESOLUTION = 64
CLOUD_POINTS = 512
EVAL_SAMPLES = 3
STUDY_SAMPLES = 4


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def cloud(tensor: torch.Tensor, seed: int = 0) -> torch.Tensor | None:
    """512 FPS surface points of a decoded M-SDF (normalised frame), or None without a surface."""
    mesh = decode_to_mesh(tensor, K, RESOLUTION)
    if mesh.num_faces == 0:
        return None
    dense = sample_surface(mesh, 4 * CLOUD_POINTS, generator=torch.Generator().manual_seed(seed)).points.float()
    return dense[farthest_point_sampling(dense, CLOUD_POINTS)]


def chamfer_floor(cache: Path) -> float:
    """Mean Chamfer-L2 between two 512-point clouds (sampling seeds 0 and 1) of the same training shape.

    The resolution of the Chamfer comparisons: distances below it are not measurable with these clouds.
    """
    from shapegen.data.msdf_dataset import MSDFDataConfig, load_msdf_folder

    data, _, _ = load_msdf_folder(MSDFDataConfig(root=str(cache / "msdf")))
    return float(sum(chamfer_distance_matrix(cloud(t, 0)[None], cloud(t, 1)[None]) for t in data.tensors) / len(data.tensors))


def prepare_data(shared: Path, cache: Path) -> dict:
    """Encode the meshes with the CLI (skipping finished files) and cache the training clouds."""
    exe = Path(sys.executable).parent / "shapegen"
    cmd0 = [str(exe)] if exe.exists() else [sys.executable, "-c", "from shapegen.cli import main; main()"]
    t0 = time.perf_counter()
    for cls in CLASSES:
        meshes = sorted((shared / "meshes_shapenet").glob(f"{cls}_*.obj"))[:PER_CLASS]
        for mesh in meshes:
            out = cache / "msdf" / cls / f"{mesh.stem}.msdf.npz"
            if out.exists():
                continue
            log(f"encode {mesh.name}")
            subprocess.run([*cmd0, "msdf", "encode", str(mesh), "-o", str(out), "--n", str(N), "--k", str(K), "--steps", str(FIT_STEPS)],
                           check=True, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    encode_s = time.perf_counter() - t0
    path = cache / "clouds.pt"
    if path.exists():
        return load_checkpoint(path)
    from shapegen.data.msdf_dataset import MSDFDataConfig, load_msdf_folder

    data, classes, _ = load_msdf_folder(MSDFDataConfig(root=str(cache / "msdf")))
    clouds = [cloud(t) for t in data.tensors]
    if any(c is None for c in clouds):
        raise RuntimeError("a training M-SDF decodes to no surface")
    info = {"clouds": torch.stack(clouds), "labels": torch.tensor(data.labels), "classes": classes,
            "files": [p.name for p in data.paths], "encode_seconds": encode_s}
    _atomic_save(info, path)
    return info


def build_model(cache: Path, seed: int = 0) -> tuple[MSDFGenerator, torch.Tensor, torch.Tensor]:
    cfg = load_config(MSDFConfig, resolve_preset("demo", "msdf"), [f"data.root={cache / 'msdf'}", "data.batch_size=8"])
    torch.manual_seed(seed)
    model, dm = build_for_training(cfg)
    return model, dm.dataset.tensors, torch.tensor(dm.dataset.labels)


def class_check(model: MSDFGenerator, ref: dict, samples: int, solver: str = "midpoint", steps: int = 25,
                seed: int = 100, guidance: float = 2.0, rtol: float = 1e-5):
    """Sample ``samples`` shapes per class; return tensors, clouds (None: empty), labels, NFE."""
    tensors, clouds, labels, nfe = [], [], [], 0
    for ci, cls in enumerate(ref["classes"]):
        model.config.sample.batch_size = samples
        if solver == "dopri5":  # MSDFGenerator.sample has no tolerance argument: integrate here
            x0 = sample_noise((samples, model.config.n, model.dim), seed=seed + ci)
            cond = {"labels": torch.full((samples,), ci, dtype=torch.long)}
            with torch.no_grad():
                sol = solve_ode(lambda x, t, cond=cond: model.velocity(x, t, cond, guidance), x0, "dopri5", rtol=rtol, atol=rtol)
            x, n = model.denormalize(sol.x), sol.nfe
        else:
            x, n = model.sample(samples, cls=cls, steps=steps, solver=solver, guidance=guidance, seed=seed + ci, return_nfe=True)
        nfe += n
        for t in x:
            tensors.append(t)
            clouds.append(cloud(t))
            labels.append(ci)
    return torch.stack(tensors), clouds, torch.tensor(labels), nfe


def fidelity(clouds: list, labels: torch.Tensor, ref: dict) -> tuple[float, list[int]]:
    """Share of samples whose nearest training shape (Chamfer-L2) is of their class; predicted classes."""
    pred = []
    for c in clouds:
        if c is None:
            pred.append(-1)
            continue
        d = chamfer_distance_matrix(c[None], ref["clouds"])[0]
        pred.append(int(ref["labels"][int(d.argmin())]))
    hits = sum(int(p == int(label)) for p, label in zip(pred, labels))
    return hits / len(pred), pred


def train_until_fidelity(cache: Path, ref: dict, minutes: float, max_minutes: float, eval_every: int) -> dict:
    """Train (resuming ``train_state.pt``) until every evaluation sample is nearest to its own class."""
    model, data, labels = build_model(cache)
    tc = model.config.train
    opt = torch.optim.AdamW(model.net.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    gen = torch.Generator().manual_seed(tc.seed)
    state_path = cache / "train_state.pt"
    st = {"step": 0, "train_seconds": 0.0, "eval_seconds": 0.0, "evals": [], "passed": None, "losses": []}
    if state_path.exists():
        saved = load_checkpoint(state_path)
        model.net.load_state_dict(saved["net"])
        model.ema.load_state_dict(saved["ema"])
        opt.load_state_dict(saved["opt"])
        gen.set_state(saved["gen"])
        st = saved["info"]
        log(f"resumed at step {st['step']} ({st['train_seconds']:.0f} s of training)")
    if st["passed"] is not None:
        return {"model": model, **st}
    start = time.perf_counter()
    bs = model.config.data.batch_size
    while time.perf_counter() - start < minutes * 60 and st["train_seconds"] < max_minutes * 60:
        t0 = time.perf_counter()
        for _ in range(eval_every):
            st["step"] += 1
            for g in opt.param_groups:
                g["lr"] = tc.lr * min(1.0, st["step"] / max(1, tc.warmup_steps))
            idx = torch.randint(0, data.shape[0], (bs,), generator=gen)
            fm = draw_training_batch(model.normalize(data[idx]), model.config.sigma_min, gen)
            drop = torch.rand(bs, generator=gen) < model.config.cond_drop
            loss = flow_matching_loss(model.net(fm.xt, fm.t, labels[idx], drop=drop), fm.target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.net.parameters(), tc.grad_clip)
            opt.step()
            model.update_ema(st["step"])
        st["train_seconds"] += time.perf_counter() - t0
        loss = loss.detach()
        st["losses"].append((st["step"], float(loss)))
        t1 = time.perf_counter()
        _, clouds, lab, _ = class_check(model, ref, EVAL_SAMPLES)
        fid, pred = fidelity(clouds, lab, ref)
        st["eval_seconds"] += time.perf_counter() - t1
        st["evals"].append({"step": st["step"], "train_seconds": st["train_seconds"], "fidelity": fid, "pred": pred,
                            "empty": sum(c is None for c in clouds), "loss": float(loss),
                            "load": os.getloadavg()[0]})
        log(f"step {st['step']}: loss {float(loss):.3f}, fidelity {fid:.2f} (predicted {pred}), "
            f"{st['train_seconds']:.0f} s training + {st['eval_seconds']:.0f} s evaluation")
        if fid == 1.0:
            st["passed"] = {"step": st["step"], "train_seconds": st["train_seconds"], "eval_seconds": st["eval_seconds"]}
        _atomic_save({"net": model.net.state_dict(), "ema": model.ema.state_dict(), "opt": opt.state_dict(),
                      "gen": gen.get_state(), "info": st}, state_path)
        if st["passed"] is not None:
            break
    return {"model": model, **st}


def solver_study(model: MSDFGenerator, ref: dict, cache: Path) -> dict:
    """Sample quality against the number of function evaluations (cached in ``quality.json``)."""
    path = cache / "quality.json"
    if path.exists():
        return json.loads(path.read_text())
    t0 = time.perf_counter()
    ref_x, ref_clouds, labels, ref_nfe = class_check(model, ref, STUDY_SAMPLES, "dopri5")
    settings = [("midpoint", 5), ("midpoint", 10), ("midpoint", 25), ("midpoint", 50), ("euler", 10), ("euler", 50), ("euler", 100)]
    rows = []
    for solver, steps in [("dopri5", 0), *settings]:
        if solver == "dopri5":
            x, clouds, nfe = ref_x, ref_clouds, ref_nfe
        else:
            x, clouds, _, nfe = class_check(model, ref, STUDY_SAMPLES, solver, steps)
        fid, _ = fidelity(clouds, labels, ref)
        ok = [i for i, c in enumerate(clouds) if c is not None]
        m = generation_metrics(torch.stack([clouds[i] for i in ok]), ref["clouds"]) if ok else None
        both = [i for i in ok if ref_clouds[i] is not None]
        paired = [float(chamfer_distance_matrix(clouds[i][None], ref_clouds[i][None])) for i in both]
        rows.append({"solver": solver, "steps": steps, "nfe_per_shape": nfe / len(ref["classes"]),  # one batch per class
                     "fidelity": fid, "empty": len(clouds) - len(ok), "cov": m.cov if m else None, "mmd": m.mmd if m else None,
                     "nna": m.nna if m else None, "paired_chamfer": sum(paired) / max(1, len(paired)),
                     "rms": float((model.normalize(x) - model.normalize(ref_x)).pow(2).mean().sqrt())})
        log(f"study {rows[-1]}")
    # dopri5 evaluations at looser tolerances (no decoding): how many it needs for a given accuracy.
    tol_rows = []
    x0 = sample_noise((STUDY_SAMPLES, model.config.n, model.dim), seed=100)
    cond = {"labels": torch.zeros(STUDY_SAMPLES, dtype=torch.long)}
    f = lambda x, t: model.velocity(x, t, cond, 2.0)
    with torch.no_grad():
        tight = solve_ode(f, x0, "dopri5", rtol=1e-7, atol=1e-7)
        for tol in (1e-3, 1e-4, 1e-5):
            sol = solve_ode(f, x0, "dopri5", rtol=tol, atol=tol)
            tol_rows.append({"tol": tol, "nfe": sol.nfe, "rms": float((sol.x - tight.x).pow(2).mean().sqrt())})
        tol_rows.append({"tol": 1e-7, "nfe": tight.nfe, "rms": 0.0})
        for steps in (5, 10, 25, 50):
            sol = solve_ode(f, x0, "midpoint", steps)
            tol_rows.append({"tol": f"midpoint {steps}", "nfe": sol.nfe, "rms": float((sol.x - tight.x).pow(2).mean().sqrt())})
    out = {"rows": rows, "dopri5": tol_rows, "seconds": time.perf_counter() - t0}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, path)
    return out
