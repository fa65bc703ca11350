"""LAS-Diffusion: sketch- and category-conditioned two-stage SDF diffusion.

Paper: Xin-Yang Zheng, Hao Pan, Peng-Shuai Wang, Xin Tong, Yang Liu, Heung-Yeung Shum,
"Locally Attentional SDF Diffusion for Controllable 3D Shape Generation", ACM TOG 42(4)
(SIGGRAPH 2023), arXiv 2305.04461.

Equations implemented (:mod:`shapegen.diffusion.gaussian`):

- Schedule: ``t ~ U(0, 1)``, ``logSNR(t) = -log(expm1(1e-4 + 10 t^2))``, ``alpha^2 = sigmoid(logSNR)``,
  ``sigma^2 = sigmoid(-logSNR)``, ``x_t = alpha x0 + sigma eps`` (both stages).
- Stage 1 (occupancy, ``g = G/2`` per side): ``x0 = 2 shell - 1`` with the shell
  ``maxpool2(|sdf_G| < 2 voxels)``; loss ``|| f(x_t, x0_sc, t, c) - x0 ||^2`` (x0 prediction) with
  self-conditioning (``x0_sc`` = a no-grad first estimate with probability 0.5, else zeros).
  Condition ``c``: a category embedding (multiplicative, ``h * MLP(c) + MLP(t)``) and/or a sketch
  through view-aware local cross-attention at the coarse UNet levels
  (:mod:`shapegen.nn.local_attention`; training radius ``|N(0,1)| 4 + sqrt(2)/2`` patch widths).
  Conditions are dropped with probability ``cond_drop`` (null class, blank sketch) for guidance
  ``x0 = x0(null) + w (x0(c) - x0(null))``. Sampling: ancestral steps on a uniform grid from
  ``t = 1`` to 0; for ``t < 0.7`` the estimate is binarised with ``sign``; occupancy is ``x > 0``.
- Stage 2 (SDF, ``G`` per side): ``x0 = clip(sdf / tau, -1, 1)`` with ``tau = 3.2`` voxels (LAS:
  0.05 at 128^3), only at the 8 children of each occupied shell voxel; training shells use a
  per-voxel jittered threshold ``2 voxels * (1 + U(-0.3, 0.3))`` so stage 2 tolerates stage-1
  errors; loss: per-shape mean squared x0 error, no self-conditioning, no condition. Sampling: 20
  ancestral steps on the shell voxels, ``x0`` clamped to [-1, 1]; voxels outside the shell are +1,
  enclosed ones (binary hole filling) -1; marching cubes at 0 (:mod:`shapegen.geometry.extract`).

Deviations from the paper and the official code:
    * Stage 2 uses a pure-torch sparse voxel UNet (:mod:`shapegen.nn.sparse_conv`) instead of
      ``ocnn`` octree convolutions (same receptive fields: 3^3 convs over present nodes, 2^3
      stride-2 down/up-sampling); the reason is in that module.
    * The category condition is a learned embedding (plus a null class), not a frozen CLIP text
      embedding of the class name.
    * Besides the local attention, the sketch also enters every ResBlock through a global
      embedding of its tokens added to the class embedding (``occupancy.global_sketch``, on by
      default): with the small trainable encoder, the local path alone was not learned in short
      CPU runs (the model produced its mean shape whatever the sketch); see
      :class:`shapegen.nn.unet3d.UNet3DConfig`. Set it to false for the paper's model.
    * The sketch encoder is pluggable (:mod:`shapegen.nn.sketch_encoder`): a small trainable CNN +
      Transformer by default (no download), or a frozen timm ViT such as LAS's OpenCLIP ViT-H/14.
    * Both stages live in one LightningModule (one checkpoint for ``sketch-to-3d``); ``train.stage``
      picks which are optimised (``both`` sums the two independent losses, which is the same as
      training them side by side since they share no parameters). The buffer ``stage_steps``
      counts the optimiser steps each stage has had, so sampling refuses a checkpoint whose
      stage 1 or stage 2 was never trained, and ``shapegen train --stage`` can train the stages
      one after the other into the same checkpoint.
    * EMA of the weights (LAS: 0.995 sketch stage 1, 0.999 otherwise) with the usual warm-up
      ``decay_n = min(decay, (1 + n) / (10 + n))`` (n: the stage's steps) so short runs are not
      dominated by the initial weights; kept in the checkpoint under ``las_ema`` and swapped in
      for sampling. Lightning's automatic optimisation with gradient clipping.
    * Training sketches are paired with the exact canonical camera (no azimuth jitter yet).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor

from shapegen.checkpoints import load_checkpoint
from shapegen.config import from_dict, to_dict
from shapegen.data.las_dataset import LASDataConfig, LASDataModule
from shapegen.data.las_prepare import occupancy_shell
from shapegen.data.sketches import LAS_AZIMUTHS, LAS_FOV, view_c2w, view_projection
from shapegen.diffusion.gaussian import alpha_sigma, ancestral_step, cfg_combine, noise, time_grid
from shapegen.engine import rank_rows
from shapegen.errors import ShapegenError
from shapegen.geometry.mesh import Mesh
from shapegen.geometry.voxels import grid_bbox
from shapegen.methods.base import RunConfig
from shapegen.methods.outputs import GenerationResult, write_preview_sheet
from shapegen.nn.ema import ramped_decay
from shapegen.nn.local_attention import local_attention_mask, training_radius
from shapegen.nn.sketch_encoder import SketchEncoderConfig, build_sketch_encoder
from shapegen.nn.sparse_conv import SparseUNet, SparseUNetConfig
from shapegen.nn.unet3d import UNet3D, UNet3DConfig
from shapegen.progress import report

log = logging.getLogger(__name__)

__all__ = ["LASConfig", "LASDiffusion", "LASSample", "LASStageConfig", "SketchTo3DResult", "export_checkpoint", "sketch_to_3d",
           "write_comparison"]


@dataclass
class LASStageConfig:
    """Settings of one stage trained alone (``train.stage`` = its name); 0 keeps the shared value."""

    max_steps: int = 0
    """Optimiser steps of this stage's run (0: ``train.max_steps``)."""
    lr: float = 0.0
    """Learning rate of this stage (0: ``train.lr``)."""
    batch_size: int = 0
    """Batch size of this stage (0: ``data.batch_size``)."""


@dataclass
class LASTrainConfig(RunConfig):
    """The run (:class:`~shapegen.methods.base.RunConfig`), the stage and the optimiser."""

    max_steps: int = 300_000
    """Optimiser steps."""
    grad_clip: float = 1.0
    """Gradient norm clipping (0: off)."""
    log_every: int = 50
    """Steps between loss log entries."""
    stage: Literal["both", "occupancy", "sdf"] = "both"
    """Which stage(s) to optimise; the other stage's weights are left untouched."""
    init_from: str = ""
    """Checkpoint whose weights start this run (e.g. stage 1 trained, now train stage 2)."""
    lr: float = 2e-4
    """Adam(W) learning rate (LAS: 2e-4 sketch stage 1, 1e-4 otherwise)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    ema_decay: float = 0.999
    """EMA decay of the trained stage's weights (0: no EMA); sampling uses the EMA weights."""
    occupancy: LASStageConfig = field(default_factory=LASStageConfig)
    """Stage 1 trained alone (``--stage occupancy``): its own steps, learning rate and batch size."""
    sdf: LASStageConfig = field(default_factory=LASStageConfig)
    """Stage 2 trained alone (``--stage sdf``): its own steps, learning rate and batch size."""


@dataclass
class LASSampleConfig:
    """Sampling defaults."""

    occupancy_steps: int = 50
    """Ancestral steps of stage 1."""
    sdf_steps: int = 20
    """Ancestral steps of stage 2."""
    binarize_below: float = 0.7
    """Stage-1 estimates are binarised with sign() once t falls below this."""
    guidance: float = 1.0
    """Classifier-free guidance weight w (1: the conditional model alone, the LAS default)."""
    radius: float = 2.0
    """Local attention radius at inference (patch widths)."""
    use_ema: bool = True
    """Sample with the EMA weights when the checkpoint has them."""


@dataclass
class LASConfig:
    """Everything that defines a LAS-Diffusion model; saved as plain hyper-parameters."""

    resolution: int = 128
    """SDF grid side G (stage 2); the occupancy grid has side G/2. Taken from the data."""
    use_category: bool = True
    """Condition stage 1 on a category."""
    use_sketch: bool = True
    """Condition stage 1 on a sketch through local attention."""
    categories: list[str] = field(default_factory=list)
    """Category names in label order; filled from the data when training."""
    cond_drop: float = 0.1
    """Probability of dropping each condition in training (for guidance)."""
    self_cond_prob: float = 0.5
    """Probability of self-conditioning stage 1 in training."""
    shell_voxels: float = 2.0
    """Shell half-width in fine voxels (LAS: 1/32 at 128^3)."""
    shell_jitter: float = 0.3
    """Stage-2 training shells use thresholds jittered per voxel by this relative amount."""
    sdf_truncation_voxels: float = 3.2
    """Stage-2 SDF normalisation tau in fine voxels (LAS: 0.05 at 128^3)."""
    occupancy: UNet3DConfig = field(default_factory=UNet3DConfig)
    """Stage-1 UNet (resolution, in/out channels, classes and context are set from this config)."""
    sdf: SparseUNetConfig = field(default_factory=SparseUNetConfig)
    """Stage-2 sparse UNet."""
    sketch_encoder: SketchEncoderConfig = field(default_factory=SketchEncoderConfig)
    """Sketch encoder (small trainable, or timm:MODEL)."""
    train: LASTrainConfig = field(default_factory=LASTrainConfig)
    """Optimisation."""
    sample: LASSampleConfig = field(default_factory=LASSampleConfig)
    """Sampling defaults."""
    data: LASDataConfig = field(default_factory=LASDataConfig)
    """Training data (a folder from ``shapegen las prepare``)."""


@dataclass
class LASSample:
    """Results of :meth:`LASDiffusion.sample`."""

    occupancy: Bool[Tensor, "B g g g"]
    """Stage-1 shells."""
    sdf: Float[Tensor, "B G G G"]
    """Stage-2 SDF grids, normalised to [-1, 1] (times ``tau`` for world units)."""
    meshes: list[Mesh]
    """Marching-cubes meshes in [-1, 1]^3 (empty meshes for empty shells)."""
    sdf_voxels_evaluated: int = 0
    """Voxels stage 2 computed on (8 per occupied shell voxel)."""


class LASDiffusion(pl.LightningModule):
    """Both LAS stages and the sketch encoder; built from :class:`LASConfig` or saved hyper-parameters."""

    CONFIG = LASConfig
    """Config schema (used by ``shapegen train --method las``)."""

    def __init__(self, config: LASConfig | None = None, **hparams: Any) -> None:
        super().__init__()
        cfg = config if isinstance(config, LASConfig) else from_dict(LASConfig, hparams)
        if cfg.resolution % 2 or cfg.resolution < 8:
            raise ShapegenError(f"resolution must be even and >= 8, got {cfg.resolution}")
        if cfg.use_category and not cfg.categories:
            raise ShapegenError("use_category needs category names; prepare data with categories or set use_category=false")
        self.config = cfg
        self.save_hyperparameters(to_dict(cfg), logger=False)
        self.sketch_encoder = build_sketch_encoder(cfg.sketch_encoder) if cfg.use_sketch else None
        occ = cfg.occupancy
        occ.resolution = cfg.resolution // 2
        occ.in_channels, occ.out_channels = 2, 1
        occ.num_classes = len(cfg.categories) if cfg.use_category else 0
        occ.context_dim = self.sketch_encoder.dim if self.sketch_encoder is not None else 0
        occ.context_tokens = self.sketch_encoder.patches**2 if self.sketch_encoder is not None else 0
        self.occupancy_net = UNet3D(occ)
        cfg.sdf.in_channels, cfg.sdf.out_channels = 1, 1
        self.sdf_net = SparseUNet(cfg.sdf)
        # Optimiser steps each stage has had (occupancy, sdf); saved with the weights.
        self.register_buffer("stage_steps", torch.zeros(2, dtype=torch.long))
        self._ema: dict[str, Tensor] = {}

    # ------------------------------------------------------------------ stages and EMA
    STAGE_PREFIXES: ClassVar[dict[int, tuple[str, ...]]] = {0: ("occupancy_net.", "sketch_encoder."), 1: ("sdf_net.",)}
    """Parameter name prefixes of stage 1 (index 0) and stage 2 (index 1)."""

    def trained_stages(self) -> tuple[int, ...]:
        """Stage indices optimised by ``train.stage`` (0: occupancy, 1: sdf)."""
        return {"both": (0, 1), "occupancy": (0,), "sdf": (1,)}[self.config.train.stage]

    def require_trained(self, stage: int) -> None:
        """Raise one line if a stage of this model has never been trained."""
        if int(self.stage_steps[stage]) > 0:
            return
        name, flag = ("stage 1 (occupancy)", "occupancy") if stage == 0 else ("stage 2 (SDF)", "sdf")
        other = "stage 2 needs its shells" if stage == 0 else "stage 1 only gives shells"
        raise ShapegenError(f"{name} of this model was never trained ({other}); run 'shapegen train --method las "
                            f"--stage {flag} -o RUN' with the same RUN folder, then use RUN/checkpoints/last.ckpt")

    @torch.no_grad()
    def update_ema(self) -> None:
        """One EMA step for the parameters of the stages being trained (warm-up as in the module doc)."""
        decay = self.config.train.ema_decay
        if decay <= 0:
            return
        for name, p in self.named_parameters():
            stage = next((s for s, pre in self.STAGE_PREFIXES.items() if name.startswith(pre)), None)
            if stage not in self.trained_stages() or not p.requires_grad:
                continue
            n = int(self.stage_steps[stage])
            d = ramped_decay(decay, n)
            e = self._ema.get(name)
            if e is None or e.shape != p.shape:
                self._ema[name] = p.detach().clone()
            else:
                self._ema[name] = e.to(p.device).lerp_(p.detach(), 1 - d)

    @contextmanager
    def ema_weights(self) -> Iterator[None]:
        """Temporarily load the EMA weights (if any, and ``sample.use_ema``)."""
        if not self._ema or not self.config.sample.use_ema:
            yield
            return
        params = dict(self.named_parameters())
        backup = {}
        with torch.no_grad():
            for name, e in self._ema.items():
                p = params.get(name)
                if p is not None and p.shape == e.shape:
                    backup[name] = p.detach().clone()
                    p.copy_(e.to(p.device, p.dtype))
        try:
            yield
        finally:
            with torch.no_grad():
                for name, b in backup.items():
                    params[name].copy_(b)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        # Right after the optimiser step: update the EMA, then count the step. Not in
        # on_train_batch_end: Lightning runs callbacks' on_train_batch_end (where ModelCheckpoint
        # saves) before the module's, so the checkpoint of a step would miss its EMA update and
        # step count, and a resumed run would drift from an uninterrupted one.
        super().optimizer_step(*args, **kwargs)
        self.update_ema()
        for s in self.trained_stages():
            self.stage_steps[s] += 1

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["las_ema"] = {k: v.detach().cpu() for k, v in self._ema.items()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        upgrade_state(checkpoint)
        self._ema = {k: v.to(self.device) for k, v in checkpoint.get("las_ema", {}).items()}

    # ------------------------------------------------------------------ conditions
    @property
    def occ_side(self) -> int:
        return self.config.resolution // 2

    @property
    def tau(self) -> float:
        """Stage-2 SDF normalisation in world units."""
        return self.config.sdf_truncation_voxels * 2.0 / self.config.resolution

    def class_index(self, name: str | None) -> int:
        """Label of a category name (``None``: the null class)."""
        cats = self.config.categories
        if name is None or not self.config.use_category:
            if name is not None:
                raise ShapegenError("this model is not category-conditioned; drop --category")
            return len(cats)
        if name not in cats:
            raise ShapegenError(f"unknown category '{name}'; this model knows: {', '.join(cats) or '(none)'}")
        return cats.index(name)

    def _tokens(self, sketch: Tensor | None, keep: Tensor | None = None) -> Tensor | None:
        if self.sketch_encoder is None:
            return None
        size = self.config.sketch_encoder.image_size
        if sketch is None:
            sketch = torch.zeros(1, size, size, device=self.device)
        sketch = sketch.to(self.device).float()
        if keep is not None:
            sketch = sketch * keep.float().view(-1, 1, 1)  # dropped -> blank paper
        return self.sketch_encoder(sketch)

    def _masks(self, azimuth: Tensor, radius: float | Tensor) -> dict[int, Tensor] | None:
        if self.sketch_encoder is None:
            return None
        size = self.config.sketch_encoder.image_size
        az = azimuth.to(self.device).float()
        proj = view_projection(torch.nan_to_num(az).cpu(), size).to(self.device)
        proj = torch.where(torch.isnan(az).view(-1, 1, 1), torch.full_like(proj, float("nan")), proj)
        net = self.occupancy_net
        return {r: local_attention_mask(r, proj, self.sketch_encoder.patches, size, radius)
                for r in set(net.level_res) & set(net.config.attention_resolutions)}

    @staticmethod
    def view_azimuth(view: Tensor) -> Tensor:
        """Canonical view indices (-1: none) to azimuths in degrees (NaN: no view)."""
        table = torch.tensor([*LAS_AZIMUTHS, float("nan")], device=view.device)
        return table[torch.where(view < 0, torch.full_like(view, len(LAS_AZIMUTHS)), view)]

    # ------------------------------------------------------------------ losses
    def occupancy_x0(self, x_t: Tensor, x0_sc: Tensor, t: Tensor, labels: Tensor | None, tokens: Tensor | None,
                     masks: dict[int, Tensor] | None) -> Tensor:
        """Stage-1 x0 estimate (tanh-free; the target is +-1)."""
        if tokens is not None and tokens.shape[0] != x_t.shape[0]:
            tokens = tokens.expand(x_t.shape[0], -1, -1)
        return self.occupancy_net(torch.cat([x_t, x0_sc], 1), t, labels, tokens, masks)

    def occupancy_loss(self, batch: dict) -> Tensor:
        """x0-prediction MSE of stage 1 with self-conditioning and condition dropout."""
        shell = batch["shell"].float()
        b = shell.shape[0]
        x0 = (shell * 2 - 1)[:, None]
        # Every per-sample draw through rank_rows: the same values however the batch is split
        # over devices (one process with B samples = two with B / 2 each).
        dev = self.device
        t = rank_rows(lambda n: torch.rand(n, device=dev), b, self)
        x_t = noise(x0, t, rank_rows(lambda n: torch.randn((n, *x0.shape[1:]), device=dev, dtype=x0.dtype), b, self))
        dropped = rank_rows(lambda n: torch.rand(n, device=dev), b, self) < self.config.cond_drop
        labels = None
        if self.config.use_category:
            labels = batch["label"].clone()
            labels[dropped] = self.occupancy_net.null_class
        tokens = masks = None
        if self.sketch_encoder is not None:
            keep = rank_rows(lambda n: torch.rand(n, device=dev), b, self) >= self.config.cond_drop
            tokens = self._tokens(batch["sketch"], keep)
            masks = self._masks(self.view_azimuth(batch["view"]), rank_rows(lambda n: training_radius(n, device=dev), b, self))
        x0_sc = torch.zeros_like(x0)
        if torch.rand(()) < self.config.self_cond_prob:
            with torch.no_grad():
                x0_sc = self.occupancy_x0(x_t, x0_sc, t, labels, tokens, masks).detach()
        return F.mse_loss(self.occupancy_x0(x_t, x0_sc, t, labels, tokens, masks), x0)

    def perturbed_shell(self, sdf: Float[Tensor, "B G G G"]) -> Bool[Tensor, "B g g g"]:
        """Training shells for stage 2: per-voxel jittered threshold (never empty)."""
        base = self.config.shell_voxels * 2.0 / self.config.resolution
        j = self.config.shell_jitter
        thr = base * (1 + (rank_rows(lambda n: torch.rand((n, *sdf.shape[1:]), device=sdf.device, dtype=sdf.dtype), sdf.shape[0], self) * 2 - 1) * j)
        shell = occupancy_shell(sdf, thr)
        empty = ~shell.flatten(1).any(1)
        if bool(empty.any()):
            shell[empty] = occupancy_shell(sdf[empty], base * (1 + j))
        return shell

    @staticmethod
    def shell_children(shell: Bool[Tensor, "B g g g"]) -> Tensor:
        """``(b, i, j, k)`` of the 8 fine children of every occupied voxel."""
        c = torch.nonzero(shell)
        off = torch.tensor([[0, i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], device=shell.device)
        scale = torch.tensor([1, 2, 2, 2], device=shell.device)
        return (c[:, None] * scale + off[None]).reshape(-1, 4)

    def sdf_loss(self, batch: dict) -> Tensor:
        """Per-shape x0 MSE of stage 2 on the children of a perturbed shell."""
        sdf = batch["sdf"].float()
        b = sdf.shape[0]
        coords = self.shell_children(self.perturbed_shell(sdf))
        x0 = (sdf[coords[:, 0], coords[:, 1], coords[:, 2], coords[:, 3]] / self.tau).clamp(-1, 1)[:, None]
        t = rank_rows(lambda n: torch.rand(n, device=sdf.device), b, self)
        a, s = alpha_sigma(t)
        bi = coords[:, 0]
        # Noise from a dense per-sample grid, read at the shell's voxels (per sample, so it does
        # not depend on how the batch is split over devices).
        dense = rank_rows(lambda n: torch.randn((n, *sdf.shape[1:]), device=sdf.device, dtype=x0.dtype), b, self)
        x_t = a[bi, None] * x0 + s[bi, None] * dense[coords[:, 0], coords[:, 1], coords[:, 2], coords[:, 3]][:, None]
        pred = self.sdf_net(x_t, coords, self.config.resolution, t)
        err = ((pred - x0) ** 2)[:, 0]
        per = torch.zeros(b, device=self.device).index_add_(0, bi, err) / torch.bincount(bi, minlength=b).clamp_min(1)
        return per.mean()

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        stage = self.config.train.stage
        loss = torch.zeros((), device=self.device)
        if stage in ("both", "occupancy"):
            lo = self.occupancy_loss(batch)
            self.log("loss_occupancy", lo, prog_bar=True, batch_size=batch["shell"].shape[0])
            loss = loss + lo
        if stage in ("both", "sdf"):
            ls = self.sdf_loss(batch)
            self.log("loss_sdf", ls, prog_bar=True, batch_size=batch["sdf"].shape[0])
            loss = loss + ls
        return loss

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        stage = self.config.train.stage
        params = []
        if stage in ("both", "occupancy"):
            params += list(self.occupancy_net.parameters())
            if self.sketch_encoder is not None:
                params += [p for p in self.sketch_encoder.parameters() if p.requires_grad]
        if stage in ("both", "sdf"):
            params += list(self.sdf_net.parameters())
        return params

    def configure_optimizers(self):
        tc = self.config.train
        return torch.optim.AdamW(self.trainable_parameters(), lr=tc.lr, weight_decay=tc.weight_decay)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample_occupancy(
        self,
        num: int,
        labels: Tensor | None = None,
        sketch: Tensor | None = None,
        azimuth: Tensor | None = None,
        *,
        steps: int | None = None,
        guidance: float | None = None,
        radius: float | None = None,
        generator: torch.Generator | None = None,
    ) -> Bool[Tensor, "B g g g"]:
        """Stage 1: ancestral sampling of occupancy shells (see the module doc)."""
        sc = self.config.sample
        steps = steps or sc.occupancy_steps
        w = sc.guidance if guidance is None else guidance
        g = self.occ_side
        dev = self.device
        x = torch.randn(num, 1, g, g, g, generator=generator, device=dev)
        null = None
        if labels is not None:
            null = torch.full_like(labels, self.occupancy_net.null_class)
        tokens = masks = tok_null = None
        if self.sketch_encoder is not None:
            tokens = self._tokens(sketch)
            tok_null = self._tokens(None)
            az = azimuth if azimuth is not None else torch.full((num,), float("nan"))
            masks = self._masks(az.expand(num) if az.numel() == 1 else az, sc.radius if radius is None else radius)
        x0 = torch.zeros_like(x)
        grid = time_grid(steps).tolist()
        for k, (t, s) in enumerate(itertools.pairwise(grid)):
            tt = torch.full((num,), t, device=dev)
            pred = self.occupancy_x0(x, x0, tt, labels, tokens, masks)
            if w != 1.0:
                pred = cfg_combine(pred, self.occupancy_x0(x, x0, tt, null, tok_null, masks), w)
            pred = pred.clamp(-1, 1)
            if t < sc.binarize_below:
                pred = torch.where(pred >= 0, 1.0, -1.0)
            x0 = pred
            x = ancestral_step(x, pred, t, s, generator)
            report("occupancy", k + 1, steps)
        return x[:, 0] > 0

    @torch.no_grad()
    def sample_sdf(
        self, shell: Bool[Tensor, "B g g g"], *, steps: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[Float[Tensor, "B G G G"], int]:
        """Stage 2: SDF diffusion on the children of the shell voxels only; returns the dense grids
        (outside +1, enclosed -1) and the number of voxels computed on."""
        from scipy.ndimage import binary_fill_holes

        steps = steps or self.config.sample.sdf_steps
        b, gr = shell.shape[0], self.config.resolution
        coords = self.shell_children(shell.to(self.device))
        out = torch.ones(b, gr, gr, gr, device=self.device)
        active = torch.zeros(b, gr, gr, gr, dtype=torch.bool, device=self.device)
        active[coords[:, 0], coords[:, 1], coords[:, 2], coords[:, 3]] = True
        for i in range(b):  # enclosed voxels outside the shell are inside the shape
            filled = torch.from_numpy(binary_fill_holes(active[i].cpu().numpy())).to(self.device)
            out[i][filled & ~active[i]] = -1.0
        if coords.shape[0] == 0:
            return out, 0
        from shapegen.nn.sparse_conv import build_levels

        levels = build_levels(coords, gr, b, self.sdf_net.depth)
        x = torch.randn(coords.shape[0], 1, generator=generator, device=self.device)
        grid = time_grid(steps).tolist()
        for k, (t, s) in enumerate(itertools.pairwise(grid)):
            pred = self.sdf_net(x, coords, gr, torch.full((b,), t, device=self.device), levels).clamp(-1, 1)
            x = ancestral_step(x, pred, t, s, generator)
            report("sdf", k + 1, steps)
        out[coords[:, 0], coords[:, 1], coords[:, 2], coords[:, 3]] = x[:, 0].clamp(-1, 1)
        return out, int(coords.shape[0])

    @torch.no_grad()
    def sample(
        self,
        num: int = 1,
        *,
        category: str | None = None,
        sketch: Float[Tensor, "B S S"] | Float[Tensor, "S S"] | None = None,
        azimuth: float | None = None,
        seed: int = 0,
        occupancy_steps: int | None = None,
        sdf_steps: int | None = None,
        guidance: float | None = None,
        radius: float | None = None,
    ) -> LASSample:
        """Generate ``num`` shapes, deterministically for a seed.

        Args:
            num: shapes to generate.
            category: category name (category-conditioned models), None: null class.
            sketch: ink map(s) of ``sketch_encoder.image_size`` (see :func:`shapegen.data.sketches.load_sketch`).
            azimuth: the sketch's view azimuth in degrees (canonical: 0, 45, ..., 180); None: global attention.
            seed: noise seed.
            occupancy_steps, sdf_steps, guidance, radius: override the ``sample`` config.
        """
        self.require_trained(0)
        self.require_trained(1)
        was_training = self.training
        self.eval()
        try:
            with self.ema_weights():
                return self._sample(num, category, sketch, azimuth, seed, occupancy_steps, sdf_steps, guidance, radius)
        finally:
            self.train(was_training)

    def _sample(self, num, category, sketch, azimuth, seed, occupancy_steps, sdf_steps, guidance, radius) -> LASSample:
        from shapegen.geometry.extract import marching_cubes

        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        labels = None
        if self.config.use_category:
            labels = torch.full((num,), self.class_index(category), dtype=torch.long, device=self.device)
        elif category is not None:
            self.class_index(category)
        if sketch is not None:
            if self.sketch_encoder is None:
                raise ShapegenError("this model is not sketch-conditioned; train with use_sketch=true or drop the sketch")
            sketch = sketch[None] if sketch.ndim == 2 else sketch
            size = self.config.sketch_encoder.image_size
            if sketch.shape[-1] != size:
                from shapegen.data.sketches import binarize_sketch

                sketch = torch.stack([binarize_sketch(s.cpu(), size) for s in sketch])
            sketch = sketch.expand(num, -1, -1) if sketch.shape[0] == 1 else sketch
        az = torch.tensor([float("nan") if azimuth is None or sketch is None else float(azimuth)])
        occ = self.sample_occupancy(num, labels, sketch, az, steps=occupancy_steps, guidance=guidance, radius=radius, generator=gen)
        sdf, evaluated = self.sample_sdf(occ, steps=sdf_steps, generator=gen)
        meshes = []
        for i in range(num):
            if not bool(occ[i].any()) or not bool((sdf[i] < 0).any()):
                meshes.append(Mesh(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long)))
                continue
            meshes.append(marching_cubes(sdf[i].cpu(), grid_bbox(self.config.resolution), 0.0))
        return LASSample(occ, sdf, meshes, evaluated)

    # ------------------------------------------------------------------ orchestration
    @classmethod
    def for_training(cls, config: LASConfig) -> tuple[LASDiffusion, LASDataModule]:
        """Read the prepared folder, fill resolution and categories, build (and optionally initialise) the system.

        A stage trained alone takes its own ``train.<stage>`` settings (steps, learning rate, batch
        size) into ``train.max_steps``, ``train.lr`` and ``data.batch_size``, so the saved config says
        what the run did.
        """
        apply_stage_settings(config)
        dm = LASDataModule(config.data, config.sketch_encoder.image_size, seed=config.train.seed)
        config.resolution = dm.resolution
        if config.use_category:
            config.categories = dm.categories
        model = cls(config)
        if config.train.init_from:
            path = Path(config.train.init_from)
            if not path.is_file():
                raise ShapegenError(f"train.init_from '{path}' not found; give a LAS checkpoint")
            ckpt = load_checkpoint(path)
            upgrade_state(ckpt)
            missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
            if unexpected or missing:
                raise ShapegenError(f"'{path}' does not match this config (missing {len(missing)}, unexpected {len(unexpected)} weights)")
            model._ema = dict(ckpt.get("las_ema", {}))
        return model, dm

    @staticmethod
    def resumable(config: LASConfig, checkpoint: str | Path) -> bool:
        """Whether ``shapegen train`` may resume ``checkpoint`` (same ``train.stage``); otherwise it
        starts the asked stage from the checkpoint's weights (``train.init_from``) and keeps the other."""
        hp = load_checkpoint(checkpoint).get("hyper_parameters", {})
        return hp.get("train", {}).get("stage", "both") == config.train.stage

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
        resolution: int | None = None,
        preview_size: int = 256,
    ) -> GenerationResult:
        """Sample ``num`` shapes (category-conditioned, no sketch) and write ``sample_XX.glb`` and ``preview.png``.

        ``prompt``, ``solver`` and ``resolution`` are accepted for the generic ``shapegen generate``
        command; LAS has no text prompts or ODE solvers and meshes at the model's own resolution.
        """
        from shapegen.geometry.export import export_mesh

        if prompt is not None:
            raise ShapegenError("LAS is conditioned on categories and sketches, not prompts; use --class or sketch-to-3d")
        out = Path(out_dir)
        res = self.sample(num, category=cls, seed=seed, occupancy_steps=steps, guidance=guidance)
        result = GenerationResult(out_dir=out)
        for i, mesh in enumerate(res.meshes):
            if mesh.num_faces == 0:
                result.empty.append(i)
                continue
            result.mesh_files.append(export_mesh(mesh, out / f"sample_{i:02d}.glb"))
        # One mesh per row, through the LAS sketch camera at 30 degrees azimuth.
        result.preview = write_preview_sheet(res.meshes, out / "preview.png", preview_size, columns=1, views=[view_c2w(30.0)], fov_deg=LAS_FOV)
        return result


# ---------------------------------------------------------------------------- sketch-to-3D
@dataclass
class SketchTo3DResult:
    """What :func:`sketch_to_3d` made."""

    mesh: Mesh
    """Marching-cubes mesh in [-1, 1]^3 (+Y up); no faces when the model produced no surface."""
    sketch: Float[Tensor, "S S"]
    """The ink map the model saw (1 = stroke), at its sketch size."""
    sample: LASSample
    """Stage-1 shell and stage-2 SDF of the shape."""
    model: LASDiffusion
    """The model that sampled it (reuse it for the next sketch)."""
    view: float | None = None
    """Azimuth (degrees) the model attended through: the one given, the estimated one, or None (global)."""
    view_probs: Tensor | None = None
    """With an estimated view: the view classifier's probabilities of the five LAS views."""


def sketch_to_3d(
    sketch: str | Path | Tensor,
    *,
    category: str | None = None,
    view: float | None = None,
    checkpoint: str | Path | None = None,
    model: LASDiffusion | None = None,
    seed: int = 0,
    guidance: float | None = None,
    radius: float | None = None,
    occupancy_steps: int | None = None,
    sdf_steps: int | None = None,
    device: str | torch.device = "cpu",
    estimate_view: bool | str | Path = True,
) -> SketchTo3DResult:
    """A sketch (and its view) to a mesh with a LAS model, by default the shipped demo model.

    >>> from shapegen.methods.las import sketch_to_3d
    >>> r = sketch_to_3d("assets/models/las_demo/examples/chair__chair_00060_contour_0.png", category="chair", view=0)  # doctest: +SKIP
    >>> r.mesh.num_faces > 0  # doctest: +SKIP
    True

    Args:
        sketch: an image file (PNG/JPEG; dark strokes on light paper or the reverse) or an ink map
            (1 = stroke) of any size.
        category: category (category-conditioned models; checked before sampling).
        view: azimuth in degrees of the sketch's view (LAS views: 0, 45, 90, 135, 180); None: estimated
            (``estimate_view``) or, without estimation, the sketch is attended globally, which the LAS
            model never trains on.
        checkpoint: a LAS ``.ckpt``; None with no ``model``: the method's shipped model
            (``METHODS["las"].default_checkpoint``).
        model: an already loaded model (instead of ``checkpoint``).
        seed: noise seed; the same seed gives the same shape.
        guidance, radius, occupancy_steps, sdf_steps: sampling settings (None: the model's own,
            the ones its metrics were measured with).
        device: where a loaded checkpoint runs.
        estimate_view: with no ``view``: True picks the most likely of the five LAS views with the
            shipped view classifier (:mod:`shapegen.methods.las_view`), a path with the classifier
            saved there, False attends globally.

    Raises:
        ShapegenError: a missing or non-LAS checkpoint, a model that is not sketch-conditioned, an
            unknown category, a view that is not a finite number, an unreadable sketch, or a
            missing view classifier.
    """
    import math

    from shapegen.data.sketches import binarize_sketch, load_sketch

    if view is not None and not math.isfinite(view):
        raise ShapegenError("the view must be a finite azimuth in degrees, e.g. 45")
    if model is None:
        from shapegen.commands.methods import load_system

        model = load_system("las", checkpoint, device)  # None: the shipped model
    if not model.config.use_sketch:
        where = f" '{checkpoint}'" if checkpoint else ""
        raise ShapegenError(f"the LAS model{where} is not sketch-conditioned; use 'shapegen generate --method las'")
    if category is not None or model.config.use_category:
        model.class_index(category)  # fail fast on an unknown category
    size = model.config.sketch_encoder.image_size
    ink = load_sketch(sketch, size) if isinstance(sketch, (str, Path)) else binarize_sketch(sketch.float().cpu(), size)
    probs = None
    if view is None and estimate_view is not False:
        from shapegen.data.sketches import LAS_AZIMUTHS
        from shapegen.methods.las_view import estimate_view as pick_view
        from shapegen.methods.las_view import load_view_classifier

        classifier = load_view_classifier(None if estimate_view is True else estimate_view)
        full = load_sketch(sketch, classifier.config.image_size) if isinstance(sketch, (str, Path)) else sketch
        index, probs = pick_view(full, classifier, category)
        view = LAS_AZIMUTHS[index]
    out = model.sample(1, category=category, sketch=ink, azimuth=view, seed=seed, occupancy_steps=occupancy_steps,
                       sdf_steps=sdf_steps, guidance=guidance, radius=radius)
    return SketchTo3DResult(out.meshes[0], ink, out, model, view, probs)


def write_comparison(sketch: Float[Tensor, "S S"], mesh: Mesh, azimuth: float, path: str | Path, size: int = 256) -> Path:
    """The input sketch beside renders of ``mesh`` from the sketch's view and from two others
    (azimuth + 90 and + 180), all with the LAS camera, as a PNG."""
    from renderers.preview import render_sheet, save_image

    ink = F.interpolate(sketch[None, None].float(), size=(size, size), mode="area")[0, 0]
    drawing = np.repeat(((1 - ink.clamp(0, 1)) * 255).round().to(torch.uint8).numpy()[..., None], 3, -1)
    views = [view_c2w(az) for az in (azimuth, azimuth + 90.0, azimuth + 180.0)]
    return save_image(Path(path), render_sheet([[drawing, mesh]], size, views=views, fov_deg=LAS_FOV))


def export_checkpoint(model: LASDiffusion, path: str | Path, use_ema: bool = True) -> Path:
    """Write ``model`` in the shipped form: the EMA weights in place of the raw ones, no EMA copy,
    no optimiser state, both stages (``train.ema_decay = 0``, ``train.stage = both``), with its
    current ``sample`` settings (e.g. a guidance weight chosen on validation shapes); atomic.
    Loads with :func:`shapegen.checkpoints.load_module` like a training checkpoint."""
    from shapegen.checkpoints import save_checkpoint

    hp = to_dict(model.config)
    hp["train"] |= {"ema_decay": 0.0, "stage": "both", "init_from": ""}
    from contextlib import nullcontext

    with model.ema_weights() if use_ema else nullcontext():
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return save_checkpoint({"state_dict": state, "hyper_parameters": hp, "pytorch-lightning_version": pl.__version__}, path)


def export_model(checkpoint: str | Path, out: str | Path, *, use_ema: bool = True):
    """``shapegen export-model --method las``: the shipped form of a training checkpoint (LAS keeps
    its EMA weights beside the state dict, so the generic export cannot fold them)."""
    from shapegen.checkpoints import load_checkpoint, load_module
    from shapegen.methods.export import ExportResult, check_export_paths

    src, dst = check_export_paths(checkpoint, out)
    step = load_checkpoint(src).get("global_step")
    export_checkpoint(load_module(LASDiffusion, src), dst, use_ema=use_ema)
    return ExportResult(dst, src.stat().st_size, dst.stat().st_size, use_ema, None if step is None else int(step))


def apply_stage_settings(config: LASConfig) -> None:
    """Copy the set values of ``train.<stage>`` (when one stage is trained alone) into the shared keys."""
    if config.train.stage not in ("occupancy", "sdf"):
        return
    own: LASStageConfig = getattr(config.train, config.train.stage)
    if own.max_steps < 0 or own.lr < 0 or own.batch_size < 0:
        raise ShapegenError(f"train.{config.train.stage}: max_steps, lr and batch_size must be >= 0 (0: the shared value)")
    if own.max_steps:
        config.train.max_steps = own.max_steps
    if own.lr:
        config.train.lr = own.lr
    if own.batch_size:
        config.data.batch_size = own.batch_size


def upgrade_state(checkpoint: dict) -> None:
    """Checkpoints written before ``stage_steps`` existed had both stages trained together."""
    state = checkpoint.get("state_dict", {})
    if state and "stage_steps" not in state:
        state["stage_steps"] = torch.ones(2, dtype=torch.long)

