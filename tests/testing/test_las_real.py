"""The real-furniture benchmark set: which meshes, and the LAS frame they are brought into."""

from __future__ import annotations

import math

import pytest
import torch

from shapegen.geometry.mesh import Mesh
from shapegen.testing.las_real import (
    LAS_PADDING,
    canonical_yaw,
    equivalent_views,
    ink_distance,
    las_frame,
    load_real,
    real_meshes,
    yaw,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_yaw_turns_plus_z_towards_plus_x_and_las_frame_normalises():
    tri = Mesh(torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 1.0], [0.0, 0.0, 3.0]]), torch.tensor([[0, 1, 2]]))
    turned = yaw(tri, 90.0)
    assert torch.allclose(turned.vertices[0], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    framed = las_frame(tri, 180.0)
    v = framed.vertices
    assert float((v.amax(0) - v.amin(0)).max()) == pytest.approx(2 * LAS_PADDING, abs=1e-5)
    assert torch.allclose((v.amax(0) + v.amin(0)) / 2, torch.zeros(3), atol=1e-6)
    # Turned by 180 degrees: the vertex that was nearest +Z is now nearest -Z.
    assert float(v[2, 2]) == pytest.approx(-LAS_PADDING, abs=1e-5) and not math.isnan(float(v.sum()))


def test_benchmark_set_lists_chairs_tables_and_cups(shared_data):
    reals = real_meshes(shared_data)
    by_cls = {c: [r for r in reals if r.cls == c] for c in ("chair", "table", "mug")}
    assert all(by_cls.values())
    assert {r.yaw_deg for r in by_cls["chair"] if "meshes_shapenet" in str(r.path)} == {180.0}
    assert all(r.path.is_file() and r.path.suffix == ".obj" for r in reals)
    assert len({r.name for r in reals}) == len(reals)
    assert real_meshes(shared_data, ("mug",)) == by_cls["mug"]


def test_shapenet_chair_faces_plus_z_after_the_turn(shared_data):
    """A chair's back is behind its seat: after the turn most of the mass above the seat lies at -Z."""
    chair = next(r for r in real_meshes(shared_data, ("chair",)) if "meshes_shapenet" in str(r.path))
    v = load_real(chair).vertices
    assert float((v.amax(0) - v.amin(0)).max()) == pytest.approx(2 * LAS_PADDING, abs=1e-4)
    top = v[v[:, 1] > v[:, 1].quantile(0.8)]
    assert float(top[:, 2].mean()) < 0


@pytest.mark.parametrize(("cls", "index", "turn"), [("chair", 62, 90.0), ("chair", 63, 180.0), ("table", 60, 90.0), ("mug", 61, 30.0),
                                                    ("mug", 63, 200.0)])
def test_canonical_yaw_undoes_a_turn_of_a_procedural_shape(cls, index, turn):
    from shapegen.data.procedural import generate, to_mesh

    period = 180.0 if cls == "table" else 360.0  # a table turned half-way is the same table
    tol = 3.0 if cls == "mug" else 1e-6  # a mug's handle direction is measured, the others snap to 90 degrees

    def off(deg: float) -> float:
        deg %= period
        return min(deg, period - deg)

    shape = las_frame(to_mesh(generate(cls, index, 0), 48))
    assert off(canonical_yaw(shape, cls)) < tol
    assert off(canonical_yaw(yaw(shape, turn), cls) + turn) < tol


def test_every_real_mesh_is_turned_into_the_procedural_orientation(shared_data):
    """Chairs' backs at -Z, tables' longer side along X, mugs' handles at +X (where they have one)."""
    for r in real_meshes(shared_data):
        mesh = load_real(r)
        v = mesh.vertices
        ext = v.amax(0) - v.amin(0)
        if r.cls == "chair":
            top = v[v[:, 1] > v[:, 1].min() + 0.75 * ext[1]]
            offset = top[:, [0, 2]].mean(0) - v[:, [0, 2]].mean(0)
            assert float(offset[1]) < -abs(float(offset[0])), r.name  # the back is behind the seat
        elif r.cls == "table":
            assert float(ext[0]) >= float(ext[2]) / 1.05, r.name
        else:  # measured again, the handle needs no further turn
            turn = canonical_yaw(mesh, "mug") % 360
            assert min(turn, 360 - turn) < 3.0, r.name


def test_ink_distance_is_symmetric_and_counts_pixels():
    a = torch.zeros(16, 16)
    a[4, 2:12] = 1.0
    b = torch.roll(a, 2, dims=0)  # the same stroke two pixels lower
    assert ink_distance(a, a) == 0.0 and ink_distance(a, b) == pytest.approx(2.0) == ink_distance(b, a)
    assert ink_distance(a, torch.zeros(16, 16)) == math.inf and ink_distance(torch.zeros(4, 4), torch.zeros(4, 4)) == 0.0


def test_views_that_draw_the_same_picture_are_equivalent():
    """A box (a rectangular table top) looks the same from 0 and 180 degrees (from 45 and 135 it
    leans the other way), a cylinder from everywhere; a procedural chair from no two LAS views."""
    import trimesh

    from shapegen.data.procedural import generate, to_mesh
    from shapegen.data.sketches import LAS_AZIMUTHS, render_sketch

    def views(mesh: Mesh) -> torch.Tensor:
        return equivalent_views([render_sketch(mesh, az, style="contour", size=64) for az in LAS_AZIMUTHS])

    def framed(t: trimesh.Trimesh) -> Mesh:
        return las_frame(Mesh(torch.tensor(t.vertices, dtype=torch.float32), torch.tensor(t.faces)))

    box = views(framed(trimesh.creation.box((1.6, 0.3, 0.9))))
    assert box[0, 4] and not box[1, 3] and not box[0, 2] and not box[0, 1]
    upright = trimesh.transformations.rotation_matrix(math.pi / 2, [1, 0, 0])  # trimesh's cylinder stands on +Z
    assert bool(views(framed(trimesh.creation.cylinder(0.7, 0.5, sections=64, transform=upright))).all())
    chair = views(las_frame(to_mesh(generate("chair", 62, 0), 48)))
    assert torch.equal(chair, torch.eye(5, dtype=torch.bool))
