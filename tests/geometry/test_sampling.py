"""Sampling: area weighting, normals, seeding, noise levels, boxes, SDF values."""

from __future__ import annotations

import pytest
import torch
import trimesh

from shapegen.errors import ShapegenError
from shapegen.geometry import primitives
from shapegen.geometry.mesh import Mesh
from shapegen.geometry.sampling import sample_near_surface, sample_sdf, sample_surface, sample_uniform


def _box(half=(1.0, 0.5, 0.25)) -> Mesh:
    return Mesh.from_trimesh(trimesh.creation.box(extents=[2 * h for h in half]))


def test_surface_samples_lie_on_box_and_are_area_weighted():
    half = (1.0, 0.5, 0.25)
    s = sample_surface(_box(half), 60000, generator=torch.Generator().manual_seed(0))
    assert primitives.box(half_size=half)(s.points).abs().max().item() < 1e-6
    # Normals: unit, outward, equal to the face normal of the box side the point lies on.
    assert torch.allclose(s.normals.norm(dim=-1), torch.ones(60000), atol=1e-6)
    axis = s.normals.abs().argmax(-1)
    on_side = s.points.gather(1, axis[:, None])[:, 0].abs()
    assert torch.allclose(on_side, torch.tensor(half)[axis], atol=1e-6)
    # Area weighting: the share of points on each axis' pair of sides matches its area share.
    areas = torch.tensor([half[1] * half[2], half[0] * half[2], half[0] * half[1]])
    expected = areas / areas.sum()
    share = torch.bincount(axis, minlength=3).float() / 60000
    assert (share - expected).abs().max().item() < 0.01  # 4 sigma for N = 60k


def test_surface_samples_uniform_within_a_triangle():
    """Square-root barycentric map: the mean of the samples is the centroid, and the share in
    the sub-triangle with half the edges is 1/4 of the area."""
    tri = Mesh(torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]), torch.tensor([[0, 1, 2]]))
    p = sample_surface(tri, 40000, generator=torch.Generator().manual_seed(1)).points
    # Sample-size bounds, 4 sigma or more for N = 40k: a coordinate of a uniform point in this
    # triangle has variance 1/18 (sigma of the mean 0.0012); the corner share has sigma
    # sqrt(0.25 * 0.75 / N) = 0.0022.
    assert torch.allclose(p.mean(0), torch.tensor([1 / 3, 1 / 3, 0.0]), atol=0.005)
    corner = (p[:, 0] + p[:, 1] < 0.5).float().mean().item()
    assert corner == pytest.approx(0.25, abs=0.01)


def test_seeding_is_reproducible():
    mesh = _box()
    a = sample_surface(mesh, 100, generator=torch.Generator().manual_seed(3)).points
    b = sample_surface(mesh, 100, generator=torch.Generator().manual_seed(3)).points
    c = sample_surface(mesh, 100, generator=torch.Generator().manual_seed(4)).points
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_near_surface_noise_levels():
    """Gaussian noise at each sigma: on a large flat face the normal offset has that std."""
    big = Mesh(torch.tensor([[-100.0, -100, 0], [100, -100, 0], [100, 100, 0], [-100, 100, 0]]),
               torch.tensor([[0, 1, 2], [0, 2, 3]]))
    p = sample_near_surface(big, 30001, sigmas=(0.01, 0.1, 0.5), generator=torch.Generator().manual_seed(0))
    assert p.shape == (30001, 3)
    z = p[:, 2]
    for k, sigma in enumerate((0.01, 0.1, 0.5)):
        part = z[k * 10000 + min(k, 1) : (k + 1) * 10000 + 1]
        # The sample std of n = 10k normal values has relative sigma 1 / sqrt(2 n) = 0.007: 4 sigma.
        assert part.std().item() == pytest.approx(sigma, rel=0.03)
    with pytest.raises(ShapegenError):
        sample_near_surface(big, 10, sigmas=(-1.0,))


def test_uniform_box():
    p = sample_uniform(20000, [[-1, 0, 2], [1, 0.5, 4]], generator=torch.Generator().manual_seed(0))
    assert (p.amin(0) >= torch.tensor([-1, 0, 2])).all() and (p.amax(0) <= torch.tensor([1, 0.5, 4])).all()
    # Widest side 2: sigma of the mean = 2 / sqrt(12 N) = 0.0041 for N = 20k, so 0.02 is ~5 sigma.
    assert torch.allclose(p.mean(0), torch.tensor([0.0, 0.25, 3.0]), atol=0.02)
    with pytest.raises(ShapegenError):
        sample_uniform(10, [[1, 1, 1], [0, 0, 0]])


def test_sample_sdf_values_and_inside_fraction():
    r = 0.6
    ico = trimesh.creation.icosphere(3, radius=r)
    mesh = Mesh.from_trimesh(ico)
    s = sample_sdf(mesh, 200, 800, sigmas=0.02, backend="torch", generator=torch.Generator().manual_seed(0))
    assert s.points.shape == (1000, 3) and s.sdf.shape == (1000,)
    assert (s.sdf - (s.points.norm(dim=-1) - r)).abs().max().item() < 0.01
    inside = (s.sdf[200:] < 0).float().mean().item()
    # ~ 4/3 pi r^3 / 8 = 0.113 of the uniform points; binomial sigma sqrt(0.113 * 0.887 / 800) = 0.011.
    assert inside == pytest.approx(ico.volume / 8, abs=0.06)
    assert sample_sdf(mesh, 10, 10, with_sdf=False).sdf is None


def test_errors():
    with pytest.raises(ShapegenError, match="without faces"):
        sample_surface(Mesh(torch.zeros(3, 3), torch.zeros(0, 3, dtype=torch.long)), 5)
    flat = Mesh(torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]), torch.tensor([[0, 1, 2]]))
    with pytest.raises(ShapegenError, match="zero area"):
        sample_surface(flat, 5)
