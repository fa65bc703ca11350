"""A rigged GLB opened in real Blender (bpy): armature, skinned mesh, shape keys, PBR, posing.

The import and the posing run in a child Python process (``tests/_blender_probe.py``).
"""

from __future__ import annotations

import pytest
import torch
from _blender_probe import probe_rigged_glb

from shapegen.fields.body_prior import HumanoidPrior
from shapegen.geometry.export_rigged import export_rigged_glb
from shapegen.geometry.mesh import PBRMaterial
from shapegen.geometry.rigging import rig_analytic_template

pytestmark = pytest.mark.blender



def test_rigged_glb_imports_posable_into_blender(tmp_path):
    prior = HumanoidPrior()
    rigged = rig_analytic_template(prior, resolution=48)
    rigged.mesh.material = PBRMaterial(base_color_factor=(0.8, 0.6, 0.5, 1.0), roughness_factor=0.6)
    near = ((rigged.mesh.vertices - torch.tensor([0.0, 1.57, 0.11])).norm(dim=1) < 0.05).float()
    rigged.morph_targets["jawOpen"] = near[:, None] * torch.tensor([0.0, -0.01, 0.0])
    path = export_rigged_glb(rigged, tmp_path / "rigged.glb")
    info = probe_rigged_glb(path, "forearm_l", "hand_l")
    assert info["armatures"] == 1 and info["meshes"] == 1 and info["bones"] == prior.num_joints
    assert "ARMATURE" in info["modifiers"]
    assert set(prior.joint_names) <= set(info["groups"])
    assert info["shape_keys"] == ["Basis", "jawOpen"]
    assert info["base_color"] == pytest.approx([0.8, 0.6, 0.5], abs=1e-3)
    assert info["roughness"] == pytest.approx(0.6, abs=1e-3)
    assert info["moved"] > 0.1  # every hand vertex follows the rotated forearm
    assert info["still"] < 1e-4  # the pelvis stays put
