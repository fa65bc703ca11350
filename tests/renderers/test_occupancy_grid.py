"""Occupancy grid: updates, traversal == filtered dense march, early termination."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

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


@pytest.mark.parametrize(
    ("coarse_factor", "fine_dda"), [(1, False), (2, False), (4, True), (8, False)]
)
def test_traversal_matches_dense_march_for_every_pyramid(coarse_factor, fine_dda):
    """Any pyramid depth gives the filtered dense march, also for awkward rays: axis-parallel
    ones (zero direction components), rays starting inside the box, per-ray near/far."""
    grid = OccupancyGrid(resolution=32, coarse_factor=coarse_factor, fine_dda=fine_dda)
    grid.set_binaries(torch.rand(1, 32, 32, 32) < 0.05)
    o, d = _rays(200, seed=2)
    o[:20] = (torch.rand(20, 3) - 0.5) * 1.5  # inside the box
    axis = torch.eye(3).repeat(10, 1)
    o[20:50], d[20:50] = (torch.rand(30, 3) - 0.5) * 1.9 - 3 * axis, axis  # along x, y or z
    o[50:55], d[50:55] = torch.tensor([-3.0, 0.0, 0.0]), torch.tensor([1.0, 0.0, 0.0])  # on planes
    near = torch.rand(200) * 0.5
    far = near + 2.0 + torch.rand(200) * 3
    step = 2 * 3**0.5 / 200
    s = grid.traverse(o, d, step, near=near, far=far)
    assert grid.query(s.positions(o, d)).all()
    b = ray_aabb_intersect(o, d, grid.aabbs[-1])
    t0, t1 = torch.maximum(near, b.near), torch.minimum(far, b.far)
    n = torch.where(b.hit & (t1 > t0), torch.ceil((t1 - t0) / step), torch.zeros_like(t0)).long()
    ri = torch.repeat_interleave(torch.arange(200), n)
    k = torch.arange(len(ri)) - (torch.cumsum(n, 0) - n)[ri]
    ts = t0[ri] + k * step
    ref = RaySamples(ts, torch.minimum(ts + step, t1[ri]), ri, 200)
    ref = ref.select(grid.query(ref.positions(o, d)))
    assert len(s) == len(ref) > 0
    torch.testing.assert_close(s.ray_indices, ref.ray_indices)
    torch.testing.assert_close(s.t_starts, ref.t_starts)
    torch.testing.assert_close(s.t_ends, ref.t_ends)


def test_traversal_follows_in_place_changes_of_the_binaries():
    grid = OccupancyGrid(resolution=16)
    grid.set_binaries(torch.zeros(1, 16, 16, 16, dtype=torch.bool))
    o, d = _rays(50)
    assert len(grid.traverse(o, d, 0.02)) == 0
    state = {k: v.clone() for k, v in grid.state_dict().items()}
    state["binaries"][:] = True  # e.g. a checkpoint: the cached pyramid must not go stale
    grid.load_state_dict(state)
    assert len(grid.traverse(o, d, 0.02)) > 0


def _voxel_field(g, seed=0):
    """A trilinear density grid of side g (voxel centres = occupancy cell centres), a few
    occupied voxels; returns the field callable."""
    gen = torch.Generator().manual_seed(seed)
    vox = (torch.rand(g, g, g, generator=gen) < 0.01).float() * 30.0
    vol = vox.permute(2, 1, 0)[None, None].contiguous()  # grid_sample indexes [z, y, x]

    def field(x):
        out = F.grid_sample(vol, x.view(1, -1, 1, 1, 3), mode="bilinear", align_corners=False)
        return out.view(-1)

    return field


def test_density_update_is_conservative():
    """After one update every point with non-negligible density lies in an occupied cell;
    nerfacc's single random point per cell (corners=False) misses partly covered cells."""
    field = _voxel_field(16)
    grid = OccupancyGrid(resolution=16)
    grid.update(field, kind="density", step=0)
    x = torch.rand(400_000, 3) * 2 - 1
    assert grid.query(x[field(x) > 1e-3]).all()
    loose = OccupancyGrid(resolution=16)
    loose.update(field, kind="density", step=0, corners=False)
    assert not loose.query(x[field(x) > 1e-3]).all()
    assert loose.binaries.sum() < grid.binaries.sum()
    # dilate grows the binary grid by whole cells.
    wide = OccupancyGrid(resolution=16)
    wide.update(field, kind="density", step=0, dilate=1)
    pooled = F.max_pool3d(grid.binaries.float()[:, None], 3, 1, 1)[:, 0] > 0
    assert torch.equal(wide.binaries, pooled)


def test_grid_render_equals_dense_render():
    """Same step, same t grid: the grid image (with early termination) equals the dense one."""
    field = _voxel_field(32, seed=1)
    colour = lambda x: torch.sigmoid(torch.stack([x[:, 0] * 3, x[:, 1] * x[:, 2], -x[:, 2]], -1))
    grid = OccupancyGrid(resolution=32)
    grid.update(field, kind="density", step=0)
    assert grid.binaries.float().mean() < 0.3
    o, d = _rays(400, seed=3)
    step = 2 / 32 / 2
    dense = _dense_march(grid, o, d, step)
    ref = volume_render(
        dense, sigmas=field(dense.positions(o, d)), rgb=colour(dense.positions(o, d))
    )
    s, sig = grid.sample(
        o, d, step, sigma_fn=lambda s_: field(s_.positions(o, d)), return_values=True
    )
    assert len(s) < 0.3 * len(dense)
    out = volume_render(s, sigmas=sig, rgb=colour(s.positions(o, d)))
    assert ref.opacity.max() > 0.9  # some rays are stopped by the scene
    torch.testing.assert_close(out.opacity, ref.opacity, atol=1e-3, rtol=0)
    torch.testing.assert_close(out.rgb, ref.rgb, atol=1e-3, rtol=0)
    torch.testing.assert_close(out.depth, ref.depth, atol=1e-2, rtol=0)


def test_early_termination_matches_a_per_ray_loop():
    """Packed culling keeps exactly the samples whose transmittance is still >= eps."""
    grid = OccupancyGrid(resolution=16)
    blob = lambda x: 40.0 * (x.norm(dim=-1) < 0.5).float()
    grid.update(blob, kind="density", step=0)
    o, d = _rays(30, seed=4)
    step = 0.01
    full = grid.traverse(o, d, step)
    cut = grid.sample(o, d, step, sigma_fn=lambda s: blob(s.positions(o, d)), early_stop_eps=1e-3)
    sig = blob(full.positions(o, d))
    keep = []
    for r in range(30):  # reference: march each ray, stop once T < eps
        trans = 1.0
        for i in torch.nonzero(full.ray_indices == r)[:, 0].tolist():
            keep.append(trans >= 1e-3)
            trans *= float(torch.exp(-sig[i] * full.deltas[i]))
    expected = full.select(torch.tensor(keep, dtype=torch.bool))
    assert len(expected) < len(full)
    torch.testing.assert_close(cut.t_starts, expected.t_starts)
    torch.testing.assert_close(cut.ray_indices, expected.ray_indices)


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
