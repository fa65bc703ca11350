"""Set Transformer: permutation equivariance, conditioning paths, null condition; text encoders."""

from __future__ import annotations

import pytest
import torch

from shapegen.errors import ShapegenError
from shapegen.nn.text_encoders import CLIPTextEncoder, build_text_encoder
from shapegen.nn.transformer import SetTransformer, SetTransformerConfig

CFG = SetTransformerConfig(width=32, depth=2, heads=4, time_frequencies=16)


def _randomised(model: torch.nn.Module) -> torch.nn.Module:
    # The zero-initialised gates/output would make any test on outputs vacuous.
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model


@pytest.mark.parametrize("num_classes,context_dim", [(0, 0), (3, 0), (3, 8)])
def test_permuting_rows_permutes_output(num_classes, context_dim):
    model = _randomised(SetTransformer(7, CFG, num_classes=num_classes, context_dim=context_dim)).eval()
    x = torch.randn(2, 10, 7)
    t = torch.rand(2)
    labels = torch.tensor([0, 2]) if num_classes else None
    ctx = torch.randn(2, 5, context_dim) if context_dim else None
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool) if context_dim else None
    perm = torch.randperm(10)
    out = model(x, t, labels, ctx, mask)
    out_perm = model(x[:, perm], t, labels, ctx, mask)
    assert torch.allclose(out[:, perm], out_perm, atol=1e-5)
    # Not trivially equivariant: rows interact (changing one row changes the others' output).
    x2 = x.clone()
    x2[:, 0] += 1.0
    assert not torch.allclose(model(x2, t, labels, ctx, mask)[:, 1:], out[:, 1:], atol=1e-4)


def test_zero_init_and_conditioning_matters():
    model = SetTransformer(5, CFG, num_classes=3)
    x, t = torch.randn(2, 4, 5), torch.rand(2)
    assert torch.count_nonzero(model(x, t, torch.tensor([0, 1]))) == 0  # adaLN-Zero start
    _randomised(model)
    a = model(x, t, torch.tensor([0, 0]))
    b = model(x, t, torch.tensor([1, 1]))
    null = model(x, t, torch.tensor([0, 0]), drop=torch.tensor([True, True]))
    assert not torch.allclose(a, b)
    assert torch.allclose(null, model(x, t, None))  # dropped == null class
    assert torch.allclose(model(x, t, torch.tensor([0, 1]), drop=torch.tensor([True, False]))[1], b[1], atol=1e-6)
    assert not torch.allclose(model(x, t + 0.3, torch.tensor([0, 0])), a)


def test_tiny_text_encoder_is_deterministic_and_conditions():
    enc = build_text_encoder("tiny")
    enc2 = CLIPTextEncoder.tiny()
    out = enc(["a wooden chair", "a round table with four legs"])
    assert out.hidden.shape[0] == 2 and out.hidden.shape[2] == enc.dim == 32
    assert out.mask[0].sum() == 5 and out.mask[1].sum() == 8  # BOS + words + EOS
    assert torch.equal(out.hidden, enc2(["a wooden chair", "a round table with four legs"]).hidden)
    assert not torch.allclose(out.pooled[0], out.pooled[1])
    model = _randomised(SetTransformer(5, CFG, context_dim=enc.dim))
    x, t = torch.randn(2, 4, 5), torch.rand(2)
    v = model(x, t, context=out.hidden, context_mask=out.mask)
    swapped = enc(["a round table with four legs", "a wooden chair"])
    v2 = model(x, t, context=swapped.hidden, context_mask=swapped.mask)
    assert not torch.allclose(v, v2)
    assert torch.allclose(model(x, t, context=out.hidden, context_mask=out.mask, drop=torch.tensor([True, True])), model(x, t), atol=1e-6)


def test_unknown_text_encoder_is_one_line(tmp_path):
    with pytest.raises(ShapegenError, match="cannot load text encoder") as info:
        build_text_encoder(str(tmp_path / "no-such-model"))
    assert "\n" not in str(info.value)
