"""VSD text-to-3D, NeRF stage (ProlificDreamer).

Paper: Zhengyi Wang, Cheng Lu, Yikai Wang, Fan Bao, Chongxuan Li, Hang Su, Jun Zhu,
"ProlificDreamer: High-Fidelity and Diverse Text-to-3D Generation with Variational Score
Distillation", NeurIPS 2023, arXiv 2305.16213. Stage 1 (NeRF) of its three stages; stages 2
(DMTet geometry) and 3 (texture) are in :mod:`shapegen.methods.vsd_mesh`, configured by
:class:`GeometryStageConfig` and :class:`TextureStageConfig` below.

What this system optimises (per step, batch B of random cameras c):

* K particles ``theta_1..K`` (independent NeRFs: hash grid, density/albedo heads, background);
  one particle is drawn uniformly per step (paper Sec. 4, Algorithm 1), all share one LoRA
  model ``eps_phi``;
* render ``g(theta_k, c)`` through :mod:`renderers` (occupancy-grid empty-space skipping,
  constant-step samples, Eq. 3 of NeRF), ``C = sum_i w_i albedo_i + (1 - sum_i w_i) bg(d)``;
* the VSD update (Eq. 9) and the LoRA denoising loss (Eq. 10) from
  :class:`shapegen.guidance.vsd.ScoreDistillation` (CFG 7.5, ``w(t) = 1 - abar_t``, t-annealing
  0.98 -> 0.5 at a configured step); ``guidance.mode: sds`` gives DreamFusion's SDS (CFG 100);
* optional regularisers: sparsity ``mean(opacity)`` and opacity entropy (BCE of the opacity
  with itself), both off unless weighted;
* a render-resolution schedule (``render.resolutions`` switching at ``render.milestones``;
  threestudio: 64 then 512 at step 5000).

Both losses go into one AdamW step with per-group learning rates (grid 1e-2, MLPs and
background 1e-3, LoRA and camera 1e-4; betas (0.9, 0.99), eps 1e-15), which is safe because
their gradients never cross (the LoRA loss sees detached latents, the VSD loss has no UNet
Jacobian).

Shading (``shading``): albedo (threestudio's stage 1), or DreamFusion's Lambertian /
textureless / random shading with normals from the density (:mod:`shapegen.fields.shading`).

Deviations from the paper: the
prior and the LoRA share one UNet unless ``guidance.share_unet: false``; the camera MLP starts
at zero (see :mod:`shapegen.guidance.vsd`); constant-step occupancy-grid sampling as
threestudio (the paper uses 64 + 32 importance samples); a checkpoint stores the LoRA weights
but not the frozen prior, which is reloaded from ``model``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from renderers.cameras import Intrinsics
from renderers.occupancy_grid import OccupancyGrid
from renderers.rays import generate_rays
from renderers.volume import volume_render
from shapegen.config import from_dict, to_dict
from shapegen.data.cameras import CameraSamplerConfig, RandomCameraSampler, StepDataset
from shapegen.fields.nerf import Background, BackgroundConfig, NeRFField, NeRFFieldConfig
from shapegen.fields.shading import ShadingConfig, density_normals, pick_shading, shade
from shapegen.fields.texture_field import TextureFieldConfig
from shapegen.guidance.vsd import GuidanceConfig
from shapegen.methods.base import RunConfig

__all__ = [
    "GeometryStageConfig",
    "NeRFInitConfig",
    "OptimConfig",
    "RenderSettings",
    "TextureStageConfig",
    "VSDConfig",
    "VSDRunConfig",
    "VSDSystem",
    "build_guidance",
    "drop_frozen_prior",
]


@dataclass
class RenderSettings:
    """Rendering of the particles during training."""

    resolutions: list[int] = field(default_factory=lambda: [64, 512])
    """Render side per phase (square images)."""
    milestones: list[int] = field(default_factory=lambda: [5000])
    """Steps at which the next resolution starts (one fewer than ``resolutions``)."""
    samples_per_ray: int = 512
    """Constant-step samples across the cube's diagonal (sets the marching step)."""
    occupancy_resolution: int = 32
    """Cells per side of each particle's occupancy grid."""
    occupancy_update_every: int = 16
    """Steps between occupancy-grid updates."""
    occupancy_threshold: float = 0.01
    """Opacity below which a cell is empty."""
    occupancy_warmup_steps: int = 256
    """Steps during which every cell is re-evaluated at each update."""
    backend: Literal["auto", "torch", "nerfacc"] = "auto"
    """Ray-marching backend (nerfacc only for CUDA tensors)."""


@dataclass
class OptimConfig:
    """AdamW with per-group learning rates (threestudio's VSD values)."""

    lr_grid: float = 1e-2
    """Learning rate of the hash-grid tables."""
    lr_mlp: float = 1e-3
    """Learning rate of the density/albedo MLPs and the background."""
    lr_lora: float = 1e-4
    """Learning rate of the LoRA adapters and the camera embedding."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    """AdamW betas."""
    eps: float = 1e-15
    """AdamW epsilon."""
    weight_decay: float = 0.0
    """AdamW weight decay."""


@dataclass
class ExportSettings:
    """Mesh and preview export after training."""

    mesh_resolution: int = 256
    """Marching-cubes samples per axis."""
    iso_density: float = -1.0
    """Density of the extracted surface; <= 0 picks it by ``iso_mode``."""
    iso_mode: Literal["opacity", "silhouette"] = "opacity"
    """How ``iso_density <= 0`` picks the level: ``opacity``, ``min(ln 2 / step, max / 2)`` (opacity 0.5
    per marching step); ``silhouette``, the level whose surface best covers the field's rendered
    opacity from eight orbit views (:func:`silhouette_iso_level`). A NeRF trained at a low resolution
    draws thin parts (legs, stems) half transparent, below the ``opacity`` level."""
    turntable_frames: int = 60
    """Frames of the rendered turntable."""
    turntable_resolution: int = 256
    """Side of the turntable frames."""
    render_every: int = 500
    """Steps between saved intermediate renders (0: none)."""
    checkpoint_every: int = 1000
    """Steps between checkpoints (``--resume`` continues from the last)."""


@dataclass
class GeometryStageConfig:
    """Stage 2: DMTet geometry refinement with SDS on rendered normals (:mod:`shapegen.methods.vsd_mesh`)."""

    steps: int = 15000
    """Training steps."""
    tet_resolution: int = 128
    """Vertices per axis of the tet grid (threestudio: 128; the official code 256)."""
    fit_bbox: bool = True
    """Shrink the tet grid's box to the object found in the NeRF before sampling the SDF."""
    bbox_margin: float = 0.1
    """Margin added around the object when fitting the box (fraction of its size)."""
    sdf_clamp: float = 1.0
    """Initial SDF values are clamped to [-c, c] (threestudio: 1)."""
    deformation_scale: float = 1.0
    """Bound of the vertex offsets as a fraction of half a tet-grid cell (0: no offsets)."""
    particle: int = 0
    """Which NeRF particle the mesh stages refine."""
    resolution: int = 512
    """Side of the normal renders (square)."""
    guidance: GuidanceConfig = field(default_factory=lambda: GuidanceConfig(mode="sds", guidance_scale=100.0, anneal_step=-1))
    """Guidance on the normal renders (SDS, CFG 100, as the paper)."""
    normal_consistency_weight: float = 1e4
    """Weight of the normal-consistency regulariser (threestudio: 1e4)."""
    laplacian_weight: float = 1e4
    """Weight of the uniform Laplacian smoothness regulariser (threestudio: 1e4)."""
    lr: float = 5e-3
    """Adam learning rate of the SDF values and vertex offsets."""
    lr_lora: float = 1e-4
    """Learning rate of the LoRA model if ``guidance.mode`` is vsd."""
    render_every: int = 500
    """Steps between saved normal renders (0: none)."""
    checkpoint_every: int = 1000
    """Steps between checkpoints."""


@dataclass
class TextureStageConfig:
    """Stage 3: a new texture field on the frozen mesh, optimised with VSD (:mod:`shapegen.methods.vsd_mesh`)."""

    steps: int = 30000
    """Training steps."""
    resolution: int = 512
    """Side of the colour renders (square)."""
    texture_field: TextureFieldConfig = field(default_factory=TextureFieldConfig)
    """The texture field (hash grid and heads)."""
    guidance: GuidanceConfig = field(default_factory=lambda: GuidanceConfig(mode="vsd", guidance_scale=7.5, t_max=0.5, anneal_step=-1))
    """Guidance (VSD, CFG 7.5; t in [0.02, 0.5] throughout, as the official texture stage)."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimiser (the NeRF stage's values)."""
    ambient: float = 0.3
    """Ambient term of the point-light shading used with ``texture_field.material: pbr``."""
    texture_resolution: int = 1024
    """Side of the baked textures."""
    uv_atlas: Literal["auto", "xatlas", "grid"] = "auto"
    """UV atlas method (xatlas from the ``texture`` extra when it imports)."""
    uv_padding: int = 4
    """Gutter texels filled around each UV chart."""
    mesh_extent: float = 0.5
    """``shapegen texture``: the input mesh is scaled so its largest half-extent is this (world units)."""
    render_every: int = 500
    """Steps between saved renders (0: none)."""
    checkpoint_every: int = 1000
    """Steps between checkpoints."""
    turntable_frames: int = 60
    """Frames of the textured turntable."""


@dataclass
class NeRFInitConfig:
    """3D-prior initialisation of the NeRF stage (``init.*``, ``text-to-3d --init``): before the
    first step of a fresh NeRF stage, every particle's density is fitted to a shape, so score
    distillation refines a plausible shape instead of the density blob (GaussianDreamer, arXiv
    2310.08529, starts its Gaussians from Shap-E points; here the NeRF's density is fitted to a
    mesh). :func:`shapegen.methods.text_to_3d.init_density_from_mesh` does the fit."""

    mesh: str = ""
    """Empty: no initialisation (the density blob); a mesh file; or ``msdf``: a shape generated
    from the prompt with the shipped Mosaic-SDF model. The shape is scaled to a largest
    half-extent of ``texture.mesh_extent`` (the framing the cameras expect)."""
    steps: int = 300
    """Adam steps of the fit (each over all ``points``)."""
    density: float = 10.0
    """Target density inside the shape (per world unit; the blob's peak is about ``nerf.blob_density``)."""
    width: float = 0.02
    """Width of the target's transition across the surface: ``density * sigmoid(-sdf / width)`` (world units)."""
    lr: float = 1e-2
    """Adam learning rate of the hash grid and the density head during the fit."""
    points: int = 16384
    """Training points: half uniform in the NeRF's cube, half near the surface."""
    msdf_resolution: int = 64
    """Marching-cubes samples per axis when ``mesh: msdf`` decodes the generated shape."""


@dataclass
class VSDRunConfig(RunConfig):
    """How the stages run (``train.*``): hardware and numerics (``--devices``, ``--strategy``,
    ``--precision``, ``--accelerator``), gradient clipping and the loss-log cadence.

    Each stage replaces ``max_steps``, ``checkpoint_every`` and ``preview_every`` with its own
    ``steps``, ``checkpoint_every`` and ``render_every`` (``steps`` and ``export.*`` for the NeRF
    stage, ``geometry.*``, ``texture.*``) and ``seed`` with the config's top-level ``seed``
    (:func:`shapegen.methods.text_to_3d.stage_run`), so the run keys of those four are not read.
    """

    stage: Literal["nerf", "geometry", "texture"] = "nerf"
    """The stage ``shapegen train --method vsd`` runs (``--stage``); ``text-to-3d`` picks with ``--stages``."""


@dataclass
class VSDConfig:
    """Schema of the VSD text-to-3D pipeline (``configs/vsd/*.yaml``): the NeRF stage at the top
    level, the mesh stages under ``geometry`` and ``texture``, the run settings under ``train``."""

    prompt: str = "a DSLR photo of a hamburger"
    """Text prompt."""
    negative_prompt: str = ""
    """Prompt of the unconditional branch of classifier-free guidance."""
    model: str = "stabilityai/stable-diffusion-2-1-base"
    """Stable Diffusion hub id, local diffusers folder, or ``tiny-random``."""
    allow_download: bool = False
    """Download ``model`` if it is not in the local Hugging Face cache."""
    fp16_prior: bool = False
    """Run the frozen UNet and VAE in float16 (CUDA only; needs ``guidance.share_unet: false``)."""
    requires_gpu: bool = False
    """The preset is sized for a GPU: refuse to run on a CPU."""
    particles: int = 1
    """Number K of particles (NeRFs) sharing the LoRA model."""
    seed: int = 0
    """Seed of weights, cameras and noise."""
    steps: int = 25000
    """Training steps."""
    sparsity_weight: float = 0.0
    """Weight of the mean opacity (discourages floaters)."""
    opacity_entropy_weight: float = 0.0
    """Weight of the opacity entropy (pushes opacities to 0 or 1)."""
    nerf: NeRFFieldConfig = field(default_factory=NeRFFieldConfig)
    """The NeRF of each particle."""
    init: NeRFInitConfig = field(default_factory=NeRFInitConfig)
    """Optional start of the NeRF's density from a shape (``text-to-3d --init``)."""
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    """The background of each particle."""
    shading: ShadingConfig = field(default_factory=ShadingConfig)
    """Shading of the training renders (albedo, Lambertian, textureless or random)."""
    cameras: CameraSamplerConfig = field(default_factory=CameraSamplerConfig)
    """Random training cameras."""
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    """VSD/SDS guidance."""
    render: RenderSettings = field(default_factory=RenderSettings)
    """Training renders."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimiser."""
    export: ExportSettings = field(default_factory=ExportSettings)
    """Outputs."""
    geometry: GeometryStageConfig = field(default_factory=GeometryStageConfig)
    """Stage 2 (DMTet geometry), run with ``text-to-3d --stages ...,geometry``."""
    texture: TextureStageConfig = field(default_factory=TextureStageConfig)
    """Stage 3 (texture), run with ``text-to-3d --stages ...,texture`` or ``shapegen texture``."""
    train: VSDRunConfig = field(default_factory=VSDRunConfig)
    """Run settings shared by the stages (devices, strategy, precision); see :class:`VSDRunConfig`."""


def build_guidance(cfg: VSDConfig, guidance: GuidanceConfig, prompt_variants: tuple[str, ...] | list[str] = ()) -> nn.Module:
    """A :class:`~shapegen.guidance.vsd.ScoreDistillation` on a freshly loaded prior ``cfg.model``.

    Each stage loads its own copy: a VSD guidance adds its LoRA adapters to the UNet it gets.
    ``prompt_variants`` are extra prompts the guidance can be asked for per image (e.g. the
    avatar preset's head-view prompt).
    """
    from shapegen.guidance.prior import load_stable_diffusion
    from shapegen.guidance.vsd import ScoreDistillation

    dtype = torch.float16 if cfg.fp16_prior and torch.cuda.is_available() else torch.float32
    sd = load_stable_diffusion(cfg.model, allow_download=cfg.allow_download, dtype=dtype)
    return ScoreDistillation(sd, cfg.prompt, guidance, cfg.negative_prompt, prompt_variants)


def drop_frozen_prior(state: dict[str, Tensor]) -> None:
    """Remove the frozen prior's weights (gigabytes for Stable Diffusion) from a state dict in
    place, keeping the LoRA adapters and the camera embedding."""
    for key in list(state):
        frozen = key.startswith(("guidance.unet.", "guidance.vae.", "guidance.lora_unet."))
        if frozen and "lora_" not in key:
            del state[key]


@torch.no_grad()
def iso_density_level(density_fn, radius: float, step_size: float, level: float, resolution: int, device=None) -> float:
    """Density of the exported surface: ``level`` if > 0, else ``min(ln 2 / step, max / 2)``
    (opacity 0.5 per marching step, or half the peak density of a faint field)."""
    if level > 0:
        return level
    return min(math.log(2.0) / step_size, 0.5 * _peak_density(density_fn, radius, resolution, device))


@torch.no_grad()
def _peak_density(density_fn, radius: float, resolution: int, device=None) -> float:
    """The field's largest density on a grid of ``min(resolution, 64)`` samples per axis of the cube."""
    axis = torch.linspace(-radius, radius, min(resolution, 64), device=device)
    pts = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    return float(torch.cat([density_fn(c).reshape(-1) for c in pts.split(1 << 16)]).max())


@torch.no_grad()
def silhouette_iso_level(
    density_fn,
    radius: float,
    step_size: float,
    *,
    distance: float,
    fov_deg: float,
    views: int = 8,
    side: int = 64,
    resolution: int = 64,
    device=None,
) -> float:
    """The density level whose surface best matches the field's silhouettes.

    The field's opacity is volume rendered (constant steps of ``step_size`` through the cube of
    half-side ``radius``, nothing outside it) from ``views`` orbit cameras at ``distance`` and
    ``fov_deg`` (azimuths evenly spaced, elevations alternating 15 and 45 degrees). Each candidate
    level, ``ln 2 / step_size`` halved up to six times (kept below the field's peak), is meshed by
    marching cubes at ``resolution`` and rasterised from the same cameras; the level with the highest
    mean IoU between the mesh's coverage and ``opacity > 0.5`` wins.
    """
    from renderers.cameras import orbit_pose
    from renderers.rasterize import render_gbuffers
    from shapegen.geometry.extract import extract_mesh

    azimuths = torch.arange(views, dtype=torch.float32) * (360.0 / views)
    elevations = torch.tensor([15.0, 45.0]).repeat((views + 1) // 2)[:views]
    c2w = orbit_pose(azimuths, elevations, distance).float().to(device)
    intr = Intrinsics.from_fov(fov_deg, side, side)
    rays = generate_rays(c2w, intr)
    reach = math.sqrt(3.0) * radius
    t = torch.arange(max(distance - reach, 0.0) + step_size / 2, distance + reach, step_size, device=device)
    sigma = []
    for o, d in zip(rays.origins.split(4096), rays.directions.split(4096)):
        x = o[:, None, :] + t[None, :, None] * d[:, None, :]
        inside = (x.abs() <= radius).all(-1)
        s = torch.zeros(inside.shape, device=device)
        if inside.any():
            s[inside] = density_fn(x[inside]).reshape(-1).float()
        sigma.append(s.sum(-1))
    opacity = 1.0 - torch.exp(-torch.cat(sigma) * step_size)
    target = (opacity > 0.5).reshape(views, side, side)
    peak = _peak_density(density_fn, radius, resolution, device)
    best, best_iou = min(math.log(2.0) / step_size, 0.5 * peak), -1.0
    for i in range(7):
        level = math.log(2.0) / step_size / 2**i
        if level >= peak:
            continue
        mesh = extract_mesh(lambda x, lv=level: lv - density_fn(x).reshape(-1), resolution, ((-radius,) * 3, (radius,) * 3),
                            method="dense", device=device)
        if mesh.num_faces == 0:
            continue
        cover = render_gbuffers(mesh.vertices.float().to(device), mesh.faces.long().to(device), c2w, intr,
                                antialias_edges=False).mask
        inter = (cover & target).flatten(1).sum(1).float()
        union = (cover | target).flatten(1).sum(1).clamp_min(1).float()
        iou = float((inter / union).mean())
        if iou > best_iou:
            best, best_iou = level, iou
    return best


def export_iso_level(density_fn, config: VSDConfig, step_size: float, resolution: int, device=None) -> float:
    """Density of the exported surface of one particle under ``config.export`` (``iso_density`` and ``iso_mode``)."""
    e = config.export
    if e.iso_density > 0 or e.iso_mode == "opacity":
        return iso_density_level(density_fn, config.nerf.radius, step_size, e.iso_density, resolution, device)
    cam = config.cameras
    return silhouette_iso_level(
        density_fn,
        config.nerf.radius,
        step_size,
        distance=0.5 * (cam.distance_range[0] + cam.distance_range[1]),
        fov_deg=0.5 * (cam.fov_range_deg[0] + cam.fov_range_deg[1]),
        resolution=min(resolution, 64),
        device=device,
    )


def resolution_at(step: int, settings: RenderSettings) -> int:
    """The render side at ``step`` from the resolution schedule."""
    phase = sum(step >= m for m in settings.milestones)
    return settings.resolutions[min(phase, len(settings.resolutions) - 1)]


class VSDSystem(pl.LightningModule):
    """K NeRF particles distilled from Stable Diffusion with VSD (or SDS).

    Args:
        config: a :class:`VSDConfig` or its plain-dict form (as saved in a checkpoint).
    """

    CONFIG = VSDConfig

    def __init__(self, config: VSDConfig | dict[str, Any]) -> None:
        super().__init__()
        cfg = from_dict(VSDConfig, config) if isinstance(config, dict) else config
        self.config = cfg
        self.save_hyperparameters({"config": to_dict(cfg)})
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.fields = nn.ModuleList(NeRFField(cfg.nerf) for _ in range(cfg.particles))
            self.backgrounds = nn.ModuleList(Background(cfg.background) for _ in range(cfg.particles))
        r = cfg.nerf.radius
        self.grids = nn.ModuleList(
            OccupancyGrid((-r, -r, -r, r, r, r), resolution=cfg.render.occupancy_resolution)
            for _ in range(cfg.particles)
        )
        self.guidance = self._build_guidance(cfg)
        self.sampler = RandomCameraSampler(cfg.cameras, seed=cfg.seed)
        self.history: list[dict[str, float]] = []

    @staticmethod
    def _build_guidance(cfg: VSDConfig) -> nn.Module:
        return build_guidance(cfg, cfg.guidance)

    @classmethod
    def for_training(cls, config: VSDConfig) -> tuple[VSDSystem, None]:
        """The NeRF-stage system of ``config`` (its cameras are its data: no datamodule)."""
        return cls(config), None

    def write_preview(self, folder, step: int) -> None:
        """Each particle's render at ``step`` (the schedule's side) as ``FOLDER/stepNNNNNN_pK.png``."""
        from pathlib import Path

        from renderers.preview import save_image

        side = resolution_at(step, self.config.render)
        for k in range(self.config.particles):
            save_image(Path(folder) / f"step{step:06d}_p{k}.png", self.render_view(k, 30.0, 15.0, side).numpy())

    # --- rendering --------------------------------------------------------------------------

    @property
    def step_size(self) -> float:
        """Marching step: the cube's diagonal divided by ``samples_per_ray``."""
        return 2.0 * math.sqrt(3.0) * self.config.nerf.radius / self.config.render.samples_per_ray

    def render(
        self,
        k: int,
        c2w: Float[Tensor, "B 4 4"],
        intrinsics: Intrinsics,
        stratified: bool = False,
        shading: str = "albedo",
    ) -> tuple[Float[Tensor, "B 3 H W"], Float[Tensor, "B 1 H W"]]:
        """Colour and opacity images of particle ``k`` from cameras ``c2w``.

        ``shading`` other than ``albedo`` lights each sample with a point light near the
        camera (:mod:`shapegen.fields.shading`).
        """
        field_k, grid = self.fields[k], self.grids[k]
        rays = generate_rays(c2w, intrinsics)
        backend = self.config.render.backend
        samples = grid.sample(
            rays.origins,
            rays.directions,
            self.step_size,
            sigma_fn=lambda s: field_k.density(s.positions(rays.origins, rays.directions)),
            stratified=stratified,
            backend=backend,
        )
        x = samples.positions(rays.origins, rays.directions)
        out = field_k(x)
        color = out.albedo
        if shading != "albedo":
            sh = self.config.shading
            n_pix = intrinsics.height * intrinsics.width
            eye = c2w[:, :3, 3]
            light = F.normalize(eye + sh.light_jitter * eye.norm(dim=-1, keepdim=True) * torch.randn_like(eye), dim=-1)
            light = light.repeat_interleave(n_pix, 0)[samples.ray_indices]  # rays are (B, H, W)-major
            normals = density_normals(field_k.density, x, sh.normal_eps)
            color = shade(out.albedo, normals, light, shading, sh.ambient)
        bg = self.backgrounds[k](rays.directions)
        res = volume_render(samples, sigmas=out.density, rgb=color, background=bg, backend=backend)
        b, h, w = c2w.shape[0], intrinsics.height, intrinsics.width
        rgb = res.rgb.reshape(b, h, w, 3).permute(0, 3, 1, 2)
        return rgb, res.opacity.reshape(b, h, w, 1).permute(0, 3, 1, 2)

    @torch.no_grad()
    def update_occupancy(self, k: int, step: int) -> None:
        """EMA update of particle ``k``'s occupancy grid from its density."""
        rs = self.config.render
        self.grids[k].update(
            self.fields[k].density,
            kind="density",
            step=step,
            step_size=self.step_size,
            occ_thre=rs.occupancy_threshold,
            warmup_steps=rs.occupancy_warmup_steps,
        )

    # --- training ---------------------------------------------------------------------------

    def train_dataloader(self):
        return torch.utils.data.DataLoader(StepDataset(), batch_size=None)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        cfg = self.config
        step = int(self.global_step)
        k = int(torch.randint(cfg.particles, (1,), generator=self.sampler.generator)) if cfg.particles > 1 else 0
        if step % cfg.render.occupancy_update_every == 0:
            for j in range(cfg.particles):
                self.update_occupancy(j, step)
        side = resolution_at(step, cfg.render)
        cams = self.sampler.sample(side, side, device=self.device)
        shading = pick_shading(cfg.shading, step, self.sampler.generator)
        rgb, opacity = self.render(k, cams.c2w, cams.intrinsics, stratified=True, shading=shading)
        g = self.guidance(rgb, cams.c2w, step, cams.azimuth_deg, cams.elevation_deg)
        loss = g.loss + g.loss_lora
        if cfg.sparsity_weight > 0:
            loss = loss + cfg.sparsity_weight * opacity.mean()
        if cfg.opacity_entropy_weight > 0:
            o = opacity.clamp(1e-5, 1 - 1e-5)
            loss = loss + cfg.opacity_entropy_weight * F.binary_cross_entropy(o, o)
        record = {
            "step": float(step),
            "particle": float(k),
            "loss_vsd": float(g.loss.detach()),
            "loss_lora": float(g.loss_lora.detach()),
            "grad_norm": float(g.grad_norm),
            "resolution": float(side),
        }
        self.history.append(record)
        self.log_dict({k2: v for k2, v in record.items() if k2.startswith(("loss", "grad"))}, prog_bar=True)
        return loss

    def configure_optimizers(self):
        cfg = self.config.optim
        grids = [f.encoding.embeddings for f in self.fields]
        mlps = [p for f in self.fields for n, p in f.named_parameters() if not n.startswith("encoding.")]
        mlps += list(self.backgrounds.parameters())
        groups = [{"params": grids, "lr": cfg.lr_grid}, {"params": mlps, "lr": cfg.lr_mlp}]
        lora = self.guidance.lora_parameters()
        if lora:
            groups.append({"params": lora, "lr": cfg.lr_lora})
        return torch.optim.AdamW(groups, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)

    # --- checkpoints ------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Drop the frozen prior (gigabytes for Stable Diffusion); keep LoRA and camera weights.
        drop_frozen_prior(checkpoint["state_dict"])
        checkpoint["vsd_history"] = self.history
        if self.sampler.generator is not None:
            checkpoint["vsd_camera_rng"] = self.sampler.generator.get_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The frozen prior was left out on saving: take it from the model loaded in __init__.
        state = checkpoint["state_dict"]
        for key, value in self.state_dict().items():
            state.setdefault(key, value)
        self.history = list(checkpoint.get("vsd_history", []))
        if "vsd_camera_rng" in checkpoint and self.sampler.generator is not None:
            self.sampler.generator.set_state(checkpoint["vsd_camera_rng"])

    # --- export -----------------------------------------------------------------------------

    @torch.no_grad()
    def iso_density(self, k: int, resolution: int) -> float:
        """Density of the exported surface (see :attr:`ExportSettings.iso_density`)."""
        return export_iso_level(self.fields[k].density, self.config, self.step_size, resolution, self.device)

    @torch.no_grad()
    def extract_mesh(self, k: int = 0, resolution: int | None = None):
        """Particle ``k``'s surface ``density = iso`` as a :class:`Mesh` with albedo vertex colours.

        Raises:
            ShapegenError: the density field has no surface (e.g. it collapsed to empty space).
        """
        from shapegen.errors import ShapegenError
        from shapegen.geometry.extract import extract_mesh
        from shapegen.geometry.mesh import Mesh

        res = resolution or self.config.export.mesh_resolution
        level = self.iso_density(k, res)
        r = self.config.nerf.radius
        fld = self.fields[k]
        mesh = extract_mesh(
            lambda x: level - fld.density(x), res, ((-r, -r, -r), (r, r, r)), method="dense", device=self.device
        )
        if mesh.num_faces == 0:
            raise ShapegenError(f"particle {k} has no surface at density {level:.3g}; train longer or set export.iso_density")
        colors = torch.cat([fld(v).albedo for v in mesh.vertices.to(self.device).split(1 << 16)])
        return Mesh(mesh.vertices.cpu(), mesh.faces.cpu(), vertex_colors=colors.clamp(0, 1).cpu())

    @torch.no_grad()
    def render_view(self, k: int, azimuth_deg: float, elevation_deg: float, side: int) -> Tensor:
        """An ``H W 3`` uint8 render of particle ``k`` from an orbit camera (mid distance and fov)."""
        from renderers.cameras import orbit_pose

        cam = self.config.cameras
        dist = 0.5 * (cam.distance_range[0] + cam.distance_range[1])
        fov = 0.5 * (cam.fov_range_deg[0] + cam.fov_range_deg[1])
        c2w = orbit_pose(float(azimuth_deg), float(elevation_deg), dist).float().to(self.device)
        rgb, _ = self.render(k, c2w[None], Intrinsics.from_fov(fov, side, side))
        return (rgb[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu()
