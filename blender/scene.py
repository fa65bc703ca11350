# SPDX-License-Identifier: GPL-3.0-or-later
"""What jobs read from and put into the Blender scene: stroke points, the selected mesh as an OBJ,
and imported results in the ``shapegen`` collection."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector

COLLECTION = "shapegen"
SPACING = 2.5
"""Distance along X between the variations of one job (shapegen's shapes fit in [-1, 1]^3)."""


# ----------------------------------------------------------------------------- strokes
def annotation_strokes(scene) -> list[np.ndarray]:
    """World points of the scene's annotation strokes (Annotate tool), visible layers, active frames."""
    data = getattr(scene, "annotation", None) or getattr(scene, "grease_pencil", None)
    strokes = []
    if data is None:
        return strokes
    for layer in data.layers:
        if getattr(layer, "annotation_hide", False) or getattr(layer, "hide", False):
            continue
        frame = layer.active_frame
        if frame is None:
            continue
        for stroke in frame.strokes:
            pts = np.array([tuple(p.co) for p in stroke.points], dtype=np.float64)
            if len(pts):
                strokes.append(pts)
    return strokes


def grease_pencil_strokes(objects) -> list[np.ndarray]:
    """World points of the strokes of Grease Pencil (v3, Blender 4.3+) objects, visible layers,
    current frames."""
    strokes = []
    for ob in objects:
        if ob.type != "GREASEPENCIL" or not ob.visible_get():
            continue
        for layer in ob.data.layers:
            if layer.hide:
                continue
            frame = layer.current_frame()
            if frame is None or frame.drawing is None:
                continue
            m = np.array(ob.matrix_world @ layer.matrix_local, dtype=np.float64)
            for stroke in frame.drawing.strokes:
                pts = np.array([tuple(p.position) for p in stroke.points], dtype=np.float64)
                if len(pts):
                    strokes.append(pts @ m[:3, :3].T + m[:3, 3])
    return strokes


def viewport_strokes(context) -> list[np.ndarray]:
    """Strokes to sketch from: the selected Grease Pencil objects' (or every visible one's when none
    is selected), plus the scene's annotations."""
    gp = [o for o in context.selected_objects if o.type == "GREASEPENCIL"] if context.selected_objects else []
    if not gp:
        gp = [o for o in context.scene.objects if o.type == "GREASEPENCIL"]
    return grease_pencil_strokes(gp) + annotation_strokes(context.scene)


# ----------------------------------------------------------------------------- mesh out
def write_obj_yup(ob, depsgraph, path: Path) -> Path:
    """The evaluated mesh of ``ob`` in world space, triangulated, as an OBJ in shapegen's frame
    (+Y up, front towards +Z: Blender (x, y, z) -> (x, z, -y))."""
    ev = ob.evaluated_get(depsgraph)
    mesh = ev.to_mesh()
    try:
        mesh.calc_loop_triangles()
        co = np.empty(len(mesh.vertices) * 3)
        mesh.vertices.foreach_get("co", co)
        co = co.reshape(-1, 3)
        m = np.array(ob.matrix_world)
        co = co @ m[:3, :3].T + m[:3, 3]
        tri = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int64)
        mesh.loop_triangles.foreach_get("vertices", tri)
        tri = tri.reshape(-1, 3)
    finally:
        ev.to_mesh_clear()
    if len(tri) == 0:
        raise ValueError(f"'{ob.name}' has no faces to rig")
    yup = np.c_[co[:, 0], co[:, 2], -co[:, 1]]
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in yup] + [f"f {a} {b} {c}" for a, b, c in tri + 1]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


# ----------------------------------------------------------------------------- results in
def shapegen_collection(scene):
    coll = bpy.data.collections.get(COLLECTION)
    if coll is None:
        coll = bpy.data.collections.new(COLLECTION)
    if coll.name not in scene.collection.children and coll not in scene.collection.children_recursive:
        scene.collection.children.link(coll)
    return coll


def default_material(vertex_colours: bool):
    """The material given to imported meshes that bring none (shapegen's plain GLBs): a light clay
    Principled BSDF, its base colour read from the mesh's colour attribute when it has one."""
    name = "shapegen vertex colour" if vertex_colours else "shapegen clay"
    mat = bpy.data.materials.get(name)
    if mat is not None:
        return mat
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = next(n for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    bsdf.inputs["Base Color"].default_value = (0.8, 0.78, 0.74, 1.0)
    bsdf.inputs["Roughness"].default_value = 0.6
    mat.diffuse_color = (0.8, 0.78, 0.74, 1.0)  # the Workbench / solid-view colour
    if vertex_colours:
        attr = mat.node_tree.nodes.new("ShaderNodeVertexColor")  # the active colour attribute
        mat.node_tree.links.new(attr.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def import_results(paths: list[Path], name: str, *, at_cursor: bool = True) -> list[str]:
    """Import GLBs (with their materials) into the ``shapegen`` collection, each named after
    ``name``, placed at the 3D cursor (side by side along X for several), selected and active.

    Args:
        at_cursor: False keeps the results where the files put them (a rigged copy of a mesh
            lands on the mesh it was made from).

    Returns:
        The names of the new objects.
    """
    context = bpy.context
    scene = context.scene
    coll = shapegen_collection(scene)
    cursor = scene.cursor.location.copy() if at_cursor else Vector((0.0, 0.0, 0.0))
    added = []
    for i, path in enumerate(paths):
        before = set(bpy.data.objects)
        result = bpy.ops.import_scene.gltf(filepath=str(path))
        if "FINISHED" not in result:
            raise RuntimeError(f"the glTF importer could not read {path.name}")
        # The importer keeps helpers (bone display shapes) in a hidden glTF_not_exported collection:
        # they stay there, out of the scene.
        new = [o for o in bpy.data.objects if o not in before and not any(c.name.startswith("glTF_not_exported") for c in o.users_collection)]
        for ob in new:
            for c in list(ob.users_collection):
                c.objects.unlink(ob)
            coll.objects.link(ob)
        for ob in new:
            if ob.type == "MESH" and not any(ob.data.materials):
                ob.data.materials.clear()
                ob.data.materials.append(default_material(bool(ob.data.color_attributes)))
        roots = [o for o in new if o.parent is None]
        label = name if len(paths) == 1 else f"{name} {i + 1:02d}"
        for k, ob in enumerate(roots):
            ob.location = ob.location + cursor + Vector((i * SPACING, 0.0, 0.0))
            ob.name = label if len(roots) == 1 else f"{label} {ob.type.lower()}"
            if k == 0 and ob.type == "MESH":
                ob.data.name = label
        added.extend(new)
    view_layer = context.view_layer
    for ob in view_layer.objects:
        ob.select_set(False)
    for ob in added:
        if ob.name in view_layer.objects:
            ob.select_set(True)
    roots = [o for o in added if o.parent is None]
    if roots:
        view_layer.objects.active = roots[0]
    frame_selected(context)
    return [o.name for o in added]


def frame_selected(context) -> None:
    """Frame the selection in every 3D view (none in background mode)."""
    wm = getattr(context, "window_manager", None)
    for window in getattr(wm, "windows", []):
        for area in window.screen.areas:
            if area.type != "VIEW_3D":
                continue
            region = next((r for r in area.regions if r.type == "WINDOW"), None)
            if region is None:
                continue
            with context.temp_override(window=window, area=area, region=region):
                bpy.ops.view3d.view_selected()
