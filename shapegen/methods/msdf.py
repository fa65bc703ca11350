"""Mosaic-SDF generator: flow matching over M-SDF tensors with a set Transformer.

Paper: Lior Yariv, Omri Puny, Oran Gafni, Yaron Lipman, "Mosaic-SDF for 3D Generative Models",
CVPR 2024, arXiv 2312.09222 (Sec. 4, Algorithms 2 and 3).

Equations implemented (``x1`` a normalised M-SDF tensor of ``n`` rows ``[p, s, V]``,
``x0 ~ N(0, I)`` of the same shape, ``c`` a class label or a prompt):

- Conditional OT path and target: ``x_t = (1 - (1 - s_min) t) x0 + t x1``,
  ``u_t = x1 - (1 - s_min) x0`` (:mod:`shapegen.diffusion.flow_matching`).
- Loss: ``E || v_theta(x_t, t, c) - u_t ||^2`` with ``t ~ U[0, 1]`` and ``c`` replaced by the null
  condition with probability ``cond_drop``.
- Sampling (Algorithm 3): integrate ``dx/dt = v(x, t)`` from noise at ``t = 0`` to ``t = 1`` with
  ``v = (1 - w) v(x, t | null) + w v(x, t | c)`` (classifier-free guidance, Guided Flows form).
- ``v_theta`` is a :class:`~shapegen.nn.transformer.SetTransformer`: one token per row and no
  positional encoding, hence permutation-equivariant.

Deviations and choices the paper leaves open (see the notes):
    * Normalisation: each channel group is standardised with dataset statistics (centres per
      axis, the scale, and all ``k^3`` values sharing one mean/std), stored as buffers in the
      checkpoint and undone before decoding; sampled scales are clamped to be positive.
    * Time and class conditioning through adaLN-Zero (DiT), text through cross-attention to a
      frozen CLIP text encoder; EMA of the weights is used for sampling. The sinusoidal time
      features use ``100 t`` rather than DiT's ``1000 t``: at 1000 the learned velocity oscillates
      in ``t`` faster than any solver step and fixed-step solvers do not converge to dopri5
      (``SetTransformerConfig.time_scale``).
    * ``t ~ U[0, 1]``, ``s_min = 1e-4``, AdamW with linear warm-up, midpoint solver by default.
    * Optional (``value_components = m > 0``, not in the paper): the ``k^3`` values of each row are
      replaced by their coordinates in the top ``m`` principal directions of the training grids
      (:func:`~shapegen.data.msdf_dataset.value_pca`), each standardised on its own (whitened).
      The flow then runs on rows of ``4 + m`` channels and samples are mapped back to full grids
      before decoding. The projection acts row by row, so the model stays permutation-equivariant.
      It is what makes the small CPU demo model work: with all ``k^3`` values standardised
      together, every small error of the network in the many low-variance directions adds noise
      to the grids and the decoded surfaces break into fragments.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from jaxtyping import Float
from torch import Tensor

from shapegen.config import from_dict, to_dict
from shapegen.data.msdf_dataset import MSDFDataConfig, MSDFDataModule
from shapegen.diffusion.flow_matching import (
    ODESolution,
    draw_training_batch,
    flow_matching_loss,
    guided_velocity,
    sample_noise,
    solve_ode,
)
from shapegen.engine import rank_rows
from shapegen.errors import ShapegenError
from shapegen.methods.base import RunConfig
from shapegen.methods.outputs import GenerationResult, write_preview_sheet
from shapegen.nn.ema import ema_update
from shapegen.nn.text_encoders import CLIPTextEncoder, build_text_encoder
from shapegen.nn.transformer import SetTransformer, SetTransformerConfig
from shapegen.progress import report

log = logging.getLogger(__name__)


@dataclass
class MSDFSampleConfig:
    """Defaults of :meth:`MSDFGenerator.sample`."""

    solver: Literal["euler", "midpoint", "rk4", "dopri5"] = "midpoint"
    """ODE solver (``dopri5`` is the adaptive reference)."""
    steps: int = 25
    """Fixed solver steps (midpoint: 2 evaluations per step, so 25 steps = 50 evaluations)."""
    guidance: float = 2.0
    """Classifier-free guidance scale ``w`` (1: the conditional model alone)."""
    use_ema: bool = True
    """Sample with the EMA weights."""
    batch_size: int = 16
    """Shapes integrated together."""


@dataclass
class MSDFTrainConfig(RunConfig):
    """The run (:class:`~shapegen.methods.base.RunConfig`) and the optimiser."""

    max_steps: int = 200_000
    """Optimiser steps."""
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = "auto"
    """Numerics: ``auto`` trains and samples with bf16 autocast only on a CUDA device that supports it."""
    grad_clip: float = 1.0
    """Gradient-norm clipping (0: off)."""
    lr: float = 1e-4
    """AdamW learning rate after warm-up."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup_steps: int = 1000
    """Linear learning-rate warm-up."""
    ema_decay: float = 0.9999
    """EMA decay of the sampling weights (0: no EMA); ramped up as ``min(decay, (1 + i) / (10 + i))``."""
    lr_schedule: Literal["constant", "cosine"] = "constant"
    """After warm-up: keep ``lr``, or decay it along a half cosine to ``lr * lr_final`` at ``max_steps``."""
    lr_final: float = 0.0
    """``cosine``: the last learning rate as a share of ``lr``."""
    init_from: str = ""
    """Start from the weights and data normalisation of this msdf checkpoint (a training checkpoint
    or an exported model, e.g. the shipped one) instead of random weights; the architecture and
    the data's ``n``/``k`` must match. Used to continue a shipped model when its run folder is gone."""


@dataclass
class MSDFConfig:
    """Everything that defines an M-SDF generator; saved as plain hyper-parameters."""

    n: int = 1024
    """Rows (local grids) per M-SDF; taken from the data when training."""
    k: int = 7
    """Local grid side; taken from the data when training."""
    conditioning: Literal["none", "class", "text"] = "class"
    """Unconditional, class labels (sub-folder names) or text prompts (captions CSV)."""
    classes: list[str] = field(default_factory=list)
    """Class names in label order; filled from the data folders when training."""
    text_encoder: str = "openai/clip-vit-base-patch32"
    """Hugging Face hub id or local folder of a CLIP text model, ``tiny`` (tests) or ``words`` (weight-free
    hashed word vectors, :class:`~shapegen.nn.text_encoders.HashWordEncoder`)."""
    vocabulary: list[str] = field(default_factory=list)
    """Text conditioning: every word of the training captions, sorted; filled when training, so that a
    prompt's unknown words can be named (:func:`shapegen.methods.text_msdf.text_to_shape`)."""
    value_components: int = 0
    """0: standardise all ``k^3`` grid values together (the paper); ``m > 0``: model the coordinates of
    each grid in the top ``m`` principal directions of the training grids instead (whitened)."""
    cond_drop: float = 0.1
    """Probability of replacing the condition by the null condition in training (for CFG)."""
    sigma_min: float = 1e-4
    """``s_min`` of the conditional OT path."""
    model: SetTransformerConfig = field(default_factory=SetTransformerConfig)
    """Velocity network size."""
    train: MSDFTrainConfig = field(default_factory=MSDFTrainConfig)
    """Optimisation."""
    sample: MSDFSampleConfig = field(default_factory=MSDFSampleConfig)
    """Sampling defaults."""
    data: MSDFDataConfig = field(default_factory=MSDFDataConfig)
    """Training data."""


class MSDFGenerator(pl.LightningModule):
    """Flow-matching generator of M-SDF tensors (class-, text- or unconditional).

    Build it from a config (``MSDFGenerator(cfg)``) or from saved hyper-parameters
    (``MSDFGenerator.load_from_checkpoint(path)``, which needs nothing else).
    """

    CONFIG = MSDFConfig
    """Config schema (used by ``shapegen train --method msdf``)."""

    def __init__(self, config: MSDFConfig | None = None, **hparams: Any) -> None:
        super().__init__()
        if not isinstance(config, MSDFConfig) and "time_scale" not in hparams.get("model", {"time_scale": None}):
            # Saved before SetTransformerConfig.time_scale existed: those weights were trained with 1000 t.
            hparams = {**hparams, "model": {**hparams["model"], "time_scale": 1000.0}}
        cfg = config if isinstance(config, MSDFConfig) else from_dict(MSDFConfig, hparams)
        self.config = cfg
        self.save_hyperparameters(to_dict(cfg), logger=False)
        self.raw_dim = 4 + cfg.k**3
        """Channels of an M-SDF row ``[p, s, V]``."""
        if not 0 <= cfg.train.lr_final <= 1:
            raise ShapegenError(f"train.lr_final is a share of train.lr and must be in [0, 1], got {cfg.train.lr_final}")
        m = cfg.value_components
        if not 0 <= m <= cfg.k**3:
            raise ShapegenError(f"value_components must be 0 (off) or in 1..{cfg.k**3} (the k^3 grid values), got {m}")
        self.dim = 4 + m if m else self.raw_dim
        """Channels the flow runs on (``4 + value_components`` with a value basis)."""
        context_dim = 0
        if cfg.conditioning == "text":
            # Frozen and rebuilt from its name, so kept out of the state dict (not a registered submodule).
            self.__dict__["_text_encoder"] = build_text_encoder(cfg.text_encoder)
            context_dim = self._text_encoder.dim
        if cfg.conditioning == "class" and not cfg.classes:
            raise ShapegenError("class conditioning needs class names; train on a folder with one sub-folder per class or set conditioning=none")
        num_classes = len(cfg.classes) if cfg.conditioning == "class" else 0
        self.net = SetTransformer(self.dim, cfg.model, num_classes=num_classes, context_dim=context_dim)
        self.ema = copy.deepcopy(self.net).requires_grad_(False) if cfg.train.ema_decay > 0 else None
        self.register_buffer("norm_mean", torch.zeros(self.dim))
        self.register_buffer("norm_std", torch.ones(self.dim))
        self.register_buffer("norm_ready", torch.zeros((), dtype=torch.bool))
        if m:
            self.register_buffer("value_mean", torch.zeros(cfg.k**3))
            self.register_buffer("value_basis", torch.zeros(cfg.k**3, m))

    # ------------------------------------------------------------------ normalisation
    def set_normalization(
        self,
        mean: Float[Tensor, " e"],
        std: Float[Tensor, " e"],
        value_mean: Float[Tensor, " v"] | None = None,
        value_basis: Float[Tensor, "v m"] | None = None,
    ) -> None:
        """Store dataset statistics (saved in the checkpoint).

        Args:
            mean: per-channel mean of the rows the flow runs on (``dim`` channels).
            std: per-channel standard deviation of the same.
            value_mean: mean grid (``k^3``), needed when ``value_components > 0``.
            value_basis: orthonormal ``k^3 x m`` principal directions, needed with ``value_components > 0``.
        """
        if self.dim != self.raw_dim:
            if value_mean is None or value_basis is None:
                raise ShapegenError("this model has value_components > 0: pass value_mean and value_basis (see fit_normalization)")
            self.value_mean.copy_(value_mean)
            self.value_basis.copy_(value_basis)
        if mean.shape != (self.dim,) or std.shape != (self.dim,):
            raise ShapegenError(f"normalisation statistics must have {self.dim} channels, got {tuple(mean.shape)}")
        self.norm_mean.copy_(mean)
        self.norm_std.copy_(std)
        self.norm_ready.fill_(True)

    def fit_normalization(self, tensors: Float[Tensor, "M n d"]) -> None:
        """Compute and store the statistics (and the value basis, if any) of training tensors."""
        from shapegen.data.msdf_dataset import latent_statistics, msdf_statistics, value_pca

        tensors = tensors.float().to(self.norm_mean.device)
        if self.dim == self.raw_dim:
            self.set_normalization(*msdf_statistics(tensors))
            return
        value_mean, basis = value_pca(tensors, self.config.value_components)
        self.value_mean.copy_(value_mean)
        self.value_basis.copy_(basis)
        self.set_normalization(*latent_statistics(self.project(tensors)), value_mean, basis)

    def project(self, x: Float[Tensor, "B n d"]) -> Float[Tensor, "B n e"]:
        """M-SDF rows ``[p, s, V]`` -> ``[p, s, c]`` with ``c`` the value-basis coordinates (identity without a basis)."""
        if self.dim == self.raw_dim:
            return x
        return torch.cat([x[..., :4], (x[..., 4:] - self.value_mean) @ self.value_basis], dim=-1)

    def unproject(self, y: Float[Tensor, "B n e"]) -> Float[Tensor, "B n d"]:
        """Inverse of :meth:`project` on the span of the basis."""
        if self.dim == self.raw_dim:
            return y
        return torch.cat([y[..., :4], self.value_mean + y[..., 4:] @ self.value_basis.T], dim=-1)

    def normalize(self, x: Float[Tensor, "B n d"]) -> Float[Tensor, "B n e"]:
        """Raw M-SDF rows -> standardised channels the flow runs on."""
        return (self.project(x) - self.norm_mean) / self.norm_std

    def denormalize(self, z: Float[Tensor, "B n e"]) -> Float[Tensor, "B n d"]:
        """Standardised channels -> M-SDF rows, with the scale clamped positive."""
        x = self.unproject(z * self.norm_std + self.norm_mean)
        return torch.cat([x[..., :3], x[..., 3:4].clamp_min(1e-4), x[..., 4:]], dim=-1)

    # ------------------------------------------------------------------ conditioning
    @property
    def text_encoder(self) -> CLIPTextEncoder | None:
        enc = self.__dict__.get("_text_encoder")
        if enc is not None and next(enc.parameters()).device != self.device:
            enc.to(self.device)
        return enc

    def class_index(self, name: str | int) -> int:
        """Label of a class name (or a checked integer label)."""
        names = self.config.classes
        if self.config.conditioning != "class":
            raise ShapegenError(f"this model is conditioned on '{self.config.conditioning}', not on classes; drop --class")
        if isinstance(name, int) or str(name).isdigit():
            if not 0 <= int(name) < len(names):
                raise ShapegenError(f"class index {name} out of range; the model knows {len(names)} classes: {', '.join(names)}")
            return int(name)
        if name not in names:
            raise ShapegenError(f"unknown class '{name}'; this model knows: {', '.join(names)}")
        return names.index(name)

    def _condition(self, labels: Tensor | None, captions: list[str] | None, batch: int) -> dict[str, Tensor | None]:
        if self.config.conditioning == "class":
            if labels is None:
                labels = torch.full((batch,), self.net.null_class, dtype=torch.long)
            return {"labels": labels.to(self.device)}
        if self.config.conditioning == "text":
            if captions is None:
                return {"context": None, "context_mask": None}
            enc = self.text_encoder(list(captions))
            return {"context": enc.hidden, "context_mask": enc.mask}
        return {}

    def _autocast(self):
        # Sampling only: in training, the Trainer's precision plugin autocasts (shapegen.engine).
        mode = self.config.train.precision
        on = mode == "bf16-mixed" or (mode == "auto" and self.device.type == "cuda" and torch.cuda.is_bf16_supported())
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=on)

    # ------------------------------------------------------------------ training
    def on_fit_start(self) -> None:
        if not bool(self.norm_ready):
            dm = getattr(self.trainer, "datamodule", None)
            if not isinstance(dm, MSDFDataModule):
                raise ShapegenError("normalisation statistics are missing; call fit_normalization() or train with MSDFDataModule")
            dm.setup()
            self.fit_normalization(dm.dataset.tensors)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        x1 = self.normalize(batch["tensor"].float())
        b = x1.shape[0]
        # Noise, times and condition drop-out per sample, the same however the batch is split
        # over devices (shapegen.engine.rank_rows): one per row of the global batch.
        x0 = rank_rows(lambda n: torch.randn((n, *x1.shape[1:]), device=x1.device, dtype=x1.dtype), b, self)
        t = rank_rows(lambda n: torch.rand(n, device=x1.device, dtype=x1.dtype), b, self)
        fm = draw_training_batch(x1, self.config.sigma_min, x0=x0, t=t)
        drop = rank_rows(lambda n: torch.rand(n, device=self.device), b, self) < self.config.cond_drop
        labels = batch["label"].long() if self.config.conditioning == "class" else None
        if labels is not None:
            drop = drop | (labels == self.net.null_class)  # files without a class are unconditional
        cond = self._condition(labels, batch.get("caption"), b)
        v = self.net(fm.xt, fm.t, drop=drop, **cond)
        loss = flow_matching_loss(v, fm.target)
        self.log("train/loss", loss, prog_bar=True, on_step=True, batch_size=b)
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        # The EMA moves right after the optimiser step, before any callback sees the step:
        # Lightning calls callbacks' on_train_batch_end (where ModelCheckpoint saves) before the
        # module's, so an update there would be missing from the checkpoint of that step and a
        # resumed run's EMA would differ. global_step counts this step only once this returns.
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:
            with torch.no_grad():
                self.update_ema(self.global_step + 1)

    def update_ema(self, step: int) -> None:
        """Move the EMA weights towards the current ones (ramped decay, :func:`~shapegen.nn.ema.ramped_decay`)."""
        if self.ema is not None:
            ema_update(self.ema.parameters(), self.net.parameters(), self.config.train.ema_decay, step)

    def configure_optimizers(self):
        tc = self.config.train
        opt = torch.optim.AdamW(self.net.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(lr_factor, tc))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------ sampling
    def velocity(
        self,
        x: Float[Tensor, "B n d"],
        t: Float[Tensor, " B"],
        cond: dict[str, Tensor | None],
        guidance: float = 1.0,
        use_ema: bool = True,
    ) -> Float[Tensor, "B n d"]:
        """Guided velocity ``(1 - w) v(x, t | null) + w v(x, t | c)`` (one batched pass for both)."""
        net = self.ema if use_ema and self.ema is not None else self.net
        conditional = self.config.conditioning != "none" and any(v is not None for v in cond.values())
        with self._autocast():
            if guidance == 1.0 or not conditional:
                return net(x, t, **cond).float()
            b = x.shape[0]
            both = {k: None if v is None else torch.cat([v, v]) for k, v in cond.items()}
            drop = torch.cat([torch.zeros(b, dtype=torch.bool, device=x.device), torch.ones(b, dtype=torch.bool, device=x.device)])
            v = net(torch.cat([x, x]), torch.cat([t, t]), drop=drop, **both).float()
        return guided_velocity(v[:b], v[b:], guidance)

    @torch.no_grad()
    def sample(
        self,
        num: int = 1,
        cls: str | int | None = None,
        prompt: str | None = None,
        steps: int | None = None,
        solver: str | None = None,
        guidance: float | None = None,
        seed: int = 0,
        use_ema: bool | None = None,
        return_nfe: bool = False,
    ) -> Float[Tensor, "num n d"] | tuple[Tensor, int]:
        """Sample ``num`` M-SDF tensors (rows ``[cx, cy, cz, s, V]``, un-normalised).

        Args:
            num: number of shapes.
            cls: class name or index (class-conditioned models); None: unconditional.
            prompt: text prompt (text-conditioned models); None: unconditional.
            steps: solver steps (default ``config.sample.steps``).
            solver: ``euler``, ``midpoint``, ``rk4`` or ``dopri5`` (default from the config).
            guidance: CFG scale ``w`` (default from the config; 1 = conditional model).
            seed: noise seed; the same seed gives the same shapes.
            use_ema: sample with the EMA weights (default from the config).
            return_nfe: also return the number of network evaluations.
        """
        sc = self.config.sample
        steps, solver = steps or sc.steps, solver or sc.solver
        guidance = sc.guidance if guidance is None else guidance
        use_ema = sc.use_ema if use_ema is None else use_ema
        if prompt is not None and self.config.conditioning != "text":
            raise ShapegenError(f"this model is conditioned on '{self.config.conditioning}', not on text; drop --prompt")
        label = None if cls is None else self.class_index(cls)
        noise = sample_noise((num, self.config.n, self.dim), seed=seed, device=self.device)
        was_training = self.training
        self.eval()
        out, nfe = [], 0
        for start in range(0, num, sc.batch_size):
            x0 = noise[start : start + sc.batch_size]
            b = x0.shape[0]
            labels = None if label is None else torch.full((b,), label, dtype=torch.long)
            # No class and no prompt: the null condition, one pass per step (guidance has nothing to combine).
            unconditional = labels is None and prompt is None
            cond = {} if unconditional else self._condition(labels, None if prompt is None else [prompt] * b, b)
            sol: ODESolution = solve_ode(lambda x, t, cond=cond: self.velocity(x, t, cond, guidance, use_ema), x0, solver, steps)  # type: ignore[arg-type]
            out.append(self.denormalize(sol.x))
            nfe += sol.nfe
        self.train(was_training)
        result = torch.cat(out)
        return (result, nfe) if return_nfe else result

    # ------------------------------------------------------------------ orchestration
    @classmethod
    def for_training(cls, config: MSDFConfig) -> tuple[MSDFGenerator, MSDFDataModule]:
        """See :func:`build_for_training` (the entry point of ``shapegen train``)."""
        return build_for_training(config)

    def write_preview(self, folder: str | Path, step: int) -> None:
        """Four samples of the model at ``step`` (meshes and a sheet) in ``folder/step_NNNNNNN`` (training previews)."""
        self.write_samples(Path(folder) / f"step_{step:07d}", num=4, seed=0)

    def write_samples(
        self,
        out_dir: str | Path,
        num: int = 4,
        cls: str | None = None,
        prompt: str | None = None,
        seed: int = 0,
        steps: int | None = None,
        solver: str | None = None,
        guidance: float | None = None,
        resolution: int = 64,
        preview_size: int = 256,
        close_holes: bool = True,
        min_component_fraction: float = 0.05,
        one_piece: bool = True,
    ) -> GenerationResult:
        """Sample ``num`` shapes and write ``sample_XX.msdf.npz``, ``sample_XX.glb`` and ``preview.png``.

        Meshes come from the representation's own decoding (:func:`decode_to_mesh`, which gets
        ``close_holes``, ``min_component_fraction`` and ``one_piece``); a sample without a surface gets no GLB
        and a blank tile in the preview sheet.
        """
        out = Path(out_dir)
        tensors = self.sample(num, cls=cls, prompt=prompt, steps=steps, solver=solver, guidance=guidance, seed=seed)
        result = GenerationResult(out_dir=out)
        meshes = []
        for i, t in enumerate(tensors):
            result.msdf_files.append(save_msdf(t, self.config.k, out / f"sample_{i:02d}.msdf.npz"))
        for i, t in enumerate(tensors):
            mesh = decode_to_mesh(t, self.config.k, resolution, close_holes=close_holes,
                                  min_component_fraction=min_component_fraction, one_piece=one_piece)
            meshes.append(mesh)
            report("meshing", i + 1, len(tensors))
            if mesh.num_faces == 0:
                result.empty.append(i)
                continue
            from shapegen.geometry.export import export_mesh

            result.mesh_files.append(export_mesh(mesh, out / f"sample_{i:02d}.glb"))
        result.preview = write_preview_sheet(meshes, out / "preview.png", preview_size)
        return result


def lr_factor(tc: MSDFTrainConfig, i: int) -> float:
    """Learning-rate multiplier at optimiser step ``i``: linear warm-up, then constant or a half cosine."""
    warm = max(1, tc.warmup_steps)
    if i + 1 < warm:
        return (i + 1) / warm
    if tc.lr_schedule == "constant":
        return 1.0
    span = max(1, tc.max_steps - warm)
    progress = min(1.0, max(0.0, (i + 1 - warm) / span))
    return tc.lr_final + (1.0 - tc.lr_final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def load_initial_weights(model: MSDFGenerator, path: str | Path) -> None:
    """Copy the weights and data normalisation of an msdf checkpoint into ``model`` (``train.init_from``).

    A training checkpoint gives its ``net`` to ``net`` and its EMA (if any) to the EMA; an exported
    model (its EMA weights stored as ``net``) gives them to both.

    Raises:
        ShapegenError: missing file, not an msdf checkpoint, or another architecture.
    """
    from shapegen.checkpoints import load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise ShapegenError(f"train.init_from '{path}' not found; give an msdf checkpoint (e.g. an exported model under assets/models)")
    state = load_checkpoint(path).get("state_dict", {})
    net = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
    ema = {k[4:]: v for k, v in state.items() if k.startswith("ema.")} or net
    buffers = {k: v for k, v in state.items() if "." not in k}
    if not net:
        raise ShapegenError(f"train.init_from '{path}' holds no msdf generator weights; give a checkpoint of 'shapegen train --method msdf'")
    try:
        model.net.load_state_dict(net)
        if model.ema is not None:
            model.ema.load_state_dict(ema)
        for name, value in buffers.items():
            getattr(model, name).copy_(value)
    except (RuntimeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ShapegenError(f"train.init_from '{path}' does not fit this config ({first[:120]}); use the config it was trained with") from None


def build_for_training(config: MSDFConfig) -> tuple[MSDFGenerator, MSDFDataModule]:
    """Read the data folder, fill ``n``, ``k`` and class names into the config, build the system.

    Raises:
        ShapegenError: for missing data or a conditioning the data cannot provide.
    """
    dm = MSDFDataModule(config.data, seed=config.train.seed)
    dm.setup("fit")
    config.n, config.k = dm.n, dm.k
    if config.conditioning == "class":
        if not dm.classes:
            raise ShapegenError(f"conditioning=class needs one sub-folder per class under '{config.data.root}'; or set conditioning=none")
        config.classes = dm.classes
    if config.conditioning == "text" and config.data.labels != "captions":
        raise ShapegenError("conditioning=text needs captions: set data.labels=captions and data.captions=FILE.csv")
    if config.conditioning == "text":
        from shapegen.nn.text_encoders import split_words

        config.vocabulary = sorted({w for caps in dm.dataset.caption_sets for c in caps for w in split_words(c)})
    model = MSDFGenerator(config)
    model.fit_normalization(dm.dataset.tensors)
    if config.train.init_from:
        load_initial_weights(model, config.train.init_from)
    return model, dm


def decode_to_mesh(
    tensor: Float[Tensor, "n d"], k: int, resolution: int = 64, *, close_holes: bool = True, min_component_fraction: float = 0.05,
    one_piece: bool = True,
):
    """Decode one M-SDF tensor to a mesh with the representation's own extraction.

    Args:
        tensor: ``n x (4 + k^3)`` M-SDF rows.
        k: grid side.
        resolution: marching-cubes samples per axis.
        close_holes: close the surface where the cubes leave gaps
            (:meth:`~shapegen.fields.mosaic_sdf.MosaicSDF.to_mesh`).
        min_component_fraction: drop connected components below this share of the mesh's area
            (floating debris of generated shapes); 0 keeps every piece.
        one_piece: join the remaining pieces with thin struts where they come closest
            (:mod:`shapegen.geometry.bridges`); needs ``close_holes``.
    """
    from shapegen.fields.mosaic_sdf import MosaicSDF

    return MosaicSDF(tensor.detach().float().cpu(), k).to_mesh(resolution, close_holes=close_holes,
                                                               min_component_fraction=min_component_fraction, one_piece=one_piece)


def save_msdf(tensor: Float[Tensor, "n d"], k: int, path: str | Path) -> Path:
    """Write one ``.msdf.npz`` through :meth:`shapegen.fields.mosaic_sdf.MosaicSDF.save` (validated, atomic)."""
    from shapegen.fields.mosaic_sdf import MosaicSDF

    return MosaicSDF(tensor.detach().float().cpu(), k, source_hash="generated").save(path)


__all__ = [
    "GenerationResult",
    "MSDFConfig",
    "MSDFGenerator",
    "MSDFSampleConfig",
    "MSDFTrainConfig",
    "build_for_training",
    "decode_to_mesh",
    "save_msdf",
    "write_preview_sheet",
]
