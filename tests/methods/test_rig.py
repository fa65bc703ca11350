"""Humanoid rigging helpers (shapegen.methods.rig): pose axes in rotated bone frames, Anny bone parts, the Anny template (slow)."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from shapegen.geometry.mesh import Mesh
from shapegen.geometry.rigging import (
    RiggedMesh,
    Skeleton,
    SkinWeights,
    axis_angle_matrix,
    linear_blend_skinning,
)
from shapegen.methods.rig import _anny_part, anny_template, pose_rotations, rig_humanoid


def test_pose_axes_are_world_axes_even_for_rotated_bones():
    rest = torch.eye(4).repeat(2, 1, 1)
    rest[1, :3, :3] = axis_angle_matrix((1.0, 0.0, 0.0), 90.0)  # a bone whose frame is turned
    rest[1, :3, 3] = torch.tensor([1.0, 0.0, 0.0])
    sk = Skeleton(["root", "forearm_l"], [-1, 0], rest)
    point = torch.tensor([[2.0, 0.0, 0.0]])
    rigged = RiggedMesh(Mesh(point, torch.zeros(0, 3, dtype=torch.long)), sk, SkinWeights(torch.tensor([[1]]), torch.tensor([[1.0]])))
    rot = pose_rotations(rigged, {"forearm_l": ((0.0, 0.0, 1.0), 90.0)})
    out = linear_blend_skinning(point, rigged.skin, sk, sk.forward_kinematics(rot))
    torch.testing.assert_close(out, torch.tensor([[1.0, 1.0, 0.0]]), atol=1e-5, rtol=0)  # +X arm turned to +Y


def test_anny_bone_parts():
    assert _anny_part("lowerarm01.L") == "arm_l" and _anny_part("finger2-3.R") == "arm_r"
    assert _anny_part("upperleg02.R") == "leg_r" and _anny_part("toe1-1.L") == "leg_l"
    assert _anny_part("neck02") == "head" and _anny_part("spine03") == "torso" and _anny_part("pelvis.L") == "torso"


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("anny") is None or not os.environ.get("SHAPEGEN_ANNY_CACHE"),
    reason="needs the optional package anny and SHAPEGEN_ANNY_CACHE (its first build takes minutes and ~1.1 GB)",
)
def test_anny_template_rigs_a_body():
    cache = os.environ["SHAPEGEN_ANNY_CACHE"]
    tpl = anny_template(cache, "jawOpen")
    lo, hi = tpl.mesh.bounds()
    assert abs(float(lo[1])) < 1e-5 and 1.4 < float(hi[1]) < 2.0  # +Y up, soles on y = 0
    assert float(tpl.skeleton.positions[tpl.skeleton.index("wrist.L")][0]) > 0.2  # left = +X
    jaw = tpl.morph_targets["jawOpen"]
    moving = tpl.mesh.vertices[jaw.norm(dim=1) > 1e-3]
    assert len(moving) and float(moving[:, 1].min()) > 1.3  # the jaw delta stays in the head
    rigged = rig_humanoid(tpl.mesh, template=tpl)
    torch.testing.assert_close(rigged.skin.weights.sum(1), torch.ones(tpl.mesh.num_vertices))
