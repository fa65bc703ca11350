"""VSD / SDS guidance from a pixel-space prior (``vae=None``): the renders are the latents."""

from __future__ import annotations

import pytest
import torch

from shapegen.guidance.vsd import GuidanceConfig, ScoreDistillation
from shapegen.methods.render_prior import PriorTextConfig, PriorUNetConfig, RenderPrior, RenderPriorConfig


@pytest.fixture(scope="module")
def pixel_sd():
    cfg = RenderPriorConfig(image_size=16, vocabulary=["a", "chair"],
                            unet=PriorUNetConfig(block_out_channels=[8, 16], cross_attention=[False, True], attention_head_dim=4,
                                                 norm_num_groups=4),
                            text=PriorTextConfig(hidden_size=16, layers=1, heads=2, intermediate_size=32, max_length=12))
    return RenderPrior(cfg).pipeline(use_ema=False)


def test_pixel_space_parts(pixel_sd):
    assert pixel_sd.vae is None and pixel_sd.pixel_space
    assert pixel_sd.vae_scale_factor == 1 and pixel_sd.image_size == 16


@pytest.mark.parametrize("mode", ["vsd", "sds"])
def test_one_guidance_step_reaches_the_renders(pixel_sd, mode):
    import copy

    sd = copy.deepcopy(pixel_sd)  # VSD adds LoRA adapters to the UNet it gets
    g = ScoreDistillation(sd, "a chair", GuidanceConfig(mode=mode, guidance_scale=7.5 if mode == "vsd" else 100.0))
    images = torch.rand(2, 3, 24, 24, requires_grad=True)  # resized to the prior's 16x16
    z = g.encode_images(torch.full((1, 3, 16, 16), 0.25))
    assert torch.equal(z, torch.full((1, 3, 16, 16), -0.5))  # 2 x - 1: no VAE
    c2w = torch.eye(4).expand(2, 4, 4).clone()
    out = g(images, c2w, step=0, azimuth_deg=torch.tensor([0.0, 180.0]), elevation_deg=torch.tensor([10.0, 10.0]))
    (out.loss + out.loss_lora).backward()
    assert torch.isfinite(out.loss) and out.grad_norm > 0
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert (len(g.lora_parameters()) > 0) == (mode == "vsd")
    if mode == "vsd":
        assert out.loss_lora > 0 and any(p.grad is not None for p in g.lora_parameters())
