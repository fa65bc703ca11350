"""TSDF fusion: exact depth maps of analytic shapes give their surface within a voxel."""

from __future__ import annotations

import pytest
import torch

from renderers.cameras import Intrinsics, opengl_to_opencv, orbit_pose
from renderers.rays import generate_rays, ray_aabb_intersect, ray_sphere_intersect
from shapegen.errors import ShapegenError
from shapegen.geometry.recon_metrics import reconstruction_metrics
from shapegen.geometry.sampling import sample_surface
from shapegen.geometry.tsdf import TSDFVolume, depth_bounds, fuse_depth_maps

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 128
INTR = Intrinsics(110.0, 110.0, SIZE / 2, SIZE / 2, SIZE, SIZE)
K = torch.tensor([[110.0, 0, SIZE / 2], [0, 110.0, SIZE / 2], [0, 0, 1]])
RADIUS = 0.5
BOX = (-0.4, -0.3, -0.35, 0.4, 0.3, 0.35)


def _cameras() -> torch.Tensor:
    az = torch.tensor([0.0, 60, 120, 180, 240, 300, 0, 180, 90, 270])
    el = torch.tensor([15.0, -15, 15, -15, 15, -15, 70, -70, 45, -45])
    return opengl_to_opencv(orbit_pose(az, el, torch.full_like(az, 2.0)))


def _render(c2w: torch.Tensor, shape: str) -> torch.Tensor:
    """Exact z-depth maps (0 where the ray misses) by analytic ray casting."""
    rays = generate_rays(c2w, INTR, opencv=True)
    if shape == "sphere":
        b = ray_sphere_intersect(rays.origins, rays.directions, radius=RADIUS)
    else:
        b = ray_aabb_intersect(rays.origins, rays.directions, BOX)
    z = torch.where(b.hit, b.near * rays.cos_to_axis, torch.zeros_like(b.near))
    return z.reshape(c2w.shape[0], SIZE, SIZE)


def _box_surface_distance(p: torch.Tensor) -> torch.Tensor:
    half = torch.tensor(BOX[3:])
    q = p.abs() - half
    outside = q.clamp_min(0).norm(dim=-1)
    inside = q.amax(-1).clamp_max(0)
    return (outside + inside).abs()


def _box_surface_points(n: int) -> torch.Tensor:
    """Area-uniform points on the box's faces."""
    g = torch.Generator().manual_seed(0)
    half = torch.tensor(BOX[3:])
    area = torch.stack([half[1] * half[2], half[0] * half[2], half[0] * half[1]])
    axis = torch.multinomial(area, n, replacement=True, generator=g)
    p = (torch.rand(n, 3, generator=g) * 2 - 1) * half
    sign = torch.randint(0, 2, (n,), generator=g) * 2 - 1
    p[torch.arange(n), axis] = sign * half[axis]
    return p


# The box uses a truncation of 2 voxels: with 4, free-space voxels that a camera sees behind
# the box's nearer face (occluded, within the truncation) get negative projective distances
# and push the edges out by up to ~0.7 trunc, the classic TSDF edge artefact (faces stay within
# 0.5 voxel either way).
@pytest.mark.parametrize(("shape", "trunc_voxels"), [("sphere", 4), ("box", 2)])
def test_fusion_of_exact_depth_recovers_analytic_surface(shape: str, trunc_voxels: int) -> None:
    c2w = _cameras()
    depths = _render(c2w, shape)
    voxel = 0.03
    vol = fuse_depth_maps(depths, K, c2w, voxel_size=voxel, trunc=trunc_voxels * voxel)
    mesh = vol.extract_mesh()
    assert mesh.num_faces > 500
    pts = sample_surface(mesh, 20_000, generator=torch.Generator().manual_seed(0)).points
    if shape == "sphere":
        err = (pts.norm(dim=-1) - RADIUS).abs()
        g = torch.nn.functional.normalize(torch.randn(20_000, 3, generator=torch.Generator().manual_seed(1)), dim=-1) * RADIUS
    else:
        err = _box_surface_distance(pts)
        g = _box_surface_points(20_000)
    # Accuracy: every point within a voxel, on average much closer (box corners are rounded by MC).
    assert float(err.mean()) < 0.25 * voxel, float(err.mean())
    assert float(err.max()) < voxel, float(err.max())
    m = reconstruction_metrics(pts, g, thresholds=(voxel,))
    assert m.completeness < 0.5 * voxel, m.completeness
    assert m.fscore[voxel] > 0.97, m.fscore
    # No spurious sheet behind the surface: nothing lies deeper inside than a voxel.
    if shape == "sphere":
        assert float(pts.norm(dim=-1).min()) > RADIUS - voxel


def test_sphere_mesh_normals_point_to_free_space() -> None:
    c2w = _cameras()
    vol = fuse_depth_maps(_render(c2w, "sphere"), K, c2w, voxel_size=0.04)
    mesh = vol.extract_mesh()
    v = mesh.vertices[mesh.faces]
    n = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1)
    outward = (n * v.mean(1)).sum(-1) > 0
    assert float(outward.float().mean()) > 0.99


def test_invalid_depth_is_ignored() -> None:
    c2w = _cameras()[:3]
    depths = _render(c2w, "sphere")
    lo, hi = depth_bounds(depths, K, c2w, margin=0.2)
    ref = TSDFVolume.empty(lo, hi, 0.05, 0.2)
    for i in range(3):
        ref.integrate(depths[i], K, c2w[i])
    # A frame with no valid pixel changes nothing.
    before = (ref.tsdf.clone(), ref.weight.clone())
    assert ref.integrate(torch.zeros(SIZE, SIZE), K, c2w[0]) == 0
    assert torch.equal(ref.tsdf, before[0]) and torch.equal(ref.weight, before[1])
    # Zeroing the left half of the first frame: voxels that only that half saw stay unobserved,
    # and fusing the zeroed frame equals fusing the full frame restricted to the right half.
    holed = depths.clone()
    holed[0, :, : SIZE // 2] = 0
    vol = TSDFVolume.empty(lo, hi, 0.05, 0.2)
    n_holed = vol.integrate(holed[0], K, c2w[0])
    full = TSDFVolume.empty(lo, hi, 0.05, 0.2)
    n_full = full.integrate(depths[0], K, c2w[0])
    assert 0 < n_holed < n_full
    seen = vol.weight > 0
    assert bool((full.weight[seen] > 0).all())
    assert torch.equal(vol.tsdf[seen], full.tsdf[seen])
    assert bool((vol.tsdf[~seen] == 1).all())


def test_chunking_gives_identical_volumes() -> None:
    c2w = _cameras()[:4]
    depths = _render(c2w, "box")
    colors = torch.rand(4, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(0))
    one = fuse_depth_maps(depths, K, c2w, voxel_size=0.05, colors=colors, chunk=1 << 30)
    many = fuse_depth_maps(depths, K, c2w, voxel_size=0.05, colors=colors, chunk=997)
    assert one.num_voxels > 997 * 10
    assert torch.equal(one.tsdf, many.tsdf) and torch.equal(one.weight, many.weight)
    assert torch.equal(one.color, many.color)


def test_colour_is_the_weighted_mean_and_reaches_vertices() -> None:
    c2w = _cameras()[:2]
    depths = _render(c2w, "sphere")
    colors = torch.stack([torch.full((SIZE, SIZE, 3), 0.2), torch.full((SIZE, SIZE, 3), 0.6)])
    vol = fuse_depth_maps(depths, K, c2w, voxel_size=0.05, colors=colors)
    both = vol.weight == 2
    assert bool(both.any())
    assert torch.allclose(vol.color[both], torch.full_like(vol.color[both], 0.4), atol=1e-6)
    mesh = vol.extract_mesh()
    assert mesh.vertex_colors is not None and mesh.vertex_colors.shape == (mesh.num_vertices, 3)
    assert float(mesh.vertex_colors.min()) >= 0.2 - 1e-6 and float(mesh.vertex_colors.max()) <= 0.6 + 1e-6


def test_bounds_contain_the_observed_points_and_frusta_contain_points() -> None:
    c2w = _cameras()
    depths = _render(c2w, "box")
    lo_p, hi_p = depth_bounds(depths, K, c2w, mode="points")
    lo_f, hi_f = depth_bounds(depths, K, c2w, mode="frusta")
    half = torch.tensor(BOX[3:])
    assert bool((lo_p >= -half - 1e-4).all() and (hi_p <= half + 1e-4).all())  # only the box's surface is seen
    assert bool((lo_p <= -half + 0.05).all() and (hi_p >= half - 0.05).all())
    assert bool((lo_f <= lo_p).all() and (hi_f >= hi_p).all())


def test_bad_inputs_raise() -> None:
    c2w = _cameras()[:2]
    with pytest.raises(ShapegenError, match="valid"):
        fuse_depth_maps(torch.zeros(2, SIZE, SIZE), K, c2w, voxel_size=0.05)
    with pytest.raises(ShapegenError, match="voxels"):
        fuse_depth_maps(_render(c2w, "sphere"), K, c2w, voxel_size=1e-4)
    with pytest.raises(ShapegenError, match="poses"):
        fuse_depth_maps(_render(c2w, "sphere"), K, c2w[:1], voxel_size=0.05)
    with pytest.raises(ShapegenError, match="voxel size"):
        fuse_depth_maps(_render(c2w, "sphere"), K, c2w, voxel_size=0.0)
