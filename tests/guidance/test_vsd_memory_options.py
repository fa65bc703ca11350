"""VSD memory options (attention slicing, gradient checkpointing, a separate LoRA UNet, a half-precision
prior) change memory and speed, not results: each is checked against the plain configuration on the
tiny random Stable Diffusion."""

from __future__ import annotations

import pytest
import torch

from shapegen.guidance.tiny import build_tiny_stable_diffusion
from shapegen.guidance.vsd import GuidanceConfig, ScoreDistillation

pytestmark = pytest.mark.usefixtures("one_thread")


def _guidance(dtype: torch.dtype = torch.float32, **options) -> ScoreDistillation:
    sd = build_tiny_stable_diffusion(seed=3)
    if dtype != torch.float32:
        sd.unet.to(dtype)
        sd.vae.to(dtype)
    g = ScoreDistillation(sd, "a hamburger", GuidanceConfig(guidance_scale=7.5, **options))
    # Non-zero LoRA weights, identical in every configuration, so the LoRA branch is exercised.
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        for p in g.lora_parameters():
            p.copy_(0.05 * torch.randn_like(p))
    return g


def _outputs(g: ScoreDistillation) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x_t = torch.randn(2, 4, 16, 16, generator=gen)
    t = torch.tensor([150, 700])
    cams = torch.randn(2, 16, generator=gen)
    cond = g.text_embeddings[1:3]
    uncond = g.text_embeddings[0:1].expand(2, -1, -1)
    with torch.no_grad():
        prior = g.prior_epsilon(x_t, t, cond, uncond)
    lora_out = g.lora_output(x_t, t, cond, cams)
    lora_out.square().mean().backward()
    params = g.lora_parameters()
    grads = torch.cat([p.grad.flatten().float() for p in params])
    return {"prior": prior, "lora": lora_out.detach(), "lora_grads": grads}


@pytest.fixture(scope="module")
def plain() -> dict[str, torch.Tensor]:
    return _outputs(_guidance())


@pytest.mark.parametrize(
    "options",
    [{"attention_slicing": True}, {"gradient_checkpointing": True}, {"share_unet": False}],
    ids=["attention_slicing", "gradient_checkpointing", "separate_lora_unet"],
)
def test_memory_options_give_the_plain_results(plain, options):
    g = _guidance(**options)
    if options.get("gradient_checkpointing"):
        g._lora_model().train()  # diffusers checkpoints only in training mode
        assert g._lora_model().is_gradient_checkpointing
    if options.get("share_unet") is False:
        assert g.lora_unet is not None and g.lora_unet is not g.unet
    out = _outputs(g)
    assert plain["lora_grads"].abs().max() > 0
    for key in ("prior", "lora", "lora_grads"):
        # Tolerance relative to the largest entry: thread counts reorder float sums (~1e-6 relative).
        scale = float(plain[key].abs().max())
        torch.testing.assert_close(out[key], plain[key], rtol=1e-4, atol=1e-4 * scale)


def test_half_precision_prior_matches_float32_prior(plain):
    """The prior in bfloat16 (float16 on GPUs) with a float32 LoRA copy, as ``fp16_prior`` sets it up."""
    g = _guidance(torch.bfloat16, share_unet=False)
    assert next(g.unet.parameters()).dtype == torch.bfloat16
    assert next(g.lora_unet.parameters()).dtype == torch.float32
    out = _outputs(g)
    rel = (out["prior"] - plain["prior"]).norm() / plain["prior"].norm()
    assert rel < 0.05
    # The LoRA model stays in float32: its outputs match up to the bf16 rounding of its copied weights.
    rel_lora = (out["lora"] - plain["lora"]).norm() / plain["lora"].norm()
    assert rel_lora < 0.05
