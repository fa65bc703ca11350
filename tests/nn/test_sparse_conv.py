"""Sparse voxel UNet: computes only on the given voxels and matches a dense convolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from shapegen.nn.sparse_conv import SparseConv3d, SparseUNet, SparseUNetConfig, build_levels


def _coords(mask: torch.Tensor) -> torch.Tensor:
    return torch.nonzero(mask)


def test_sparse_conv_equals_dense_conv_on_occupied_voxels():
    torch.manual_seed(0)
    mask = torch.rand(2, 6, 6, 6) < 0.4
    coords = _coords(mask)
    x = torch.randn(coords.shape[0], 3)
    conv = SparseConv3d(3, 4)
    lvl = build_levels(coords, 6, 2, 1)[0]
    out = conv(x, lvl)
    dense = torch.zeros(2, 3, 6, 6, 6)
    dense[coords[:, 0], :, coords[:, 1], coords[:, 2], coords[:, 3]] = x
    w = conv.weight.view(3, 3, 3, 3, 4).permute(4, 3, 0, 1, 2)  # (di, dj, dk, cin, cout) -> (cout, cin, di, dj, dk)
    ref = F.conv3d(dense, w, conv.bias, padding=1)
    ref = ref[coords[:, 0], :, coords[:, 1], coords[:, 2], coords[:, 3]]
    assert torch.allclose(out, ref, atol=1e-5)


def test_levels_parents_and_children_are_consistent():
    mask = torch.zeros(1, 8, 8, 8, dtype=torch.bool)
    mask[0, 2:5, 3, 4:6] = True
    levels = build_levels(_coords(mask), 8, 1, 3)
    fine, coarse = levels[0], levels[1]
    assert torch.equal(coarse.coords[coarse.parent][:, 1:], fine.coords[:, 1:] // 2)
    kids = coarse.children[coarse.children >= 0]
    assert torch.equal(kids.sort().values, torch.arange(fine.coords.shape[0]))
    assert levels[2].side == 2


def test_unet_output_depends_only_on_given_voxels():
    torch.manual_seed(0)
    net = SparseUNet(SparseUNetConfig(base_channels=8, channel_mults=[1, 2, 2])).eval()
    mask = torch.rand(2, 8, 8, 8) < 0.3
    coords = _coords(mask)
    x = torch.randn(coords.shape[0], 1)
    t = torch.tensor([0.3, 0.7])
    out = net(x, coords, 8, t)
    assert out.shape == (coords.shape[0], 1)
    # Each sample is independent of the other one's voxels.
    first = coords[:, 0] == 0
    alone = net(x[first], coords[first], 8, t[:1])
    assert torch.allclose(alone, out[first], atol=1e-5)
