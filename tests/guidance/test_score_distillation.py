"""VSD/SDS guidance with the tiny random Stable Diffusion: formulas, schedule, LoRA, camera."""

from __future__ import annotations

import pytest
import torch

from shapegen.errors import ShapegenError
from shapegen.guidance.prior import load_stable_diffusion
from shapegen.guidance.tiny import build_tiny_stable_diffusion, build_tiny_tokenizer
from shapegen.guidance.vsd import (
    CameraEmbedding,
    GuidanceConfig,
    ScoreDistillation,
    sample_timesteps,
    score_distillation_loss,
    timestep_bounds,
    v_to_epsilon,
    view_index,
    vsd_gradient,
)


@pytest.fixture(scope="module")
def guidance() -> ScoreDistillation:
    torch.manual_seed(0)
    return ScoreDistillation(build_tiny_stable_diffusion(), "a hamburger", GuidanceConfig(guidance_scale=1.0))


def test_vsd_gradient_and_surrogate_loss_on_a_hand_made_case():
    eps_prior = torch.tensor([[1.0, 2.0], [0.0, float("nan")]])
    eps_var = torch.tensor([[0.5, -1.0], [1.0, 0.0]])
    w = torch.tensor([0.25, 0.5])
    grad = vsd_gradient(eps_prior, eps_var, w)
    assert torch.equal(grad, torch.tensor([[0.125, 0.75], [-0.5, 0.0]]))
    z = torch.tensor([[3.0, -1.0], [2.0, 0.5]], requires_grad=True)
    loss = score_distillation_loss(z, grad)
    assert loss.item() == pytest.approx(0.5 * (grad**2).sum().item() / 2)
    loss.backward()
    assert torch.allclose(z.grad, grad / 2)  # d loss / d z = grad / B


def test_v_to_epsilon_inverts_the_v_target():
    abar = torch.tensor([0.9, 0.3, 0.01])
    alpha, sigma = abar.sqrt(), (1 - abar).sqrt()
    z, eps = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    a, s = alpha.view(-1, 1, 1, 1), sigma.view(-1, 1, 1, 1)
    x_t, v = a * z + s * eps, a * eps - s * z
    assert torch.allclose(v_to_epsilon(v, x_t, alpha, sigma), eps, atol=1e-5)


def test_timestep_annealing_schedule():
    cfg = GuidanceConfig(anneal_step=100)
    assert timestep_bounds(0, cfg) == (0.02, 0.98)
    assert timestep_bounds(99, cfg) == (0.02, 0.98)
    assert timestep_bounds(100, cfg) == (0.02, 0.5)
    before = sample_timesteps(20000, 99, cfg, 1000)
    after = sample_timesteps(20000, 100, cfg, 1000)
    assert before.min() == 20 and before.max() == 980
    assert after.min() == 20 and after.max() == 500
    assert timestep_bounds(10**6, GuidanceConfig(anneal_step=-1)) == (0.02, 0.98)


def test_view_dependent_prompt_index():
    az = torch.tensor([0.0, 30.0, 90.0, -90.0, 180.0, -170.0, 10.0])
    el = torch.tensor([0.0, 10.0, 0.0, 0.0, 0.0, 0.0, 75.0])
    assert view_index(az, el, GuidanceConfig()).tolist() == [1, 1, 2, 2, 3, 3, 4]


def test_camera_embedding_shape_zero_init_and_dropout():
    emb = CameraEmbedding(128, hidden_dim=32)
    cams = torch.randn(5, 16)
    out = emb(cams)
    assert out.shape == (5, 128) and torch.count_nonzero(out) == 0  # zero last layer at init
    out.sum().backward()
    assert emb.mlp.net[-1].weight.grad.abs().sum() > 0  # but it learns
    many = torch.ones(20000, 16)
    dropped = CameraEmbedding.drop(many, 0.1)
    frac = (dropped.abs().sum(1) == 0).float().mean().item()
    assert 0.09 < frac < 0.11
    kept = dropped[dropped.abs().sum(1) > 0]
    assert torch.equal(kept, torch.ones_like(kept))
    assert torch.equal(CameraEmbedding.drop(many[:10], 0.0), many[:10])


def test_lora_model_equals_prior_at_init_and_adapters_do_not_leak(guidance):
    g = guidance
    x_t = torch.randn(2, 4, 16, 16)
    t = torch.tensor([100, 700])
    cond = g.text_embeddings[[1, 1]]
    uncond = g.text_embeddings[[0, 0]]
    cams = torch.randn(2, 16)
    with torch.no_grad():
        prior = g.prior_epsilon(x_t, t, cond, uncond)  # scale 1: the conditional prediction
        lora = g.lora_output(x_t, t, cond, cams)
        assert torch.allclose(lora, prior, atol=1e-5)
        # Perturb the LoRA up-matrices and the camera MLP: the LoRA model changes, the prior does not.
        saved = [p.detach().clone() for p in g.lora_parameters()]
        for name, p in g.unet.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1)
        g.camera_embedding.mlp.net[-1].weight.normal_(std=0.1)
        assert not torch.allclose(g.lora_output(x_t, t, cond, cams), prior, atol=1e-3)
        assert torch.allclose(g.prior_epsilon(x_t, t, cond, uncond), prior, atol=1e-5)
        for p, s in zip(g.lora_parameters(), saved):
            p.copy_(s)


def test_forward_backprops_into_renders_and_lora_only(guidance):
    g = guidance
    images = torch.rand(1, 3, 32, 32, requires_grad=True)
    out = g(images, torch.eye(4)[None], step=0, azimuth_deg=torch.tensor([20.0]), elevation_deg=torch.tensor([10.0]))
    (out.loss + out.loss_lora).backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is not None for p in g.lora_parameters())
    trainable = {id(p) for p in g.lora_parameters()}
    assert all(id(p) in trainable for p in g.parameters() if p.requires_grad)
    assert 20 <= int(out.timesteps) <= 980
    for p in g.lora_parameters():
        p.grad = None


def test_sds_mode_has_no_lora_model():
    g = ScoreDistillation(build_tiny_stable_diffusion(), "a cat", GuidanceConfig(mode="sds", guidance_scale=100.0))
    assert g.lora_parameters() == [] and g.camera_embedding is None
    images = torch.rand(1, 3, 16, 16, requires_grad=True)  # resized to 32x32 for the prior
    out = g(images, torch.eye(4)[None], step=0)
    out.loss.backward()
    assert out.loss_lora.item() == 0.0 and images.grad.abs().sum() > 0


def test_tiny_tokenizer_pads_and_loading_errors_are_one_line(tmp_path):
    tok = build_tiny_tokenizer(16)
    ids = tok(["a hamburger", ""], padding="max_length", max_length=16, truncation=True, return_tensors="pt").input_ids
    assert ids.shape == (2, 16) and ids[0, 0] == tok.bos_token_id and (ids[1, 1:] == tok.eos_token_id).all()
    with pytest.raises(ShapegenError) as err:
        load_stable_diffusion("no-such-user/no-such-model-xyz")
    msg = str(err.value)
    assert "\n" not in msg and "hf download no-such-user/no-such-model-xyz" in msg and "--model" in msg
    with pytest.raises(ShapegenError, match="not a diffusers"):
        load_stable_diffusion(str(tmp_path))
    sd = load_stable_diffusion("tiny-random")
    assert sd.image_size == 32 and not any(p.requires_grad for p in sd.unet.parameters())


def test_v_prediction_lora_model_is_converted_to_epsilon():
    g = ScoreDistillation(build_tiny_stable_diffusion(prediction_type="v_prediction"), "a cat", GuidanceConfig(guidance_scale=1.0))
    x_t, t = torch.randn(1, 4, 16, 16), torch.tensor([600])
    cond, uncond = g.text_embeddings[[1]], g.text_embeddings[[0]]
    with torch.no_grad():
        v = g.lora_output(x_t, t, cond, torch.randn(1, 16))
        abar = g.alphas_cumprod[t]
        expected = abar.sqrt() * v + (1 - abar).sqrt() * x_t  # eps = alpha v + sigma x_t
        assert torch.allclose(g.prior_epsilon(x_t, t, cond, uncond), expected, atol=1e-5)
    images = torch.rand(1, 3, 32, 32, requires_grad=True)
    out = g(images, torch.eye(4)[None], step=0)
    (out.loss + out.loss_lora).backward()
    assert torch.isfinite(out.loss_lora) and images.grad.abs().sum() > 0
