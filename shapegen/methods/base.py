"""The method contract: what every method declares, and the run settings every method shares.

A method is a :class:`MethodSpec` (one object per method, listed in
:data:`shapegen.methods.METHODS`): its name on the command line, its config schema, its
LightningModule, its preset folder and what it can do. Commands read those capabilities from the
spec; they never probe a system with ``hasattr``. Every method config nests a :class:`RunConfig`
(at ``config.train``; a subclass may add the method's own optimiser settings), which
:func:`shapegen.engine.fit` turns into one Lightning ``Trainer``.

The system class of a trainable method provides:

* ``CONFIG``: its config dataclass (the same class as :attr:`MethodSpec.config`);
* ``for_training(config) -> (module, datamodule or None)``: build everything a run needs from the
  config (reading the data named there);
* ``write_preview(folder, step)`` when :attr:`MethodSpec.previews` is set: a picture of the model
  at ``step`` (written by rank 0 only);
* ``write_samples(out_dir, num=..., seed=..., ...) -> GenerationResult`` when
  :attr:`MethodSpec.generate` is set.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, Literal

from shapegen.errors import ShapegenError

PRECISIONS = ("auto", "32", "bf16-mixed", "16-mixed")
"""Values of :attr:`RunConfig.precision` (Lightning's names; ``auto``: bf16-mixed on a GPU that has it, else 32)."""


@dataclass
class RunConfig:
    """How a training run runs: length, seed, hardware, numerics and cadence (``train.*`` keys).

    The same keys mean the same thing for every method; ``shapegen train`` also takes the
    hardware ones as flags (``--devices``, ``--num-nodes``, ``--strategy``, ``--precision``,
    ``--accelerator``).
    """

    max_steps: int = 1000
    """Optimiser steps of the whole run (a resumed run may raise it)."""
    seed: int = 0
    """Seed of the weights, the batches and every step's noise (the same seed gives the same run)."""
    accelerator: str = "auto"
    """Lightning accelerator: ``auto`` (a GPU when there is one), ``cpu`` or ``gpu``."""
    devices: int = 1
    """Devices per node (-1: all of them). The data's ``batch_size`` is per device."""
    num_nodes: int = 1
    """Machines (SLURM nodes or ``torchrun --nnodes``)."""
    strategy: Literal["auto", "ddp", "fsdp", "ddp_spawn"] = "auto"
    """Lightning strategy across devices (``auto``: ``ddp`` when there are several)."""
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = "32"
    """Numerics: ``32`` float32; ``bf16-mixed`` / ``16-mixed`` autocast; ``auto``: bf16-mixed on a GPU that supports it."""
    grad_clip: float = 0.0
    """Clip the gradient norm to this (0: no clipping)."""
    log_every: int = 10
    """Record the loss every this many steps (``loss.csv``, ``loss.png``; the plot is redrawn ten times as rarely)."""
    checkpoint_every: int = 1000
    """Write ``checkpoints/last.ckpt`` every this many steps (and at the end)."""
    preview_every: int = 0
    """Write a preview every this many steps (0: only at the end; -1: never)."""


RUN_MAY_DIFFER = ("train.max_steps", "train.checkpoint_every", "train.log_every", "train.preview_every", "train.accelerator",
                  "train.devices", "train.num_nodes", "train.strategy")
"""Run settings a resumed run may change: its length, its cadence and the hardware it runs on."""


@dataclass(frozen=True)
class MethodSpec:
    """One method: what it is called, what configures it, what runs it and what it can do.

    Classes are named as ``"module:Class"`` strings and imported on first use, so listing the
    methods (``shapegen --help``) does not import torch; :meth:`check` imports them and verifies
    the contract (the contract tests run it for every entry of ``METHODS``).
    """

    name: str
    """Name on the command line (``--method NAME``) and folder of its presets (``configs/NAME/``)."""
    config: str
    """``module:Class`` of the config dataclass (nests a :class:`RunConfig` at ``train``)."""
    system: str
    """``module:Class`` of the LightningModule."""
    description: str
    """One line for ``--help`` and the docs."""
    train: bool = True
    """``shapegen train --method NAME`` trains it (the system has ``for_training``)."""
    generate: bool = False
    """``shapegen generate --method NAME`` samples a trained checkpoint (the system has ``write_samples``)."""
    reconstruct: bool = False
    """It fits one scene from its images (``shapegen reconstruct``)."""
    previews: bool = True
    """The system writes pictures while it trains (``write_preview``)."""
    stages: tuple[str, ...] = ()
    """Training stages that ``--stage`` picks (empty: one stage)."""
    may_differ: tuple[str, ...] = ()
    """Config keys (``fnmatch`` patterns) besides :data:`RUN_MAY_DIFFER` that a resumed run may change."""
    default_checkpoint: str = ""
    """The shipped model that ``generate`` and the method's verbs use without ``--checkpoint`` (repository-relative)."""
    export: str = ""
    """``module:function(checkpoint, out, use_ema=...)`` that slims a training checkpoint for shipping
    (``shapegen export-model``), where the generic :func:`shapegen.methods.export.export_model` does not fit."""
    default_text_checkpoint: str = ""
    """The shipped text-conditioned model that ``text-to-3d --method NAME`` uses without ``--checkpoint`` (repository-relative)."""
    pipeline: str = ""
    """``module:function`` that ``shapegen train`` calls instead of one :func:`~shapegen.engine.fit`
    (a staged pipeline that trains, checkpoints and exports each stage itself):
    ``function(config, out_dir, *, fresh, progress) -> last checkpoint``. Empty: the generic path."""

    @property
    def presets(self) -> str:
        """Preset folder name under ``configs/``."""
        return self.name

    def config_class(self) -> type:
        """The config dataclass."""
        return _import(self.config)

    def system_class(self) -> type:
        """The LightningModule class."""
        return _import(self.system)

    def export_function(self):
        """The checkpoint slimmer of ``shapegen export-model`` for this method."""
        return _import(self.export or "shapegen.methods.export:export_model")

    def pipeline_function(self):
        """The callable named by :attr:`pipeline` (None when the method trains through the generic path)."""
        return _import(self.pipeline) if self.pipeline else None

    def run_config(self, config: Any) -> RunConfig:
        """The :class:`RunConfig` nested in a config of this method."""
        return config.train

    def check(self) -> None:
        """Import the classes and verify the contract.

        Raises:
            ShapegenError: naming the first broken promise.
        """
        import pytorch_lightning as pl

        cfg_cls, sys_cls = self.config_class(), self.system_class()
        if not dataclasses.is_dataclass(cfg_cls):
            raise ShapegenError(f"method '{self.name}': config {self.config} is not a dataclass")
        if not (isinstance(sys_cls, type) and issubclass(sys_cls, pl.LightningModule)):
            raise ShapegenError(f"method '{self.name}': system {self.system} is not a LightningModule")
        if getattr(sys_cls, "CONFIG", None) is not cfg_cls:
            raise ShapegenError(f"method '{self.name}': {self.system}.CONFIG is not {self.config}")
        if not isinstance(self.run_config(cfg_cls()), RunConfig):
            raise ShapegenError(f"method '{self.name}': {self.config}.train is not a RunConfig")
        if self.pipeline and not callable(self.pipeline_function()):
            raise ShapegenError(f"method '{self.name}': pipeline {self.pipeline} is not callable")
        needed = {"for_training": self.train, "write_samples": self.generate, "write_preview": self.train and self.previews}
        for attr, promised in needed.items():
            if promised and not callable(getattr(sys_cls, attr, None)):
                raise ShapegenError(f"method '{self.name}': the spec promises {attr}, which {self.system} lacks")


def _import(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def get_method(name: str) -> MethodSpec:
    """The spec registered as ``name``.

    Raises:
        ShapegenError: for a name that is not in :data:`shapegen.methods.METHODS`.
    """
    from shapegen.methods import METHODS

    if name not in METHODS:
        raise ShapegenError(f"unknown method '{name}'; choose one of: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def default_checkpoint(spec: MethodSpec, *, text: bool = False):
    """The path of ``spec``'s shipped model (``text``: its shipped text-conditioned one).

    Raises:
        ShapegenError: the method ships none.
    """
    from pathlib import Path

    path = spec.default_text_checkpoint if text else spec.default_checkpoint
    if not path:
        kind = "text-conditioned model" if text else "model"
        raise ShapegenError(f"method '{spec.name}' ships no {kind}; pass --checkpoint (train one with 'shapegen train --method {spec.name}')")
    return Path(__file__).resolve().parent.parent.parent / path


def require(spec: MethodSpec, capability: str, verb: str) -> MethodSpec:
    """``spec`` if it has ``capability`` (``train``, ``generate``, ...), else a one-line error for ``verb``."""
    if not getattr(spec, capability):
        from shapegen.methods import METHODS

        able = sorted(n for n, s in METHODS.items() if getattr(s, capability))
        raise ShapegenError(f"method '{spec.name}' cannot {verb}; methods that can: {', '.join(able)}")
    return spec


__all__ = ["PRECISIONS", "RUN_MAY_DIFFER", "MethodSpec", "RunConfig", "default_checkpoint", "get_method", "require"]
