"""Analytic SDF primitives and the Mesh type."""

from __future__ import annotations

import math

import pytest
import torch
import trimesh

from shapegen.geometry import Mesh, Normalization, primitives


def test_sphere_and_box_are_exact():
    p = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    assert torch.allclose(primitives.sphere(radius=0.5)(p), torch.tensor([-0.5, 0.5, 1.5]))
    b = primitives.box(half_size=(1.0, 1.0, 1.0))
    q = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [2.0, 2.0, 1.0], [0.5, 0.0, 0.0]])
    assert torch.allclose(b(q), torch.tensor([-1.0, 1.0, math.sqrt(2.0), -0.5]))


def test_torus_and_capsule():
    t = primitives.torus(major=0.5, minor=0.1)
    p = torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.3, 0.5]])
    assert torch.allclose(t(p), torch.tensor([-0.1, 0.4, 0.2]), atol=1e-6)
    c = primitives.capsule((0, 0, 0), (0, 1, 0), 0.1)
    q = torch.tensor([[0.0, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 2.0, 0.0]])
    assert torch.allclose(c(q), torch.tensor([-0.1, 0.4, 0.9]), atol=1e-6)


def test_mesh_measures_a_box():
    tm = trimesh.creation.box(extents=(1.0, 2.0, 3.0))
    mesh = Mesh.from_trimesh(tm)
    assert mesh.num_vertices == 8 and mesh.num_faces == 12
    assert mesh.area() == pytest.approx(2 * (2 + 3 + 6))
    assert mesh.volume() == pytest.approx(6.0)
    # Outward normals: each face normal points away from the centre.
    centers = mesh.vertices[mesh.faces].mean(1)
    assert ((mesh.face_normals() * centers).sum(-1) > 0).all()
    back = mesh.to_trimesh()
    assert (back.faces == tm.faces).all() and torch.allclose(torch.from_numpy(back.vertices).float(), mesh.vertices)


def test_normalization_round_trip():
    n = Normalization(center=(1.0, 2.0, 3.0), scale=0.5)
    p = torch.randn(10, 3)
    assert torch.allclose(n.invert(n.apply(p)), p, atol=1e-6)
    h = torch.cat([p, torch.ones(10, 1)], 1) @ torch.from_numpy(n.matrix()).float().T
    assert torch.allclose(h[:, :3], n.apply(p), atol=1e-5)


def test_mesh_rejects_bad_shapes():
    with pytest.raises(ValueError):
        Mesh(torch.zeros(3, 2), torch.zeros(1, 3, dtype=torch.long))
