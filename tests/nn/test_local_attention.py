"""View-aware local attention: the mask admits exactly the patches within the radius."""

from __future__ import annotations

import math

import torch

from shapegen.data.sketches import view_projection
from shapegen.geometry.voxels import voxel_centers
from shapegen.nn.local_attention import LocalCrossAttention, local_attention_mask, training_radius


def test_mask_matches_brute_force_distances():
    size, patches, res = 64, 8, 4
    proj = view_projection(torch.tensor([0.0, 135.0]), size)
    radius = torch.tensor([1.5, 3.0])
    mask = local_attention_mask(res, proj, patches, size, radius)
    assert mask.shape == (2, res**3, patches**2)
    centres = voxel_centers(res).reshape(-1, 3)
    pw = size / patches
    for b in range(2):
        uvw = centres @ proj[b, :, :3].T + proj[b, :, 3]
        uv = uvw[:, :2] / uvw[:, 2:]
        for n in (0, 21, 42, 63):
            for row in range(patches):
                for col in range(patches):
                    c = torch.tensor([(col + 0.5) * pw, (row + 0.5) * pw])
                    within = float((uv[n] - c).norm()) / pw <= float(radius[b])
                    if within:
                        assert mask[b, n, row * patches + col]
                    elif mask[b, n, row * patches + col]:
                        # Only the always-admitted nearest patch may lie outside the radius.
                        assert mask[b, n].sum() == 1


def test_mask_is_local_and_grows_with_radius():
    proj = view_projection(torch.tensor([45.0]), 224)
    small = local_attention_mask(4, proj, 16, 224, 2.0)
    large = local_attention_mask(4, proj, 16, 224, 6.0)
    assert (small <= large).all()  # monotone in the radius
    assert small.any(-1).all()  # no voxel is left without a patch
    assert small.float().mean() < 0.1  # local: a small share of the 256 patches
    # A voxel centre on the optical axis (the origin) projects to the image centre.
    uvw = proj[0, :, 3]
    assert torch.allclose(uvw[:2] / uvw[2], torch.tensor([112.0, 112.0]), atol=1e-4)


def test_no_view_means_global_attention():
    proj = torch.full((1, 3, 4), float("nan"))
    assert local_attention_mask(2, proj, 4, 32, 1.0).all()


def test_cross_attention_ignores_masked_tokens():
    torch.manual_seed(0)
    attn = LocalCrossAttention(8, 6, heads=2, dropout=0.0).eval()
    h = torch.randn(1, 8, 2, 2, 2)
    tokens = torch.randn(1, 4, 6)
    mask = torch.zeros(1, 8, 4, dtype=torch.bool)
    mask[..., :2] = True  # every voxel sees tokens 0 and 1 only
    out = attn(h, tokens, mask)
    changed = tokens.clone()
    changed[:, 2:] = torch.randn(1, 2, 6) * 10
    assert torch.allclose(out, attn(h, changed, mask), atol=1e-6)
    changed[:, :2] += 1.0
    assert not torch.allclose(out, attn(h, changed, mask), atol=1e-4)


def test_training_radius_distribution():
    r = training_radius(10000, torch.Generator().manual_seed(0))
    assert float(r.min()) >= math.sqrt(2) / 2
    assert abs(float(r.mean()) - (4 * math.sqrt(2 / math.pi) + math.sqrt(2) / 2)) < 0.1
