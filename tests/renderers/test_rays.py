"""Ray generation through pixel centres and ray bounds."""

from __future__ import annotations

import torch

from renderers.cameras import Intrinsics, look_at, opengl_to_opencv
from renderers.rays import generate_rays, ray_aabb_intersect, ray_sphere_intersect


def test_generate_rays_pixel_centres_and_axes():
    k = Intrinsics.from_fov(90.0, 4, 2)  # fy = 1 px
    c2w = look_at(torch.tensor([0.0, 0.0, 3.0]), (0.0, 0.0, 0.0))
    rays = generate_rays(c2w, k)
    assert rays.origins.shape == (8, 3)
    d = rays.directions.view(2, 4, 3)
    # Pixel (v=0, u=3): centre (3.5, 0.5) -> camera (1.5, +0.5, -1): right and up.
    expected = torch.tensor([1.5, 0.5, -1.0])
    torch.testing.assert_close(d[0, 3], expected / expected.norm())
    assert d[1, 0, 0] < 0 and d[1, 0, 1] < 0  # bottom-left looks left and down
    torch.testing.assert_close(rays.directions.norm(dim=-1), torch.ones(8))
    # z-depth conversion: t * cos_to_axis equals the camera-axis component of t * d
    torch.testing.assert_close(rays.cos_to_axis, -rays.directions[:, 2])
    # The same camera in OpenCV axes gives the same rays.
    rays_cv = generate_rays(opengl_to_opencv(c2w), k, opencv=True)
    torch.testing.assert_close(rays_cv.directions, rays.directions)


def test_generate_rays_batched_intrinsics():
    k = Intrinsics.from_fov(torch.tensor([30.0, 60.0]), 8, 8)
    c2w = look_at(torch.tensor([[0.0, 0.0, 2.0], [2.0, 0.0, 0.0]]))
    rays = generate_rays(c2w, k)
    assert rays.origins.shape == (128, 3)
    # Top edge angle of the first image, by pixel centre: tan(angle) = 3.5 / fy.
    d = rays.directions.view(2, 8, 8, 3)
    fy = 4.0 / torch.tan(torch.deg2rad(torch.tensor(15.0)))
    torch.testing.assert_close(d[0, 0, 4, 1] / -d[0, 0, 4, 2], 3.5 / fy)
    torch.testing.assert_close(rays.origins.view(2, 64, 3)[1, 0], torch.tensor([2.0, 0.0, 0.0]))


def test_aabb_and_sphere_bounds_and_misses():
    o = torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 3.0], [0.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    d = torch.tensor([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    b = ray_aabb_intersect(o, d, (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0))
    assert b.hit.tolist() == [True, False, True, False]
    torch.testing.assert_close(b.near[:1], torch.tensor([2.0]))
    torch.testing.assert_close(b.far[:1], torch.tensor([4.0]))
    torch.testing.assert_close(b.near[2:3], torch.tensor([0.0]))  # origin inside: near = 0
    torch.testing.assert_close(b.far[2:3], torch.tensor([1.0]))
    assert (b.near[~b.hit] == b.far[~b.hit]).all()
    s = ray_sphere_intersect(o, d, (0.0, 0.0, 0.0), 0.5)
    assert s.hit.tolist() == [True, False, True, False]
    torch.testing.assert_close(s.near[[0, 2]], torch.tensor([2.5, 0.0]))
    torch.testing.assert_close(s.far[[0, 2]], torch.tensor([3.5, 0.5]))
    # Oblique ray: analytic chord of a unit sphere at offset 0.6 -> half chord 0.8
    s = ray_sphere_intersect(
        torch.tensor([[-3.0, 0.6, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]]), radius=1.0
    )
    torch.testing.assert_close(s.near, torch.tensor([2.2]))
    torch.testing.assert_close(s.far, torch.tensor([3.8]))
