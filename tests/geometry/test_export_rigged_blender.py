"""A rigged GLB opened in real Blender (bpy): armature, skinned mesh, shape keys, PBR, posing.

The import and the posing run in a child Python process (Blender keeps global state), which
prints one JSON line that the test checks.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from shapegen.fields.body_prior import HumanoidPrior
from shapegen.geometry.export_rigged import export_rigged_glb
from shapegen.geometry.mesh import PBRMaterial
from shapegen.geometry.rigging import rig_analytic_template

pytestmark = pytest.mark.blender

PROBE = r'''
import json, math, sys
import bpy
from mathutils import Quaternion

bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath=sys.argv[1])
arms = [o for o in bpy.context.scene.objects if o.type == "ARMATURE"]
# The importer also adds an unparented "Icosphere" bone-display shape; count skinned meshes only.
meshes = [o for o in bpy.context.scene.objects if o.type == "MESH" and o.parent in arms]
me = meshes[0]
info = {"armatures": len(arms), "meshes": len(meshes), "bones": len(arms[0].data.bones),
        "modifiers": [m.type for m in me.modifiers],
        "groups": [g.name for g in me.vertex_groups],
        "shape_keys": [k.name for k in me.data.shape_keys.key_blocks] if me.data.shape_keys else []}
mat = me.data.materials[0]
bsdf = [n for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled"][0]
info["base_color"] = list(bsdf.inputs["Base Color"].default_value)[:3]
info["roughness"] = bsdf.inputs["Roughness"].default_value

def evaluated():
    dg = bpy.context.evaluated_depsgraph_get()
    ev = me.evaluated_get(dg)
    return [tuple(ev.matrix_world @ v.co) for v in ev.to_mesh().vertices]

def group_vertices(name):
    gi = me.vertex_groups[name].index
    return [v.index for v in me.data.vertices if any(g.group == gi and g.weight > 0.9 for g in v.groups)]

rest = evaluated()
pb = arms[0].pose.bones["forearm_l"]
pb.rotation_mode = "QUATERNION"
pb.rotation_quaternion = Quaternion((1, 0, 0), math.radians(90))
bpy.context.view_layer.update()
posed = evaluated()
dist = lambda a, b: math.dist(a, b)
info["hand_moved"] = min(dist(rest[i], posed[i]) for i in group_vertices("hand_l"))
info["pelvis_moved"] = max(dist(rest[i], posed[i]) for i in group_vertices("pelvis"))
print("JSON" + json.dumps(info))
'''


def test_rigged_glb_imports_posable_into_blender(tmp_path):
    prior = HumanoidPrior()
    rigged = rig_analytic_template(prior, resolution=48)
    rigged.mesh.material = PBRMaterial(base_color_factor=(0.8, 0.6, 0.5, 1.0), roughness_factor=0.6)
    near = ((rigged.mesh.vertices - torch.tensor([0.0, 1.57, 0.11])).norm(dim=1) < 0.05).float()
    rigged.morph_targets["jawOpen"] = near[:, None] * torch.tensor([0.0, -0.01, 0.0])
    path = export_rigged_glb(rigged, tmp_path / "rigged.glb")
    out = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, timeout=300, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("JSON")]
    assert out.returncode == 0 and lines, out.stderr[-3000:] + out.stdout[-3000:]
    info = json.loads(lines[-1][4:])
    assert info["armatures"] == 1 and info["meshes"] == 1 and info["bones"] == prior.num_joints
    assert "ARMATURE" in info["modifiers"]
    assert set(prior.joint_names) <= set(info["groups"])
    assert info["shape_keys"] == ["Basis", "jawOpen"]
    assert info["base_color"] == pytest.approx([0.8, 0.6, 0.5], abs=1e-3)
    assert info["roughness"] == pytest.approx(0.6, abs=1e-3)
    assert info["hand_moved"] > 0.1  # every hand vertex follows the rotated forearm
    assert info["pelvis_moved"] < 1e-4  # the pelvis stays put
