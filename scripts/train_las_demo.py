"""Reproduce the LAS-Diffusion sketch-to-3D demo model (``assets/models/las_demo``) from scratch.

One command, CPU only, no download::

    python scripts/train_las_demo.py [--per-class 60] [--held-out 10] [--val 10] [--extra 140] [--minutes 325]
        [--sdf-share 0.3846] [--jobs 2] [--guidance 1,2] [--work outputs/las_demo]

Stages (resumable: finished meshes, prepared data and trained stages under ``--work`` are reused):

1. Meshes: the procedural set (:mod:`shapegen.data.procedural`, ``--seed``). Shapes
   ``0 .. per_class-1`` of each class are the training split, ``per_class .. per_class+held_out-1``
   are held out (``WORK/meshes/{train,held_out}/<class>/<class>_NNNNN.ply``); ``--extra N`` adds
   N more training shapes per class, the indices after the validation ones (step 4), so the held-out
   and validation shapes stay the same. With ``--dilate d``
   (default 0.06) the meshes are the level set ``sdf = d``: the shapes grown by ``d``, so parts 0.07
   thick span several voxels of the 32^3 grid instead of falling between voxel centres. The model
   then learns grown shapes, and the evaluation is run twice: against the grown shapes from their
   own sketches, and (the headline) against the true shapes from sketches of the true shapes
   (``WORK/meshes_true``, ``WORK/las_true``).
2. ``las prepare`` of both splits (:func:`shapegen.data.las_prepare.prepare_dataset`): SDF ``--res``
   (occupancy ``--res / 2``), contour and canny sketches of ``--sketch`` pixels from the five LAS views.
3. Training of ``configs/las/demo.yaml`` (:class:`~shapegen.methods.las.LASDiffusion` with the
   Lightning Trainer, as ``shapegen train --stage`` does): stage 1 (occupancy) for
   ``1 - sdf_share`` of ``--minutes``, then stage 2 (SDF) for the rest, each also capped by
   ``--steps-occupancy`` / ``--steps-sdf``; ``--jobs 2`` trains the two stages at the same time in
   two processes (they share no weights; stage 2 learns from the true shells), and makes the meshes
   and prepares the data (steps 1, 2, 4, 5) in two processes too. A later run with a
   larger budget or more ``--extra`` shapes continues each finished stage from its checkpoint.
4. Guidance: the weights ``--guidance`` (default 1 and 2) are tried on the sketches of ``--val``
   validation shapes per class (the indices after the held-out ones, true shapes, prepared into
   ``WORK/las_true/val``), scored like the headline below; the best becomes ``sample.guidance`` of
   the model and its checkpoint. The held-out shapes play no part in the choice.
5. Evaluation on the held-out shapes' sketches (never trained on): for every held-out shape, its
   contour and canny sketches from view ``index % 5`` with the true view and category; voxel IoU
   of the result against the true shape per class and overall, beside baselines from the same run
   (the model without the sketch, the class's most typical training shape, the nearest training
   shape as an oracle). Two IoU definitions (:func:`shapegen.geometry.voxels.touched_voxels`):

   * ``iou16`` (headline): the 16^3 occupancy grid of stage 1, a cell counting when one of its
     32^3 children touches the shape (``sdf < half-diagonal``);
   * ``iou32``: ``sdf < 0`` on the 32^3 SDF grid (``scripts/bench_las.py``'s definition). The
     procedural parts are 0.06 thick after ``las prepare``'s scaling, less than a 0.0625 voxel, so
     here whether a part shows at all depends on where the voxel centres fall; the ``scale`` rows
     give the IoU of each held-out shape with itself moved by a quarter and by half a voxel along
     each axis, i.e. what a sub-voxel misplacement alone costs.
6. Output in ``--out``: ``las_demo.ckpt`` (EMA weights only, loadable by ``shapegen sketch-to-3d``),
   ``MODEL_CARD.md``, ``metrics.json`` and ``examples/`` (held-out sketches to try).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _benchlib as bl

from shapegen.checkpoints import load_module
from shapegen.config import load_config, resolve_preset, to_dict
from shapegen.data.las_dataset import read_index
from shapegen.data.las_prepare import LASPrepareConfig, prepare_dataset
from shapegen.data.procedural import DEMO_CLASSES, generate, grid_values, to_mesh
from shapegen.data.sketches import LAS_AZIMUTHS, load_sketch
from shapegen.geometry.metrics import iou
from shapegen.geometry.voxels import touched_voxels, voxel_centers
from shapegen.methods.las import LASConfig, LASDiffusion
from shapegen.workers import in_processes

REPO = Path(__file__).resolve().parent.parent
MODEL_DIR = REPO / "assets" / "models" / "las_demo"
CKPT_NAME = "las_demo.ckpt"
STAGES = ("occupancy", "sdf")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=60, help="training shapes per class (indices 0..N-1)")
    ap.add_argument("--held-out", type=int, default=10, help="held-out shapes per class (the next indices)")
    ap.add_argument(
        "--extra",
        type=int,
        default=140,
        help="more training shapes per class, the indices after the validation ones (the held-out and validation shapes stay the same)",
    )
    ap.add_argument("--classes", default=",".join(DEMO_CLASSES), help="procedural classes (comma-separated; default: the five demo classes)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the procedural set")
    ap.add_argument("--res", type=int, default=32, help="SDF grid side of 'las prepare' (occupancy: half)")
    ap.add_argument("--sketch", type=int, default=64, help="sketch side in pixels")
    ap.add_argument("--mesh-resolution", type=int, default=64, help="marching cubes of the procedural shapes")
    ap.add_argument("--dilate", type=float, default=0.06, help="grow the shapes by this distance before meshing (0.06: parts 0.07 thick survive a 32^3 grid)")
    ap.add_argument(
        "--val", type=int, default=10, help="validation shapes per class (the indices after the held-out ones; true shapes) that choose the guidance weight"
    )
    ap.add_argument("--guidance", default="1,2", help="guidance weights tried on the validation sketches (comma-separated)")
    ap.add_argument(
        "--minutes",
        type=float,
        default=325.0,
        help="training budget of both stages together (with --jobs 2 they run at once: about 1 - sdf_share of it in wall time)",
    )
    ap.add_argument("--sdf-share", type=float, default=0.3846, help="share of --minutes given to stage 2 (default: 125 of 325 min)")
    ap.add_argument("--steps-occupancy", type=int, default=0, help="cap on stage-1 steps (0: the config's max_steps)")
    ap.add_argument("--steps-sdf", type=int, default=0, help="cap on stage-2 steps (0: the config's max_steps)")
    ap.add_argument("--sdf-batch", type=int, default=4, help="stage-2 batch size (its sparse UNet is the slow part)")
    ap.add_argument("--sdf-lr", type=float, default=2e-3, help="stage-2 learning rate (0: the config's train.lr)")
    ap.add_argument("--config", default="demo", help="LAS preset or YAML file")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides of the preset")
    ap.add_argument("--work", default=str(REPO / "outputs" / "las_demo"), help="scratch folder (resumable)")
    ap.add_argument("--out", default=str(MODEL_DIR), help="model folder (checkpoint, card, metrics, examples)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (of each stage's process with --jobs 2)")
    ap.add_argument(
        "--jobs", type=int, default=2, help="2: make the meshes and data in two processes and train the two stages at the same time (they share no weights)"
    )
    ap.add_argument("--no-bench", action="store_true", help="do not write the demo-models-las section of docs/benchmarks.md")
    args = ap.parse_args(argv)
    try:
        args.guidance_weights = [float(w) for w in args.guidance.split(",") if w.strip()]
    except ValueError:
        args.guidance_weights = []
    if not args.guidance_weights or not all(np.isfinite(w) and w >= 0 for w in args.guidance_weights):
        ap.error(f"--guidance '{args.guidance}': give comma-separated weights >= 0, e.g. 1,2")
    if args.val < 0:
        ap.error("--val must be >= 0 (0: keep the config's guidance)")
    if args.extra < 0:
        ap.error("--extra must be >= 0")
    if args.jobs not in (1, 2):
        ap.error("--jobs must be 1 (one stage after the other) or 2 (both stages at once)")
    return args


# ------------------------------------------------------------------------------------ data
def split_indices(args) -> dict[str, list[int]]:
    """Procedural indices of each split: training ``0 .. per_class-1`` plus ``extra`` after the validation
    shapes, held out ``per_class .. +held_out-1``, validation the next ``val``."""
    first_val = args.per_class + args.held_out
    first_extra = first_val + args.val
    return {
        "train": [*range(args.per_class), *range(first_extra, first_extra + args.extra)],
        "held_out": list(range(args.per_class, first_val)),
        "val": list(range(first_val, first_extra)),
    }


def procedural_mesh(cls: str, index: int, args, dilate: float | None = None):
    """The procedural shape's surface, grown by ``dilate`` (default ``args.dilate``; the level set ``sdf = dilate``)."""
    shape = generate(cls, index, args.seed)
    dilate = args.dilate if dilate is None else dilate
    if dilate <= 0:
        return to_mesh(shape, args.mesh_resolution)
    from shapegen.geometry.extract import marching_cubes

    return marching_cubes(grid_values(shape, args.mesh_resolution) - dilate, ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)))


def build_meshes(args, work: Path, name: str = "meshes", dilate: float | None = None, splits: tuple[str, ...] = ("train", "held_out")) -> int:
    """Write the procedural meshes of ``splits`` into ``WORK/<name>`` (existing files are kept); returns how many were written."""
    todo = []
    for split, idx in ((k, v) for k, v in split_indices(args).items() if k in splits):
        for cls in args.classes.split(","):
            folder = work / name / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            todo += [(cls, i, folder / f"{cls}_{i:05d}.ply") for i in idx if not (folder / f"{cls}_{i:05d}.ply").is_file()]
    if args.jobs > 1 and len(todo) > 1:  # spawn: these functions live in a script that may run as __main__
        for _ in in_processes(_write_mesh, [(*t, args, dilate) for t in todo], args.jobs, start="spawn"):
            pass
    else:
        for cls, i, path in todo:
            _write_mesh(cls, i, path, args, dilate)
    return len(todo)


def _write_mesh(cls: str, index: int, path: Path, args, dilate: float | None) -> None:
    from shapegen.geometry.export import export_mesh

    export_mesh(procedural_mesh(cls, index, args, dilate), path)


def prepare(args, work: Path, meshes: str = "meshes", name: str = "las", splits: tuple[str, ...] = ("train", "held_out")) -> tuple[dict[str, Path], int]:
    """``las prepare`` of ``splits`` of ``WORK/<meshes>`` into ``WORK/<name>/<split>``; returns
    the folders and how many shapes were prepared in this run (the rest were reused)."""
    pcfg = LASPrepareConfig(resolution=args.res, sketch_size=args.sketch)
    dirs, prepared = {}, 0
    for split in splits:
        dirs[split] = work / name / split
        rep = prepare_dataset(work / meshes / split, dirs[split], pcfg, progress=False, workers=args.jobs)
        prepared += len(rep.prepared)
        log(f"las prepare {split}: {len(rep.prepared)} prepared, {len(rep.reused)} reused, {len(rep.skipped)} skipped")
        if rep.skipped:
            raise SystemExit(f"error: meshes skipped by las prepare: {rep.skipped}")
    return dirs, prepared


def load_volumes(root: Path) -> dict[str, tuple[str, torch.Tensor]]:
    """name -> (category, SDF grid) of a prepared folder."""
    index = read_index(root)
    out = {}
    for name, rec in sorted(index["shapes"].items()):
        with np.load(root / rec["file"], allow_pickle=False) as z:
            out[name] = (rec["category"], torch.from_numpy(z["sdf"].astype(np.float32)))
    return out


# ------------------------------------------------------------------------------------ training
COMMON_KEYS = ("per_class", "classes", "seed", "res", "sketch", "mesh_resolution", "dilate", "config", "set")


def stage_key(args: dict, stage: str) -> dict:
    """What a trained stage depends on (a change retrains it). The stages share no weights and
    stage 2 trains on the true shells, so each stage only depends on the data, the config and its
    own budget, step cap, batch size and learning rate."""
    minutes, share = args["minutes"], args["sdf_share"]
    budget = minutes * 60 * (share if stage == "sdf" else 1 - share)
    own = {"budget_s": round(budget, 3), "steps": args[f"steps_{stage}"]}
    if stage == "sdf":
        own |= {"batch": args["sdf_batch"], "lr": args.get("sdf_lr", 0.0)}
    # ``dilate`` and ``extra`` join the key only when set, so stages trained before the options existed
    # are reused; the extra shapes' indices start after the validation ones, so ``val`` then joins too.
    data = {"extra": args["extra"], "val": args["val"]} if args.get("extra") else {}
    return {k: args[k] for k in COMMON_KEYS if k != "dilate" or args.get("dilate")} | data | own


def _stage_config(args, train_dir: Path) -> LASConfig:
    overrides = [*args.set, f"data.root={train_dir}", f"sketch_encoder.image_size={args.sketch}"]
    return load_config(LASConfig, resolve_preset(args.config, "las"), overrides)


def train_stage(args, work: Path, train_dir: Path, stage: str, key: dict, done_before: dict | None) -> dict:
    """Train one stage into ``WORK/stage_<stage>.ckpt`` (continuing that checkpoint when ``done_before``
    gives its seconds and steps) until its budget or step cap; returns its record for ``train_state.json``.
    Runs in its own process with ``--jobs 2``."""
    import pytorch_lightning as pl

    from shapegen.checkpoints import SafeCheckpointIO

    torch.set_num_threads(args.threads)
    cfg = _stage_config(args, train_dir)
    done_before = done_before or {"seconds": 0.0, "steps": 0}
    # A continued stage draws new batches rather than replaying the first run's order.
    pl.seed_everything(cfg.train.seed + STAGES.index(stage) + done_before["steps"], verbose=False)
    model, dm = LASDiffusion.for_training(cfg)
    ckpt = work / f"stage_{stage}.ckpt"
    if done_before["steps"]:
        load_stage(model, ckpt, stage)
    batch = {"occupancy": cfg.data.batch_size, "sdf": args.sdf_batch}[stage]
    lr = {"occupancy": cfg.train.lr, "sdf": args.sdf_lr or cfg.train.lr}[stage]
    remaining = key["budget_s"] - done_before["seconds"]
    model.config.train.stage = stage  # one stage at a time, as 'shapegen train --stage' does
    model.config.train.lr = lr
    dm.cfg.batch_size = batch
    steps = (key["steps"] or cfg.train.max_steps) - done_before["steps"]
    trainer = pl.Trainer(
        max_steps=steps,
        max_time=timedelta(seconds=remaining),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        gradient_clip_val=cfg.train.grad_clip or None,
        plugins=[SafeCheckpointIO()],
    )
    cont = f", continuing {ckpt.name} after {done_before['steps']} steps" if done_before["steps"] else ""
    log(f"stage {stage}: up to {steps} steps or {remaining / 60:.1f} min, batch {batch}, lr {lr:g}{cont}")
    t0 = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    seconds = time.perf_counter() - t0 + done_before["seconds"]
    done = int(model.stage_steps[STAGES.index(stage)])
    loss = {k: float(v) for k, v in trainer.callback_metrics.items()}
    log(f"stage {stage}: {done} steps in {seconds:.0f} s, last losses {loss}")
    trainer.save_checkpoint(ckpt, weights_only=False)  # the full state, so a later run can resume it
    return {"key": key, "steps": done, "seconds": seconds, "batch_size": batch, "lr": lr, "last_loss": loss, "load_average": os.getloadavg()[0]}


def train(args, work: Path, train_dir: Path) -> tuple[LASDiffusion, dict]:
    """Both stages, one after the other (``--jobs 1``) or at the same time in two processes (``--jobs 2``),
    each stopped by its time share or step cap; a finished stage (``WORK/stage_<name>.ckpt`` trained with
    the same :func:`stage_key`) is loaded instead of retrained, and one that :func:`extends` allows is continued."""
    import pytorch_lightning as pl

    cfg = _stage_config(args, train_dir)
    pl.seed_everything(cfg.train.seed, verbose=False)
    model, _ = LASDiffusion.for_training(cfg)
    state_path = work / "train_state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {"stages": {}}
    if "key" in state:  # written before the per-stage keys: one key (the arguments) for both stages
        old = state.pop("key")
        for stage, rec in state["stages"].items():
            rec.setdefault("key", stage_key(old, stage))
    reused, todo = [], {}
    for stage in STAGES:
        ckpt = work / f"stage_{stage}.ckpt"
        key = stage_key(vars(args), stage)
        rec = state["stages"].get(stage)
        if ckpt.is_file() and rec is not None and rec.get("key") == key:
            load_stage(model, ckpt, stage)
            log(f"stage {stage}: reusing {ckpt} ({rec['steps']} steps)")
            reused.append(stage)
        else:
            todo[stage] = (key, extends(rec, key) if ckpt.is_file() else None)

    def finished(stage: str, new: dict) -> None:  # recorded as soon as a stage ends, so a crash of the other keeps it
        rec, done_before = state["stages"].get(stage), todo[stage][1]
        if done_before:  # keep the earlier runs: their budget, steps, time and (when it changed) data
            earlier = {"budget_s": rec["key"]["budget_s"], "steps": rec["steps"], "seconds": rec["seconds"]}
            if rec["key"].get("extra", 0) != new["key"].get("extra", 0):
                earlier["extra"] = rec["key"].get("extra", 0)
            new["continued"] = [*rec.get("continued", []), earlier]
        load_stage(model, work / f"stage_{stage}.ckpt", stage)
        state["stages"][stage] = new
        state_path.write_text(json.dumps(state, indent=1))

    if args.jobs > 1 and len(todo) > 1:  # each process sets its own --threads
        stages = list(todo)
        for i, record in in_processes(train_stage, [(args, work, train_dir, s, *todo[s]) for s in stages], len(stages), start="spawn"):
            finished(stages[i], record)
    else:
        for s, (key, done_before) in todo.items():
            finished(s, train_stage(args, work, train_dir, s, key, done_before))
    model.config.train.stage = "both"
    model.config.train.lr = cfg.train.lr
    return model.eval(), {k: v | {"reused": k in reused} for k, v in state["stages"].items()}


def extends(rec: dict | None, key: dict) -> dict | None:
    """``{"seconds", "steps"}`` of a finished stage that ``key`` continues, else None.

    A stage continues when it was trained with the same data (or a training set that holds it: more
    ``--extra`` shapes), config, batch size and learning rate and the new run allows more: a larger
    time budget than the time spent and a step cap above the steps done (or none). It is trained on
    from its checkpoint (weights, EMA and step count; a fresh AdamW, as the learning rate is constant)
    for the rest of the new budget and cap, so ``--minutes 96`` after a run with ``--minutes 36`` ends
    close to where one run with ``--minutes 96`` would; with more ``--extra`` shapes it is a fine-tune
    on the larger set, which the card and the state record.
    """
    if rec is None or "key" not in rec or rec["key"] == key:
        return None
    free = ("budget_s", "steps", "extra", "val")
    if {k: v for k, v in rec["key"].items() if k not in free} != {k: v for k, v in key.items() if k not in free}:
        return None
    old_extra, new_extra = rec["key"].get("extra", 0), key.get("extra", 0)
    if old_extra > new_extra or (old_extra and rec["key"].get("val") != key.get("val")):
        return None  # the new training set must hold the old one
    if key["budget_s"] <= rec["seconds"] or (key["steps"] and key["steps"] <= rec["steps"]):
        return None
    return {"seconds": float(rec["seconds"]), "steps": int(rec["steps"])}


def load_stage(model: LASDiffusion, ckpt: Path, stage: str) -> None:
    """Load one stage's weights, EMA and step count from a stage checkpoint into ``model``."""
    weights = load_module(LASDiffusion, ckpt)
    i = STAGES.index(stage)
    own = {k: v for k, v in weights.state_dict().items() if k.startswith(LASDiffusion.STAGE_PREFIXES[i])}
    model.load_state_dict(own, strict=False)
    model._ema |= {k: v for k, v in weights._ema.items() if k.startswith(LASDiffusion.STAGE_PREFIXES[i])}
    model.stage_steps[i] = weights.stage_steps[i]


def save_weights_only(model: LASDiffusion, path: Path) -> Path:
    """A Lightning-format checkpoint with the EMA weights in place of the raw ones, no EMA copy and
    no optimiser state (``train.ema_decay = 0`` in its hyper-parameters)."""
    hp = to_dict(model.config)
    hp["train"]["ema_decay"] = 0.0
    hp["train"]["stage"] = "both"
    with model.ema_weights():
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return bl.save_weights_checkpoint(state, hp, path)


# ------------------------------------------------------------------------------------ evaluation
def occupancies(sdf: torch.Tensor) -> dict[str, torch.Tensor]:
    """The two occupancies the IoUs are measured on (see the module doc)."""
    return {"iou16": touched_voxels(sdf, pool=2), "iou32": sdf < 0}


def ious(pred_sdf: torch.Tensor, true_sdf: torch.Tensor) -> dict[str, float]:
    a, b = occupancies(pred_sdf), occupancies(true_sdf)
    return {k: iou(a[k], b[k]) for k in a}


def shifted_self_iou(mesh_path: Path, res: int, true_sdf: torch.Tensor, shift: float) -> dict[str, float]:
    """IoU of a held-out shape with itself moved by ``shift`` voxels along each axis (its mesh in
    ``las prepare``'s frame, signed distances at shifted voxel centres)."""
    from shapegen.geometry.mesh_io import load_mesh, normalize_mesh
    from shapegen.geometry.sdf import MeshSDF

    mesh, _ = normalize_mesh(load_mesh(mesh_path), "cube", LASPrepareConfig().padding)
    pts = voxel_centers(res).reshape(-1, 3) + shift * 2.0 / res
    with torch.no_grad():
        sdf = MeshSDF(mesh)(pts).reshape(res, res, res).float()
    return ious(sdf, true_sdf)


def sketch_cases(root: Path, size: int):
    """``(name, category, true SDF, sketch record, ink map)`` of every evaluation sketch of a prepared
    folder: each shape's contour and canny sketches from its view ``index % 5``."""
    index = read_index(root)
    for name, (cat, true_sdf) in sorted(load_volumes(root).items()):
        view = int(name.rsplit("_", 1)[1]) % len(LAS_AZIMUTHS)
        for rec in (r for r in index["sketches"] if r["shape"] == name and r["view"] == view):
            yield name, cat, true_sdf, rec, load_sketch(root / rec["file"], size)


def choose_guidance(model: LASDiffusion, args, root: Path) -> dict:
    """Mean iou16 on the validation sketches for each ``--guidance`` weight; the best one (the
    smallest on a tie) becomes the model's ``sample.guidance``, which its checkpoint keeps."""
    t0 = time.perf_counter()
    weights = args.guidance_weights
    cases = list(sketch_cases(root, args.sketch))
    scores = {}
    for w in weights:
        vals = [
            ious(model.sample(1, category=cat, sketch=sk, azimuth=rec["azimuth"], seed=0, guidance=w).sdf[0] * model.tau, true_sdf)["iou16"]
            for _, cat, true_sdf, rec, sk in cases
        ]
        scores[w] = float(np.mean(vals))
        log(f"validation, guidance {w:g}: iou16 {scores[w]:.3f} ({len(vals)} sketches)")
    best = max(weights, key=lambda w: (round(scores[w], 6), -w))
    model.config.sample.guidance = best
    return {
        "iou16_by_guidance": {f"{w:g}": v for w, v in scores.items()},
        "guidance": best,
        "sketches": len(cases),
        "shapes": len({c[0] for c in cases}),
        "seconds": time.perf_counter() - t0,
    }


def evaluate(model: LASDiffusion, args, dirs: dict[str, Path]) -> dict:
    """IoUs on the held-out sketches and the baselines (see the module doc)."""
    t0 = time.perf_counter()
    train_vol = load_volumes(dirs["train"])
    held_src = {n: r["source"] for n, r in read_index(dirs["held_out"])["shapes"].items()}
    keys = ("iou16", "iou32")
    # Class-only baseline without the model: each class's training shape with the highest mean IoU
    # to the other training shapes of the class (chosen on training data only).
    typical: dict[str, torch.Tensor] = {}
    train_by_cls: dict[str, list[torch.Tensor]] = {}
    for cat, sdf in train_vol.values():
        train_by_cls.setdefault(cat, []).append(sdf)
    for cat, sdfs in train_by_cls.items():
        occ = [touched_voxels(s, 2) for s in sdfs]
        score = [sum(iou(o, p) for p in occ) for o in occ]
        typical[cat] = sdfs[int(np.argmax(score))]
    rows: dict[str, dict[str, list[dict[str, float]]]] = {}

    def add(method: str, cat: str, vals: dict[str, float]) -> None:
        rows.setdefault(method, {}).setdefault(cat, []).append(vals)

    examples, done = [], set()
    for name, cat, true_sdf, rec, sketch in sketch_cases(dirs["held_out"], args.sketch):
        out = model.sample(1, category=cat, sketch=sketch, azimuth=rec["azimuth"], seed=0)
        vals = ious(out.sdf[0] * model.tau, true_sdf)  # sample() returns the SDF over tau
        add(f"sketch ({rec['style']})", cat, vals)
        add("sketch (both styles)", cat, vals)
        examples.append({"shape": name, "category": cat, "file": rec["file"], "style": rec["style"], "azimuth": rec["azimuth"], **vals})
        if name in done:  # the baselines once per shape
            continue
        done.add(name)
        out = model.sample(1, category=cat, sketch=None, seed=int(name.rsplit("_", 1)[1]))
        add("baseline: model without the sketch", cat, ious(out.sdf[0] * model.tau, true_sdf))
        add("baseline: most typical training shape of the class", cat, ious(typical[cat], true_sdf))
        best = max((ious(s, true_sdf) for c, s in train_vol.values() if c == cat), key=lambda v: v["iou16"])
        add("oracle: nearest training shape (looks at the truth)", cat, best)
        for shift, label in ((0.25, "a quarter"), (0.5, "half a")):
            add(f"scale: the true shape moved by {label} voxel", cat, shifted_self_iou(Path(held_src[name]), args.res, true_sdf, shift))
        if len(done) % 10 == 0:
            log(f"evaluated {len(done)}/{len(held_src)} held-out shapes ({time.perf_counter() - t0:.0f} s)")
    table: dict[str, dict] = {}
    for method, per_cls in rows.items():
        entry: dict = {"classes": {}}
        for cat, vals in sorted(per_cls.items()):
            entry["classes"][cat] = {key: float(np.mean([v[key] for v in vals])) for key in keys} | {"n": len(vals)}
        flat = [v for vals in per_cls.values() for v in vals]
        entry["overall"] = {key: float(np.mean([v[key] for v in flat])) for key in keys} | {"n": len(flat)}
        table[method] = entry
    return {"results": table, "examples": examples, "eval_seconds": time.perf_counter() - t0, "held_out_shapes": len(held_src), "train_shapes": len(train_vol)}


# ------------------------------------------------------------------------------------ report
def result_table(ev: dict, key: str) -> str:
    cats = sorted(next(iter(ev["results"].values()))["classes"])
    rows = [[method, *(f"{r['classes'][c][key]:.3f}" for c in cats), f"**{r['overall'][key]:.3f}**", r["overall"]["n"]] for method, r in ev["results"].items()]
    return bl.table(["", *cats, "overall", "n"], rows)


def write_card(args, argv: list[str], model: LASDiffusion, info: dict, ev: dict, times: dict, out: Path, ckpt: Path, ev_true: dict | None = None) -> Path:
    res = ev["results"]
    head = (ev_true or ev)["results"]  # the target is judged on the true shapes
    main, base = head["sketch (both styles)"]["overall"]["iou16"], head["baseline: model without the sketch"]["overall"]["iou16"]
    typical = head["baseline: most typical training shape of the class"]["overall"]["iou16"]
    verdict = "meets" if main >= 0.6 else "does NOT meet"
    grown_main = res["sketch (both styles)"]["overall"]["iou16"]
    true_section = (
        ""
        if ev_true is None
        else f"""
### Against the true shapes (the headline)
The model learnt shapes grown by {args.dilate:g}. Here it gets the sketches of the *true* held-out shapes
(thinner strokes than in training: out of its training distribution) and is scored against the true
shapes; the baselines are scored the same way, with the true training shapes.

{result_table(ev_true, "iou16")}

iou32 against the true shapes:

{result_table(ev_true, "iou32")}

### Against the grown shapes it learnt, from their own sketches
Overall iou16 {grown_main:.3f}.
"""
    )
    params = sum(p.numel() for p in model.parameters())
    threads_line = f"{args.threads} torch thread(s)" + (
        ", the two stages at the same time in two processes (`--jobs 2`)" if args.jobs > 1 else ", one stage after the other"
    )
    occ, sdf = info["occupancy"], info["sdf"]
    rel = os.path.relpath(ckpt, REPO) if ckpt.is_relative_to(REPO) else str(ckpt)
    ex = sorted(p.name for p in (out / "examples").glob("*.png"))
    ex_line = f"`shapegen sketch-to-3d {os.path.relpath(out / 'examples', REPO) if out.is_relative_to(REPO) else out / 'examples'}/{ex[0]}"
    first = next((e for e in ev["examples"] if Path(e["file"]).name == ex[0]), None) if ex else None
    try_cmd = f"{ex_line} --checkpoint {rel} --view {first['azimuth']:g} --category {first['category']} -o out.glb`" if first else ""
    grown = (
        (
            f", grown by {args.dilate:g} (the level set `sdf = {args.dilate:g}`, so parts 0.07 thick span several voxels "
            f"of the {args.res}^3 grid; the true shapes of the metrics below are grown alike)"
        )
        if args.dilate > 0
        else ""
    )
    val = ev.get("validation")
    val_line = (
        f"The guidance weight was chosen on {val['sketches']} sketches of {val['shapes']} validation shapes (true shapes "
        f"{args.per_class + args.held_out}..{args.per_class + args.held_out + args.val - 1} of each class, neither trained on nor "
        f"held out; the checkpoint keeps it), iou16 by weight: " + ", ".join(f"{w}: {v:.3f}" for w, v in val["iou16_by_guidance"].items()) + "."
        if val
        else "The guidance weight is the config's (no validation split)."
    )
    data_line = (
        f"Meshes and preparation took {times['data'] / 60:.1f} min."
        if times["shapes_prepared"]
        else "This run reused the meshes and prepared data in `--work`."
    )
    reused = [s for s in STAGES if info[s].get("reused")]
    cont = [
        f"{name} {r['continued'][-1]['steps']} steps ({r['continued'][-1]['seconds'] / 60:.1f} min)"
        for name, r in (("stage 1 after", occ), ("stage 2 after", sdf))
        if r.get("continued")
    ]
    fewer = sorted(
        {
            f"{name} {c['steps']} steps with --extra {c['extra']}"
            for name, r in (("stage 1", occ), ("stage 2", sdf))
            for c in r.get("continued", [])
            if "extra" in c
        }
    )
    cont_line = (
        f"Trained in more than one run: a shorter budget stopped {' and '.join(cont)}; a later run with this budget "
        "continued each from its checkpoint (weights, EMA and step count; a fresh AdamW, the learning rate being constant). "
        "Steps and minutes above are the totals."
        if cont
        else ""
    )
    if fewer:
        cont_line += " The earlier runs trained on fewer training shapes (until " + ", ".join(fewer) + "); the later ones on the whole training set above."
    first_extra = args.per_class + args.held_out + args.val
    train_range = f"0..{args.per_class - 1}" + (f" and {first_extra}..{first_extra + args.extra - 1}" if args.extra else "")
    reuse_line = cont_line + (
        f" This run reused the trained {' and '.join(reused)} stage from `--work` (same data, config and budget);"
        " the times above are from the run that trained it."
        if reused
        else ""
    )
    sk, no = res["sketch (both styles)"]["classes"], res["baseline: model without the sketch"]["classes"]
    better = [c for c in sk if sk[c]["iou16"] > no[c]["iou16"]]
    layout_line = (
        f"the sketch improves iou16 over the no-sketch baseline in {len(better)} of {len(sk)} classes"
        f"{'' if len(better) == len(sk) else ' (' + ', '.join(better) + ')'}."
    )
    thin_line = (
        f"The shapes are learnt grown by {args.dilate:g}, so results are that much fatter than the procedural shapes\n"
        f"  (legs, rods and boards about {0.07 + 2 * args.dilate:.2f} thick instead of 0.07), which is what lets them survive {args.res}^3;"
        if args.dilate > 0
        else f"The parts of\n  the procedural shapes (0.06 thick) are about one voxel at {args.res}^3, and the meshes come out fragmentary: legs,\n"
        f"  rods and boards often break into pieces or vanish (see the PNG that `sketch-to-3d` writes beside the mesh);"
    )
    text = f"""# LAS-Diffusion sketch-to-3D demo model

Two-stage LAS-Diffusion (Zheng et al., SIGGRAPH 2023, arXiv 2305.04461; `shapegen/methods/las.py`):
stage 1 diffuses a {args.res // 2}^3 occupancy shell conditioned on a category and a sketch (view-aware
local attention plus a global sketch embedding), stage 2 diffuses a {args.res}^3 SDF on the shell.
Categories: {", ".join(model.config.categories)}. Reproduce it from scratch (CPU, no download) with

    python scripts/train_las_demo.py {" ".join(argv)}

Try it: {try_cmd}

## Files
- `{CKPT_NAME}` ({ckpt.stat().st_size / 1e6:.1f} MB): the EMA weights of both stages in place of the raw
  ones, the config as hyper-parameters; no optimiser state. Load with `shapegen sketch-to-3d` /
  `shapegen generate --method las --checkpoint {rel} --category chair` or `LASDiffusion.load_from_checkpoint`.
- `metrics.json`: every number below and each evaluated sketch.
- `examples/`: {len(ex)} held-out sketches (never trained on), named `<shape>_<style>_<view>.png`
  (view v = azimuth 45 v degrees, elevation 20).

## Data
- `shapegen.data.procedural.generate(cls, index, seed={args.seed})` meshes (marching cubes at
  {args.mesh_resolution}^3){grown}, made by the project: no third-party data. Training: shapes {train_range}
  of each class ({ev["train_shapes"]} shapes); held out: shapes {args.per_class}..{args.per_class + args.held_out - 1}
  ({ev["held_out_shapes"]} shapes), never seen in training.
- `shapegen las prepare --set resolution={args.res} --set sketch_size={args.sketch}`: SDF {args.res}^3, shell
  {args.res // 2}^3, contour and canny sketches from the five LAS views (azimuth 0..180, elevation 20).
  {data_line}

## Model and training
- `configs/las/{Path(args.config).stem}.yaml`{" with " + ", ".join(args.set) if args.set else ""}: {params / 1e6:.2f} M parameters
  (stage 1 UNet {sum(p.numel() for p in model.occupancy_net.parameters()) / 1e6:.2f} M, sketch encoder
  {sum(p.numel() for p in model.sketch_encoder.parameters()) / 1e6:.2f} M, stage 2 sparse UNet
  {sum(p.numel() for p in model.sdf_net.parameters()) / 1e6:.3f} M); AdamW, EMA {model.config.train.ema_decay:g}.
- Stage 1: {occ["steps"]} steps of batch {occ["batch_size"]} (lr {occ.get("lr", model.config.train.lr):g}) in {occ["seconds"] / 60:.1f} min;
  stage 2: {sdf["steps"]} steps of batch {sdf["batch_size"]} (lr {sdf.get("lr", model.config.train.lr):g}) in {sdf["seconds"] / 60:.1f} min
  (budget {args.minutes:g} min, {args.sdf_share:g} of it for stage 2).
- Machine: {bl.machine()}; {threads_line}; shared with other jobs (1-min load average
  {occ["load_average"]:.1f} at the end of stage 1, {sdf["load_average"]:.1f} at the end of stage 2).
  {reuse_line}
- Sampling: {model.config.sample.occupancy_steps} + {model.config.sample.sdf_steps} ancestral steps, guidance {model.config.sample.guidance:g}, seed 0.
  {val_line}

## Metrics (held-out sketches)
For each held-out shape, its contour and canny sketches from view `index % 5`, with the true view and
category. Headline, **iou16**: voxel IoU on the {args.res // 2}^3 occupancy grid of stage 1, a cell counting when one
of its {args.res}^3 children touches the shape (SDF below the child's half-diagonal), for the result's SDF and the
true shape's alike. Baselines from the same run: the model given the category but no sketch; the most
typical training shape of the class (highest mean IoU to the other training shapes of its class); and, as
an oracle that looks at the truth, the training shape of the class with the best IoU. The "scale" rows
are no model: each true shape against itself moved by a quarter and by half a voxel along each axis.

Overall iou16 from the sketch{" against the true shapes" if ev_true else ""}: **{main:.3f}** (target >= 0.6: this model {verdict} it) against {base:.3f}
without the sketch and {typical:.3f} for the class's typical training shape.
{true_section}
{result_table(ev, "iou16")}

**iou32**: `sdf < 0` on the {args.res}^3 grid (the definition of `scripts/bench_las.py`). At this resolution the
procedural parts (0.06 thick after scaling) are thinner than a voxel (0.0625), so whether a part shows at
all depends on where the voxel centres fall. The "scale" rows (each true shape against itself moved by a
quarter and by half a voxel along each axis) show what a sub-voxel misplacement alone costs on either metric.

{result_table(ev, "iou32")}

Evaluation took {ev["eval_seconds"]:.0f} s ({times["total"] / 60:.1f} min for this run end to end).

## Limits
- Five procedural classes only, a small model at {args.res}^3 trained for {args.minutes:g} minutes on a CPU. {thin_line}
  {layout_line}
- Sketches are the synthetic styles of `las prepare` from the five canonical views; hand drawings and other
  views are out of distribution.
"""
    path = out / "MODEL_CARD.md"
    path.write_text(text)
    return path


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    made = build_meshes(args, work)
    log(f"meshes ready ({made} written in this run)")
    dirs, prepared = prepare(args, work)
    t_data = time.perf_counter() - t_start
    model, info = train(args, work, dirs["train"])
    val = None
    if args.val > 0:  # the guidance weight, chosen on sketches of true shapes that are neither trained on nor held out
        meshes = "meshes_true" if args.dilate > 0 else "meshes"
        build_meshes(args, work, meshes, 0.0, splits=("val",))
        val_dirs, _ = prepare(args, work, meshes, "las_true" if args.dilate > 0 else "las", splits=("val",))
        val = choose_guidance(model, args, val_dirs["val"])
        log(f"guidance {val['guidance']:g} chosen on {val['shapes']} validation shapes")
    ev = evaluate(model, args, dirs) | {"validation": val}
    ev_true = None
    if args.dilate > 0:
        # The model learnt grown shapes; score it also against the true shapes, from sketches of the true shapes.
        build_meshes(args, work, "meshes_true", 0.0)
        true_dirs, _ = prepare(args, work, "meshes_true", "las_true")
        ev_true = evaluate(model, args, true_dirs)
        for method, r in ev_true["results"].items():
            log(f"true shapes, {method}: iou16 {r['overall']['iou16']:.3f}, iou32 {r['overall']['iou32']:.3f}")
    res = ev["results"]
    for method, r in res.items():
        log(f"{method}: iou16 {r['overall']['iou16']:.3f}, iou32 {r['overall']['iou32']:.3f}")
    out.mkdir(parents=True, exist_ok=True)
    ckpt = save_weights_only(model, out / CKPT_NAME)
    shutil.rmtree(out / "examples", ignore_errors=True)
    (out / "examples").mkdir()
    for e in ev["examples"]:  # one contour sketch per class
        if e["style"] == "contour" and not any(p.name.startswith(e["category"] + "_") for p in (out / "examples").iterdir()):
            shutil.copy(dirs["held_out"] / e["file"], out / "examples" / Path(e["file"]).name)
    times = {"data": t_data, "total": time.perf_counter() - t_start, "meshes_written": made, "shapes_prepared": prepared}
    head = (ev_true or ev)["results"]  # the target is judged on the true shapes
    metrics = {
        "headline": {
            "metric": "iou16",
            "against": "true shapes" if ev_true else "shapes as trained",
            "sketch": head["sketch (both styles)"]["overall"]["iou16"],
            "baseline_no_sketch": head["baseline: model without the sketch"]["overall"]["iou16"],
            "baseline_typical_shape": head["baseline: most typical training shape of the class"]["overall"]["iou16"],
            "target": 0.6,
        },
        "validation": val,
        "results": res,
        "results_true_shapes": ev_true["results"] if ev_true else None,
        "examples": ev["examples"],
        "eval_seconds": ev["eval_seconds"],
        "train": info,
        "data": {
            "per_class": args.per_class,
            "held_out": args.held_out,
            "val": args.val,
            "extra": args.extra,
            "seed": args.seed,
            "res": args.res,
            "sketch": args.sketch,
            "train_shapes": ev["train_shapes"],
            "held_out_shapes": ev["held_out_shapes"],
        },
        "seconds": times,
        "command": f"python scripts/train_las_demo.py {' '.join(argv)}".strip(),
        "machine": bl.machine(),
        "checkpoint_bytes": ckpt.stat().st_size,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    card = write_card(args, argv, model, info, ev, times, out, ckpt, ev_true)
    log(f"wrote {ckpt}, {out / 'metrics.json'}, {card}")
    if not args.no_bench:
        h = metrics["headline"]
        body = (
            f"LAS sketch-to-3D demo model (`{os.path.relpath(out.resolve(), REPO)}`, card: `MODEL_CARD.md`): {ev['train_shapes']} procedural "
            f"training shapes, {ev['held_out_shapes']} held out; SDF {args.res}^3, sketches {args.sketch} px; stage 1 "
            f"{info['occupancy']['steps']} steps, stage 2 {info['sdf']['steps']} steps in {args.minutes:g} min on this CPU "
            f"({args.threads} thread(s){', both stages at once' if args.jobs > 1 else ''}). "
            f"Headline iou16 against the {h['against']}: from the sketch {h['sketch']:.3f} (target {h['target']}), without the sketch "
            f"{h['baseline_no_sketch']:.3f}, the class's typical training shape {h['baseline_typical_shape']:.3f}. Definitions in the card.\n\n"
            + (
                f"Guidance {val['guidance']:g}, chosen on {val['sketches']} validation sketches (iou16 by weight: "
                + ", ".join(f"{w}: {v:.3f}" for w, v in val["iou16_by_guidance"].items())
                + ").\n\n"
                if val
                else ""
            )
            + (
                f"Against the true shapes, from sketches of the true shapes (the model learnt shapes grown by {args.dilate:g}), iou16:\n\n"
                f"{result_table(ev_true, 'iou16')}\n\nAgainst the grown shapes it learnt, from their own sketches:\n\n"
                if ev_true
                else ""
            )
            + f"iou16 (16^3 occupancy, a cell counts when one of its 32^3 children touches the shape):\n\n{result_table(ev, 'iou16')}\n\n"
            f"iou32 (`sdf < 0` at 32^3, the definition of bench_las.py):\n\n{result_table(ev, 'iou32')}"
        )
        bl.write_section("demo-models-las", "Demo models: LAS sketch-to-3D", body)
    return metrics


if __name__ == "__main__":
    main()
