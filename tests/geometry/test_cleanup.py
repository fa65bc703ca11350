"""Clean-up: small-component removal and quadric simplification."""

from __future__ import annotations

import sys

import pytest
import torch

from shapegen.errors import ShapegenError
from shapegen.geometry import primitives
from shapegen.geometry.cleanup import face_components, remove_small_components, simplify
from shapegen.geometry.extract import extract_mesh
from shapegen.geometry.mesh import Mesh


def _height_colors(v: torch.Tensor) -> torch.Tensor:
    t = (v[:, 1:2] + 1) / 2
    return torch.cat([t, 1 - t, torch.full_like(t, 0.5)], dim=1)


@pytest.fixture(scope="module")
def big_and_tiny() -> Mesh:
    big = primitives.sphere(center=(-0.2, 0.0, 0.0), radius=0.6)
    tiny = primitives.sphere(center=(0.75, 0.7, 0.7), radius=0.08)
    mesh = extract_mesh(primitives.union(big, tiny), 49, method="dense")
    mesh.vertex_colors = _height_colors(mesh.vertices)
    return mesh


def test_components_found(big_and_tiny):
    count, labels = face_components(big_and_tiny)
    assert count == 2 and labels.shape == (big_and_tiny.num_faces,)


@pytest.mark.parametrize("kwargs", [{"min_faces": 200}, {"min_area_fraction": 0.05}])
def test_remove_small_components_keeps_big_one(big_and_tiny, kwargs):
    mesh = big_and_tiny
    out = remove_small_components(mesh, **kwargs)
    assert 0 < out.num_faces < mesh.num_faces
    centre = out.vertices.mean(0)
    assert torch.allclose(centre, torch.tensor([-0.2, 0.0, 0.0]), atol=0.01)
    assert out.to_trimesh().is_watertight and out.volume() > 0
    # The kept vertices are the input's, in the same order, with their own colours.
    keep = (mesh.vertices - torch.tensor([0.75, 0.7, 0.7])).norm(dim=-1) > 0.2
    assert torch.equal(out.vertices, mesh.vertices[keep])
    assert torch.equal(out.vertex_colors, mesh.vertex_colors[keep])
    assert out.area() == pytest.approx(mesh.area() - 4 * torch.pi * 0.08**2, rel=0.02)
    assert mesh.num_faces == big_and_tiny.num_faces  # input untouched


def test_remove_small_components_thresholds(big_and_tiny):
    assert remove_small_components(big_and_tiny, min_faces=1).num_faces == big_and_tiny.num_faces
    assert remove_small_components(big_and_tiny, min_faces=10**9).num_faces == 0
    with pytest.raises(ShapegenError, match="min_faces or min_area_fraction"):
        remove_small_components(big_and_tiny)
    with pytest.raises(ShapegenError, match=r"\[0, 1\]"):
        remove_small_components(big_and_tiny, min_area_fraction=2.0)


def test_simplify_hits_budget_and_keeps_shape():
    mesh = extract_mesh(primitives.sphere(radius=0.6), 65, method="dense")
    mesh.vertex_colors = _height_colors(mesh.vertices)
    out = simplify(mesh, 2000)
    assert 1800 <= out.num_faces <= 2000 < mesh.num_faces
    assert out.to_trimesh().is_watertight and out.volume() > 0
    assert out.volume() == pytest.approx(mesh.volume(), rel=0.02)
    assert (out.vertices.norm(dim=-1) - 0.6).abs().max() < 0.02
    # Colours follow the geometry: each vertex takes its nearest input vertex's colour.
    assert torch.allclose(out.vertex_colors, _height_colors(out.vertices), atol=0.03)
    assert simplify(mesh, 10**6).num_faces == mesh.num_faces


def test_simplify_errors(monkeypatch):
    mesh = extract_mesh(primitives.sphere(radius=0.6), 17, method="dense")
    with pytest.raises(ShapegenError, match="at least 4"):
        simplify(mesh, 2)
    monkeypatch.setitem(sys.modules, "fast_simplification", None)
    with pytest.raises(ShapegenError, match="pip install fast-simplification"):
        simplify(mesh, 100)
