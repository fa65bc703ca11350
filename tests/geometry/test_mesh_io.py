"""Loaders on every format, the bad-input errors, de-duplication, normalisation and inspection."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh

from shapegen.errors import ShapegenError
from shapegen.geometry.mesh import Mesh
from shapegen.geometry.mesh_io import dedupe_faces, duplicate_face_mask, inspect_mesh, load_mesh, normalize_mesh


def _box() -> trimesh.Trimesh:
    return trimesh.creation.box(extents=(2.0, 1.0, 0.5))


def _double_sided(tm: trimesh.Trimesh) -> Mesh:
    """Every face stored twice with opposite winding, the copy on its own vertices (as in ShapeNet)."""
    v = np.concatenate([tm.vertices, tm.vertices])
    f = np.concatenate([tm.faces, tm.faces[:, ::-1] + len(tm.vertices)])
    return Mesh(torch.tensor(v, dtype=torch.float32), torch.tensor(f))


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".stl", ".off", ".glb"])
def test_load_every_format_roundtrips_geometry(tmp_path, suffix):
    tm = _box()
    path = tmp_path / f"box{suffix}"
    tm.export(path)
    mesh = load_mesh(path)
    assert mesh.num_faces == 12
    assert torch.allclose(mesh.bounds(), torch.tensor([[-1.0, -0.5, -0.25], [1.0, 0.5, 0.25]]), atol=1e-6)
    assert mesh.volume() == pytest.approx(1.0, rel=1e-5)  # winding preserved: outward normals
    assert inspect_mesh(mesh).watertight


def test_load_gltf_with_separate_buffer(tmp_path):
    files = trimesh.Scene(_box()).export(file_type="gltf")
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    mesh = load_mesh(tmp_path / "model.gltf")
    assert mesh.num_faces == 12
    assert mesh.volume() == pytest.approx(1.0, rel=1e-5)


def test_scene_is_concatenated_with_node_transforms(tmp_path):
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.creation.box(extents=(1, 1, 1)), node_name="a")
    scene.add_geometry(trimesh.creation.box(extents=(1, 1, 1)), node_name="b",
                       transform=trimesh.transformations.translation_matrix([3.0, 0.0, 0.0]))
    path = tmp_path / "two.glb"
    scene.export(path)
    mesh = load_mesh(path)
    assert mesh.num_faces == 24
    assert mesh.bounds()[1, 0].item() == pytest.approx(3.5)
    assert inspect_mesh(mesh).num_components == 2


def test_obj_keeps_vertex_order(tmp_path):
    path = tmp_path / "tri.obj"
    path.write_text("v 0 0 1\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 2 3 4\nf 1 2 3\n")
    mesh = load_mesh(path, dedupe=False)
    assert mesh.vertices[:, 2].tolist() == [1.0, 0.0, 0.0, 1.0]  # no merging of the duplicate vertex
    assert mesh.faces.tolist() == [[1, 2, 3], [0, 1, 2]]


def _one_line_error(path, match):
    with pytest.raises(ShapegenError, match=match) as info:
        load_mesh(path)
    assert "\n" not in str(info.value)


def test_bad_inputs_raise_one_line_errors(tmp_path):
    _one_line_error(tmp_path / "missing.obj", "does not exist")
    _one_line_error(tmp_path, "is a folder")
    (tmp_path / "mesh.xyz").write_text("0 0 0\n")
    _one_line_error(tmp_path / "mesh.xyz", "unsupported suffix")
    (tmp_path / "empty.obj").write_bytes(b"")
    _one_line_error(tmp_path / "empty.obj", "empty")
    # A PNG renamed to a mesh suffix.
    png = tmp_path / "image.obj"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    _one_line_error(png, "image.obj")
    # A point cloud (vertices, no faces).
    cloud = tmp_path / "cloud.ply"
    trimesh.PointCloud(np.random.rand(50, 3)).export(cloud)
    _one_line_error(cloud, "PointCloud|no triangles")
    # Truncated binary STL.
    stl = tmp_path / "cut.stl"
    _box().export(stl)
    stl.write_bytes(stl.read_bytes()[:120])
    _one_line_error(stl, "cut.stl")
    # OBJ with only vertices.
    (tmp_path / "verts.obj").write_text("v 0 0 0\nv 1 0 0\n")
    _one_line_error(tmp_path / "verts.obj", "no triangle|PointCloud")
    # A GLB that is not one.
    (tmp_path / "bad.glb").write_bytes(b"glTF" + b"\x00" * 40)
    _one_line_error(tmp_path / "bad.glb", "bad.glb")


def test_dedupe_works_on_positions_not_indices():
    tm = _box()
    soup = _double_sided(tm)
    assert duplicate_face_mask(soup).sum().item() == 12
    out = dedupe_faces(soup)
    assert out.num_faces == 12
    assert out.num_vertices == soup.num_vertices  # vertices untouched
    assert torch.equal(out.faces, soup.faces[:12])  # first copy kept, winding included
    assert inspect_mesh(out).watertight and not inspect_mesh(soup).watertight
    assert inspect_mesh(soup).duplicate_face_fraction == pytest.approx(0.5)


def test_load_dedupes_by_default(tmp_path):
    path = tmp_path / "soup.obj"
    _double_sided(_box()).to_trimesh().export(path)
    assert load_mesh(path).num_faces == 12
    assert load_mesh(path, dedupe=False).num_faces == 24


@pytest.mark.parametrize("mode", ["cube", "sphere"])
def test_normalize(mode):
    tm = _box()
    tm.apply_translation([5.0, -2.0, 1.0])
    mesh = Mesh.from_trimesh(tm)
    out, norm = normalize_mesh(mesh, mode=mode, padding=0.9)
    if mode == "cube":
        assert torch.allclose(out.bounds(), torch.tensor([[-0.9, -0.45, -0.225], [0.9, 0.45, 0.225]]), atol=1e-6)
    else:
        assert out.vertices.norm(dim=-1).max().item() == pytest.approx(0.9, abs=1e-6)
        assert torch.allclose(out.bounds().sum(0), torch.zeros(3), atol=1e-6)  # centred
    assert torch.allclose(norm.invert(out.vertices), mesh.vertices, atol=1e-5)
    assert np.allclose(norm.matrix()[:3, :3], np.eye(3) * norm.scale)
    with pytest.raises(ShapegenError):
        normalize_mesh(mesh, mode="box")


def test_inspect_analytic_topology():
    ico = trimesh.creation.icosphere(2)
    r = inspect_mesh(Mesh.from_trimesh(ico))
    assert (r.watertight, r.euler_characteristic, r.num_components, r.num_degenerate_faces) == (True, 2, 1, 0)
    assert r.volume == pytest.approx(ico.volume, rel=1e-6) and r.area == pytest.approx(ico.area, rel=1e-6)
    r = inspect_mesh(Mesh.from_trimesh(trimesh.creation.torus(1.0, 0.3)))
    assert r.watertight and r.euler_characteristic == 0
    open_box = _box()
    open_box.update_faces(np.arange(10))
    r = inspect_mesh(Mesh.from_trimesh(open_box))
    assert not r.watertight and r.num_boundary_edges == 4 and r.euler_characteristic == 1
    assert r.volume is None
    tri = Mesh(torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]), torch.tensor([[0, 1, 2]]))
    assert inspect_mesh(tri).num_degenerate_faces == 1
    d = r.to_dict()
    json.dumps(d)
    assert d["num_faces"] == 10 and any("watertight: no" in line for line in r.lines())


def test_shared_meshes_match_published_stats(shared_data):
    """Faces, watertightness, Euler number and duplicate fraction agree with mesh_stats.json."""
    stats = {m["path"]: m for m in json.loads((shared_data / "mesh_stats.json").read_text())["meshes"]}
    names = [
        "meshes_classic/bunny_libigl.off", "meshes_classic/spot.obj", "meshes_robustness/angle_block.STL",
        "meshes_robustness/octagonal_pocket.ply", "meshes_robustness/polygonfaces.obj",
        "meshes_robustness/joined_tetrahedra.obj", "meshes_shapenet/chair_341e24df542e0676d42b9650f19dd425.obj",
        "meshes_chairs_tables/ChairArms10.obj",
    ]
    for name in names:
        s = stats[name]
        r = inspect_mesh(load_mesh(shared_data / name, dedupe=False))
        got = (r.num_faces, r.watertight, r.euler_characteristic, round(r.duplicate_face_fraction, 3))
        assert got == (s["faces"], s["watertight"], s["euler"], round(s["duplicate_face_fraction"], 3)), name
        if "watertight_after_dedup" in s:
            assert inspect_mesh(load_mesh(shared_data / name)).watertight == s["watertight_after_dedup"], name


@pytest.mark.parametrize("ply_up", ["z", "y"])
def test_our_ply_round_trips_in_the_y_up_frame(tmp_path, ply_up):
    """export_mesh writes Z-up PLY for Blender by default; load_mesh undoes it (marked in the header)."""
    from shapegen.geometry.export import export_mesh
    from shapegen.geometry.mesh import Mesh

    verts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    faces = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    path = tmp_path / "m.ply"
    export_mesh(Mesh(verts, faces), path, ply_up=ply_up)
    back = load_mesh(path, dedupe=False)
    assert torch.allclose(back.vertices, verts, atol=1e-6)
    # A foreign PLY (no shapegen header) is read as it is.
    import trimesh

    foreign = tmp_path / "foreign.ply"
    trimesh.Trimesh(verts.numpy(), faces.numpy(), process=False).export(foreign)
    assert torch.allclose(load_mesh(foreign, dedupe=False).vertices, verts, atol=1e-6)
