"""VSD memory options (attention slicing, gradient checkpointing, a separate LoRA UNet, a half-precision
prior) change memory and speed, not results: each is checked against the plain configuration on the
tiny random Stable Diffusion."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

from shapegen.guidance.tiny import build_tiny_stable_diffusion
from shapegen.guidance.vsd import GuidanceConfig, ScoreDistillation

pytestmark = pytest.mark.usefixtures("one_thread")


def _guidance(dtype: torch.dtype = torch.float32, round_weights: bool = False, **options) -> ScoreDistillation:
    """The guidance on the tiny prior in ``dtype``; ``round_weights`` keeps float32 but rounds the
    prior's weights to bfloat16 first (the weights a float32 copy of a bfloat16 prior has)."""
    sd = build_tiny_stable_diffusion(seed=3)
    if round_weights:
        sd.unet.to(torch.bfloat16).float()
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


def _inputs(g: ScoreDistillation) -> tuple[torch.Tensor, ...]:
    """Noisy latents, timesteps, camera vectors and the conditional / unconditional text embeddings."""
    gen = torch.Generator().manual_seed(0)
    x_t = torch.randn(2, 4, 16, 16, generator=gen)
    t = torch.tensor([150, 700])
    cams = torch.randn(2, 16, generator=gen)
    cond = g.text_embeddings[1:3]
    uncond = g.text_embeddings[0:1].expand(2, -1, -1)
    return x_t, t, cams, cond, uncond


def _prior(g: ScoreDistillation) -> torch.Tensor:
    x_t, t, _, cond, uncond = _inputs(g)
    with torch.no_grad():
        return g.prior_epsilon(x_t, t, cond, uncond)


def _outputs(g: ScoreDistillation) -> dict[str, torch.Tensor]:
    x_t, t, cams, cond, _ = _inputs(g)
    prior = _prior(g)
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


class _CorrectlyRoundedBFloat16(TorchFunctionMode):
    """Runs every torch operation that has a bfloat16 operand in float64 and rounds its result once
    to the dtype the real operation returns: bfloat16 arithmetic as if every kernel were exact and
    correctly rounded, independent of the CPU. Operations without a bfloat16 operand (the float32
    timestep embedding, the float32 guidance combination) run as they are."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not any(isinstance(a, torch.Tensor) and a.dtype == torch.bfloat16 for a in tree_flatten((args, kwargs))[0]):
            return func(*args, **kwargs)
        wide_args, wide_kwargs = tree_map(
            lambda a: a.double() if isinstance(a, torch.Tensor) and a.dtype == torch.bfloat16 else a, (args, kwargs)
        )
        exact = func(*wide_args, **wide_kwargs)  # first: an in-place operation must see its input
        real = func(*args, **kwargs)  # the dtypes (and, in place, the tensor) the model works with

        def rounded(r, e):
            if not (isinstance(r, torch.Tensor) and isinstance(e, torch.Tensor) and e.dtype == torch.float64):
                return r
            if r is (args[0] if args else None):  # in place: overwrite the real result
                return r.copy_(e)
            return e.to(r.dtype)

        return tree_map(rounded, real, exact)


def test_half_precision_prior_matches_float32_prior(plain):
    """The prior in bfloat16 (float16 on GPUs) with a float32 LoRA copy, as ``fp16_prior`` sets it up."""
    g = _guidance(torch.bfloat16, share_unet=False)
    assert next(g.unet.parameters()).dtype == torch.bfloat16
    assert next(g.lora_unet.parameters()).dtype == torch.float32
    out = _outputs(g)
    # Error budget from the arithmetic rather than from one CPU. bfloat16 keeps 8 significant bits
    # (unit roundoff u = 2^-8): every weight, input and intermediate result of the prior carries a
    # relative error up to u, and the network (83 weight layers, about 40 in sequence) and the
    # guidance (7.5 times the small difference of two predictions) amplify these errors to a few
    # percent of the output. How much, for this network, is measured by running the same bfloat16
    # model with every operation computed in float64 and rounded once (``_CorrectlyRoundedBFloat16``).
    # Real kernels differ from that only in their own rounding: float32 accumulation in any order
    # (relative error <= N 2^-24 ~ 1e-4 for the longest sums here, N <= 2048 terms, small next to
    # u) and up to one more bfloat16 rounding inside an operation (the attention probabilities before
    # their product with the values, a bias added after the product: AMX, AVX512-BF16, AVX2 and
    # reference kernels differ in this). Each operation's result is then within 2u instead of u; to
    # first order the output error is linear in these per-operation errors, so it stays within twice
    # the error of the correctly rounded run. (The kernels measured 1.0-1.1 times that error, i.e.
    # 0.50-0.53 of the budget, on every oneDNN ISA level, ATen kernel level and attention path.)
    g_exact = _guidance(torch.bfloat16, share_unet=False)
    with _CorrectlyRoundedBFloat16():
        exact_rounding = _prior(g_exact)
    assert not torch.equal(exact_rounding, out["prior"])  # the emulation replaced the kernels' results
    budget = 2 * (exact_rounding - plain["prior"]).norm() / plain["prior"].norm()
    rel = (out["prior"] - plain["prior"]).norm() / plain["prior"].norm()
    assert rel < budget
    # The LoRA model stays in float32: it is the float32 model with the prior's weights rounded to
    # bfloat16, up to float32 summation order (see the memory options above).
    reference = _outputs(_guidance(round_weights=True, share_unet=False))
    for key in ("lora", "lora_grads"):
        scale = float(reference[key].abs().max())
        torch.testing.assert_close(out[key], reference[key], rtol=1e-4, atol=1e-4 * scale)
