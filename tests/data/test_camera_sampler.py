"""Random camera sampler for score distillation."""

from __future__ import annotations

import torch

from shapegen.data.cameras import CameraSamplerConfig, RandomCameraSampler


def test_ranges_shapes_and_seeded_reproducibility():
    cfg = CameraSamplerConfig(elevation_range_deg=[0.0, 30.0], azimuth_range_deg=[-90.0, 90.0],
                              distance_range=[2.0, 3.0], fov_range_deg=[40.0, 50.0], batch_size=256)
    cams = RandomCameraSampler(cfg, seed=3).sample(32, 24)
    assert cams.c2w.shape == (256, 4, 4) and cams.intrinsics.width == 32 and cams.intrinsics.height == 24
    assert cams.elevation_deg.min() >= 0 and cams.elevation_deg.max() <= 30
    assert cams.azimuth_deg.abs().max() <= 90
    dist = cams.c2w[:, :3, 3].norm(dim=-1)
    assert torch.allclose(dist, cams.distance, atol=1e-5) and dist.min() >= 2 and dist.max() <= 3
    # Cameras look at the origin: -Z of the camera (OpenGL) points from the eye to the target.
    forward = -cams.c2w[:, :3, 2]
    assert torch.allclose(forward, -cams.c2w[:, :3, 3] / dist[:, None], atol=1e-5)
    again = RandomCameraSampler(cfg, seed=3).sample(32, 24)
    assert torch.equal(again.c2w, cams.c2w)
    assert not torch.equal(RandomCameraSampler(cfg, seed=4).sample(32, 24).c2w, cams.c2w)
