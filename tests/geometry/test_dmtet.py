"""DMTet grid: initialisation from an analytic SDF, offsets, regularisers on known meshes."""

from __future__ import annotations

import math

import pytest
import torch

from shapegen.errors import ShapegenError
from shapegen.geometry.dmtet import DMTetGrid
from shapegen.geometry.regularizers import laplacian_smoothness, normal_consistency

pytestmark = pytest.mark.usefixtures("one_thread")


def sphere(r: float):
    return lambda x: x.norm(dim=-1) - r


def _area_volume(v: torch.Tensor, f: torch.Tensor) -> tuple[float, float]:
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    cross = torch.linalg.cross(b - a, c - a, dim=-1)
    return float(cross.norm(dim=-1).sum() / 2), float((a * torch.linalg.cross(b, c, dim=-1)).sum() / 6)


def test_init_from_sphere_sdf_reproduces_the_sphere():
    grid = DMTetGrid(24)
    grid.init_from_sdf(sphere(0.5), clamp=None)
    mesh = grid.to_mesh()
    radius = mesh.vertices.norm(dim=-1)
    cell = float(grid.cell_size.max())
    # Surface vertices lie on tet edges between samples of opposite sign; linear
    # interpolation of an exact SDF misses the sphere by at most a fraction of a cell.
    assert float((radius - 0.5).abs().max()) < 0.25 * cell
    area, volume = _area_volume(mesh.vertices, mesh.faces)
    assert area == pytest.approx(4 * math.pi * 0.25, rel=0.03)
    assert volume == pytest.approx(4 / 3 * math.pi * 0.125, rel=0.03)  # positive: outward winding
    # The box was fitted to the sphere (plus margin), so cells are finer than on [-1, 1]^3.
    assert float(grid.bbox[1].max()) < 0.8 and cell < 2.0 / 23


def test_offsets_are_bounded_and_move_the_surface():
    grid = DMTetGrid(12)
    grid.init_from_sdf(sphere(0.4), fit_bbox=False)
    with torch.no_grad():
        grid.deformation.fill_(100.0)  # tanh saturates: at most half a cell per axis
    moved = grid.vertices() - grid.grid_vertices
    assert torch.allclose(moved, 0.5 * grid.cell_size.expand_as(moved), atol=1e-6)
    v, _ = grid.extract()
    (v.sum()).backward()
    assert grid.sdf.grad.abs().sum() > 0 and grid.deformation.grad is not None


def test_init_fails_with_one_line_when_no_surface():
    grid = DMTetGrid(8)
    with pytest.raises(ShapegenError, match="negative nowhere"):
        grid.init_from_sdf(sphere(-1.0))


def test_regularisers_zero_on_flat_grid_positive_when_folded():
    # A flat 3x3-vertex patch: every interior vertex is the centroid of its neighbours.
    xs = torch.linspace(0, 1, 3)
    v = torch.stack(torch.meshgrid(xs, xs, indexing="ij"), -1).reshape(-1, 2)
    v = torch.cat([v, torch.zeros(9, 1)], -1)
    f = []
    for i in range(2):
        for j in range(2):
            a, b, c, d = i * 3 + j, i * 3 + j + 1, (i + 1) * 3 + j, (i + 1) * 3 + j + 1
            f += [[a, c, b], [b, c, d]]
    f = torch.tensor(f)
    assert float(normal_consistency(v, f)) == pytest.approx(0.0, abs=1e-6)
    bumped = v.clone()
    bumped[4, 2] = 0.5  # lift the centre vertex
    assert float(normal_consistency(bumped, f)) > 0.05
    # Uniform Laplacian of the flat patch is non-zero only at the border; the bump adds to it.
    assert float(laplacian_smoothness(bumped, f)) > float(laplacian_smoothness(v, f))
    bumped.requires_grad_(True)
    laplacian_smoothness(bumped, f).backward()
    assert float(bumped.grad[4, 2]) > 0  # gradient descent pulls the bump back down
