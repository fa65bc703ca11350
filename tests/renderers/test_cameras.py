"""Cameras: look-at axes, OpenGL/OpenCV conversion, intrinsics, random cameras on a sphere."""

from __future__ import annotations

import math

import pytest
import torch

from renderers.cameras import (
    Intrinsics,
    look_at,
    opencv_to_opengl,
    opengl_to_opencv,
    orbit_pose,
    sample_cameras_on_sphere,
)


def test_look_at_opengl_axes():
    c2w = look_at(torch.tensor([0.0, 0.0, 3.0]), (0, 0, 0))
    # Camera on +Z looking at the origin: -Z axis points to -Z world, +X right = world +X.
    torch.testing.assert_close(c2w[:3, :3], torch.eye(3))
    torch.testing.assert_close(c2w[:3, 3], torch.tensor([0.0, 0.0, 3.0]))
    eye = torch.tensor([[1.0, 2.0, 3.0], [-2.0, 0.5, 0.0], [0.0, 5.0, 0.0]])  # last: along up
    c2w = look_at(eye, (0.0, 0.0, 0.0))
    rot = c2w[:, :3, :3]
    torch.testing.assert_close(
        rot.transpose(1, 2) @ rot, torch.eye(3).expand(3, 3, 3), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(3))
    forward = -rot[:, :, 2]
    torch.testing.assert_close(forward, -eye / eye.norm(dim=-1, keepdim=True))
    assert (rot[:2, 1, 1] > 0).all()  # camera up has a positive world-Y component


def test_opengl_opencv_roundtrip_and_meaning():
    c2w = look_at(torch.tensor([[1.0, 2.0, 3.0]]), (0.0, 0.0, 0.0))
    cv = opengl_to_opencv(c2w)
    torch.testing.assert_close(opencv_to_opengl(cv), c2w)
    # OpenCV looks down +Z: its +Z is the OpenGL -Z; its +Y (down) is the OpenGL -Y.
    torch.testing.assert_close(cv[0, :3, 2], -c2w[0, :3, 2])
    torch.testing.assert_close(cv[0, :3, 1], -c2w[0, :3, 1])
    torch.testing.assert_close(cv[0, :3, 3], c2w[0, :3, 3])


def test_intrinsics_from_fov():
    k = Intrinsics.from_fov(90.0, 64, 32)
    assert k.fy == pytest.approx(16.0) and k.fx == pytest.approx(16.0)
    assert (k.cx, k.cy) == (32.0, 16.0)
    assert k.fov_y_deg == pytest.approx(90.0)
    m = k.matrix()
    assert m.shape == (3, 3) and m[0, 2] == 32.0 and m[2, 2] == 1.0
    kb = Intrinsics.from_fov(torch.tensor([40.0, 60.0]), 32, 32)
    torch.testing.assert_close(kb.fov_y_deg, torch.tensor([40.0, 60.0]))
    assert kb.matrix().shape == (2, 3, 3)
    assert k.scaled(0.5).width == 32 and k.scaled(0.5).fx == pytest.approx(8.0)


def test_orbit_pose_matches_convention():
    c2w = orbit_pose(90.0, 0.0, 2.0)
    torch.testing.assert_close(c2w[:3, 3], torch.tensor([2.0, 0.0, 0.0]), atol=1e-6, rtol=0)
    c2w = orbit_pose(0.0, 30.0, 2.0)
    assert c2w[1, 3] == pytest.approx(1.0, abs=1e-6) and c2w[2, 3] > 0


def test_sample_cameras_on_sphere_ranges():
    g = torch.Generator().manual_seed(1)
    cams = sample_cameras_on_sphere(
        256,
        32,
        32,
        (-10.0, 45.0),
        (-180.0, 180.0),
        (1.0, 1.5),
        (40.0, 70.0),
        target=(0.0, 0.5, 0.0),
        generator=g,
    )
    centres = cams.c2w[:, :3, 3] - torch.tensor([0.0, 0.5, 0.0])
    dist = centres.norm(dim=-1)
    torch.testing.assert_close(dist, cams.distance)
    assert dist.min() >= 1.0 and dist.max() <= 1.5
    elev = torch.rad2deg(torch.asin(centres[:, 1] / dist))
    torch.testing.assert_close(elev, cams.elevation_deg, atol=1e-3, rtol=0)
    assert elev.min() >= -10.0 - 1e-3 and elev.max() <= 45.0 + 1e-3
    assert cams.fov_y_deg.min() >= 40.0 and cams.fov_y_deg.max() <= 70.0
    # every camera looks at the target
    forward = -cams.c2w[:, :3, 2]
    torch.testing.assert_close(forward, -centres / dist[:, None], atol=1e-5, rtol=0)
    # uniform_sphere: sin(elevation) uniform over the full sphere -> mean ~ 0, unlike angle-uniform
    u = sample_cameras_on_sphere(4000, 8, 8, (-90.0, 90.0), uniform_sphere=True, generator=g)
    s = torch.sin(torch.deg2rad(u.elevation_deg))
    # 4000 cameras: sigma of the mean of s (uniform on [-1, 1]) is 0.0091, of the share 0.0079;
    # 0.05 is over 5 sigma for both (an angle-uniform sampler gives share 2/3).
    assert abs(s.mean().item()) < 0.05 and abs((s.abs() > 0.5).float().mean().item() - 0.5) < 0.05
    with pytest.raises(ValueError):
        sample_cameras_on_sphere(1, 8, 8, elevation_range_deg=(10.0, -10.0))
    assert math.isfinite(float(cams.intrinsics.fx[0]))
