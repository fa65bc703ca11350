"""Hash-grid encoding: shapes, gradients, dense levels and trilinear interpolation."""

from __future__ import annotations

import itertools

import torch

from shapegen.nn.hash_encoding import HashEncoding, HashEncodingConfig

CFG = HashEncodingConfig(levels=4, features_per_level=2, log2_table_size=10, base_resolution=4, max_resolution=32)


def test_shape_and_gradients_reach_the_tables():
    enc = HashEncoding(CFG)
    x = torch.rand(50, 3, requires_grad=True)
    out = enc(x)
    assert out.shape == (50, 8) and enc.out_dim == 8
    out.square().sum().backward()
    assert enc.embeddings.grad is not None and enc.embeddings.grad.abs().sum() > 0
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_levels_below_table_size_are_dense_and_collision_free():
    enc = HashEncoding(CFG)
    assert enc.resolutions == [4, 8, 16, 32]
    dense = enc._dense.tolist()
    assert dense == [True, True, False, False]  # 5^3, 9^3 <= 1024 < 17^3
    for lvl, r in enumerate(enc.resolutions):
        if not dense[lvl]:
            continue
        verts = torch.tensor(list(itertools.product(range(r + 1), repeat=3)))
        full = torch.zeros(len(verts), enc.config.levels, 3, dtype=torch.long)
        full[:, lvl] = verts
        rows = enc.vertex_indices(full)[:, lvl]
        assert rows.unique().numel() == (r + 1) ** 3  # one row per vertex
        assert rows.min() == enc._offsets[lvl] and rows.max() < enc._offsets[lvl] + enc._sizes[lvl]
    # Hashed levels stay inside their table.
    verts = torch.randint(0, 33, (1000, 4, 3))
    rows = enc.vertex_indices(verts)
    assert (rows >= enc._offsets).all() and (rows < enc._offsets + enc._sizes).all()


def test_trilinear_interpolation_reproduces_a_linear_function():
    cfg = HashEncodingConfig(levels=1, features_per_level=1, log2_table_size=12, base_resolution=6, max_resolution=6)
    enc = HashEncoding(cfg)
    r = enc.resolutions[0]
    verts = torch.tensor(list(itertools.product(range(r + 1), repeat=3)))
    rows = enc.vertex_indices(verts[:, None, :])[:, 0]
    coef = torch.tensor([0.3, -1.2, 2.0])
    with torch.no_grad():
        enc.embeddings[rows, 0] = (verts.float() / r) @ coef + 0.5
    x = torch.rand(200, 3)
    assert torch.allclose(enc(x)[:, 0], x @ coef + 0.5, atol=1e-5)
