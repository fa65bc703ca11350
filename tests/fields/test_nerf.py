"""NeRF field: density blob, heads, gradients, background."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from shapegen.fields.nerf import Background, BackgroundConfig, NeRFField, NeRFFieldConfig
from shapegen.nn.hash_encoding import HashEncodingConfig

TINY = NeRFFieldConfig(
    encoding=HashEncodingConfig(levels=4, log2_table_size=10, base_resolution=4, max_resolution=32),
    hidden_dim=16,
)


def test_density_blob_initialisation():
    field = NeRFField(TINY)
    x = torch.tensor([[0.0, 0.0, 0.0], [0.25, 0.0, 0.0], [0.0, 0.0, 0.75], [0.0, 0.9, 0.0]])
    sigma = field.density(x)
    # The blob dominates the small random MLP output: softplus(10 (1 - |x| / 0.5) + raw).
    expected = F.softplus(10.0 * (1.0 - x.norm(dim=-1) / 0.5))
    assert torch.allclose(sigma, expected, rtol=0.2, atol=0.05)
    assert sigma[0] > 9.0 and sigma[1] > 4.0 and sigma[3] < 0.01
    # Outside the cube the density is exactly zero.
    assert field.density(torch.tensor([[1.5, 0.0, 0.0]])).item() == 0.0


def test_forward_shapes_ranges_and_gradients():
    field = NeRFField(TINY)
    x = torch.rand(64, 3) * 2 - 1
    out = field(x)
    assert out.density.shape == (64,) and out.albedo.shape == (64, 3)
    assert (out.density >= 0).all() and ((out.albedo > 0) & (out.albedo < 1)).all()
    (out.density.sum() + out.albedo.sum()).backward()
    assert field.encoding.embeddings.grad.abs().sum() > 0
    assert all(p.grad is not None for p in field.albedo_head.parameters())


def test_background_constant_and_mlp():
    dirs = F.normalize(torch.randn(10, 3), dim=-1)
    const = Background(BackgroundConfig(kind="constant", color=[0.1, 0.2, 0.3]))
    assert torch.allclose(const(dirs), torch.tensor([0.1, 0.2, 0.3]).expand(10, 3))
    assert not list(const.parameters())
    mlp = Background(BackgroundConfig(kind="mlp"))
    out = mlp(dirs)
    assert out.shape == (10, 3) and ((out > 0) & (out < 1)).all()
    assert not torch.allclose(out[0], out[1])  # depends on the direction
