"""VSD text-to-3D, mesh stages (ProlificDreamer stages 2 and 3): DMTet geometry and texture.

Paper: Zhengyi Wang et al., "ProlificDreamer: High-Fidelity and Diverse Text-to-3D Generation with
Variational Score Distillation", NeurIPS 2023, arXiv 2305.16213, Sec. 5 / App. (following
Magic3D, Lin et al., arXiv 2211.10440). Configured as threestudio's ``prolificdreamer-geometry``
and ``prolificdreamer-texture`` (``shapegen.methods.vsd.GeometryStageConfig`` and
``TextureStageConfig`` hold the values).

Stage 2, :class:`GeometrySystem`:

* a DMTet grid (:class:`shapegen.geometry.dmtet.DMTetGrid`) initialised from the NeRF stage's
  density as the SDF-like level ``iso - sigma(x)`` (clamped to [-1, 1]), or from any SDF;
* per step: differentiable marching tetrahedra (DMTet Eq. 2) -> rasterised normal map
  ``(n + 1) / 2`` on black, anti-aliased so silhouettes pass gradients
  (:func:`renderers.rasterize.render_gbuffers`) -> SDS with CFG 100 (DreamFusion Eq. 3; VSD
  also possible) on the normal map as if it were an image;
* ``+ lambda_nc * normal_consistency + lambda_lap * laplacian`` (1e4 each), Adam lr 5e-3 on the
  SDF values and the vertex offsets.

Stage 3, :class:`TextureSystem`: the mesh is frozen; a new hash-grid texture field
(:class:`shapegen.fields.texture_field.TextureField`) is evaluated at the rasterised surface
points, composited over the learned background and anti-aliased, and optimised with VSD
(Eq. 9, CFG 7.5, new LoRA, t in [0.02, 0.5]); export bakes the field into UV textures
(:func:`shapegen.geometry.texture.bake_textures`) of a glTF PBR material.

Deviations: both stages run on one particle (``geometry.particle``); stage 3 uses albedo
directly as the colour (threestudio's ``no-material``) unless ``texture_field.material: pbr``,
which adds roughness/metallic heads lit by a point light at the camera (Lambertian diffuse plus
a normalised Blinn-Phong lobe, a stand-in for a full BRDF); the tet grid is a Kuhn-split cube
grid, not Kaolin's quartet file; the frozen prior is reloaded per stage, not kept in checkpoints.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from renderers.cameras import Intrinsics
from renderers.rasterize import antialias, face_neighbors, render_gbuffers, vertex_normals
from renderers.rays import generate_rays
from shapegen.checkpoints import load_checkpoint
from shapegen.config import from_dict, to_dict
from shapegen.data.cameras import RandomCameraSampler, StepDataset
from shapegen.errors import ShapegenError
from shapegen.fields.nerf import Background
from shapegen.fields.texture_field import TextureField
from shapegen.geometry.dmtet import DMTetGrid
from shapegen.geometry.mesh import Mesh
from shapegen.geometry.regularizers import laplacian_smoothness, normal_consistency
from shapegen.methods.vsd import VSDConfig, build_guidance, drop_frozen_prior

__all__ = [
    "GeometrySystem",
    "TextureSystem",
    "bake_field",
    "dmtet_mesh_from_checkpoint",
    "nerf_level_function",
    "render_normal_map",
]


def _config(config: VSDConfig | dict[str, Any]) -> VSDConfig:
    return from_dict(VSDConfig, config) if isinstance(config, dict) else config


def render_normal_map(
    vertices: Float[Tensor, "V 3"],
    faces: Int[Tensor, "F 3"],
    c2w: Float[Tensor, "B 4 4"],
    intrinsics: Intrinsics,
    neighbors: Int[Tensor, "F 3"] | None = None,
) -> tuple[Float[Tensor, "B 3 H W"], Float[Tensor, "B 1 H W"]]:
    """World-space normal map ``(n + 1) / 2`` on black and the coverage, both anti-aliased.

    Differentiable in ``vertices`` (through the normals and the silhouettes).
    """
    vn = vertex_normals(vertices, faces)
    out = render_gbuffers(
        vertices, faces, c2w, intrinsics, attributes=0.5 * vn + 0.5, antialias_edges=True, neighbors=neighbors
    )
    return out.attributes.permute(0, 3, 1, 2), out.alpha.permute(0, 3, 1, 2)


def _checkpoint_hooks_save(system: pl.LightningModule, checkpoint: dict[str, Any], stage: str) -> None:
    drop_frozen_prior(checkpoint["state_dict"])
    checkpoint["shapegen_stage"] = stage
    checkpoint["vsd_history"] = system.history
    checkpoint["vsd_camera_rng"] = system.sampler.generator.get_state()


def _checkpoint_hooks_load(system: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
    state = checkpoint["state_dict"]
    for key, value in system.state_dict().items():
        state.setdefault(key, value)  # the frozen prior comes from the model loaded in __init__
    system.history = list(checkpoint.get("vsd_history", []))
    if "vsd_camera_rng" in checkpoint:
        system.sampler.generator.set_state(checkpoint["vsd_camera_rng"])


def _orbit_camera(cfg: VSDConfig, azimuth_deg: float, elevation_deg: float, side: int, device) -> tuple[Tensor, Intrinsics]:
    from renderers.cameras import orbit_pose

    cam = cfg.cameras
    dist = 0.5 * (cam.distance_range[0] + cam.distance_range[1])
    fov = 0.5 * (cam.fov_range_deg[0] + cam.fov_range_deg[1])
    c2w = orbit_pose(float(azimuth_deg), float(elevation_deg), dist).float().to(device)
    return c2w[None], Intrinsics.from_fov(fov, side, side)


def _to_uint8(img: Tensor) -> Tensor:
    return (img[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu()


PREVIEW_VIEW = (30.0, 15.0)
"""Azimuth and elevation (degrees) of the renders written while a stage trains."""


def _write_render(system: pl.LightningModule, folder: str | Path, name: str, side: int) -> None:
    from renderers.preview import save_image

    azimuth, elevation = system.preview_view
    save_image(Path(folder) / name, system.render_view(azimuth, elevation, side).numpy())


# --- stage 2: geometry ----------------------------------------------------------------------


class GeometrySystem(pl.LightningModule):
    """DMTet geometry refined with SDS on normal renders (stage 2).

    Args:
        config: a :class:`~shapegen.methods.vsd.VSDConfig` (its ``geometry`` section) or its
            plain-dict form. Initialise the grid with :meth:`init_from_sdf` before training.
        prompt_variants: extra prompts the guidance can be asked for per step (see the hooks).

    Hooks for presets built on this stage (e.g. :mod:`shapegen.methods.text_avatar`):
    :meth:`sample_cameras` (cameras and prompt variant per step) and :meth:`extra_losses`
    (more regularisers on the extracted surface).
    """

    preview_view = PREVIEW_VIEW
    """Azimuth and elevation of the training renders (degrees)."""

    def __init__(self, config: VSDConfig | dict[str, Any], prompt_variants: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__()
        cfg = _config(config)
        self.config = cfg
        self.save_hyperparameters({"config": to_dict(cfg)})
        g = cfg.geometry
        r = cfg.nerf.radius
        self.dmtet = DMTetGrid(g.tet_resolution, ((-r, -r, -r), (r, r, r)), g.deformation_scale)
        self.guidance = build_guidance(cfg, g.guidance, prompt_variants)
        self.sampler = RandomCameraSampler(cfg.cameras, seed=cfg.seed + 1)
        self.history: list[dict[str, float]] = []

    def init_from_sdf(self, fn, fit_bbox: bool | None = None) -> None:
        """Initialise SDF values from ``fn`` (``N 3`` -> ``N``, negative inside); offsets to zero."""
        g = self.config.geometry
        self.dmtet.init_from_sdf(
            fn, fit_bbox=g.fit_bbox if fit_bbox is None else fit_bbox, margin=g.bbox_margin, clamp=g.sdf_clamp
        )

    def render(self, c2w: Tensor, intrinsics: Intrinsics) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(normal map B 3 H W, alpha B 1 H W, mesh vertices, faces)`` of the current surface."""
        v, f = self.dmtet.extract()
        if f.shape[0] == 0:
            raise ShapegenError("the DMTet surface vanished (no sign change left in the SDF); lower geometry.lr")
        normals, alpha = render_normal_map(v, f, c2w, intrinsics, face_neighbors(f))
        return normals, alpha, v, f

    def regularizers(self, v: Tensor, f: Tensor) -> tuple[Tensor, Tensor]:
        """Normal consistency and Laplacian smoothness of the extracted mesh."""
        return normal_consistency(v, f), laplacian_smoothness(v, f)

    def sample_cameras(self, resolution: int) -> tuple[Any, Tensor | None]:
        """Hook: this step's cameras and prompt variant per camera (None: the main prompt)."""
        return self.sampler.sample(resolution, resolution, device=self.device), None

    def extra_losses(self, v: Tensor, f: Tensor, step: int) -> dict[str, Tensor]:
        """Hook: weighted extra loss terms (name -> scalar), added to the loss and the history."""
        return {}

    def train_dataloader(self):
        return torch.utils.data.DataLoader(StepDataset(), batch_size=None)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        g = self.config.geometry
        step = int(self.global_step)
        cams, variant = self.sample_cameras(g.resolution)
        normals, _, v, f = self.render(cams.c2w, cams.intrinsics)
        out = self.guidance(normals, cams.c2w, step, cams.azimuth_deg, cams.elevation_deg, variant=variant)
        nc, lap = self.regularizers(v, f)
        reg = g.normal_consistency_weight * nc + g.laplacian_weight * lap
        extra = self.extra_losses(v, f, step)
        for term in extra.values():
            reg = reg + term
        loss = out.loss + out.loss_lora + reg
        record = {
            "step": float(step),
            "loss_sds": float(out.loss.detach()),
            "loss_lora": float(out.loss_lora.detach()),
            "loss_normal_consistency": float(nc.detach()),
            "loss_laplacian": float(lap.detach()),
            "loss_regularizers": float(reg.detach()),
            "grad_norm": float(out.grad_norm),
            "faces": float(f.shape[0]),
            **{k: float(t.detach()) for k, t in extra.items()},
        }
        self.history.append(record)
        self.log_dict({k: v for k, v in record.items() if k.startswith("loss")}, prog_bar=True)
        return loss

    def configure_optimizers(self):
        g = self.config.geometry
        groups = [{"params": [self.dmtet.sdf, self.dmtet.deformation], "lr": g.lr}]
        lora = self.guidance.lora_parameters()
        if lora:
            groups.append({"params": lora, "lr": g.lr_lora})
        return torch.optim.Adam(groups, betas=(0.9, 0.99), eps=1e-15)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        _checkpoint_hooks_save(self, checkpoint, "geometry")

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        _checkpoint_hooks_load(self, checkpoint)

    @torch.no_grad()
    def extract_mesh(self) -> Mesh:
        """The refined surface (CPU).

        Raises:
            ShapegenError: no surface left.
        """
        mesh = self.dmtet.to_mesh()
        if mesh.num_faces == 0:
            raise ShapegenError("the DMTet surface is empty; nothing to export")
        return mesh

    @torch.no_grad()
    def render_view(self, azimuth_deg: float, elevation_deg: float, side: int) -> Tensor:
        """An ``H W 3`` uint8 normal render from an orbit camera (mid distance and fov)."""
        c2w, intr = _orbit_camera(self.config, azimuth_deg, elevation_deg, side, self.device)
        normals, _, _, _ = self.render(c2w, intr)
        return _to_uint8(normals)

    def write_preview(self, folder: str | Path, step: int) -> None:
        """The normal render at ``step`` as ``FOLDER/geometry_stepNNNNNN.png``."""
        _write_render(self, folder, f"geometry_step{step:06d}.png", self.config.geometry.resolution)


def nerf_level_function(checkpoint: str | Path, particle: int = 0, device: torch.device | str = "cpu"):
    """``x -> iso - sigma(x)`` of particle ``particle`` of a NeRF-stage checkpoint (negative inside).

    Only the NeRF field is rebuilt (from the config saved in the checkpoint), not the prior.

    Raises:
        ShapegenError: the particle does not exist in the checkpoint.
    """
    from shapegen.fields.nerf import NeRFField
    from shapegen.methods.vsd import export_iso_level

    ckpt = load_checkpoint(checkpoint)
    cfg = from_dict(VSDConfig, ckpt["hyper_parameters"]["config"])
    if not 0 <= particle < cfg.particles:
        raise ShapegenError(f"geometry.particle={particle} but the NeRF stage has {cfg.particles} particle(s)")
    fld = NeRFField(cfg.nerf)
    prefix = f"fields.{particle}."
    fld.load_state_dict({k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)})
    fld = fld.to(device).eval()
    step = 2.0 * math.sqrt(3.0) * cfg.nerf.radius / cfg.render.samples_per_ray
    iso = export_iso_level(fld.density, cfg, step, cfg.export.mesh_resolution, device)
    return lambda x: iso - fld.density(x.to(device))


def dmtet_mesh_from_checkpoint(checkpoint: str | Path) -> Mesh:
    """The surface of a geometry-stage checkpoint (CPU), without loading the prior.

    Raises:
        ShapegenError: the checkpoint holds no surface.
    """
    ckpt = load_checkpoint(checkpoint)
    g = from_dict(VSDConfig, ckpt["hyper_parameters"]["config"]).geometry
    grid = DMTetGrid(g.tet_resolution, deformation_scale=g.deformation_scale)
    prefix = "dmtet."
    grid.load_state_dict({k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)})
    mesh = grid.to_mesh()
    if mesh.num_faces == 0:
        raise ShapegenError(f"the geometry stage in {checkpoint} has an empty surface; rerun it")
    return mesh


# --- stage 3: texture -----------------------------------------------------------------------


class TextureSystem(pl.LightningModule):
    """A texture field on a frozen mesh, optimised with VSD (stage 3).

    Args:
        config: a :class:`~shapegen.methods.vsd.VSDConfig` (its ``texture`` section) or its dict.
        vertices: ``V 3`` mesh vertices (world units, inside ``texture_field.radius``); may be
            omitted when loading a checkpoint, which holds the mesh.
        faces: ``F 3`` faces.
        prompt_variants: extra prompts the guidance can be asked for per step.

    Hook for presets: :meth:`sample_cameras` (cameras and prompt variant per step).
    """

    preview_view = PREVIEW_VIEW
    """Azimuth and elevation of the training renders (degrees)."""

    def __init__(
        self,
        config: VSDConfig | dict[str, Any],
        vertices: Tensor | None = None,
        faces: Tensor | None = None,
        prompt_variants: tuple[str, ...] | list[str] = (),
    ) -> None:
        super().__init__()
        cfg = _config(config)
        self.config = cfg
        self.save_hyperparameters({"config": to_dict(cfg)})
        t = cfg.texture
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed + 2)
            self.field = TextureField(t.texture_field)
            self.background = Background(cfg.background)
        self.register_buffer("mesh_vertices", torch.zeros(0, 3))
        self.register_buffer("mesh_faces", torch.zeros(0, 3, dtype=torch.long))
        self._neighbors: Tensor | None = None
        if vertices is not None and faces is not None:
            self.set_mesh(vertices, faces)
        self.guidance = build_guidance(cfg, t.guidance, prompt_variants)
        self.sampler = RandomCameraSampler(cfg.cameras, seed=cfg.seed + 2)
        self.history: list[dict[str, float]] = []

    def set_mesh(self, vertices: Tensor, faces: Tensor) -> None:
        """Set the frozen mesh (e.g. after building the system before the mesh existed).

        Raises:
            ShapegenError: the mesh leaves the texture field's cube.
        """
        r = self.config.texture.texture_field.radius
        if vertices.numel() and float(vertices.abs().max()) > r:
            raise ShapegenError(
                f"the mesh reaches {float(vertices.abs().max()):.3g} from the origin, outside the texture field's cube "
                f"(texture.texture_field.radius={r}); scale the mesh or raise the radius"
            )
        self.mesh_vertices = vertices.detach().float().to(self.mesh_vertices.device)
        self.mesh_faces = faces.detach().long().to(self.mesh_faces.device)
        self._neighbors = None

    @property
    def neighbors(self) -> Tensor:
        if self._neighbors is None or self._neighbors.device != self.mesh_faces.device:
            self._neighbors = face_neighbors(self.mesh_faces)
        return self._neighbors

    def shade(self, points: Tensor, normals: Tensor, eye: Tensor) -> Tensor:
        """Colour of surface points: the albedo, or point-light PBR shading (``material: pbr``)."""
        out = self.field(points)
        if out.roughness is None:
            return out.albedo
        ambient = self.config.texture.ambient
        to_eye = F.normalize(eye - points, dim=-1)
        n = normals * torch.sign((normals * to_eye).sum(-1, keepdim=True) + 1e-12)  # face the camera
        ndl = (n * to_eye).sum(-1, keepdim=True).clamp_min(0)  # light at the camera: l = h = v
        metal = out.metallic[:, None]
        alpha = out.roughness[:, None].clamp_min(0.05) ** 2
        shininess = 2.0 / alpha**2 - 2.0
        f0 = 0.04 * (1 - metal) + out.albedo * metal
        spec = f0 * (shininess + 2) / 8 * ndl.pow(shininess) * ndl
        diffuse = out.albedo * (1 - metal) * (ambient + (1 - ambient) * ndl)
        return (diffuse + spec).clamp(0, 1)

    def render(self, c2w: Tensor, intrinsics: Intrinsics, posed: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Colour ``B 3 H W`` (over the background, anti-aliased) and coverage ``B 1 H W``.

        ``posed`` (``V 3``) renders the mesh with moved vertices (e.g. skinned into a pose) while
        the texture is still looked up at the rest positions, so it moves with the surface.
        """
        v, f = self.mesh_vertices, self.mesh_faces
        pos = v if posed is None else posed.to(v)
        out = render_gbuffers(pos, f, c2w, intrinsics, attributes=v, antialias_edges=False, neighbors=self.neighbors)
        b, h, w = out.mask.shape
        mask = out.mask.reshape(-1)
        color = v.new_zeros(b * h * w, 3)
        if bool(mask.any()):
            eye = c2w[:, :3, 3].repeat_interleave(h * w, 0)[mask]
            color = color.index_put((mask.nonzero().squeeze(1),), self.shade(
                out.attributes.reshape(-1, 3)[mask], out.normals.reshape(-1, 3)[mask], eye
            ))
        rays = generate_rays(c2w, intrinsics)
        bg = self.background(rays.directions)
        alpha = out.alpha.reshape(-1, 1)
        rgb = color * alpha + bg * (1 - alpha)
        rgb = antialias(rgb.view(b, h, w, 3), out.rasterization, self.neighbors)
        return rgb.permute(0, 3, 1, 2), out.alpha.permute(0, 3, 1, 2)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(StepDataset(), batch_size=None)

    def sample_cameras(self, resolution: int) -> tuple[Any, Tensor | None]:
        """Hook: this step's cameras and prompt variant per camera (None: the main prompt)."""
        return self.sampler.sample(resolution, resolution, device=self.device), None

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        t = self.config.texture
        step = int(self.global_step)
        cams, variant = self.sample_cameras(t.resolution)
        rgb, _ = self.render(cams.c2w, cams.intrinsics)
        out = self.guidance(rgb, cams.c2w, step, cams.azimuth_deg, cams.elevation_deg, variant=variant)
        record = {
            "step": float(step),
            "loss_vsd": float(out.loss.detach()),
            "loss_lora": float(out.loss_lora.detach()),
            "grad_norm": float(out.grad_norm),
        }
        self.history.append(record)
        self.log_dict({k: v for k, v in record.items() if k.startswith("loss")}, prog_bar=True)
        return out.loss + out.loss_lora

    def configure_optimizers(self):
        o = self.config.texture.optim
        mlps = [p for n, p in self.field.named_parameters() if not n.startswith("encoding.")]
        groups = [
            {"params": [self.field.encoding.embeddings], "lr": o.lr_grid},
            {"params": mlps + list(self.background.parameters()), "lr": o.lr_mlp},
        ]
        lora = self.guidance.lora_parameters()
        if lora:
            groups.append({"params": lora, "lr": o.lr_lora})
        return torch.optim.AdamW(groups, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        _checkpoint_hooks_save(self, checkpoint, "texture")

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        # The mesh size is only known from the checkpoint: resize the buffers before loading.
        self.mesh_vertices = state["mesh_vertices"].to(self.mesh_vertices.device).clone()
        self.mesh_faces = state["mesh_faces"].to(self.mesh_faces.device).clone()
        self._neighbors = None
        _checkpoint_hooks_load(self, checkpoint)

    @torch.no_grad()
    def render_view(self, azimuth_deg: float, elevation_deg: float, side: int) -> Tensor:
        """An ``H W 3`` uint8 colour render from an orbit camera (mid distance and fov)."""
        c2w, intr = _orbit_camera(self.config, azimuth_deg, elevation_deg, side, self.device)
        return _to_uint8(self.render(c2w, intr)[0])

    def write_preview(self, folder: str | Path, step: int) -> None:
        """The colour render at ``step`` as ``FOLDER/texture_stepNNNNNN.png``."""
        _write_render(self, folder, f"texture_step{step:06d}.png", self.config.texture.resolution)

    @torch.no_grad()
    def textured_mesh(self, to_field=None) -> Mesh:
        """The mesh with a UV atlas and the field baked into PBR textures (CPU).

        Args:
            to_field: optional map from the returned mesh's coordinates to the field's
                (e.g. the normalisation of ``shapegen texture``); identity by default.
        """
        t = self.config.texture
        mesh = Mesh(self.mesh_vertices.cpu(), self.mesh_faces.cpu())
        return bake_field(self.field, mesh, t.texture_resolution, t.uv_atlas, t.uv_padding, to_field)


def bake_field(field: TextureField, mesh: Mesh, resolution: int, atlas: str = "auto", padding: int = 4, to_field=None) -> Mesh:
    """UV-atlas ``mesh`` and bake ``field`` into a glTF PBR material (base colour, and
    roughness/metallic when the field has them)."""
    from shapegen.geometry.texture import bake_textures, uv_atlas

    device = next(field.parameters()).device
    mapped = (lambda x: x) if to_field is None else to_field
    with torch.no_grad():
        atlas_mesh = uv_atlas(mesh, method=atlas, resolution=resolution, padding=padding)

        def color(x: Tensor) -> Tensor:
            return field(mapped(x.to(device))).albedo.cpu()

        pbr = field.pbr_head is not None
        return bake_textures(
            atlas_mesh,
            color,
            resolution,
            roughness_fn=(lambda x: field(mapped(x.to(device))).roughness.cpu()) if pbr else None,
            metallic_fn=(lambda x: field(mapped(x.to(device))).metallic.cpu()) if pbr else None,
            padding=padding,
        )
