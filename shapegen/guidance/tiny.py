"""A tiny Stable Diffusion with random weights, built offline from configs.

It has the real interfaces (a ``UNet2DConditionModel``, an ``AutoencoderKL``, a
``CLIPTextModel``, a ``CLIPTokenizer`` and a ``DDPMScheduler``) at toy sizes (UNet widths 16 and 32): 32x32 images,
16x16x4 latents, 32-wide text embeddings of 16 tokens. The tokenizer is byte-level BPE
without merges (every byte is a token), so it needs no vocabulary download. Used by tests
and by ``shapegen text-to-3d --model tiny-random``; its guidance is meaningless.
"""

from __future__ import annotations

import torch

from shapegen.guidance.prior import StableDiffusion

__all__ = ["build_tiny_stable_diffusion", "build_tiny_tokenizer"]


def build_tiny_tokenizer(max_length: int = 16):
    """A ``CLIPTokenizer`` over the 256 byte symbols (plus end-of-word forms), no merges."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    chars = sorted(ByteLevel.alphabet())
    vocab = ["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=[], model_max_length=max_length)


def build_tiny_stable_diffusion(seed: int = 0, prediction_type: str = "epsilon") -> StableDiffusion:
    """The tiny random Stable Diffusion (deterministic for a given ``seed``).

    Args:
        seed: seeds the random weights (the global RNG state is restored afterwards).
        prediction_type: ``"epsilon"`` or ``"v_prediction"`` for the scheduler and UNet.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = build_tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=16,
            in_channels=4,
            out_channels=4,
            block_out_channels=(16, 32),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=8,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            block_out_channels=(16, 32),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=8,
            sample_size=32,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=37,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=tokenizer.model_max_length,
                bos_token_id=0,
                eos_token_id=1,
                pad_token_id=1,
            )
        )
    scheduler = DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type=prediction_type,
    )
    return StableDiffusion(unet, vae, text_encoder, tokenizer, scheduler)
