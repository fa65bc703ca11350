"""Exported files opened in real Blender (bpy): counts, size, which way is up, colours, UVs, materials.

Every format is imported with the importer's default options, as a user would with
File > Import. The imports run in one child Python process (Blender keeps global state),
with a factory reset before each file; the child prints one JSON line that the tests check.

Known Blender behaviour recorded here rather than hidden: Blender's OBJ importer tags the
roughness, metallic and normal PNGs of an MTL as sRGB images (glTF's importer marks them
Non-Color), so the OBJ tests check the links and pixel values but not the colour space.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from _export_fixtures import EXTENTS, tall_box, textured_box

from shapegen.geometry.export import export_mesh

pytestmark = pytest.mark.blender

FORMATS = ["glb", "gltf", "obj", "ply"]

PROBE = r'''
import json, sys
import bpy

def upstream(socket, seen=None):
    """Nodes feeding an input socket, breadth first."""
    out, todo = [], [l.from_node for l in socket.links]
    while todo:
        node = todo.pop(0)
        if node in out:
            continue
        out.append(node)
        for inp in node.inputs:
            todo += [l.from_node for l in inp.links]
    return out

def image_info(node):
    img = node.image
    px = list(img.pixels[:])
    return {"name": img.name, "colorspace": img.colorspace_settings.name, "size": list(img.size), "pixels": px}

result = {}
for path in sys.argv[1:]:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    ext = path.rsplit(".", 1)[1]
    if ext in ("glb", "gltf"):
        bpy.ops.import_scene.gltf(filepath=path)
    elif ext == "obj":
        bpy.ops.wm.obj_import(filepath=path)
    else:
        bpy.ops.wm.ply_import(filepath=path)
    objs = [o for o in bpy.context.scene.objects if o.type == "MESH"]
    info = {"objects": len(objs)}
    o = objs[0]
    me = o.data
    mw = o.matrix_world
    info["positions"] = [list(mw @ v.co) for v in me.vertices]
    info["faces"] = [list(p.vertices) for p in me.polygons]
    info["loop_vertex"] = [l.vertex_index for l in me.loops]
    info["uv"] = [list(d.uv) for d in me.uv_layers[0].data] if me.uv_layers else None
    attrs = []
    for a in me.color_attributes:
        attrs.append({"name": a.name, "domain": a.domain, "type": a.data_type,
                      "srgb": [list(d.color_srgb) for d in a.data]})
    info["colors"] = attrs
    mats = []
    for m in me.materials:
        d = {"name": m.name}
        bsdf = [n for n in m.node_tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled"] if m.node_tree else []
        d["principled"] = len(bsdf)
        if bsdf:
            for sock in ("Base Color", "Roughness", "Metallic", "Normal"):
                nodes = upstream(bsdf[0].inputs[sock])
                d[sock] = {"types": [n.bl_idname for n in nodes],
                           "images": [image_info(n) for n in nodes if n.bl_idname == "ShaderNodeTexImage" and n.image]}
        mats.append(d)
    info["materials"] = mats
    result[path] = info
print("JSON" + json.dumps(result))
'''


def _import_in_blender(paths) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("JSON")]
    assert out.returncode == 0 and lines, out.stderr[-3000:] + out.stdout[-3000:]
    return json.loads(lines[-1][4:])


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blender")
    plain, textured = tall_box(), textured_box()
    paths = {}
    for fmt in FORMATS:
        paths[("plain", fmt)] = export_mesh(plain, folder / f"plain.{fmt}")
        paths[("textured", fmt)] = export_mesh(textured, folder / f"textured.{fmt}")
    info = _import_in_blender(paths.values())
    return {key: info[str(path)] for key, path in paths.items()}, plain, textured


def _expected_color(blender_xyz: np.ndarray) -> np.ndarray:
    """The fixture colour of a vertex, given its Blender position (Z up, Y = -shapegen Z)."""
    x, y, z = blender_xyz.T
    shapegen = np.stack([x, z, -y], 1)  # Blender -> shapegen frame
    return np.clip(shapegen / np.array(EXTENTS) + 0.5, 0, 1)


@pytest.mark.parametrize("kind", ["plain", "textured"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_counts_size_and_up_axis(imported, fmt, kind):
    info, plain, textured = imported
    mesh = plain if kind == "plain" else textured
    got = info[(kind, fmt)]
    assert got["objects"] == 1
    assert len(got["faces"]) == mesh.num_faces
    # OBJ welds positions split only by UV seams; other formats keep every vertex.
    want_v = len(np.unique(mesh.vertices.numpy(), axis=0)) if fmt == "obj" else mesh.num_vertices
    assert len(got["positions"]) == want_v
    pos = np.asarray(got["positions"])
    # The box is 1.0 tall along shapegen +Y: in Blender it must stand along +Z, metres kept.
    np.testing.assert_allclose(
        pos.max(0) - pos.min(0), [EXTENTS[0], EXTENTS[2], EXTENTS[1]], atol=1e-5
    )
    np.testing.assert_allclose(pos.mean(0), 0, atol=1e-5)
    # Triangles keep their winding: outward normals, positive volume.
    tri = pos[np.asarray(got["faces"])]
    volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    np.testing.assert_allclose(volume, np.prod(EXTENTS), rtol=1e-4)


@pytest.mark.parametrize("fmt", FORMATS)
def test_colour_attribute_values(imported, fmt):
    info, *_ = imported
    got = info[("plain", fmt)]
    assert len(got["colors"]) == 1, got["colors"]
    attr = got["colors"][0]
    pos = np.asarray(got["positions"])
    # Colours encode the position (R = x, G = up, B = depth), which pins the whole axis
    # mapping (not only which way is up) and the colour space: Blender's sRGB view of the
    # attribute must equal the sRGB values shapegen had, for every format.
    where = pos if attr["domain"] == "POINT" else pos[np.asarray(got["loop_vertex"])]
    srgb = np.asarray(attr["srgb"])[:, :3]
    np.testing.assert_allclose(srgb, _expected_color(where), atol=1.5 / 255)


@pytest.mark.parametrize("fmt", FORMATS)
def test_uvs(imported, fmt):
    info, _, textured = imported
    got = info[("textured", fmt)]
    assert got["uv"] is not None
    uv = np.asarray(got["uv"]).reshape(-1, 3, 2)
    want = textured.uv[textured.faces].numpy().copy()
    want[..., 1] = 1 - want[..., 1]  # Blender's UV origin is bottom-left
    np.testing.assert_allclose(uv, want, atol=1e-5)


@pytest.mark.parametrize("fmt", ["glb", "gltf", "obj"])
def test_pbr_material(imported, fmt):
    info, _, textured = imported
    mats = info[("textured", fmt)]["materials"]
    assert len(mats) == 1 and mats[0]["principled"] == 1
    mat = mats[0]
    r = textured.material.base_color_texture.shape[0]
    # Base Color <- Image Texture with the base-colour pixels (Blender stores rows bottom-up).
    base = mat["Base Color"]
    assert "ShaderNodeTexImage" in base["types"]
    img = next(i for i in base["images"] if i["size"] == [r, r])
    assert img["colorspace"] == "sRGB"
    px = np.asarray(img["pixels"]).reshape(r, r, 4)[::-1, :, :3]
    np.testing.assert_allclose(
        px, textured.material.base_color_texture.numpy(), atol=1 / 255 + 1e-6
    )
    # Roughness <- G, Metallic <- B of the metallic-roughness data (one packed image in glTF,
    # two greyscale images in OBJ).
    for sock, channel, value in (("Roughness", 1, 0.6), ("Metallic", 2, 0.2)):
        assert "ShaderNodeTexImage" in mat[sock]["types"], (sock, mat[sock]["types"])
        data = np.asarray(mat[sock]["images"][0]["pixels"]).reshape(-1, 4)
        np.testing.assert_allclose(data[:, channel], value, atol=1 / 255)
        if fmt != "obj":
            assert mat[sock]["images"][0]["colorspace"] == "Non-Color"
    # Normal <- Normal Map <- Image Texture (flat normal map: 0.5, 0.5, 1).
    normal = mat["Normal"]
    assert normal["types"][0] == "ShaderNodeNormalMap" and "ShaderNodeTexImage" in normal["types"]
    data = np.asarray(normal["images"][0]["pixels"]).reshape(-1, 4)[:, :3]
    np.testing.assert_allclose(data, np.broadcast_to([0.5, 0.5, 1.0], data.shape), atol=1 / 255)
    if fmt != "obj":
        assert normal["images"][0]["colorspace"] == "Non-Color"


def test_ply_has_no_material(imported):
    info, *_ = imported
    assert info[("textured", "ply")]["materials"] == []
