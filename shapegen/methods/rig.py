"""Rigging a humanoid mesh (``shapegen rig``): skin any roughly humanoid standing mesh against the body prior's template.

The text-to-avatar VSD preset (body-prior initialisation, head-zoom cameras, prior regulariser,
PBR bake) is :mod:`shapegen.methods.text_avatar`, which rigs its result with the same transfer.

Pipeline of :func:`rig_humanoid`:
    1. check the mesh looks like a standing humanoid in shapegen's frame (+Y up, facing +Z);
    2. similarity-align it with the template: scale its height to the template's, put its
       soles on ``y = 0`` and its bounding-box centre (x, z) on the template's;
    3. transfer skin weights and morph targets (:func:`shapegen.geometry.rigging.transfer_rig`);
    4. map the skeleton (and morph deltas) back into the mesh's own frame, so the output keeps
       the input's units and placement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import torch

from shapegen.errors import ShapegenError
from shapegen.fields.body_prior import BodyPriorConfig, HumanoidPrior, import_anny
from shapegen.geometry.mesh import Mesh
from shapegen.geometry.rigging import (
    RiggedMesh,
    Skeleton,
    SkinWeights,
    TransferConfig,
    axis_angle_matrix,
    rig_analytic_template,
    transfer_rig,
)

__all__ = ["POSES", "RigConfig", "anny_template", "pose_rotations", "rig_humanoid"]


@dataclass
class RigConfig:
    """Settings of ``shapegen rig``."""

    template: Literal["analytic", "anny"] = "analytic"
    """Rig source: the analytic humanoid (no dependency) or the Anny body model (optional extra)."""
    anny_cache_dir: str | None = None
    """Anny's cache folder (first build: minutes and about 1.1 GB); default: Anny's own."""
    anny_facial_actions: str = "all"
    """ARKit face blendshapes moved onto the mesh as morph targets: ``all``, ``none`` or a comma list."""
    arm_angle: float = 35.0
    """Template arms' angle below the horizontal in degrees; match the mesh (0 for a T-pose)."""
    template_resolution: int = 96
    """Marching-cubes grid of the template along its height (denser: finer weights, slower)."""
    neighbours: int = 16
    """Template vertices considered per mesh vertex."""
    min_normal_dot: float = 0.0
    """Template candidates whose normal disagrees more than this with the vertex's are dropped."""
    top_k: int = 4
    """Joint influences per vertex (glTF JOINTS_0 holds 4)."""
    preview_size: int = 256
    """Side in pixels of each pose in the preview PNG."""
    face_morphs: bool = False
    """Analytic template: also transfer an ARKit ``jawOpen`` morph target (Anny brings its own)."""


def rig_humanoid(mesh: Mesh, config: RigConfig | None = None, template: RiggedMesh | None = None) -> RiggedMesh:
    """Rig ``mesh`` (a standing humanoid, +Y up, facing +Z, any units) by transfer from the template.

    Args:
        mesh: the surface to rig.
        config: settings; defaults to :class:`RigConfig`.
        template: a prepared template (e.g. cached between calls); built from ``config`` if None.

    Returns:
        The rigged mesh in the input's frame and units.

    Raises:
        ShapegenError: an empty mesh, or one whose proportions are not those of a standing figure.
    """
    cfg = config or RigConfig()
    if mesh.num_faces == 0 or mesh.num_vertices == 0:
        raise ShapegenError("the mesh is empty; nothing to rig")
    if not torch.isfinite(mesh.vertices).all():
        raise ShapegenError("the mesh has NaN or infinite vertices; fix it before rigging")
    used = mesh.vertices[mesh.faces.unique()]
    lo, hi = used.amin(0), used.amax(0)
    ext = hi - lo
    if ext[1] <= 0 or ext[2] > 0.6 * ext[1] or ext[0] > 1.3 * ext[1]:
        raise ShapegenError(
            f"the mesh ({ext[0]:.3g} x {ext[1]:.3g} x {ext[2]:.3g} in x, y, z) does not look like a standing humanoid "
            "with +Y up facing +Z; rotate it into that frame first"
        )
    if template is None and cfg.template == "anny":
        template = anny_template(cfg.anny_cache_dir, cfg.anny_facial_actions)
    elif template is None:
        prior = HumanoidPrior(BodyPriorConfig(arm_angle=cfg.arm_angle))
        template = rig_analytic_template(prior, cfg.template_resolution, face_morphs=cfg.face_morphs)
    tlo, thi = template.mesh.bounds()
    scale = float((thi[1] - tlo[1]) / ext[1])
    offset = torch.stack([(tlo[0] + thi[0]) / 2, tlo[1], (tlo[2] + thi[2]) / 2]) - scale * torch.stack([(lo[0] + hi[0]) / 2, lo[1], (lo[2] + hi[2]) / 2])
    aligned = Mesh(mesh.vertices * scale + offset, mesh.faces)
    moved = transfer_rig(template, aligned, TransferConfig(neighbours=cfg.neighbours, min_normal_dot=cfg.min_normal_dot, top_k=cfg.top_k))
    skeleton = moved.skeleton.transformed(1.0 / scale, -offset / scale)
    morphs = {k: v / scale for k, v in moved.morph_targets.items()}
    return RiggedMesh(mesh, skeleton, moved.skin, morphs)


POSES: dict[str, dict[str, tuple[tuple[float, float, float], float]]] = {
    "rest": {},
    "wave": {"upper_arm_l": ((0.0, 0.0, 1.0), 80.0), "forearm_l": ((0.0, 0.0, 1.0), 60.0)},
    "step": {"thigh_r": ((1.0, 0.0, 0.0), -35.0), "shin_r": ((1.0, 0.0, 0.0), 45.0), "upper_arm_r": ((1.0, 0.0, 0.0), -30.0)},
}
"""A few preview poses: joint -> (axis, degrees) local rotations."""


_ALIASES = {  # analytic joint -> Anny (MakeHuman) bone
    "upper_arm_l": "upperarm01.L", "forearm_l": "lowerarm01.L", "upper_arm_r": "upperarm01.R",
    "forearm_r": "lowerarm01.R", "thigh_l": "upperleg01.L", "shin_l": "lowerleg01.L",
    "thigh_r": "upperleg01.R", "shin_r": "lowerleg01.R",
}


def pose_rotations(rigged: RiggedMesh, pose: dict[str, tuple[tuple[float, float, float], float]]) -> torch.Tensor:
    """``J 3 3`` local rotations for a pose given as joint name -> (world axis at rest, degrees).

    Analytic joint names also address the matching Anny bones; unknown joints are skipped.
    The axis is in world coordinates of the rest pose and is turned into the joint's own frame.
    """
    names = rigged.skeleton.names
    rot = torch.eye(3).repeat(rigged.skeleton.num_joints, 1, 1)
    for name, (axis, degrees) in pose.items():
        name = name if name in names else _ALIASES.get(name, name)
        if name in names:
            j = names.index(name)
            b = rigged.skeleton.rest_transforms[j, :3, :3]
            rot[j] = b.T @ axis_angle_matrix(axis, degrees) @ b
    return rot


# ------------------------------------------------------------------------------------------
# Anny (optional): its rest body as a rigged template

# Anny works in Blender's frame (Z up, facing -Y); shapegen's is glTF's (Y up, facing +Z).
_BLENDER_TO_GLTF = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def _anny_part(label: str) -> str:
    """Body part of an Anny (MakeHuman) bone, for keeping limbs apart in transfer."""
    side = "_l" if label.endswith(".L") else "_r" if label.endswith(".R") else ""
    if side and re.match(r"(upperleg|lowerleg|foot|toe)", label):
        return "leg" + side
    if side and re.match(r"(clavicle|shoulder|upperarm|lowerarm|wrist|finger|metacarpal)", label):
        return "arm" + side
    if re.match(r"(neck|head|eye|jaw|tongue)", label):
        return "head"
    return "torso"


def anny_template(cache_dir: str | None = None, facial_actions: str = "all") -> RiggedMesh:
    """Anny's default body at rest as a rigged template (+Y up, facing +Z, soles on y = 0, metres).

    Skin weights are Anny's own (top 4 of its 9 influences, renormalised); morph targets are its
    ARKit-named facial actions as rest-pose position deltas.

    Args:
        cache_dir: Anny's cache folder; None keeps Anny's default.
        facial_actions: ``all``, ``none`` or a comma-separated list of ARKit names.

    Raises:
        ShapegenError: anny is not installed.
    """
    anny = import_anny(cache_dir)
    actions: str | list[str] = facial_actions if facial_actions in ("all", "none") else [a.strip() for a in facial_actions.split(",") if a.strip()]
    model = anny.Anny(facial_actions=actions)
    with torch.no_grad():
        rest = model()
        a = _BLENDER_TO_GLTF.double()
        verts = rest["vertices"][0].double() @ a.T
        lift = -verts[:, 1].min()
        verts[:, 1] += lift
        poses = rest["bone_poses"][0].double().clone()
        poses[:, :3, :3] = a @ poses[:, :3, :3]
        poses[:, :3, 3] = poses[:, :3, 3] @ a.T
        poses[:, 1, 3] += lift
        morphs = {}
        for name in list(getattr(model, "facial_action_labels", []) or []):
            moved = model(facial_actions={name: 1.0})["vertices"][0].double() @ a.T
            morphs[name] = (moved - (verts - torch.tensor([0.0, float(lift), 0.0], dtype=verts.dtype))).float()
    labels, parents = list(model.bone_labels), [int(p) for p in model.bone_parents]
    if any(not (-1 <= p < i) for i, p in enumerate(parents)):
        raise ShapegenError("Anny's bones are not ordered parents first; this Anny version is not supported")
    skeleton = Skeleton(labels, parents, poses.float(), [_anny_part(n) for n in labels])
    dense = torch.zeros(verts.shape[0], len(labels))
    dense.scatter_add_(1, model.vertex_bone_indices.long(), model.vertex_bone_weights.float())
    mesh = Mesh(verts.float(), model.get_triangular_faces().long())
    return RiggedMesh(mesh, skeleton, SkinWeights.from_dense(dense, 4), morphs)
