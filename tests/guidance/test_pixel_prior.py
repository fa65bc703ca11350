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


def test_camera_angles_invert_the_orbit_pose_and_feed_sines_and_cosines():
    from renderers.cameras import orbit_pose
    from shapegen.guidance.prior import camera_angles, camera_features

    az, el = torch.tensor([0.0, 90.0, -135.0, 30.0]), torch.tensor([0.0, 20.0, -10.0, 70.0])
    got_az, got_el = camera_angles(orbit_pose(az, el, torch.tensor([1.5, 2.0, 1.3, 1.7])))
    assert torch.allclose(got_az, az, atol=1e-4) and torch.allclose(got_el, el, atol=1e-4)
    f = camera_features(torch.tensor([90.0]), torch.tensor([0.0]))
    assert torch.allclose(f, torch.tensor([[1.0, 0.0, 0.0, 1.0]]), atol=1e-6)


@pytest.mark.parametrize("share_unet", [True, False])
def test_a_camera_prior_sees_each_render_s_camera_and_the_lora_model_starts_equal_to_it(share_unet):
    import copy

    from renderers.cameras import orbit_pose
    from shapegen.guidance.prior import camera_features

    cfg = RenderPriorConfig(image_size=16, vocabulary=["a", "chair"], camera=True,
                            unet=PriorUNetConfig(block_out_channels=[8, 16], cross_attention=[False, True], attention_head_dim=4,
                                                 norm_num_groups=4),
                            text=PriorTextConfig(hidden_size=16, layers=1, heads=2, intermediate_size=32, max_length=12))
    torch.manual_seed(0)
    sd = RenderPrior(cfg).pipeline(use_ema=False)
    torch.nn.init.normal_(sd.unet.class_embedding.linear_2.weight, std=0.5)  # a prior that has learnt the camera
    g = ScoreDistillation(copy.deepcopy(sd), "a chair", GuidanceConfig(mode="vsd", guidance_scale=1.0, share_unet=share_unet))
    assert g.camera_prior
    x_t, t = torch.randn(2, 3, 16, 16), torch.tensor([300, 300])
    cond, uncond = g.text_embeddings[[1, 1]], g.text_embeddings[[0, 0]]
    c2w = orbit_pose(torch.tensor([0.0, 90.0]), torch.tensor([15.0, 15.0]), 1.5)
    views = camera_features(torch.tensor([0.0, 90.0]), torch.tensor([15.0, 15.0]))
    with torch.no_grad():
        prior = g.prior_epsilon(x_t, t, cond, uncond, views)
        turned = g.prior_epsilon(x_t, t, cond, uncond, views.flip(0))
        assert not torch.allclose(prior, turned, atol=1e-4)  # the camera changes the prior's answer
        lora = g.lora_output(x_t, t, cond, c2w.reshape(2, 16), views)
        assert torch.allclose(lora, prior, atol=1e-5)  # zero LoRA and zero LoRA camera: the prior itself
        with pytest.raises(ValueError, match="camera"):
            g.prior_epsilon(x_t, t, cond, uncond)
    images = torch.rand(2, 3, 16, 16, requires_grad=True)
    out = g(images, c2w, step=0, azimuth_deg=torch.tensor([0.0, 90.0]), elevation_deg=torch.tensor([15.0, 15.0]))
    (out.loss + out.loss_lora).backward()
    assert images.grad.abs().sum() > 0 and any(p.grad is not None for p in g.lora_parameters())
    assert g._prior_class_embedding.linear_2.weight.grad is None  # the prior stays frozen
