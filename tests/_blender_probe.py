"""Open a rigged GLB in real Blender (bpy) in a child process, pose one bone, report what it saw.

Blender keeps global state, so the import runs in ``python -c``; the child prints one JSON line.
Shared by the rigged-export and avatar Blender tests (import it as ``from _blender_probe import ...``;
``tests/`` is on ``sys.path`` through its conftest).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = r'''
import json, math, sys
import bpy
from mathutils import Quaternion

path, bone, moved_group, still_group = sys.argv[1:5]
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath=path)
arms = [o for o in bpy.context.scene.objects if o.type == "ARMATURE"]
# The importer also adds an unparented "Icosphere" bone-display shape; count skinned meshes only.
meshes = [o for o in bpy.context.scene.objects if o.type == "MESH" and o.parent in arms]
me = meshes[0]
bsdf = [n for n in me.data.materials[0].node_tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled"][0]
info = {"armatures": len(arms), "meshes": len(meshes), "bones": len(arms[0].data.bones),
        "modifiers": [m.type for m in me.modifiers], "groups": [g.name for g in me.vertex_groups],
        "uv": len(me.data.uv_layers),
        "linked": {name: bool(bsdf.inputs[name].links) for name in ("Base Color", "Metallic", "Roughness")},
        "base_color": list(bsdf.inputs["Base Color"].default_value)[:3],
        "roughness": bsdf.inputs["Roughness"].default_value,
        "shape_keys": [k.name for k in me.data.shape_keys.key_blocks] if me.data.shape_keys else []}

def evaluated():
    dg = bpy.context.evaluated_depsgraph_get()
    ev = me.evaluated_get(dg)
    return [tuple(ev.matrix_world @ v.co) for v in ev.to_mesh().vertices]

def group_vertices(name):
    gi = me.vertex_groups[name].index
    return [v.index for v in me.data.vertices if any(g.group == gi and g.weight > 0.9 for g in v.groups)]

rest = evaluated()
pb = arms[0].pose.bones[bone]
pb.rotation_mode = "QUATERNION"
pb.rotation_quaternion = Quaternion((1, 0, 0), math.radians(90))
bpy.context.view_layer.update()
posed = evaluated()
info["moved"] = min(math.dist(rest[i], posed[i]) for i in group_vertices(moved_group))
info["still"] = max(math.dist(rest[i], posed[i]) for i in group_vertices(still_group))
print("JSON" + json.dumps(info))
'''


def probe_rigged_glb(path: str | Path, bone: str, moved_group: str, still_group: str = "pelvis") -> dict:
    """Import ``path`` into Blender, rotate ``bone`` by 90 degrees about X and report.

    Returns:
        ``armatures``, ``meshes`` (skinned), ``bones``, ``modifiers``, ``groups``, ``uv`` (layers),
        ``linked`` (Base Color / Metallic / Roughness fed by textures), ``base_color``,
        ``roughness``, ``shape_keys``, ``moved`` (smallest displacement of a vertex of
        ``moved_group``) and ``still`` (largest displacement of a vertex of ``still_group``).
    """
    proc = subprocess.run([sys.executable, "-c", PROBE, str(path), bone, moved_group, still_group],
                          capture_output=True, text=True, timeout=300, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("JSON")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:] + proc.stdout[-3000:]
    return json.loads(lines[-1][4:])
