"""Occ-SDF hybrid: room-scale surface reconstruction from posed images with depth and normal priors.

Paper: Xiaoyang Lyu, Peng Dai, Zizhang Li, Dongyu Yan, Yi Lin, Yifan Peng, Xiaojuan Qi,
"Learning A Room with the Occ-SDF Hybrid: Signed Distance Function Mingled with Occupancy Aids
Scene Representation", ICCV 2023, arXiv 2303.09152; built on MonoSDF (Yu et al. 2022, arXiv
2206.00665).

Equations implemented (``f`` the SDF, positive in free space; ``o = sigmoid(-10 o_raw)``):

- VolSDF density ``sigma = (1/beta) Psi_beta(-f)`` with learnable ``beta`` (init 0.1) and the
  error-bounded sampler (VolSDF Alg. 1; :class:`renderers.ErrorBoundedSampler`).
- SDF rendering ``w_i = T_i (1 - exp(-sigma_i delta_i))``; colour ``C = sum_i w_i D(F_i)``
  (L^sdf_rgb), feature colour ``C_F = D(sum_i w_i F_i)`` (Eq. 8-9, L^sdfF_rgb), depth
  ``sum w_i t_i / sum w_i`` times the ray's cosine to the optical axis (z-depth), normals
  ``R^T sum w_i grad f_i / |grad f_i|`` (camera frame).
- Occupancy rendering on the same samples (Eq. 14, soft as in the code):
  ``w^o_i = o_i prod_{j<i} (1 - o_j + 1e-10)``; depth and normals ``grad o_raw / |grad o_raw|``
  rendered with ``w^o``.
- Scale-and-shift-invariant depth (MonoSDF Eq. 13): per batch ``(w, q) = argmin sum m
  (w D + q - Dbar)^2`` in closed form, loss ``sum m (w D + q - Dbar)^2 / (2 M)``.
- Normal loss ``|n - nbar|_1 + (1 - n . nbar)``; eikonal ``E(|grad f| - 1)^2`` on uniform and
  near-surface points; smoothness ``E |n(x) - n(x + eps)|``.
- Eq. 15: ``L = L_rgb + l1 L_rgbF + l2 L_eik + l3 L^occ_depth + l4 L^sdf_depth + l5 L^occ_normal
  + l6 L^sdf_normal`` with the paper's (Replica) ``l = (1, 0.05, 0.5, 0.1, 0.1, 0.05)``.

Deviations: the occupancy normal uses ``grad o_raw`` (the same direction as ``-grad o`` but not
lost where the sigmoid saturates); the last sample interval ends at the scene box instead of
``1e10``; the depth-gradient term (meaningless on random pixels, see the notes) is dropped; the
prior depth transform ``a d + b`` is configurable (MonoSDF hard-codes ``50 d + 0.5`` for
Omnidata); batches are drawn from a generator seeded by the step, so a resumed run is identical.
``occupancy=False`` and ``feature_rgb=False`` give the MonoSDF baseline in the same code.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from renderers.rays import generate_rays, ray_aabb_intersect
from renderers.sdf_samplers import ErrorBoundedSampler
from renderers.volume import LaplaceDensity, volume_render
from shapegen.config import from_dict, to_dict
from shapegen.data.scenes import Scene
from shapegen.errors import ShapegenError
from shapegen.fields.occsdf import (
    ColorNetwork,
    ColorNetworkConfig,
    GeometryNetwork,
    GeometryNetworkConfig,
)
from shapegen.methods.base import RunConfig

log = logging.getLogger(__name__)

__all__ = ["OccSDFConfig", "OccSDFSystem", "RayOutputs", "metric_depth_loss", "normal_loss", "scale_shift_invariant_depth_loss"]


# ----------------------------------------------------------------------------------- configs
@dataclass
class OccSDFLossConfig:
    """Loss weights (defaults: the paper's Eq. 15 / the official Replica config) and switches."""

    rgb: float = 1.0
    """Direct colour L1, ``sum w_i D(F_i)`` (L^sdf_rgb)."""
    rgb_feature: float = 1.0
    """Feature colour L1, ``D(sum w_i F_i)`` (L^sdfF_rgb, l1)."""
    eikonal: float = 0.05
    """Eikonal term (l2)."""
    smooth: float = 0.005
    """Normal smoothness (code only; 0 skips its extra network pass)."""
    depth_sdf: float = 0.1
    """SDF depth (l4)."""
    depth_occ: float = 0.5
    """Occupancy depth (l3)."""
    normal_sdf: float = 0.05
    """SDF normal (l6)."""
    normal_occ: float = 0.1
    """Occupancy normal (l5)."""
    occupancy: bool = True
    """Render and supervise the occupancy head (False: MonoSDF baseline)."""
    feature_rgb: bool = True
    """Use the feature colour loss (False: direct colour only)."""
    depth_loss: Literal["auto", "metric", "scale_shift"] = "auto"
    """``metric``: ``sum m (d - d*)^2 / 2M`` against depth in the scene's normalised units (sensor
    depth); ``scale_shift``: MonoSDF's Eq. 13, which first fits ``w d + q`` to the prior per batch
    (monocular priors, known only up to an affine map); ``auto``: metric when the scene says its
    depth is metric (:attr:`shapegen.data.scenes.Scene.depth_is_metric`, RGB-D), else scale_shift.
    The scale-and-shift-invariant loss on metric depth lets each batch fit the sensor up to its
    own scale and shift, so the surface need not sit where the sensor saw it."""
    sensor_sdf: float | None = None
    """Weight of the sensor-depth SDF term (RGB-D only; ``None``: 1.0 when the scene's depth is
    metric, else 0). Not part of Occ-SDF (whose priors are monocular): with sensor depth the SDF
    itself is supervised near each measured point, as RGB-D neural reconstruction does (Neural
    RGB-D, Azinovic et al. 2022): points within ``sensor_sdf_band`` of the measured depth along the
    ray get the signed distance ``(t_d - t) |cos(ray, normal)|`` (L1), points in front of the band
    must lie in free space below the ray distance to the measurement (hinge). It converges in a few
    hundred steps where the rendered depth loss alone needs tens of thousands."""
    sensor_sdf_band: float = 0.1
    """Half-width of the near-surface band of the sensor-depth SDF term, in metres (world units)."""
    sensor_sdf_samples: int = 8
    """Points per ray for the sensor-depth SDF term (two thirds in the band, the rest in front)."""
    sensor_sdf_rays: int = 0
    """Extra rays per step for the sensor-depth SDF term, drawn from all training images (0: only
    the rendered batch's rays). They are not rendered and need no second derivatives, so they cost
    far less than rendered rays and supervise the SDF over the whole scene at every step."""
    depth_prior_scale: float = 1.0
    """Prior depth transform ``a d + b``: a (MonoSDF uses 50 for Omnidata)."""
    depth_prior_shift: float = 0.0
    """Prior depth transform: b (MonoSDF uses 0.5 for Omnidata)."""


@dataclass
class OccSDFTrainConfig(RunConfig):
    """The run (:class:`~shapegen.methods.base.RunConfig`), optimisation and sampling."""

    max_steps: int = 200_000
    """Optimiser steps (the official runs stop at 200k)."""
    rays_per_batch: int = 1024
    """Random pixels of one image per step."""
    lr: float = 5e-4
    """Adam learning rate."""
    grid_lr_factor: float = 20.0
    """Hash-grid learning rate multiplier."""
    lr_decay_to: float = 0.1
    """Exponential decay of the learning rate to this factor at ``max_steps``."""
    beta_init: float = 0.1
    """Initial VolSDF beta."""
    n_samples: int = 64
    """Sampler: final inverse-CDF samples."""
    n_eval: int = 128
    """Sampler: uniform samples and samples per round."""
    n_extra: int = 32
    """Sampler: extra kept samples."""
    sampler_eps: float = 0.1
    """Sampler: opacity error bound."""
    sampler_iters: int = 5
    """Sampler: rounds at most."""
    n_eikonal: int = 1024
    """Uniform eikonal points per step (plus one near-surface point per ray)."""
    checkpoint_every: int = 5000
    """Save ``last.ckpt`` every this many steps."""
    preview_every: int = 5000
    """Render depth and mesh previews every this many steps (0: only at the end)."""
    preview_resolution: int = 128
    """Marching-cubes resolution of preview meshes."""
    mesh_resolution: int = 512
    """Marching-cubes resolution of the final mesh over the normalised cube."""
    render_chunk: int = 1024
    """Rays per chunk when rendering whole images."""


@dataclass
class OccSDFSceneConfig:
    """How the scene folder is read."""

    path: str = ""
    """Scene folder (``shapegen train --method occsdf --set scene.path=DIR``; ``shapegen reconstruct`` takes it as an argument)."""
    downscale: int = 4
    """RGB-D sequences: image downscale factor."""
    stride: int = 1
    """RGB-D sequences: use every n-th frame."""
    max_images: int = 0
    """Use at most this many images (0: all)."""
    max_depth: float = 5.0
    """RGB-D sequences: ignore sensor depth beyond this (metres)."""


@dataclass
class OccSDFConfig:
    """Everything that defines an Occ-SDF model; saved as plain hyper-parameters."""

    num_images: int = 1
    """Images of the scene (size of the appearance embedding); filled from the data."""
    scale_mat: list[float] = field(default_factory=lambda: [1.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 1.0])
    """Normalised -> world 4x4 matrix (row-major); filled from the data."""
    geometry: GeometryNetworkConfig = field(default_factory=GeometryNetworkConfig)
    """Geometry network."""
    color: ColorNetworkConfig = field(default_factory=ColorNetworkConfig)
    """Colour network."""
    loss: OccSDFLossConfig = field(default_factory=OccSDFLossConfig)
    """Loss weights and switches."""
    train: OccSDFTrainConfig = field(default_factory=OccSDFTrainConfig)
    """Optimisation."""
    scene: OccSDFSceneConfig = field(default_factory=OccSDFSceneConfig)
    """Scene reading."""


# ------------------------------------------------------------------------------------ losses
def scale_shift_invariant_depth_loss(
    pred: Float[Tensor, " R"], target: Float[Tensor, " R"], mask: Bool[Tensor, " R"]
) -> Float[Tensor, ""]:
    """MonoSDF's depth loss: fit ``w pred + q`` to ``target`` in closed form, then
    ``sum m (w pred + q - target)^2 / (2 M)``; 0 with fewer than 2 valid rays."""
    m = mask.to(pred.dtype)
    n = m.sum()
    if n < 2:
        return pred.sum() * 0.0
    a00, a01, a11 = (m * pred * pred).sum(), (m * pred).sum(), n
    b0, b1 = (m * pred * target).sum(), (m * target).sum()
    det = a00 * a11 - a01 * a01
    ok = det > 1e-12 * a11 * a11
    w = torch.where(ok, (a11 * b0 - a01 * b1) / det.clamp_min(1e-20), torch.ones_like(det))
    q = torch.where(ok, (-a01 * b0 + a00 * b1) / det.clamp_min(1e-20), (b1 - a01) / n)
    return (m * (w * pred + q - target) ** 2).sum() / (2 * n)


def metric_depth_loss(
    pred: Float[Tensor, " R"], target: Float[Tensor, " R"], mask: Bool[Tensor, " R"]
) -> Float[Tensor, ""]:
    """``sum m (pred - target)^2 / (2 M)`` (the same scale as the invariant loss); 0 without valid rays."""
    m = mask.to(pred.dtype)
    n = m.sum()
    if n < 1:
        return pred.sum() * 0.0
    return (m * (pred - target) ** 2).sum() / (2 * n)


def normal_loss(
    pred: Float[Tensor, "R 3"], target: Float[Tensor, "R 3"], mask: Bool[Tensor, " R"]
) -> tuple[Float[Tensor, ""], Float[Tensor, ""]]:
    """(L1 summed over xyz, 1 - cosine), both averaged over ``mask``; ``pred`` is renormalised."""
    m = mask.to(pred.dtype)
    n = m.sum().clamp_min(1.0)
    p = torch.nn.functional.normalize(pred, dim=-1)
    t = torch.nn.functional.normalize(target, dim=-1)
    l1 = ((p - t).abs().sum(-1) * m).sum() / n
    cos = ((1.0 - (p * t).sum(-1)) * m).sum() / n
    return l1, cos


# ---------------------------------------------------------------------------------- renderer
@dataclass
class RayOutputs:
    """Per-ray results of :meth:`OccSDFSystem.render_rays`."""

    rgb: Float[Tensor, "R 3"]
    """Direct colour ``sum w_i D(F_i)``."""
    rgb_feature: Float[Tensor, "R 3"]
    """Feature colour ``D(sum w_i F_i)``."""
    depth: Float[Tensor, " R"]
    """SDF z-depth (normalised units)."""
    normals: Float[Tensor, "R 3"]
    """SDF normals, world frame (not renormalised)."""
    opacity: Float[Tensor, " R"]
    """SDF accumulated opacity."""
    sign_change: Bool[Tensor, " R"]
    """The SDF changes sign along the ray's samples."""
    depth_occ: Float[Tensor, " R"] | None = None
    """Occupancy z-depth."""
    normals_occ: Float[Tensor, "R 3"] | None = None
    """Occupancy normals, world frame."""
    eikonal_points: Float[Tensor, "R 3"] | None = None
    """One near-surface point per ray (the sampler's)."""


class _Steps(torch.utils.data.IterableDataset):
    """Endless stream of step tokens: batches are drawn inside ``training_step`` from a
    generator seeded by the global step (reproducible across resumes)."""

    def __iter__(self):
        while True:
            yield torch.zeros(())


class OccSDFSystem(pl.LightningModule):
    """Occ-SDF hybrid (or the MonoSDF baseline) fitted to one scene.

    Build from a config (``OccSDFSystem(cfg)``) or a checkpoint
    (``OccSDFSystem.load_from_checkpoint(path)``); attach the scene with :meth:`attach_scene`
    before training (the images are not stored in checkpoints).
    """

    CONFIG = OccSDFConfig
    """Config schema."""

    def __init__(self, config: OccSDFConfig | None = None, **hparams: Any) -> None:
        super().__init__()
        cfg = config if isinstance(config, OccSDFConfig) else from_dict(OccSDFConfig, hparams)
        self.config = cfg
        self.save_hyperparameters(to_dict(cfg), logger=False)
        self.geometry = GeometryNetwork(cfg.geometry)
        self.color = ColorNetwork(cfg.geometry.feature_dim, cfg.num_images, cfg.color)
        self.density = LaplaceDensity(cfg.train.beta_init)
        tc = cfg.train
        self.sampler = ErrorBoundedSampler(
            n_samples=tc.n_samples, n_eval=tc.n_eval, n_extra=tc.n_extra, eps=tc.sampler_eps, max_total_iters=tc.sampler_iters
        )
        self.__dict__["scene"] = None  # not a submodule, not saved
        self._rays: dict[str, Tensor] = {}

    @classmethod
    def for_training(cls, config: OccSDFConfig) -> tuple[OccSDFSystem, None]:
        """Read ``config.scene.path`` and build the system with the scene attached (``shapegen train``);
        the system serves its own batches, so there is no datamodule."""
        if not config.scene.path:
            raise ShapegenError("set the scene folder with --set scene.path=DIR (or use 'shapegen reconstruct DIR')")
        return build_for_scene(config, read_scene(config.scene.path, config.scene)), None

    def write_preview(self, folder: str | Path, step: int) -> None:
        """Colour/depth views and a mesh render of training view 0 at ``step`` (:func:`write_previews`)."""
        write_previews(self, folder, step)

    # ------------------------------------------------------------------ data
    @property
    def scale_mat(self) -> Float[Tensor, "4 4"]:
        return torch.tensor(self.config.scale_mat, dtype=torch.float32).reshape(4, 4)

    def attach_scene(self, scene: Scene) -> None:
        """Use ``scene`` for training; its rays are generated once (all pixels, flat)."""
        if scene.num_images > self.config.num_images:
            raise ShapegenError(f"the scene has {scene.num_images} images but the model was built for {self.config.num_images}")
        self.__dict__["scene"] = scene
        o, d, cos = [], [], []
        for i in range(scene.num_images):
            r = generate_rays(scene.c2w[i], scene.intrinsics(i), opencv=True)
            o.append(r.origins)
            d.append(r.directions)
            cos.append(r.cos_to_axis)
        hw = scene.height * scene.width
        self._rays = {
            "origins": torch.stack(o), "directions": torch.stack(d), "cos": torch.stack(cos),
            "rgb": scene.images.reshape(-1, hw, 3), "depth": scene.depths.reshape(-1, hw),
            "normal": scene.normals.reshape(-1, hw, 3), "mask": scene.masks.reshape(-1, hw),
            "rot": scene.c2w[:, :3, :3],
        }

    def _seed(self, step: int) -> int:
        """The random seed of ``step``: its batch, samples and noise are reproducible from it."""
        return self.config.train.seed * 1_000_003 + step

    def _generator(self, step: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self._seed(step))

    def _rays_at(self, img: Tensor, pix: Tensor) -> dict[str, Tensor]:
        """The training rays at pixel ``pix[i]`` of image ``img[i]``, with each ray's camera rotation and image index."""
        b = {k: v[img, pix] for k, v in self._rays.items() if k != "rot"}
        b["rot"] = self._rays["rot"][img]
        b["image"] = img
        return {k: v.to(self.device) for k, v in b.items()}

    def draw_batch(self, step: int) -> dict[str, Tensor]:
        """Random pixels of one random image, reproducible from ``step``."""
        if not self._rays:
            raise ShapegenError("no scene attached; call attach_scene(scene) before training")
        gen = torch.Generator().manual_seed(self._seed(step))
        n_img, hw = self._rays["depth"].shape
        img = int(torch.randint(n_img, (1,), generator=gen))
        pix = torch.randint(hw, (self.config.train.rays_per_batch,), generator=gen)
        return self._rays_at(torch.full((len(pix),), img, dtype=torch.long), pix)

    def draw_sensor_rays(self, step: int, n: int) -> dict[str, Tensor]:
        """``n`` random pixels of random training images (for the sensor-depth SDF term), reproducible from ``step``."""
        gen = torch.Generator().manual_seed(self._seed(step) + 7_919)
        n_img, hw = self._rays["depth"].shape
        img = torch.randint(n_img, (n,), generator=gen)
        return self._rays_at(img, torch.randint(hw, (n,), generator=gen))

    def train_dataloader(self):
        return torch.utils.data.DataLoader(_Steps(), batch_size=None)

    # ------------------------------------------------------------------ rendering
    def render_rays(
        self,
        origins: Float[Tensor, "R 3"],
        directions: Float[Tensor, "R 3"],
        cos_to_axis: Float[Tensor, " R"],
        image_index: Int[Tensor, " R"],
        *,
        training: bool = False,
        generator: torch.Generator | None = None,
        occupancy: bool | None = None,
    ) -> RayOutputs:
        """Sample with the error-bounded sampler, evaluate both heads, render both."""
        occupancy = self.config.loss.occupancy if occupancy is None else occupancy
        bounds = ray_aabb_intersect(origins, directions, (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0), min_near=1e-3)
        far = torch.maximum(bounds.far, bounds.near + 1e-3)
        beta = self.density.get_beta().detach()
        sdf_fn = lambda x: self.geometry(x)[:, 0]
        eb = self.sampler.sample(sdf_fn, origins, directions, bounds.near, far, beta, training=training, generator=generator)
        s = eb.samples
        with torch.enable_grad():
            x = s.positions(origins, directions)
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            raw = self.geometry(x)
            sdf, o_raw, feat = raw[:, 0], raw[:, 1], raw[:, 2:]
            (grad,) = torch.autograd.grad(sdf, x, torch.ones_like(sdf), create_graph=training, retain_graph=True)
            grad_o = None
            if occupancy:
                (grad_o,) = torch.autograd.grad(o_raw, x, torch.ones_like(o_raw), create_graph=training, retain_graph=True)
        normals = torch.nn.functional.normalize(grad, dim=-1)
        ri = s.ray_indices
        col = self.color(x, directions[ri], normals, feat, image_index[ri])
        out = volume_render(s, sigmas=self.density(sdf), rgb=self.color.decode(col), normals=normals, features=col, backend="torch")
        opacity = out.opacity[:, 0]
        depth = out.depth_normalized[:, 0] * cos_to_axis
        dense_sdf = s.to_dense(sdf.detach())
        sign_change = (dense_sdf.amin(1) < 0) & (dense_sdf.amax(1) > 0)
        res = RayOutputs(out.rgb, self.color.decode(out.features), depth, out.normals, opacity, sign_change,
                         eikonal_points=origins + eb.t_eikonal[:, None] * directions)
        if occupancy:
            occ = GeometryNetwork.occupancy(o_raw)
            ro = volume_render(s, alphas=occ, normals=torch.nn.functional.normalize(grad_o, dim=-1), backend="torch")
            res.depth_occ = ro.depth_normalized[:, 0] * cos_to_axis
            res.normals_occ = ro.normals
        return res

    # ------------------------------------------------------------------ losses
    def _sdf_grad(self, x: Tensor, create_graph: bool) -> Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            f = self.geometry(x)[:, 0]
            (g,) = torch.autograd.grad(f, x, torch.ones_like(f), create_graph=create_graph)
        return g

    def depth_loss_function(self):
        """The depth loss ``loss.depth_loss`` asks for, ``auto`` decided by the attached scene."""
        mode = self.config.loss.depth_loss
        if mode == "auto":
            scene = self.__dict__.get("scene")
            mode = "metric" if scene is not None and scene.depth_is_metric else "scale_shift"
        return metric_depth_loss if mode == "metric" else scale_shift_invariant_depth_loss

    def sensor_sdf_weight(self) -> float:
        """The weight of the sensor-depth SDF term (``loss.sensor_sdf``, ``None`` decided by the scene)."""
        w = self.config.loss.sensor_sdf
        if w is None:
            scene = self.__dict__.get("scene")
            w = 1.0 if scene is not None and scene.depth_is_metric else 0.0
        return float(w)

    def sensor_sdf_loss(self, b: dict[str, Tensor], gen: torch.Generator) -> Tensor:
        """The sensor-depth SDF term (:attr:`OccSDFLossConfig.sensor_sdf`) on the rays of ``b``."""
        lc = self.config.loss
        valid = b["depth"] > 0
        if not bool(valid.any()):
            return b["depth"].sum() * 0.0
        o, d, cos = b["origins"][valid], b["directions"][valid], b["cos"][valid]
        t_d = b["depth"][valid] / cos  # ray distance to the measured point (normalised units)
        band = lc.sensor_sdf_band / float(self.scale_mat[0, 0])
        # |cos| between the ray and the surface normal turns the ray distance into a distance to the
        # plane of the measured point; where the normal is unknown (depth edges) keep the ray distance.
        n_cam = b["normal"][valid]
        d_cam = torch.einsum("rji,rj->ri", b["rot"][valid], d)
        c = (n_cam * d_cam).sum(-1).abs()
        c = torch.where(n_cam.norm(dim=-1) > 0.5, c.clamp_min(0.2), torch.ones_like(c))
        k = max(2, lc.sensor_sdf_samples)
        k_near = max(1, (2 * k) // 3)
        u = torch.rand(len(t_d), k, generator=gen, device=self.device)
        t_near = t_d[:, None] + (2 * u[:, :k_near] - 1) * band
        t_free = u[:, k_near:] * (t_d[:, None] - band).clamp_min(0.0)
        t = torch.cat([t_near, t_free], 1)
        x = o[:, None] + t[..., None] * d[:, None]
        f = self.geometry(x.reshape(-1, 3))[:, 0].reshape(t.shape)
        near = (f[:, :k_near] - (t_d[:, None] - t_near) * c[:, None]).abs().mean()
        ahead = (t_d[:, None] - t_free)
        free = (torch.relu(-f[:, k_near:]) + torch.relu(f[:, k_near:] - ahead)).mean() if k > k_near else f.sum() * 0.0
        return near + free

    def compute_losses(self, step: int, training: bool = True) -> dict[str, Tensor]:
        """All loss terms and the weighted total (``loss``) for the batch of ``step``."""
        cfg, lc = self.config, self.config.loss
        b = self.draw_batch(step)
        gen = self._generator(step)
        r = self.render_rays(b["origins"], b["directions"], b["cos"], b["image"], training=training, generator=gen)
        losses: dict[str, Tensor] = {}
        losses["rgb"] = (r.rgb - b["rgb"]).abs().mean()
        total = lc.rgb * losses["rgb"]
        if lc.feature_rgb:
            losses["rgb_feature"] = (r.rgb_feature - b["rgb"]).abs().mean()
            total = total + lc.rgb_feature * losses["rgb_feature"]
        mask = b["mask"] & r.sign_change
        target = lc.depth_prior_scale * b["depth"] + lc.depth_prior_shift
        to_cam = lambda n: torch.einsum("rji,rj->ri", b["rot"], n)
        depth_loss = self.depth_loss_function()
        losses["depth"] = depth_loss(r.depth, target, mask)
        l1, cos = normal_loss(to_cam(r.normals), b["normal"], mask)
        losses["normal"] = l1 + cos
        total = total + lc.depth_sdf * losses["depth"] + lc.normal_sdf * losses["normal"]
        if lc.occupancy:
            losses["depth_occ"] = depth_loss(r.depth_occ, target, mask)
            l1, cos = normal_loss(to_cam(r.normals_occ), b["normal"], mask)
            losses["normal_occ"] = l1 + cos
            total = total + lc.depth_occ * losses["depth_occ"] + lc.normal_occ * losses["normal_occ"]
        w_sensor = self.sensor_sdf_weight()
        if w_sensor > 0:
            sb = b
            if lc.sensor_sdf_rays > 0:
                extra = self.draw_sensor_rays(step, lc.sensor_sdf_rays)
                sb = {k: torch.cat([b[k], extra[k]]) for k in ("origins", "directions", "cos", "depth", "normal", "rot")}
            losses["sensor_sdf"] = self.sensor_sdf_loss(sb, gen)
            total = total + w_sensor * losses["sensor_sdf"]
        uniform = torch.rand(cfg.train.n_eikonal, 3, generator=gen, device=self.device) * 2 - 1
        pts = torch.cat([uniform, r.eikonal_points.detach()])
        g = self._sdf_grad(pts, create_graph=training)
        losses["eikonal"] = ((g.norm(dim=-1) - 1) ** 2).mean()
        total = total + lc.eikonal * losses["eikonal"]
        if lc.smooth > 0:
            surf = r.eikonal_points.detach()
            eps = (torch.rand(surf.shape, generator=gen, device=self.device) - 0.5) * 0.01
            n0 = torch.nn.functional.normalize(g[-surf.shape[0] :], dim=-1)
            n1 = torch.nn.functional.normalize(self._sdf_grad(surf + eps, create_graph=training), dim=-1)
            losses["smooth"] = (n0 - n1).norm(dim=-1).mean()
            total = total + lc.smooth * losses["smooth"]
        losses["loss"] = total
        with torch.no_grad():
            losses["psnr"] = -10 * torch.log10(((r.rgb_feature if lc.feature_rgb else r.rgb) - b["rgb"]).pow(2).mean().clamp_min(1e-10))
            losses["beta"] = self.density.get_beta()
        return losses

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        losses = self.compute_losses(int(self.global_step), training=True)
        self.log("loss", losses["loss"], prog_bar=True, on_step=True)
        self.log("psnr", losses["psnr"], prog_bar=True, on_step=True)
        self.log("beta", losses["beta"], prog_bar=True, on_step=True)
        if not torch.isfinite(losses["loss"]):
            raise ShapegenError(f"the loss became {float(losses['loss'])} at step {self.global_step}; lower train.lr or check the priors")
        return losses["loss"]

    def configure_optimizers(self):
        tc = self.config.train
        grid = self.geometry.grid_parameters()
        grid_ids = {id(p) for p in grid}
        rest = [p for p in self.parameters() if id(p) not in grid_ids]
        groups = [{"params": rest, "lr": tc.lr}]
        if grid:
            groups.append({"params": grid, "lr": tc.lr * tc.grid_lr_factor})
        opt = torch.optim.Adam(groups, betas=(0.9, 0.99), eps=1e-15)
        gamma = tc.lr_decay_to ** (1.0 / max(1, tc.max_steps))
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------ outputs
    @torch.no_grad()
    def render_image(self, index: int, *, occupancy: bool = False) -> dict[str, Float[Tensor, "H W C"]]:
        """Render training view ``index`` of the attached scene: ``rgb`` (feature colour),
        ``depth`` (z-depth, normalised units) and, with ``occupancy``, ``depth_occ``."""
        if not self._rays:
            raise ShapegenError("no scene attached; call attach_scene(scene) first")
        scene = self.scene
        o, d, c = (self._rays[k][index].to(self.device) for k in ("origins", "directions", "cos"))
        img = torch.full((o.shape[0],), index, dtype=torch.long, device=self.device)
        outs: dict[str, list[Tensor]] = {"rgb": [], "depth": [], "depth_occ": []}
        chunk = self.config.train.render_chunk
        for i in range(0, o.shape[0], chunk):
            r = self.render_rays(o[i : i + chunk], d[i : i + chunk], c[i : i + chunk], img[i : i + chunk], occupancy=occupancy)
            outs["rgb"].append((r.rgb_feature if self.config.loss.feature_rgb else r.rgb).detach())
            outs["depth"].append(r.depth.detach())
            if occupancy:
                outs["depth_occ"].append(r.depth_occ.detach())
        h, w = scene.height, scene.width
        return {k: torch.cat(v).reshape(h, w, -1) for k, v in outs.items() if v}

    @torch.no_grad()
    def extract_world_mesh(self, resolution: int | None = None, progress: bool = False):
        """The SDF's zero level set by the shared sparse extraction, in world coordinates."""
        from shapegen.geometry.extract import extract_mesh
        from shapegen.geometry.mesh import Mesh

        res = resolution or self.config.train.mesh_resolution
        fn = lambda p: self.geometry(p.to(self.device))[:, 0]
        mesh = extract_mesh(fn, res, ((-1.0,) * 3, (1.0,) * 3), method="sparse", chunk_size=1 << 16, device=self.device,
                            progress=progress)
        smat = self.scale_mat.to(mesh.vertices.device)
        verts = mesh.vertices @ smat[:3, :3].T + smat[:3, 3]
        return Mesh(verts, mesh.faces)


def preset_config(preset: str, overrides: list[str] | tuple[str, ...] = ()) -> OccSDFConfig:
    """Load ``configs/occsdf/<preset>.yaml`` (or a YAML path) with ``--set`` overrides."""
    from shapegen.config import load_config, resolve_preset

    return load_config(OccSDFConfig, resolve_preset(preset, "occsdf"), overrides)


def read_scene(path: str | Path, sc: OccSDFSceneConfig) -> Scene:
    """Read a scene folder with the options of ``sc``."""
    from shapegen.data.scenes import load_scene

    return load_scene(path, downscale=sc.downscale, stride=sc.stride, max_images=sc.max_images or None, max_depth=sc.max_depth)


def build_for_scene(config: OccSDFConfig, scene: Scene) -> OccSDFSystem:
    """Fill ``num_images`` and ``scale_mat`` from the scene, build the system and attach the scene."""
    config.num_images = scene.num_images
    config.scale_mat = [float(v) for v in scene.scale_mat.reshape(-1)]
    torch.manual_seed(config.train.seed)
    model = OccSDFSystem(config)
    model.attach_scene(scene)
    return model


# ------------------------------------------------------------------------------ orchestration
def _depth_image(depth: Tensor) -> Tensor:
    d = depth[..., 0]
    lo, hi = torch.quantile(d.flatten(), 0.02), torch.quantile(d.flatten(), 0.98)
    return ((d - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)[..., None].expand(*d.shape, 3)


def write_previews(model: OccSDFSystem, out_dir: str | Path, step: int, index: int = 0) -> list[Path]:
    """Depth/colour preview of training view ``index`` (ground truth | rendered colour | SDF depth |
    occupancy depth) and a shaded preview of the current mesh from the same camera."""
    import numpy as np

    from renderers.cameras import opencv_to_opengl
    from renderers.preview import render_mesh, save_image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scene = model.scene
    occ = model.config.loss.occupancy
    r = model.render_image(index, occupancy=occ)
    tiles = [scene.images[index], r["rgb"].cpu().clamp(0, 1), _depth_image(r["depth"].cpu())]
    if occ:
        tiles.append(_depth_image(r["depth_occ"].cpu()))
    sheet = (torch.cat(tiles, 1).numpy() * 255 + 0.5).astype(np.uint8)
    paths = [save_image(out_dir / f"step_{step:07d}_views.png", sheet)]
    mesh = model.extract_world_mesh(model.config.train.preview_resolution)
    smat = model.scale_mat
    c2w = opencv_to_opengl(scene.c2w[index].clone())
    c2w[:3, 3] = smat[:3, :3] @ c2w[:3, 3] + smat[:3, 3]
    fov = math.degrees(2 * math.atan(0.5 * scene.height / float(scene.K[index, 1, 1])))
    img = render_mesh(mesh.vertices, mesh.faces, c2w=c2w, fov_deg=fov, width=max(128, scene.width), height=max(128, scene.height))
    paths.append(save_image(out_dir / f"step_{step:07d}_mesh.png", img))
    return paths


def fit(
    model: OccSDFSystem,
    run_dir: str | Path,
    *,
    resume: bool | str | Path | None = False,
    progress: bool = True,
    previews: bool = True,
    callbacks: tuple = (),
) -> Path:
    """Train with :func:`shapegen.engine.fit`: ``run_dir/checkpoints/last.ckpt`` every
    ``checkpoint_every`` steps, previews in ``run_dir/previews`` every ``preview_every`` steps and
    at the end; ``resume`` (True or a path) continues from ``last.ckpt`` when it exists (same
    config: the learning-rate schedule and the batches depend on ``max_steps`` and the step).
    ``callbacks`` are extra Lightning callbacks. Returns the final checkpoint."""
    from shapegen.engine import fit as engine_fit

    run_dir = Path(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    ckpt_path = last if resume and last.is_file() else None
    if ckpt_path:
        log.info("resuming from %s", ckpt_path)
    return engine_fit(model, model.config.train, run_dir, resume=ckpt_path, preview=_preview if previews else None,
                      callbacks=callbacks, progress=progress)


def _preview(model: OccSDFSystem, folder: Path, step: int) -> None:
    write_previews(model, folder, step)


def reconstruct(
    scene_dir: str | Path,
    out: str | Path,
    config: OccSDFConfig,
    *,
    run_dir: str | Path | None = None,
    fresh: bool = False,
    progress: bool = True,
) -> Path:
    """Reconstruct the scene in ``scene_dir`` into the mesh file ``out`` (world frame).

    ``run_dir`` (default: ``out`` without suffix + ``.run``) keeps ``config.yaml``, checkpoints and
    previews; a run folder with a checkpoint of the same config is resumed, ``fresh`` starts over,
    one of another config is a one-line error.

    Raises:
        ShapegenError: unreadable scene, bad output format, a checkpoint of another config, or an
            SDF without a surface.
    """
    from shapegen.checkpoints import resume_from
    from shapegen.config import save_config
    from shapegen.geometry.export import EXPORT_SUFFIXES, export_mesh
    from shapegen.io import check_output_path, make_output_dir
    from shapegen.methods.base import RUN_MAY_DIFFER, get_method

    out = Path(out)
    if out.suffix.lower() not in EXPORT_SUFFIXES:
        raise ShapegenError(f"unsupported output format '{out.suffix or '(none)'}' for {out}; use .glb, .gltf, .obj or .ply")
    check_output_path(out)
    scene = read_scene(scene_dir, config.scene)  # all input errors surface before anything is written
    run_dir = Path(run_dir) if run_dir else out.with_suffix(".run")
    model = build_for_scene(config, scene)
    spec = get_method("occsdf")
    resume = resume_from(run_dir / "checkpoints" / "last.ckpt", dict(model.hparams), fresh=fresh, may_differ=RUN_MAY_DIFFER + spec.may_differ)
    make_output_dir(run_dir)  # removed again if the run fails before writing anything into it
    save_config(model.config, run_dir / "config.yaml")
    fit(model, run_dir, resume=resume, progress=progress)
    mesh = model.extract_world_mesh(progress=progress)
    if mesh.num_faces == 0:
        raise ShapegenError("the SDF has no zero level set inside the scene box; train longer or check the priors")
    export_mesh(mesh, out)
    return out
