"""One training loop for every method and verb: :func:`fit`.

``shapegen train``, ``reconstruct``, every text-to-3D stage, ``avatar``, ``texture`` and the
recipes of the shipped models all train through :func:`fit`, which builds the only Lightning
``Trainer`` of the package from a :class:`~shapegen.methods.base.RunConfig`:

* checkpoints: ``last.ckpt`` every ``checkpoint_every`` steps and at the end, written atomically
  and read weights-only (:class:`~shapegen.checkpoints.SafeCheckpointIO`), with the random
  generators' states (:func:`~shapegen.checkpoints.RNGCheckpoint`), so a resumed run equals an
  uninterrupted one;
* the loss: ``loss.csv`` and ``loss.png`` (the mean over all devices), kept in the checkpoint so a
  resumed run's plot starts at step 1;
* previews every ``preview_every`` steps and at the end, a progress bar;
* devices, nodes, strategy (DDP, FSDP) and precision from the config, with rank 0 alone writing
  files. The data's batch size is per device; :func:`train_loader` gives every method's loader
  the same shuffled order on one device or many, and :func:`rank_rows` draws per-sample noise so
  that two processes with half the batch each take the same steps as one with the whole batch.

Resuming follows one rule for every verb (:func:`~shapegen.checkpoints.resume_from`): a run
resumes when its folder holds a checkpoint of the same config, ``--fresh`` starts over, and a
checkpoint of another config is a one-line error.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from shapegen.errors import ShapegenError
from shapegen.logs import quiet_lightning
from shapegen.methods.base import RunConfig


def global_rank() -> int:
    """This process's rank in a distributed run (0 alone, before and after one), from the
    environment that Lightning's launcher, ``torchrun`` and SLURM set."""
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if key in os.environ:
            try:
                return int(os.environ[key])
            except ValueError:
                continue
    return 0


def is_rank_zero() -> bool:
    """Whether this process writes files (every process of a distributed run runs the command)."""
    return global_rank() == 0


def lightning_precision(precision: str, accelerator: str = "auto") -> str:
    """Lightning's precision name for :attr:`RunConfig.precision` (``auto``: bf16-mixed on a CUDA
    GPU with bf16, else 32-true)."""
    if precision == "auto":
        gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
        return "bf16-mixed" if gpu and torch.cuda.is_bf16_supported() else "32-true"
    return {"32": "32-true"}.get(precision, precision)


def check_run(run: RunConfig) -> None:
    """One-line errors for run settings Lightning would reject with a traceback."""
    if run.max_steps < 1:
        raise ShapegenError(f"train.max_steps must be at least 1, got {run.max_steps}")
    if run.devices == 0 or run.devices < -1:
        raise ShapegenError(f"train.devices must be a positive count or -1 (all), got {run.devices}")
    if run.num_nodes < 1:
        raise ShapegenError(f"train.num_nodes must be at least 1, got {run.num_nodes}")
    if run.accelerator in ("gpu", "cuda"):
        from shapegen.devices import choose_device

        choose_device("cuda", option="--accelerator")
    if run.precision == "16-mixed" and not (run.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()):
        raise ShapegenError("precision 16-mixed needs a CUDA GPU; use bf16-mixed or 32 on a CPU")


# ------------------------------------------------------------------------------ data order
class StepSampler:
    """An endless shuffled stream of dataset indices whose every batch is a function of the
    training step alone.

    The global stream is the concatenation of permutations of ``range(len(dataset))`` drawn with
    ``seed + epoch`` (epoch 0, 1, ...); global batch ``i`` is its items ``i B .. (i + 1) B - 1``
    for the global batch size ``B = batch_size x world``, and rank ``r`` reads item ``j W + r`` of
    it as its sample ``j`` (what :func:`rank_rows` relies on). The stream starts at the trainer's
    ``global_step`` when the loader is made, which Lightning has already restored on resume, so a
    resumed run, stopped anywhere in an epoch, sees exactly the batches of an uninterrupted one;
    one process with the whole batch sees the same samples as ``W`` with a share each.

    A dataset with ``epoch_indices = True`` receives ``index + epoch * len(dataset)`` instead of
    ``index``, to key per-item random choices (a sketch among several) to the epoch.
    """

    def __init__(self, dataset, batch_size: int, seed: int, world: int = 1, rank: int = 0, start_step: int = 0) -> None:
        self.n = len(dataset)
        if self.n == 0:
            raise ShapegenError("the training set is empty")
        self.batch_size, self.seed, self.world, self.rank, self.start_step = batch_size, seed, world, rank, start_step
        self.offsets = bool(getattr(dataset, "epoch_indices", False))

    def _permutation(self, epoch: int) -> torch.Tensor:
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch))

    def __iter__(self):
        global_batch = self.batch_size * self.world
        pos = self.start_step * global_batch + self.rank  # this rank's first item in the global stream
        epoch, perm = -1, None
        while True:
            e, k = divmod(pos, self.n)
            if e != epoch:
                epoch, perm = e, self._permutation(e)
            yield int(perm[k]) + (e * self.n if self.offsets else 0)
            pos += self.world


def train_loader(dataset, batch_size: int, trainer, seed: int, num_workers: int = 0, **kwargs):
    """The training ``DataLoader`` of every method: :class:`StepSampler` batches of ``batch_size``
    per device (one process or many, a fresh run or a resumed one alike)."""
    from torch.utils.data import DataLoader

    world = trainer.world_size if trainer is not None else 1
    rank = trainer.global_rank if trainer is not None else 0
    start = int(trainer.global_step) if trainer is not None else 0
    sampler = StepSampler(dataset, batch_size, seed, world, rank, start)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      persistent_workers=num_workers > 0, **kwargs)


def rank_rows(draw: Callable[[int], torch.Tensor], local_batch: int, module) -> torch.Tensor:
    """Per-sample random values that do not depend on how the batch is split over processes.

    ``draw(n)`` draws values for ``n`` samples (leading dimension ``n``) from the step-seeded
    global generators (:func:`~shapegen.checkpoints.RNGCheckpoint` seeds each step alike on every
    rank); each rank draws the whole global batch's values and keeps its own rows, in the order
    of :class:`StepSampler`. On one process this is ``draw(local_batch)``.
    """
    trainer = getattr(module, "_trainer", None)
    world = trainer.world_size if trainer is not None else 1
    if world == 1:
        return draw(local_batch)
    return draw(local_batch * world)[trainer.global_rank :: world]


# --------------------------------------------------------------------------- loss log, plot
def write_loss_plot(steps: Sequence[float], series: dict[str, Sequence[float]] | Sequence[float], path: str | Path,
                    title: str = "training loss", log_scale: bool = True, size: tuple[int, int] = (640, 400)) -> Path:
    """Loss against step as a PNG (Pillow; no matplotlib). ``series`` is one list of values or
    named lists (drawn in colours, each scaled to its own range when ``log_scale`` is off)."""
    import numpy as np
    from PIL import Image, ImageDraw

    from shapegen.io import atomic_path

    named = dict(series) if isinstance(series, dict) else {"loss": list(series)}
    w, h = size
    left, right, top, bottom = 55, w - 15, 30, h - 35
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    d.rectangle([left, top, right, bottom], outline="black")
    d.text((left, 8), title, fill="black")
    colours = [(30, 90, 200), (200, 40, 40), (40, 150, 60), (150, 60, 170)]
    finite_steps = [s for s in steps if math.isfinite(s)]
    s0, s1 = (min(finite_steps), max(finite_steps)) if finite_steps else (0.0, 1.0)
    s1 = s1 if s1 > s0 else s0 + 1
    legend_x = left + 5
    for (name, values), colour in zip(named.items(), colours * 4):
        tf = (lambda v: math.log10(max(v, 1e-12))) if log_scale else (lambda v: v)
        pts = [(s, tf(v)) for s, v in zip(steps, values) if math.isfinite(v)]
        if not pts:
            continue
        lo, hi = min(p[1] for p in pts), max(p[1] for p in pts)
        hi = hi if hi > lo else lo + 1.0
        xy = [(left + (s - s0) / (s1 - s0) * (right - left), bottom - (v - lo) / (hi - lo) * (bottom - top)) for s, v in pts]
        if len(xy) > 1:
            d.line(xy, fill=colour, width=2)
        else:
            d.ellipse([xy[0][0] - 2, xy[0][1] - 2, xy[0][0] + 2, xy[0][1] + 2], fill=colour)
        shown = (10**lo, 10**hi) if log_scale else (lo, hi)
        if len(named) == 1:
            d.text((5, top), f"{shown[1]:.3g}", fill="black")
            d.text((5, bottom - 10), f"{shown[0]:.3g}", fill="black")
        else:
            d.text((legend_x, top + 4), f"{name} [{shown[0]:.3g}, {shown[1]:.3g}]", fill=colour)
            legend_x += 200
    d.text((left, bottom + 8), f"step {s0:.0f}", fill="black")
    d.text((right - 80, bottom + 8), f"step {s1:.0f}", fill="black")
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(img)).save(tmp, format="PNG")
    return path


def _loss_value(outputs) -> torch.Tensor | None:
    if isinstance(outputs, dict):
        outputs = outputs.get("loss")
    return outputs.detach() if isinstance(outputs, torch.Tensor) else None


def _callbacks(out: Path, run: RunConfig, preview: Callable[[Any, Path, int], None] | None, loss_log: bool):
    import pytorch_lightning as pl

    every = max(1, run.log_every)

    class LossLog(pl.Callback):
        """The loss every ``log_every`` steps (mean over devices); ``loss.csv`` and ``loss.png``
        redrawn every ten records and at the end, by rank 0. The history travels in the checkpoint."""

        def __init__(self) -> None:
            self.steps: list[int] = []
            self.losses: list[float] = []

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            step = int(trainer.global_step)
            if step % every and step != trainer.max_steps:
                return
            loss = _loss_value(outputs)
            if loss is None:  # manual optimisation returns nothing: the module logs its loss
                value = trainer.callback_metrics.get("loss")
                loss = value.detach() if isinstance(value, torch.Tensor) else None
            if loss is None:
                return
            if trainer.world_size > 1:
                loss = trainer.strategy.reduce(loss.float().to(module.device), reduce_op="mean")
            self.steps.append(step)
            self.losses.append(float(loss))
            if len(self.steps) % 10 == 0:
                self.flush(trainer)

        def state_dict(self) -> dict:
            return {"steps": list(self.steps), "losses": list(self.losses)}

        def load_state_dict(self, state_dict: dict) -> None:
            self.steps, self.losses = list(state_dict["steps"]), list(state_dict["losses"])

        def flush(self, trainer) -> None:
            if not self.steps or not trainer.is_global_zero:
                return
            from shapegen.io import atomic_path

            with atomic_path(out / "loss.csv") as tmp, open(tmp, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["step", "loss"])
                writer.writerows(zip(self.steps, self.losses))
            write_loss_plot(self.steps, self.losses, out / "loss.png")

        def on_train_end(self, trainer, module) -> None:
            self.flush(trainer)

    class Previews(pl.Callback):
        """A preview every ``preview_every`` steps and at the end (rank 0; a failing preview is a note)."""

        def _write(self, trainer, module) -> None:
            if not trainer.is_global_zero:
                return
            try:
                preview(module, out / "previews", int(trainer.global_step))
            except ShapegenError as exc:  # e.g. nothing to decode yet: training goes on
                print(f"note: no preview at step {trainer.global_step}: {exc}")

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            if run.preview_every > 0 and trainer.global_step % run.preview_every == 0 and trainer.global_step != trainer.max_steps:
                self._write(trainer, module)

        def on_train_end(self, trainer, module) -> None:
            if run.preview_every >= 0:
                self._write(trainer, module)

    from shapegen.threads import ThreadShareCallback

    callbacks = [ThreadShareCallback()]
    if loss_log:
        callbacks.append(LossLog())
    if preview is not None:
        callbacks.append(Previews())
    return callbacks


# --------------------------------------------------------------------------------------- fit
def fit(
    module,
    run: RunConfig,
    out_dir: str | Path,
    *,
    datamodule=None,
    resume: str | Path | None = None,
    checkpoint: str | Path | None = None,
    preview: Callable[[Any, Path, int], None] | None = None,
    callbacks: Sequence[Any] = (),
    loss_log: bool = True,
    progress: bool = True,
) -> Path:
    """Train ``module`` for ``run.max_steps`` steps with the one Lightning ``Trainer`` of the package.

    Args:
        module: the LightningModule (built by the caller after seeding with ``run.seed``).
        run: length, seed, hardware, numerics and cadence.
        out_dir: the run folder: ``loss.csv``, ``loss.png`` and ``previews/`` go there.
        datamodule: the data, when the module has no loaders of its own.
        resume: a checkpoint to continue from (what :func:`~shapegen.checkpoints.resume_from` returned).
        checkpoint: where ``last.ckpt`` goes (default ``OUT_DIR/checkpoints/last.ckpt``; a staged
            method keeps one per stage). Its file name must be ``last.ckpt``.
        preview: ``preview(module, folder, step)`` draws a picture of the model (rank 0 only).
        callbacks: extra Lightning callbacks (e.g. a stage's renders).
        loss_log: write ``loss.csv`` / ``loss.png``.
        progress: show Lightning's progress bar.

    Returns:
        The final checkpoint (full state, so a later run with more steps can resume it).

    Raises:
        ShapegenError: bad run settings, or a resumed checkpoint that does not fit the model.
    """
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from shapegen.checkpoints import RNGCheckpoint, SafeCheckpointIO
    from shapegen.checkpoints import fit as fit_trainer

    check_run(run)
    out = Path(out_dir)
    last = Path(checkpoint) if checkpoint is not None else out / "checkpoints" / "last.ckpt"
    if last.name != "last.ckpt":
        raise ShapegenError(f"fit() keeps its checkpoint as last.ckpt, got {last}")
    quiet_lightning()
    pl.seed_everything(run.seed, workers=True, verbose=False)
    saver = ModelCheckpoint(dirpath=last.parent, save_last=True, save_top_k=0, every_n_train_steps=max(1, run.checkpoint_every))
    trainer = pl.Trainer(
        max_steps=run.max_steps,
        accelerator=run.accelerator,
        devices=run.devices,
        num_nodes=run.num_nodes,
        strategy=run.strategy,
        precision=lightning_precision(run.precision, run.accelerator),
        gradient_clip_val=run.grad_clip or None,
        log_every_n_steps=max(1, run.log_every),
        logger=False,
        callbacks=[saver, RNGCheckpoint(run.seed), *_callbacks(out, run, preview, loss_log), *callbacks],
        default_root_dir=out,
        enable_model_summary=False,
        enable_progress_bar=progress,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,  # train_loader shards the data itself, the same on one device or many
        plugins=[SafeCheckpointIO()],
    )
    try:
        fit_trainer(trainer, module, datamodule=datamodule, ckpt_path=resume)
    except RuntimeError as exc:
        if resume is not None and ("state_dict" in str(exc) or "size mismatch" in str(exc)):
            raise ShapegenError(f"{resume} was written with another configuration; use the same preset or pass --fresh") from exc
        raise
    trainer.save_checkpoint(last, weights_only=False)  # the full state (every rank calls it; rank 0 writes)
    return last


__all__ = [
    "StepSampler",
    "fit",
    "global_rank",
    "is_rank_zero",
    "lightning_precision",
    "rank_rows",
    "train_loader",
    "write_loss_plot",
]
