"""Struts that join the pieces of an extracted surface (shapegen.geometry.bridges)."""

import torch

from shapegen.geometry import primitives
from shapegen.geometry.bridges import bridged_field, capsule_distance, plan_bridges
from shapegen.geometry.cleanup import face_components
from shapegen.geometry.extract import extract_mesh
from shapegen.geometry.mesh_io import inspect_mesh

BOX = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))
RES = 48
SPACING = 2.0 / (RES - 1)


def test_capsule_distance_is_exact_and_handles_a_point_segment():
    bridges = torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.1], [0.0, 2.0, 0.0, 0.0, 2.0, 0.0, 0.2]])
    pts = torch.tensor([[0.5, 0.3, 0.0], [-0.5, 0.0, 0.0], [0.0, 2.5, 0.0], [0.5, 0.0, 0.0]])
    d = capsule_distance(pts, bridges)
    assert torch.allclose(d, torch.tensor([0.2, 0.4, 0.3, -0.1]), atol=1e-6)
    assert torch.isinf(capsule_distance(pts, torch.zeros(0, 7))).all()


def test_a_base_and_a_shade_become_one_lamp_through_a_strut_along_the_gap():
    # A disc-like base and a shade above it, a stem stub on the base: three pieces, gaps along y.
    base = primitives.box((0.0, -0.8, 0.0), (0.4, 0.06, 0.4))
    stub = primitives.capsule((0.0, -0.8, 0.0), (0.0, -0.3, 0.0), 0.05)
    shade = primitives.sphere((0.0, 0.5, 0.0), 0.35)
    loose = primitives.capsule((0.0, -0.15, 0.0), (0.0, 0.0, 0.0), 0.05)  # a broken bit of the stem
    field = primitives.union(base, stub, shade, loose)
    mesh = extract_mesh(field, RES, BOX)
    assert face_components(mesh)[0] == 3

    bridges = plan_bridges(mesh, field, SPACING)
    assert bridges.shape == (2, 7)
    # Every strut is vertical (it closes a gap along y), near the axis, sized like the stem (clamped).
    ab = bridges[:, 3:6] - bridges[:, :3]
    assert (ab[:, 1].abs() > 3 * ab[:, [0, 2]].abs().amax(1)).all()
    assert (bridges[:, [0, 2, 3, 5]].abs() < 2 * SPACING).all()
    assert ((bridges[:, 6] >= 0.75 * SPACING - 1e-6) & (bridges[:, 6] <= 3 * SPACING + 1e-6)).all()

    joined = extract_mesh(bridged_field(field, bridges), RES, BOX)
    report = inspect_mesh(joined)
    assert report.num_components == 1 and report.watertight
    # The struts add little: the union's area is within a few percent of the pieces' area.
    assert joined.area() < 1.1 * mesh.area()


def test_one_piece_plans_nothing_and_keeps_the_field():
    field = primitives.sphere(radius=0.5)
    mesh = extract_mesh(field, 24, BOX)
    bridges = plan_bridges(mesh, field, 2.0 / 23)
    assert bridges.shape == (0, 7)
    assert bridged_field(field, bridges) is field


def test_struts_stay_inside_the_extraction_box_so_the_mesh_stays_closed():
    # Two pieces touching the top of a tight box: an unclamped strut would poke through its face.
    box = ((-0.6, -0.6, -0.6), (0.6, 0.6, 0.6))
    field = primitives.union(primitives.sphere((-0.3, 0.52, 0.0), 0.075), primitives.sphere((0.3, 0.52, 0.0), 0.075))
    spacing = 1.2 / (RES - 1)
    mesh = extract_mesh(field, RES, box)
    bridges = plan_bridges(mesh, field, spacing, box=box, min_radius=3.0)
    r = bridges[:, 6:7]
    ends = bridges[:, :6].reshape(-1, 2, 3)
    assert (ends.abs() <= 0.6 - r[:, None] - spacing + 1e-6).all()
    report = inspect_mesh(extract_mesh(bridged_field(field, bridges), RES, box))
    assert report.num_components == 1 and report.watertight
