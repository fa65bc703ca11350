"""Signed distance, closest points and winding numbers against analytic goldens and each other."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import trimesh

from shapegen.errors import ShapegenError
from shapegen.geometry import primitives
from shapegen.geometry.mesh import Mesh
from shapegen.geometry.mesh_io import load_mesh, normalize_mesh
from shapegen.geometry.sdf import MeshSDF, closest_point, signed_distance, unsigned_distance, warp_available, winding_number

HAS_WARP = warp_available()[0]
needs_warp = pytest.mark.skipif(not HAS_WARP, reason="warp-lang not installed")
BACKENDS = ["torch", pytest.param("warp", marks=needs_warp)]


def _box_mesh(half=(0.5, 0.3, 0.4)) -> Mesh:
    return Mesh.from_trimesh(trimesh.creation.box(extents=[2 * h for h in half]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_box_sdf_is_exact(backend):
    """A box mesh is its own exact surface, so the SDF must match the analytic box SDF everywhere."""
    half = (0.5, 0.3, 0.4)
    p = torch.rand(3000, 3) * 2.4 - 1.2
    d = signed_distance(p, _box_mesh(half), backend=backend)
    ref = primitives.box(half_size=half)(p)
    assert (d - ref).abs().max().item() < 1e-5
    assert ((d < 0) == (ref < 0)).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_sphere_sdf_within_tessellation_error(backend):
    r = 0.5
    ico = trimesh.creation.icosphere(3, radius=r)
    mesh = Mesh.from_trimesh(ico)
    # Hausdorff distance between the sphere and the inscribed polyhedron: r minus the
    # smallest distance from the centre to a face plane.
    hausdorff = r - np.abs((ico.face_normals * ico.triangles[:, 0]).sum(1)).min()
    p = torch.randn(2000, 3)
    p = p / p.norm(dim=-1, keepdim=True) * torch.empty(2000, 1).uniform_(0.05, 1.0)
    d = signed_distance(p, mesh, backend=backend)
    ref = p.norm(dim=-1) - r
    assert (d - ref).abs().max().item() < hausdorff + 1e-6
    assert (d - ref).abs().max().item() > 0.5 * hausdorff  # the bound is tight, not vacuous
    far = ref.abs() > 0.01
    assert ((d[far] < 0) == (ref[far] < 0)).all()


def test_closest_point_and_unsigned_distance_on_box():
    mesh = _box_mesh((0.5, 0.5, 0.5))
    p = torch.tensor([[2.0, 0.1, -0.2], [0.1, 0.2, 0.3], [1.0, 1.0, 1.0]])
    cp, face = closest_point(p, mesh, backend="torch")
    assert torch.allclose(cp, torch.tensor([[0.5, 0.1, -0.2], [0.1, 0.2, 0.5], [0.5, 0.5, 0.5]]), atol=1e-6)
    n = mesh.face_normals()[face]
    assert torch.allclose(n[0], torch.tensor([1.0, 0, 0])) and torch.allclose(n[1], torch.tensor([0, 0, 1.0]))
    ud = unsigned_distance(p, mesh, backend="torch")
    assert torch.allclose(ud, torch.tensor([1.5, 0.2, 0.5 * 3**0.5]), atol=1e-6)


def test_degenerate_triangle_distance_is_segment_distance():
    mesh = Mesh(torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]), torch.tensor([[0, 1, 2]]))
    p = torch.tensor([[1.5, 1.0, 0.0], [-1.0, 0.0, 0.0], [3.0, 0.0, 2.0]])
    d = unsigned_distance(p, mesh, backend="torch")
    assert torch.allclose(d, torch.tensor([1.0, 1.0, 5**0.5]), atol=1e-6)


def test_winding_number_goldens():
    cube = trimesh.creation.box(extents=(1, 1, 1))
    mesh = Mesh.from_trimesh(cube)
    center = torch.zeros(1, 3)
    assert winding_number(center, mesh).item() == pytest.approx(1.0, abs=1e-6)
    assert winding_number(torch.tensor([[3.0, 0.2, 0.1]]), mesh).item() == pytest.approx(0.0, abs=1e-6)
    # One side (2 triangles) removed: each side subtends 4 pi / 6 from the centre.
    keep = [i for i in range(12) if not np.allclose(cube.face_normals[i], [0, 0, 1])]
    open_cube = Mesh(mesh.vertices, mesh.faces[keep])
    assert winding_number(center, open_cube).item() == pytest.approx(5 / 6, abs=1e-6)
    # Flipped orientation negates the winding number.
    flipped = Mesh(mesh.vertices, mesh.faces.flip(-1))
    assert winding_number(center, flipped).item() == pytest.approx(-1.0, abs=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_open_cube_sign_is_robust(backend):
    """With a face missing, points deep inside stay negative and points outside positive."""
    cube = trimesh.creation.box(extents=(1, 1, 1))
    keep = [i for i in range(12) if not np.allclose(cube.face_normals[i], [0, 0, 1])]
    mesh = Mesh(torch.tensor(cube.vertices, dtype=torch.float32), torch.tensor(cube.faces[keep]))
    inside = torch.rand(500, 3) * 0.6 - 0.3 + torch.tensor([0.0, 0.0, -0.1])
    outside = torch.rand(500, 3) * 0.4 + 0.7
    assert (signed_distance(inside, mesh, backend=backend) < 0).all()
    assert (signed_distance(outside, mesh, backend=backend) > 0).all()


def test_double_sided_soup_needs_dedupe():
    """w = 0 everywhere for a double-sided soup; after de-duplication the solid is recovered."""
    tm = trimesh.creation.icosphere(2, radius=0.5)
    v = np.concatenate([tm.vertices, tm.vertices])
    f = np.concatenate([tm.faces, tm.faces[:, ::-1] + len(tm.vertices)])
    soup = Mesh(torch.tensor(v, dtype=torch.float32), torch.tensor(f))
    p = torch.tensor([[0.0, 0.0, 0.0], [0.1, -0.2, 0.1]])
    assert winding_number(p, soup).abs().max().item() < 1e-5
    from shapegen.geometry.mesh_io import dedupe_faces

    assert torch.allclose(winding_number(p, dedupe_faces(soup)), torch.ones(2), atol=1e-5)


@needs_warp
def test_warp_matches_torch_on_real_mesh(shared_data):
    mesh, _ = normalize_mesh(load_mesh(shared_data / "meshes_classic/spot.obj"))
    g = torch.Generator().manual_seed(0)
    p = torch.rand(400, 3, generator=g) * 2.2 - 1.1
    sdf = MeshSDF(mesh, backend="warp")
    q = sdf.query(p)
    ref = signed_distance(p, mesh, backend="torch")
    assert (q.distance.abs() - ref.abs()).abs().max().item() < 1e-5
    far = ref.abs() > 0.02
    assert ((q.distance[far] < 0) == (ref[far] < 0)).float().mean().item() == 1.0
    # The BVH is built once and reused.
    sdf(p)
    assert len(sdf._warp_meshes) == 1


@needs_warp
def test_shapenet_soup_sign_matches_watertight_interpretation(shared_data):
    """A double-sided ShapeNet soup, de-duplicated, classifies points like its closed reading.

    Far outside the bounding box must be outside; the sign of the fast warp winding number must
    match the exact torch one away from the surface.
    """
    mesh, _ = normalize_mesh(load_mesh(shared_data / "meshes_shapenet/chair_341e24df542e0676d42b9650f19dd425.obj"))
    g = torch.Generator().manual_seed(1)
    p = torch.rand(300, 3, generator=g) * 2.4 - 1.2
    ref = signed_distance(p, mesh, backend="torch")
    fast = signed_distance(p, mesh, backend="warp")
    far = ref.abs() > 0.02
    assert ((fast[far] < 0) == (ref[far] < 0)).float().mean().item() > 0.99
    outside = torch.tensor([[1.5, 0.0, 0.0], [0.0, 1.6, 0.0], [0.0, 0.0, -1.5]])
    assert (signed_distance(outside, mesh, backend="warp") > 0).all()


def test_chunking_gives_same_result(monkeypatch):
    import shapegen.geometry.sdf as sdf_mod

    mesh = Mesh.from_trimesh(trimesh.creation.icosphere(2))
    p = torch.rand(300, 3) * 3 - 1.5
    full = signed_distance(p, mesh, backend="torch")
    monkeypatch.setattr(sdf_mod, "PAIR_BUDGET", 97)  # tiny: chunks over points and faces
    assert torch.allclose(signed_distance(p, mesh, backend="torch"), full, atol=1e-6)


def test_backend_errors(monkeypatch):
    mesh = _box_mesh()
    with pytest.raises(ShapegenError, match="unknown"):
        signed_distance(torch.zeros(1, 3), mesh, backend="cuda-magic")
    monkeypatch.setitem(sys.modules, "warp", None)  # import warp now fails
    with pytest.raises(ShapegenError, match="warp"):
        MeshSDF(mesh, backend="warp")
    assert MeshSDF(mesh, backend="auto").backend == "torch"
    with pytest.raises(ShapegenError, match="without faces"):
        MeshSDF(Mesh(torch.zeros(3, 3), torch.zeros(0, 3, dtype=torch.long)))


@pytest.mark.cuda
@needs_warp
def test_cuda_parity():
    mesh = Mesh.from_trimesh(trimesh.creation.icosphere(3, radius=0.5))
    p = torch.rand(5000, 3) * 2 - 1
    ref = signed_distance(p, mesh, backend="torch")
    for backend in ("torch", "warp"):
        d = signed_distance(p.cuda(), mesh.to("cuda"), backend=backend)
        assert d.device.type == "cuda"
        assert (d.cpu() - ref).abs().max().item() < 1e-4


@needs_warp
def test_warp_threaded_cpu_launch_matches_single_thread():
    mesh = Mesh.from_trimesh(trimesh.creation.icosphere(3, radius=0.5))
    p = torch.rand(10000, 3) * 2 - 1
    one = MeshSDF(mesh, backend="warp", num_threads=1).query(p)
    many = MeshSDF(mesh, backend="warp", num_threads=3).query(p)
    assert torch.equal(one.distance, many.distance) and torch.equal(one.face, many.face)
    assert (one.distance - (p.norm(dim=-1) - 0.5)).abs().max().item() < 0.01
