"""Occupancy grid: updates, traversal == filtered dense march, early termination."""

from __future__ import annotations

import torch

from renderers.occupancy_grid import OccupancyGrid
from renderers.rays import ray_aabb_intersect
from renderers.samples import RaySamples
from renderers.volume import volume_render


def _rays(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    o = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1) * 3.0
    target = (torch.rand(n, 3, generator=g) - 0.5) * 1.2
    return o, torch.nn.functional.normalize(target - o, dim=-1)


def _dense_march(grid, o, d, step):
    """Reference: every step of the same constant-step march, filtered by the grid."""
    b = ray_aabb_intersect(o, d, grid.aabbs[-1])
    n = torch.where(b.hit, torch.ceil((b.far - b.near) / step), torch.zeros_like(b.near)).long()
    ri = torch.repeat_interleave(torch.arange(len(o)), n)
    k = torch.arange(len(ri)) - (torch.cumsum(n, 0) - n)[ri]
    ts = b.near[ri] + k * step
    te = torch.minimum(ts + step, b.far[ri])
    return RaySamples(ts, te, ri, len(o))


def test_traversal_matches_dense_march_and_skips_empty_cells():
    for levels in (1, 2):
        grid = OccupancyGrid(resolution=32, levels=levels, coarse_factor=4)
        occ = torch.rand(levels, 32, 32, 32) < 0.03
        grid.set_binaries(occ)
        o, d = _rays(300)
        step = 2 * 3**0.5 / 256
        s = grid.traverse(o, d, step)
        assert len(s) > 0
        assert grid.query(s.positions(o, d)).all()  # no sample in an empty cell
        ref = _dense_march(grid, o, d, step)
        ref = ref.select(grid.query(ref.positions(o, d)))
        assert len(s) == len(ref)  # every sample the dense marcher keeps, no more
        torch.testing.assert_close(s.ray_indices, ref.ray_indices)
        torch.testing.assert_close(s.t_starts, ref.t_starts)
        torch.testing.assert_close(s.t_ends, ref.t_ends)


def test_update_from_sdf_and_density():
    grid = OccupancyGrid(resolution=16)
    sphere = lambda x: x.norm(dim=-1) - 0.5
    grid.update(sphere, kind="sdf")
    centres = grid._cell_points(0, jitter=False)
    half_diag = float(grid.cell_size(0).norm()) / 2
    expected = (sphere(centres) <= half_diag).view(16, 16, 16)
    assert torch.equal(grid.binaries[0], expected)
    assert 0.0 < grid.binaries.float().mean() < 0.2
    # Density: a small dense blob; warm-up evaluates every cell once.
    grid = OccupancyGrid(resolution=16)
    blob = lambda x: 100.0 * ((x - 0.5).abs() < 0.2).all(-1).float()
    grid.update(blob, kind="density", step=0)
    b = grid.binaries[0]
    assert b.any() and b.float().mean() < 0.05
    ijk = b.nonzero().float()
    x = -1 + (ijk + 0.5) / 16 * 2
    assert ((x - 0.5).abs() < 0.2 + 0.125).all()  # only cells overlapping the blob
    # EMA: once the blob is gone the occupancy decays, binaries follow the threshold.
    before = grid.occs.max().item()
    grid.update(lambda x: torch.zeros(len(x)), kind="density", step=1000)
    assert grid.occs.max().item() <= before * 0.95 + 1e-6


def test_early_termination_keeps_the_image():
    grid = OccupancyGrid(resolution=32)
    box = lambda x: 50.0 * ((x.abs() < 0.4).all(-1)).float()
    grid.update(box, kind="density", step=0)
    o, d = _rays(200, seed=1)
    step = 2 * 3**0.5 / 256
    sigma_fn = lambda s: box(s.positions(o, d))
    full = grid.traverse(o, d, step)
    cut = grid.sample(o, d, step, sigma_fn=sigma_fn, early_stop_eps=1e-4)
    assert len(cut) < 0.5 * len(full)
    a = volume_render(full, sigmas=sigma_fn(full))
    b = volume_render(cut, sigmas=sigma_fn(cut))
    torch.testing.assert_close(a.opacity, b.opacity, atol=2e-4, rtol=0)
    torch.testing.assert_close(a.depth, b.depth, atol=1e-3, rtol=0)
