"""Reproduce both demo models from scratch: the class-conditional Mosaic-SDF generator
(``assets/models/msdf_demo``) and the LAS sketch-to-3D model (``assets/models/las_demo``, by
``scripts/train_las_demo.py``; ``--skip-las`` / ``--skip-msdf`` train one of them).

One command, CPU only, no download (about 15 min + 4 h on a 2-core CPU: Mosaic-SDF, then LAS)::

    python scripts/train_demo_models.py [--per-class 60] [--held-out 10] [--minutes 25] [--las-minutes 325] [--work outputs/demo_models]

The Mosaic-SDF part:

Stages (each resumable: finished files under ``--work`` are reused):

1. Data: the procedural set (:mod:`shapegen.data.procedural`, seed 0). Shapes ``0 .. per_class-1``
   of each class are the training split, shapes ``per_class .. per_class+held_out-1`` are held out.
2. M-SDF conversion with a reduced ``n`` and ``k``: FPS centres over an area-uniform sample of the
   shape's marching-cubes surface, one shared covering scale (``s = 1.25 max_y min_i ||y - p_i||_inf``,
   the paper's initialisation) and grid values from the procedural shape's *analytic* SDF (exact,
   no mesh SDF queries). No fine-tuning: the analytic values are already the ground truth at the
   nodes (``shapegen.fields.mosaic_sdf_fit`` only takes meshes, and its refinement costs minutes per shape on this CPU).
3. Training: the ``configs/msdf/demo.yaml`` :class:`~shapegen.methods.msdf.MSDFGenerator`, a plain
   loop over in-memory tensors (flow-matching loss, AdamW with warm-up, EMA), stopped at
   ``--minutes`` of wall time or ``train.max_steps``.
4. Evaluation against the held-out shapes (512-point FPS clouds, Chamfer-L2): class fidelity
   (each generated shape gets the class of its nearest held-out shape) and per-class COV / MMD /
   1-NNA (:func:`shapegen.geometry.metrics.generation_metrics`), beside training vs held-out.
5. Output: ``assets/models/msdf_demo/msdf_demo.ckpt`` (EMA weights only, loadable with
   ``MSDFGenerator.load_from_checkpoint`` and ``shapegen generate --method msdf``), ``MODEL_CARD.md``,
   ``metrics.json``, and the ``demo-models`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _benchlib as bl

from shapegen.checkpoints import load_checkpoint, load_module
from shapegen.config import load_config, resolve_preset, to_dict
from shapegen.data.msdf_dataset import MSDFDataConfig
from shapegen.data.procedural import DEMO_CLASSES, generate, to_mesh
from shapegen.diffusion.flow_matching import draw_training_batch, flow_matching_loss
from shapegen.fields.mosaic_sdf import MosaicSDF, grid_offsets
from shapegen.fields.mosaic_sdf_fit import covering_scales, farthest_point_sampling
from shapegen.geometry import generation_eval
from shapegen.geometry.metrics import chamfer_distance_matrix, generation_metrics
from shapegen.geometry.sampling import sample_surface
from shapegen.methods.msdf import MSDFConfig, MSDFGenerator, build_for_training, decode_to_mesh

REPO = Path(__file__).resolve().parent.parent
MODEL_DIR = REPO / "assets" / "models" / "msdf_demo"
CKPT_NAME = "msdf_demo.ckpt"
CLOUD_POINTS = 512


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------------ data
def cloud_of_mesh(mesh, seed: int = 0) -> torch.Tensor:
    """``CLOUD_POINTS`` FPS points from ``4 x`` as many area-uniform surface samples."""
    dense = sample_surface(mesh, 4 * CLOUD_POINTS, generator=torch.Generator().manual_seed(seed)).points.float()
    return dense[generation_eval.farthest_point_sampling(dense, CLOUD_POINTS)]


def convert_shape(
    cls: str, index: int, seed: int, n: int, k: int, resolution: int, dilate: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Procedural shape -> (M-SDF tensor ``n x (4 + k^3)`` with analytic values, surface cloud).

    ``dilate`` > 0 stores the SDF of the shape grown by that distance (``sdf - dilate``): with a
    reduced ``n`` and ``k`` the node spacing (``s / 2`` at k = 5, about 0.1) exceeds the 0.07
    thickness of legs and shelf boards, which would otherwise fall between nodes and vanish.
    The cloud (for the metrics) is always of the true surface.
    """
    shape = generate(cls, index, seed)
    mesh = to_mesh(shape, resolution)
    surf = sample_surface(mesh, 4000, generator=torch.Generator().manual_seed(index))
    dense = (surf.points + dilate * surf.normals).float()  # the grown surface, to be covered by the cubes
    centers = dense[farthest_point_sampling(dense[None], n)[0]]
    scales = covering_scales(dense, centers, 1.25, "shared")
    nodes = centers[:, None, :] + scales[:, None, None] * grid_offsets(k)[None]
    with torch.no_grad():
        values = shape.sdf(nodes.reshape(-1, 3)).reshape(n, -1).float() - dilate
    tensor = torch.cat([centers, scales[:, None], values], dim=1)
    return tensor, cloud_of_mesh(mesh, index)


def build_data(args, work: Path) -> dict:
    """Write ``work/msdf/<cls>/<name>.msdf.npz`` (training) and ``work/clouds.pt`` (resumable)."""
    clouds_path = work / "clouds.pt"
    clouds = load_checkpoint(clouds_path) if clouds_path.exists() else {"train": {}, "held_out": {}}
    t0 = time.perf_counter()
    done = 0
    for cls in DEMO_CLASSES:
        for i in range(args.per_class + args.held_out):
            split = "train" if i < args.per_class else "held_out"
            out = work / "msdf" / cls / f"{cls}_{i:05d}.msdf.npz"
            key = f"{cls}_{i:05d}"
            need_file = split == "train" and not out.exists()
            need_cloud = key not in clouds[split] and (split == "held_out" or i < args.baseline)
            if not (need_file or need_cloud):
                continue
            tensor, cloud = convert_shape(cls, i, args.seed, args.n, args.k, args.mesh_resolution, args.dilate)
            if need_file:
                MosaicSDF(tensor, args.k, source_hash=f"procedural/{args.seed}/{key}").save(out)
            if need_cloud:
                clouds[split][key] = cloud
            done += 1
            if done % 20 == 0:
                torch.save(clouds, clouds_path)
                log(f"converted {done} shapes ({time.perf_counter() - t0:.0f} s)")
    torch.save(clouds, clouds_path)
    log(f"data ready: {done} shapes converted in this run ({time.perf_counter() - t0:.0f} s)")
    return clouds


# ------------------------------------------------------------------------------------ model
def save_weights_only(model: MSDFGenerator, path: Path) -> Path:
    """A Lightning-format checkpoint holding only the EMA weights (as ``net``) and the normalisation.

    The saved hyper-parameters have ``train.ema_decay = 0`` so the loaded model has no second
    copy of the weights; no optimiser state is stored.
    """
    hp = to_dict(model.config)
    hp["train"]["ema_decay"] = 0.0
    src = model.ema if model.ema is not None else model.net
    state = {f"net.{k}": v.detach().clone() for k, v in src.state_dict().items()}
    for name in ("norm_mean", "norm_std", "norm_ready", "value_mean", "value_basis"):
        if hasattr(model, name):
            state[name] = getattr(model, name).detach().clone()
    return bl.save_weights_checkpoint(state, hp, path)


def train(args, work: Path) -> tuple[MSDFGenerator, dict]:
    cfg = load_config(MSDFConfig, resolve_preset("demo", "msdf"), args.set)
    cfg.data = MSDFDataConfig(root=str(work / "msdf"), batch_size=cfg.data.batch_size)
    torch.manual_seed(cfg.train.seed)
    model, dm = build_for_training(cfg)
    data, labels = dm.dataset.tensors, torch.tensor(dm.dataset.labels)
    tc = cfg.train
    opt = torch.optim.AdamW(model.net.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    gen = torch.Generator().manual_seed(tc.seed)
    budget = args.minutes * 60
    ckpt = work / "train_last.ckpt"
    load_start = os.getloadavg()[0]
    t0 = time.perf_counter()
    step, loss_ema = 0, None
    losses = []
    log(f"training on {data.shape[0]} shapes ({', '.join(dm.classes)}), n={cfg.n}, k={cfg.k}, "
        f"{sum(p.numel() for p in model.net.parameters()) / 1e6:.2f} M parameters, budget {args.minutes:g} min")
    while step < tc.max_steps and time.perf_counter() - t0 < budget:
        step += 1
        for g in opt.param_groups:
            g["lr"] = tc.lr * min(1.0, step / max(1, tc.warmup_steps))
        idx = torch.randint(0, data.shape[0], (cfg.data.batch_size,), generator=gen)
        fm = draw_training_batch(model.normalize(data[idx]), cfg.sigma_min, gen)
        drop = torch.rand(idx.shape[0], generator=gen) < cfg.cond_drop
        loss = flow_matching_loss(model.net(fm.xt, fm.t, labels[idx], drop=drop), fm.target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.net.parameters(), tc.grad_clip)
        opt.step()
        model.update_ema(step)
        loss_ema = float(loss.detach()) if loss_ema is None else 0.95 * loss_ema + 0.05 * float(loss.detach())
        if step % tc.log_every == 0:
            losses.append((step, loss_ema))
            log(f"step {step} loss {loss_ema:.4f} ({time.perf_counter() - t0:.0f} s)")
        if step % tc.checkpoint_every == 0:
            save_weights_only(model, ckpt)
    wall = time.perf_counter() - t0
    save_weights_only(model, ckpt)
    log(f"trained {step} steps in {wall:.0f} s; final loss (smoothed) {loss_ema:.4f}")
    info = {"steps": step, "train_seconds": wall, "final_loss": loss_ema, "batch_size": cfg.data.batch_size,
            "parameters": sum(p.numel() for p in model.net.parameters()), "losses": losses,
            "num_train": int(data.shape[0]), "n": cfg.n, "k": cfg.k, "value_components": cfg.value_components,
            "load_start": load_start, "load_end": os.getloadavg()[0], "lr": tc.lr, "warmup_steps": tc.warmup_steps,
            "ema_decay": tc.ema_decay, "sample": to_dict(cfg.sample)}
    return model, info


# ------------------------------------------------------------------------------------ eval
def evaluate(model: MSDFGenerator, clouds: dict, args) -> dict:
    """Class fidelity and per-class COV / MMD / 1-NNA against the held-out shapes."""
    classes = list(model.config.classes)
    ref_keys = sorted(clouds["held_out"])
    ref = torch.stack([clouds["held_out"][k] for k in ref_keys])
    ref_cls = [k.rsplit("_", 1)[0] for k in ref_keys]
    t0 = time.perf_counter()
    out: dict = {"classes": {}, "samples_per_class": args.samples, "held_out_per_class": args.held_out}
    correct = total = 0
    for ci, cls in enumerate(classes):
        tensors = model.sample(args.samples, cls=cls, seed=1000 + ci)
        gen, empty = [], 0
        for j, t in enumerate(tensors):
            mesh = decode_to_mesh(t, model.config.k, args.decode_resolution)
            if mesh.num_faces == 0:
                empty += 1
                continue
            gen.append(cloud_of_mesh(mesh, j))
        row: dict = {"generated": len(gen), "empty": empty}
        if gen:
            g = torch.stack(gen)
            nearest = chamfer_distance_matrix(g, ref).argmin(1).tolist()
            hits = sum(ref_cls[i] == cls for i in nearest)
            row["fidelity"] = hits / args.samples  # an empty decode counts as a miss
            row["predicted"] = {c: sum(ref_cls[i] == c for i in nearest) for c in classes if any(ref_cls[i] == c for i in nearest)}
            own = torch.stack([clouds["held_out"][k] for k in ref_keys if k.startswith(cls + "_")])
            m = generation_metrics(g, own)
            row["generated_vs_held_out"] = {"cov": m.cov, "mmd": m.mmd, "nna": m.nna}
            correct += hits
        else:
            row["fidelity"] = 0.0
        total += args.samples
        base = torch.stack([v for k, v in sorted(clouds["train"].items()) if k.startswith(cls + "_")])
        own = torch.stack([clouds["held_out"][k] for k in ref_keys if k.startswith(cls + "_")])
        m = generation_metrics(base, own)
        row["train_vs_held_out"] = {"cov": m.cov, "mmd": m.mmd, "nna": m.nna, "num_train": int(base.shape[0])}
        # Sanity of the classifier itself: training shapes classified the same way.
        row["train_fidelity"] = sum(ref_cls[i] == cls for i in chamfer_distance_matrix(base, ref).argmin(1).tolist()) / base.shape[0]
        out["classes"][cls] = row
        log(f"eval {cls}: fidelity {row['fidelity']:.2f}, {len(gen)}/{args.samples} decoded")
    out["fidelity"] = correct / max(1, total)
    out["eval_seconds"] = time.perf_counter() - t0
    return out


# ------------------------------------------------------------------------------------ report
def metric_rows(ev: dict) -> list[list[object]]:
    rows = []
    for cls, r in ev["classes"].items():
        g, b = r.get("generated_vs_held_out"), r["train_vs_held_out"]
        fmt = lambda m: (f"{m['cov'] * 100:.0f}%", f"{m['mmd']:.2e}", f"{m['nna'] * 100:.0f}%") if m else ("-", "-", "-")
        rows.append([cls, f"{r['fidelity'] * 100:.0f}%", f"{r['train_fidelity'] * 100:.0f}%", *fmt(g), *fmt(b)])
    return rows


HEADER = ["class", "fidelity (generated)", "fidelity (training)", "COV gen", "MMD-CD gen", "1-NNA gen",
          "COV train", "MMD-CD train", "1-NNA train"]


def value_basis_text(info: dict) -> str:
    m = info.get("value_components", 0)
    if not m:
        return " All k^3 grid values standardised together (the paper's representation)."
    return (f"\n- Value basis (`value_components = {m}`, a deviation from the paper): the {info['k'] ** 3} grid values of each row are\n"
            f"  modelled as their whitened coordinates in the top {m} principal directions of the training grids, so the flow runs\n"
            f"  on rows of {4 + m} channels; samples are mapped back to full grids before decoding.")


def write_card(args, info: dict, ev: dict, data_seconds: float, total_seconds: float, ckpt: Path) -> Path:
    size_mb = ckpt.stat().st_size / 1e6
    verdict = ("meets" if ev["fidelity"] >= 0.9 else "does NOT meet")
    under = "" if not info.get("under_trained") else "\n**Under-trained**: stopped at the wall-clock budget before the loss settled.\n"
    text = f"""# Mosaic-SDF demo model (class-conditional)

Flow-matching generator of Mosaic-SDF tensors (Yariv et al., arXiv 2312.09222;
`shapegen/methods/msdf.py`), conditioned on five classes: {", ".join(ev["classes"])}.
Reproduce it with `python scripts/train_demo_models.py {" ".join(sys.argv[1:])}`.
{under}
## Files
- `{CKPT_NAME}` ({size_mb:.1f} MB): EMA weights only (stored as `net`), the data normalisation and
  the config as hyper-parameters; no optimiser state. Load with
  `MSDFGenerator.load_from_checkpoint(path)` or `shapegen generate --method msdf --checkpoint {os.path.relpath(ckpt, REPO)} --class chair`.
- `metrics.json`: every number below, plus the loss curve.

## Data
- Generator: `shapegen.data.procedural.generate(cls, index, seed={args.seed})` (made by the project; no third-party data).
- Training: shapes 0..{args.per_class - 1} of each class ({info["num_train"]} shapes). Held out: shapes
  {args.per_class}..{args.per_class + args.held_out - 1} of each class ({args.held_out} per class), never seen in training.
- M-SDF: n = {info["n"]} grids, k = {info["k"]} (reduced from the paper's 1024 x 7^3); FPS centres over the
  marching-cubes surface (resolution {args.mesh_resolution}), one shared covering scale (margin 1.25), grid
  values from the analytic procedural SDF of the shape grown by {args.dilate} (`sdf - {args.dilate}`, so legs and boards
  0.07 thick do not fall between grid nodes 0.1 apart); no refinement. Generated shapes are therefore that much
  fatter than the procedural ones, which the Chamfer numbers below include. Data preparation took {data_seconds:.0f} s.

## Model and training
- `configs/msdf/demo.yaml`: Set Transformer 4 blocks x 128, 4 heads, MLP 2x ({info["parameters"] / 1e6:.2f} M parameters),
  adaLN class conditioning, condition dropout 0.1.{value_basis_text(info)}
- {info["steps"]} steps of batch {info["batch_size"]} (AdamW, lr {info["lr"]:g}, {info["warmup_steps"]} warm-up steps,
  EMA {info["ema_decay"]:g}), final smoothed loss {info["final_loss"]:.4f}; {info["train_seconds"] / 60:.1f} min of training,
  {total_seconds / 60:.1f} min end to end.
- Machine: {bl.machine()}; one torch thread; 1-minute load average {info["load_start"]:.1f} when training
  started and {info["load_end"]:.1f} when it ended (2 cores: above 1, other jobs shared the CPU and the step count is lower).
- Sampling defaults: {info["sample"]["solver"]} solver, {info["sample"]["steps"]} steps, classifier-free guidance {info["sample"]["guidance"]:g}.

## Metrics (against the held-out procedural shapes)
{args.samples} samples per class (seeds 1000 + class index), decoded at resolution {args.decode_resolution};
{CLOUD_POINTS}-point FPS clouds, Chamfer-L2. Class fidelity: the class of the nearest held-out shape
(over all classes) equals the requested class; an empty decode counts as a miss. COV / MMD / 1-NNA per
class against that class's {args.held_out} held-out shapes; the "train" columns compare {args.baseline}
training shapes of the class with the same held-out shapes (the best a generator that reproduces the
training distribution can do at this sample size). 1-NNA: 50% is ideal.

Overall class fidelity: **{ev["fidelity"] * 100:.0f}%** (target >= 90%: this model {verdict} it).

{bl.table(HEADER, metric_rows(ev))}

Evaluation took {ev["eval_seconds"]:.0f} s.

## Limits
- Small data (a few dozen shapes per class) and a CPU-sized model: samples are coarse (n = {info["n"]} grids of
  {info["k"]}^3 values cannot hold every thin part) and the diversity numbers are from {args.samples} vs {args.held_out} shapes,
  so they are noisy.
- Only the five procedural classes; no text conditioning.
"""
    path = MODEL_DIR / "MODEL_CARD.md"
    path.write_text(text)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=60, help="training shapes per class")
    ap.add_argument("--held-out", type=int, default=10, help="held-out shapes per class")
    ap.add_argument("--baseline", type=int, default=10, help="training shapes per class in the train-vs-held-out baseline")
    ap.add_argument("--seed", type=int, default=0, help="seed of the procedural set")
    ap.add_argument("--n", type=int, default=96, help="M-SDF grids per shape")
    ap.add_argument("--k", type=int, default=5, help="M-SDF grid side")
    ap.add_argument("--dilate", type=float, default=0.05, help="grow the shapes by this distance in the M-SDFs (thin parts survive k=5)")
    ap.add_argument("--mesh-resolution", type=int, default=48, help="marching cubes of the procedural shapes")
    ap.add_argument("--minutes", type=float, default=20.0, help="wall-clock training budget")
    ap.add_argument("--samples", type=int, default=10, help="generated shapes per class for the metrics")
    ap.add_argument("--decode-resolution", type=int, default=64)
    ap.add_argument("--work", default=str(REPO / "outputs" / "demo_models"), help="scratch folder (resumable)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides of configs/msdf/demo.yaml")
    ap.add_argument("--out", default=str(MODEL_DIR), help="model folder (checkpoint, card, metrics)")
    ap.add_argument("--no-bench", action="store_true", help="do not write the demo-models section of docs/benchmarks.md")
    ap.add_argument("--skip-msdf", action="store_true", help="do not train the Mosaic-SDF demo model")
    ap.add_argument("--skip-las", action="store_true", help="do not train the LAS sketch-to-3D demo model (scripts/train_las_demo.py)")
    ap.add_argument(
        "--las-minutes", type=float, default=325.0, help="training budget of the LAS demo model (both stages, trained at once: about 200 min of wall time)"
    )
    args = ap.parse_args()
    if not args.skip_msdf:
        train_msdf_demo(args)
    if not args.skip_las:
        import train_las_demo

        log("LAS sketch-to-3D demo model: python scripts/train_las_demo.py --minutes " + f"{args.las_minutes:g}")
        train_las_demo.main(["--minutes", f"{args.las_minutes:g}", "--seed", str(args.seed), *(["--no-bench"] if args.no_bench else [])])


def train_msdf_demo(args: argparse.Namespace) -> None:
    """Data, training, evaluation and output of the Mosaic-SDF demo model (stages 1-5 of the module docstring)."""
    global MODEL_DIR
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    clouds = build_data(args, work)
    data_seconds = time.perf_counter() - t_all
    model, info = train(args, work)
    # Stopped by the clock while the loss still fell by > 10% over the second half of training.
    curve = info["losses"]
    info["under_trained"] = bool(info["steps"] < model.config.train.max_steps and len(curve) > 2 and curve[-1][1] < 0.9 * curve[len(curve) // 2][1])
    MODEL_DIR = Path(args.out)
    ckpt = save_weights_only(model, MODEL_DIR / CKPT_NAME)
    # Evaluate the shipped file exactly as users load it.
    shipped = load_module(MSDFGenerator, ckpt)
    ev = evaluate(shipped, clouds, args)
    total = time.perf_counter() - t_all
    (MODEL_DIR / "metrics.json").write_text(
        json.dumps(
            {"data_seconds": data_seconds, "total_seconds": total, "train": info, "eval": ev, "machine": bl.machine(), "python": platform.python_version()},
            indent=1,
        )
    )
    card = write_card(args, info, ev, data_seconds, total, ckpt)
    log(f"wrote {ckpt} ({ckpt.stat().st_size / 1e6:.1f} MB) and {card}; class fidelity {ev['fidelity'] * 100:.0f}%")
    if not args.no_bench:
        body = (
            f"Class-conditional Mosaic-SDF demo model (`assets/models/msdf_demo`, card: `MODEL_CARD.md`): {info['num_train']} procedural training "
            f"shapes (seed {args.seed}), n = {info['n']}, k = {info['k']}, shapes grown by {args.dilate} in the M-SDFs, "
            f"value basis of {info['value_components']} components, {info['steps']} steps in {info['train_seconds'] / 60:.1f} min "
            f"on this CPU (one thread, load {info['load_start']:.1f} -> {info['load_end']:.1f}); {args.samples} samples per class vs "
            f"{args.held_out} held-out shapes per class ({CLOUD_POINTS}-point FPS clouds, Chamfer-L2). Overall class fidelity "
            f"{ev['fidelity'] * 100:.0f}% (target 90%). 'train' columns: {args.baseline} training shapes per class vs the same held-out shapes.\n\n"
            + bl.table(HEADER, metric_rows(ev))
        )
        bl.write_section("demo-models", "Demo models: class-conditional Mosaic-SDF", body)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
