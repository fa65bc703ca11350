"""export_mesh: round trips through trimesh for every format, axes, colours, atomicity, errors."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from _export_fixtures import EXTENTS, tall_box, textured_box

from shapegen.errors import ShapegenError
from shapegen.geometry import export as export_module
from shapegen.geometry.export import export_mesh, linear_to_srgb, srgb_to_linear

trimesh = pytest.importorskip("trimesh")

FORMATS = ["glb", "gltf", "obj", "ply"]


def _load(path: Path):
    return trimesh.load(path, force="mesh", process=False)


def _to_shapegen_frame(points: np.ndarray, fmt: str) -> np.ndarray:
    """Undo the PLY Z-up rotation (x, y, z) -> (x, -z, y)."""
    if fmt != "ply":
        return points
    return np.stack([points[:, 0], points[:, 2], -points[:, 1]], 1)


def _glb_json(path: Path) -> dict:
    raw = path.read_bytes()
    magic, version, length = struct.unpack_from("<4sII", raw)
    assert magic == b"glTF" and version == 2 and length == len(raw)
    size, kind = struct.unpack_from("<I4s", raw, 12)
    assert kind == b"JSON"
    return json.loads(raw[20 : 20 + size])


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_positions_faces_and_colours(tmp_path, fmt):
    mesh = tall_box()
    out = export_mesh(mesh, tmp_path / f"box.{fmt}")
    assert out == tmp_path / f"box.{fmt}" and out.is_file()
    tm = _load(out)
    assert len(tm.faces) == mesh.num_faces
    # Face order and winding are kept: compare triangle corners, which is independent of how a
    # format or loader splits or welds vertices.
    corners = _to_shapegen_frame(np.asarray(tm.vertices), fmt)[np.asarray(tm.faces)]
    np.testing.assert_allclose(corners, mesh.vertices[mesh.faces].numpy(), atol=1e-6)
    assert len(tm.vertices) == (
        mesh.num_vertices if fmt != "obj" else len(np.unique(mesh.vertices.numpy(), axis=0))
    )
    # Colours: sRGB in OBJ/PLY; glTF stores linear COLOR_0 (spec), trimesh reads it as is.
    got = np.asarray(tm.visual.vertex_colors, np.float64)[np.asarray(tm.faces)][..., :3] / 255
    want = mesh.vertex_colors[mesh.faces].numpy()
    if fmt in ("glb", "gltf"):
        want = srgb_to_linear(want)
    np.testing.assert_allclose(got, want, atol=1 / 255 + 1e-6)
    # Orientation: outward normals stay outward (winding kept through the axis change).
    assert _load(out).volume > 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_uv_and_material(tmp_path, fmt):
    mesh = textured_box()
    out = export_mesh(mesh, tmp_path / f"tex.{fmt}")
    tm = _load(out)
    uv = np.asarray(tm.visual.uv)[np.asarray(tm.faces)]
    # trimesh (like OBJ, PLY and Blender) puts the UV origin at the bottom-left: v' = 1 - v.
    want = mesh.uv[mesh.faces].numpy().copy()
    want[..., 1] = 1 - want[..., 1]
    np.testing.assert_allclose(uv, want, atol=1e-6)
    if fmt == "ply":
        return  # PLY has no material
    material = tm.visual.material
    base = material.baseColorTexture if fmt in ("glb", "gltf") else material.image
    np.testing.assert_allclose(
        np.asarray(base, np.float64) / 255, mesh.material.base_color_texture.numpy(), atol=1 / 255
    )
    if fmt in ("glb", "gltf"):
        mr = np.asarray(material.metallicRoughnessTexture, np.float64) / 255
        np.testing.assert_allclose(
            mr[..., 1:], mesh.material.metallic_roughness_texture[..., 1:].numpy(), atol=1 / 255
        )
        assert material.normalTexture is not None
    else:
        mtl = (tmp_path / "tex.mtl").read_text().split("\n")
        for line in (
            "map_Kd tex_basecolor.png",
            "map_Pr tex_roughness.png",
            "map_Pm tex_metallic.png",
            "map_Bump -bm 1 tex_normal.png",
        ):
            assert line in mtl
        from PIL import Image

        rough = np.asarray(Image.open(tmp_path / "tex_roughness.png"), np.float64) / 255
        metal = np.asarray(Image.open(tmp_path / "tex_metallic.png"), np.float64) / 255
        np.testing.assert_allclose(rough, 0.6, atol=1 / 255)
        np.testing.assert_allclose(metal, 0.2, atol=1 / 255)


def test_glb_structure_and_linear_colour_attribute(tmp_path):
    mesh = textured_box()
    doc = _glb_json(export_mesh(mesh, tmp_path / "t.glb"))
    prim = doc["meshes"][0]["primitives"][0]
    assert set(prim["attributes"]) == {"POSITION", "NORMAL", "TEXCOORD_0", "COLOR_0"}
    pos = doc["accessors"][prim["attributes"]["POSITION"]]
    np.testing.assert_allclose(pos["max"], np.array(EXTENTS) / 2, atol=1e-6)
    mat = doc["materials"][0]
    assert {"baseColorTexture", "metallicRoughnessTexture"} <= set(mat["pbrMetallicRoughness"])
    assert "normalTexture" in mat and len(doc["images"]) == 3
    assert all(v["byteOffset"] % 4 == 0 for v in doc["bufferViews"])
    np.testing.assert_allclose(
        linear_to_srgb(srgb_to_linear(np.linspace(0, 1, 11))), np.linspace(0, 1, 11), atol=1e-9
    )


def test_ply_up_axis_option(tmp_path):
    mesh = tall_box(subdivide=False)
    z_up = _load(export_mesh(mesh, tmp_path / "z.ply"))
    y_up = _load(export_mesh(mesh, tmp_path / "y.ply", ply_up="y"))
    np.testing.assert_allclose(z_up.extents, [EXTENTS[0], EXTENTS[2], EXTENTS[1]], atol=1e-6)
    np.testing.assert_allclose(y_up.extents, EXTENTS, atol=1e-6)


def test_obj_welds_seams_but_keeps_uvs(tmp_path):
    mesh = textured_box()  # grid atlas: every face has its own three vertices
    export_mesh(mesh, tmp_path / "w.obj")
    lines = (tmp_path / "w.obj").read_text().splitlines()
    assert sum(line.startswith("v ") for line in lines) == len(
        np.unique(mesh.vertices.numpy(), axis=0)
    )
    assert sum(line.startswith("vt ") for line in lines) == mesh.num_vertices


def test_unknown_suffix_names_supported_formats(tmp_path):
    with pytest.raises(ShapegenError, match=r"\.glb.*\.gltf.*\.obj.*\.ply"):
        export_mesh(tall_box(), tmp_path / "mesh.stl")
    assert list(tmp_path.iterdir()) == []


def test_bad_mesh_is_a_user_error(tmp_path):
    mesh = tall_box(subdivide=False)
    mesh.vertices[0, 0] = float("nan")
    with pytest.raises(ShapegenError, match="NaN"):
        export_mesh(mesh, tmp_path / "nan.glb")


@pytest.mark.parametrize("fmt", FORMATS)
def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch, fmt):
    """A writer that dies after writing part of its output must leave no file behind."""
    target = tmp_path / f"out.{fmt}"
    target_old = None
    if fmt == "glb":  # an existing output must survive a failed overwrite untouched
        target.write_bytes(b"old")
        target_old = b"old"

    def boom(*args, **kwargs):
        raise RuntimeError("disk exploded")

    if fmt == "obj":
        real = export_module._write_bytes
        calls = []

        def write_then_fail(path, content):
            calls.append(path)
            if len(calls) == 3:  # after the OBJ, MTL (and a texture) were written
                raise OSError(28, "No space left on device")
            real(path, content)

        monkeypatch.setattr(export_module, "_write_bytes", write_then_fail)
        with pytest.raises(ShapegenError, match="No space left"):
            export_mesh(textured_box(), target)
    else:
        # Let the real writer produce its bytes, then fail before returning.
        name = "_write_gltf" if fmt in ("glb", "gltf") else "_write_ply"
        real = getattr(export_module, name)

        def write_then_fail(data, path, **kwargs):
            real(data, path, **kwargs)
            assert Path(path).stat().st_size > 100  # something really was written
            boom()

        monkeypatch.setattr(export_module, name, write_then_fail)
        with pytest.raises(RuntimeError, match="disk exploded"):
            export_mesh(textured_box(), target)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ([target.name] if target_old else []), left
    if target_old:
        assert target.read_bytes() == target_old


def test_unwritable_folder(readonly_dir):
    for fmt in FORMATS:
        with pytest.raises(ShapegenError, match="not writable"):
            export_mesh(tall_box(), readonly_dir / f"x.{fmt}")
    assert list(readonly_dir.iterdir()) == []


def test_output_under_a_file_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for fmt in FORMATS:
        with pytest.raises(ShapegenError, match="cannot create output folder"):
            export_mesh(tall_box(), blocker / f"x.{fmt}")


def test_empty_mesh_is_a_user_error(tmp_path):
    from shapegen.geometry.mesh import Mesh

    mesh = Mesh(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.int64))
    with pytest.raises(ShapegenError, match="no faces"):
        export_mesh(mesh, tmp_path / "empty.glb")


@pytest.mark.parametrize("fmt", FORMATS)
def test_plain_mesh_without_normals_or_colours(tmp_path, fmt):
    mesh = tall_box(subdivide=False)
    mesh.vertex_colors = None
    tm = _load(export_mesh(mesh, tmp_path / f"plain.{fmt}", normals=False))
    assert len(tm.faces) == 12 and abs(tm.volume - np.prod(EXTENTS)) < 1e-6


@pytest.mark.parametrize("fmt", FORMATS)
def test_folder_refusing_new_files(tmp_path, monkeypatch, fmt):
    """A folder that passes the access check but refuses file creation (read-only mount, quota)."""
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    with pytest.raises(ShapegenError, match=r"cannot write .*Permission denied"):
        export_mesh(textured_box(), tmp_path / f"x.{fmt}")
    assert list(tmp_path.iterdir()) == []
