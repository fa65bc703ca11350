"""Marching tetrahedra: closed outward meshes, exactness on linear fields, and gradients."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from shapegen.errors import ShapegenError
from shapegen.geometry.marching_tets import marching_tetrahedra, tet_grid
from shapegen.geometry.mesh import Mesh


def _volume(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    tri = verts[faces]
    return (tri[:, 0] * torch.cross(tri[:, 1], tri[:, 2], dim=-1)).sum() / 6


def test_tet_grid_is_conforming_and_positive():
    v, t = tet_grid(4, ((0, 0, 0), (3, 3, 3)))
    assert v.shape == (64, 3) and t.shape == (6 * 27, 4)
    assert torch.equal(v[(1 * 4 + 2) * 4 + 3], torch.tensor([1.0, 2.0, 3.0]))  # ij layout
    p = v[t].double()
    det = (torch.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], dim=-1) * (p[:, 3] - p[:, 0])).sum(-1)
    assert torch.allclose(det, torch.ones_like(det))  # every tet has volume 1/6 of a unit cube
    # Conforming: every interior triangle is shared by exactly two tets, boundary ones by one.
    faces = torch.cat([t[:, [0, 1, 2]], t[:, [0, 1, 3]], t[:, [0, 2, 3]], t[:, [1, 2, 3]]]).sort(1).values
    _, counts = torch.unique(faces, dim=0, return_counts=True)
    assert set(counts.tolist()) == {1, 2}
    assert int((counts == 1).sum()) == 6 * 9 * 2  # 2 triangles per boundary square


@pytest.mark.parametrize("flip", [False, True])
def test_all_cases_face_outward(flip):
    # Single tet, all 14 non-trivial sign patterns, both orientations of the tet's listing.
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    t = torch.tensor([[0, 2, 1, 3]] if flip else [[0, 1, 2, 3]])
    for pattern in itertools.product([True, False], repeat=4):
        if all(pattern) or not any(pattern):
            continue
        inside = torch.tensor(pattern)
        sdf = torch.where(inside, -1.0, 2.0)
        verts, faces = marching_tetrahedra(v, t, sdf)
        assert faces.shape[0] == (2 if sum(pattern) == 2 else 1)
        tri = verts[faces]
        n = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
        outward = v[~inside].mean(0) - v[inside].mean(0)
        assert bool(((n * outward).sum(-1) > 0).all()), pattern


def test_sphere_watertight_and_volume():
    r = 0.6
    v, t = tet_grid(33)
    verts, faces = marching_tetrahedra(v, t, v.norm(dim=-1) - r)
    mesh = Mesh(verts, faces)
    tm = mesh.to_trimesh()
    assert tm.is_watertight and tm.is_winding_consistent
    assert abs(mesh.volume() / (4 / 3 * math.pi * r**3) - 1) < 0.01
    assert abs(mesh.area() / (4 * math.pi * r**2) - 1) < 0.01
    assert (verts.norm(dim=-1) - r).abs().max() < 0.01
    # One vertex per cut edge: no two vertices share a position.
    assert torch.unique(verts, dim=0).shape[0] == verts.shape[0]


def test_linear_field_is_exact():
    # Linear interpolation recovers a plane exactly, wherever the tets cut it.
    v, t = tet_grid(9)
    v = v + 0.02 * torch.randn_like(v)  # deformed grid, as DMTet does
    verts, _ = marching_tetrahedra(v, t, v @ torch.tensor([0.3, -0.4, 0.5]) - 0.1)
    assert verts.shape[0] > 0
    assert torch.allclose(verts @ torch.tensor([0.3, -0.4, 0.5]), torch.full((verts.shape[0],), 0.1), atol=1e-5)


def test_gradients_wrt_sdf_and_vertices():
    v, t = tet_grid(17)
    v = v.clone().requires_grad_(True)
    sdf = (v.detach().norm(dim=-1) - 0.5).requires_grad_(True)
    verts, faces = marching_tetrahedra(v, t, sdf)
    volume = _volume(verts, faces)
    volume.backward()
    g = sdf.grad
    assert torch.isfinite(g).all() and torch.isfinite(v.grad).all()
    # Raising the SDF anywhere shrinks the surface: no positive component, and for an SDF the
    # total derivative of the volume under a uniform shift is minus the area.
    assert float(g.max()) <= 1e-9
    area = Mesh(verts.detach(), faces).area()
    assert float(g.sum()) == pytest.approx(-area, rel=0.03)
    assert float(v.grad.abs().sum()) > 0


def test_gradient_of_mean_radius_matches_finite_difference():
    v, t = tet_grid(9)
    sdf = (v.norm(dim=-1) - 0.55).double().requires_grad_(True)
    vd = v.double()

    def loss(s):
        verts, _ = marching_tetrahedra(vd, t, s)
        return verts.norm(dim=-1).mean()

    loss(sdf).backward()
    direction = torch.randn_like(sdf)
    eps = 1e-6  # small enough that no vertex changes sign
    fd = (loss(sdf.detach() + eps * direction) - loss(sdf.detach() - eps * direction)) / (2 * eps)
    assert float((sdf.grad * direction).sum()) == pytest.approx(float(fd), rel=1e-4)


def test_no_surface_and_errors():
    v, t = tet_grid(5)
    verts, faces = marching_tetrahedra(v, t, torch.ones(v.shape[0]))
    assert verts.shape == (0, 3) and faces.shape == (0, 3)
    with pytest.raises(ShapegenError, match="one SDF value per vertex"):
        marching_tetrahedra(v, t, torch.ones(3))
    bad = torch.ones(v.shape[0])
    bad[0] = torch.nan
    with pytest.raises(ShapegenError, match="NaN"):
        marching_tetrahedra(v, t, bad)
