"""Avatars: rig any roughly humanoid standing mesh against the body prior's template.

Method notes: ``shared/methods/avatar.md`` (layer 3, rig transfer). The text-to-avatar VSD
preset (layer 1) and the PBR baking stage (layer 2) are not here yet.

Pipeline of :func:`rig_humanoid`:
    1. check the mesh looks like a standing humanoid in shapegen's frame (+Y up, facing +Z);
    2. similarity-align it with the template: scale its height to the template's, put its
       soles on ``y = 0`` and its bounding-box centre (x, z) on the template's;
    3. transfer skin weights and morph targets (:func:`shapegen.geometry.rigging.transfer_rig`);
    4. map the skeleton (and morph deltas) back into the mesh's own frame, so the output keeps
       the input's units and placement.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shapegen.errors import ShapegenError
from shapegen.fields.body_prior import BodyPriorConfig, HumanoidPrior
from shapegen.geometry.mesh import Mesh
from shapegen.geometry.rigging import (
    RiggedMesh,
    TransferConfig,
    axis_angle_matrix,
    rig_analytic_template,
    transfer_rig,
)

__all__ = ["POSES", "RigConfig", "pose_rotations", "rig_humanoid"]


@dataclass
class RigConfig:
    """Settings of ``shapegen rig``."""

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
    if template is None:
        prior = HumanoidPrior(BodyPriorConfig(arm_angle=cfg.arm_angle))
        template = rig_analytic_template(prior, cfg.template_resolution)
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


def pose_rotations(rigged: RiggedMesh, pose: dict[str, tuple[tuple[float, float, float], float]]) -> torch.Tensor:
    """``J 3 3`` local rotations for a pose given as joint name -> (axis, degrees); unknown joints are skipped."""
    rot = torch.eye(3).repeat(rigged.skeleton.num_joints, 1, 1)
    for name, (axis, degrees) in pose.items():
        if name in rigged.skeleton.names:
            rot[rigged.skeleton.names.index(name)] = axis_angle_matrix(axis, degrees)
    return rot
