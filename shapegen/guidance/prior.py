"""Loading a Stable Diffusion prior (diffusers) from a Hugging Face hub id or a local folder.

The five parts of a text-to-image latent diffusion model are kept together in
:class:`StableDiffusion`. Loading never touches the network unless the caller allows it:
a hub id that is not in the local cache fails at once with one line saying how to download it
or where to pass a local folder. ``tiny-random`` builds the tiny randomly initialised model
of :mod:`shapegen.guidance.tiny` (for tests and CPU smoke runs); ``render-prior`` is the shipped
pixel-space prior trained on renders of the procedural shapes (``assets/models/render_prior``,
:mod:`shapegen.methods.render_prior`).

Camera-conditioned priors: a UNet with a ``projection`` class embedding of
:data:`CAMERA_FEATURES` inputs is told the camera it renders from (:func:`camera_features` of its
azimuth and elevation, added to the timestep embedding, as MVDream conditions on the camera); the
guidance passes it the camera of every render (:func:`is_camera_prior`).

Pixel-space models: a diffusers folder without a ``vae`` subfolder is a model whose UNet works
on images in [-1, 1] directly (``vae=None``, :attr:`StableDiffusion.vae_scale_factor` 1); the
guidance then uses the images as the "latents".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from shapegen.errors import ShapegenError

__all__ = ["CAMERA_FEATURES", "RENDER_PRIOR", "SHIPPED_MODELS", "TINY_RANDOM", "StableDiffusion", "camera_angles", "camera_features",
           "is_camera_prior", "load_stable_diffusion", "resolve_model_name"]

log = logging.getLogger(__name__)

TINY_RANDOM = "tiny-random"
"""Model name that builds :func:`shapegen.guidance.tiny.build_tiny_stable_diffusion`."""
RENDER_PRIOR = "render-prior"
"""Model name of the shipped pixel-space prior."""
SHIPPED_MODELS = {RENDER_PRIOR: "assets/models/render_prior"}
"""Model name -> its diffusers folder in the repository (repository-relative)."""
CAMERA_FEATURES = 4
"""Inputs of a camera-conditioned prior's class embedding: sin and cos of azimuth and elevation."""


def camera_features(azimuth_deg: torch.Tensor, elevation_deg: torch.Tensor) -> torch.Tensor:
    """``(B, 4)`` camera inputs of a camera-conditioned prior: sin, cos of the azimuth (0 on the
    +Z side, the front) and of the elevation, in degrees."""
    az, el = torch.deg2rad(azimuth_deg.float()), torch.deg2rad(elevation_deg.float())
    return torch.stack([az.sin(), az.cos(), el.sin(), el.cos()], dim=-1)


def camera_angles(c2w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Azimuth and elevation (degrees) of cameras ``(B, 4, 4)`` looking at the origin, from their
    positions: +Y up, azimuth 0 on the +Z side (:func:`renderers.cameras.orbit_pose`)."""
    p = c2w[:, :3, 3].float()
    azimuth = torch.rad2deg(torch.atan2(p[:, 0], p[:, 2]))
    elevation = torch.rad2deg(torch.asin((p[:, 1] / p.norm(dim=-1).clamp_min(1e-9)).clamp(-1, 1)))
    return azimuth, elevation


def is_camera_prior(unet: nn.Module) -> bool:
    """Whether a prior's UNet takes the camera (a ``projection`` class embedding of
    :data:`CAMERA_FEATURES` inputs)."""
    cfg = getattr(unet, "config", None)
    return (getattr(cfg, "class_embed_type", None) == "projection"
            and getattr(cfg, "projection_class_embeddings_input_dim", None) == CAMERA_FEATURES)


@dataclass
class StableDiffusion:
    """The parts of a Stable Diffusion model (diffusers / transformers objects)."""

    unet: nn.Module
    """``UNet2DConditionModel`` predicting epsilon or v."""
    vae: nn.Module | None
    """``AutoencoderKL`` mapping images in [-1, 1] to latents (times ``scaling_factor``); None for
    a pixel-space model (its "latents" are the images in [-1, 1])."""
    text_encoder: nn.Module
    """``CLIPTextModel``: token ids to per-token embeddings."""
    tokenizer: Any
    """A CLIP tokenizer (callable on a list of prompts, ``model_max_length``)."""
    scheduler: Any
    """``DDPMScheduler`` (``alphas_cumprod``, ``num_train_timesteps``, ``prediction_type``)."""

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent pixel (8 for Stable Diffusion, 1 in pixel space)."""
        if self.vae is None:
            return 1
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def pixel_space(self) -> bool:
        """The UNet denoises images, not VAE latents."""
        return self.vae is None

    @property
    def image_size(self) -> int:
        """Image side the UNet was trained for (``sample_size * vae_scale_factor``)."""
        return int(self.unet.config.sample_size) * self.vae_scale_factor


def resolve_model_name(model: str) -> str:
    """A shipped model's folder for its name (:data:`SHIPPED_MODELS`), anything else unchanged.

    Raises:
        ShapegenError: the name is a shipped model whose folder is missing.
    """
    if model not in SHIPPED_MODELS:
        return model
    folder = Path(__file__).resolve().parent.parent.parent / SHIPPED_MODELS[model]
    if not (folder / "unet").is_dir():
        raise ShapegenError(f"the shipped model '{model}' is missing ({folder} has no unet folder); "
                            "train and export it (see shapegen.methods.render_prior) or pass a diffusers folder")
    return str(folder)


def _resolve(model: str, allow_download: bool) -> str:
    """A local folder holding the model (downloading only if allowed)."""
    if Path(model).expanduser().is_dir():
        folder = Path(model).expanduser()
        if not (folder / "unet").is_dir():
            raise ShapegenError(
                f"'{folder}' is not a diffusers Stable Diffusion folder (no 'unet' subfolder); "
                "pass a folder saved with save_pretrained or a hub id"
            )
        return str(folder)
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(model, local_files_only=not allow_download)
    except Exception as exc:
        if allow_download:
            raise ShapegenError(f"could not download '{model}' ({type(exc).__name__}): check the id and the network") from exc
        raise ShapegenError(
            f"model '{model}' is neither a local folder nor in the Hugging Face cache; download it once with "
            f"`hf download {model}` (or allow downloads), or pass --model /path/to/a/diffusers/folder"
        ) from exc


def load_stable_diffusion(
    model: str,
    *,
    allow_download: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> StableDiffusion:
    """Load a Stable Diffusion model's UNet, VAE, text encoder, tokenizer and scheduler.

    Args:
        model: hub id (``stabilityai/stable-diffusion-2-1-base``), a local diffusers folder (one
            without a ``vae`` subfolder is a pixel-space model), ``"tiny-random"`` for the tiny
            random model, or ``"render-prior"`` for the shipped pixel-space prior.
        allow_download: fetch a hub id that is not cached (otherwise ``local_files_only``).
        dtype: dtype of the UNet and VAE (the text encoder runs once, in float32).
        device: where to put the modules.

    Raises:
        ShapegenError: the model is not available locally and downloads are not allowed, or
            the folder is not a diffusers model.
    """
    if model == TINY_RANDOM:
        from shapegen.guidance.tiny import build_tiny_stable_diffusion

        sd = build_tiny_stable_diffusion()
    else:
        folder = _resolve(resolve_model_name(model), allow_download)
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import AutoTokenizer, CLIPTextModel

        try:
            pixel_space = not (Path(folder) / "vae").is_dir()
            sd = StableDiffusion(
                # float32 weights: a folder saved in float16 to keep it small is upcast here.
                unet=UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=torch.float32),
                vae=None if pixel_space else AutoencoderKL.from_pretrained(folder, subfolder="vae"),
                text_encoder=CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", torch_dtype=torch.float32),
                tokenizer=AutoTokenizer.from_pretrained(folder, subfolder="tokenizer"),
                scheduler=DDPMScheduler.from_pretrained(folder, subfolder="scheduler"),
            )
        except (OSError, ValueError) as exc:
            raise ShapegenError(f"cannot load Stable Diffusion from '{folder}': {str(exc).splitlines()[0]}") from exc
        log.info("loaded Stable Diffusion from %s", folder)
    frozen = [p for p in (sd.unet, sd.vae) if p is not None]
    for part in (*frozen, sd.text_encoder):
        part.requires_grad_(False)
        part.eval()
    for part in frozen:
        # Cast only when needed: diffusers warns about casting with .to() even to the same dtype.
        part.to(device=device) if next(part.parameters()).dtype == dtype else part.to(device=device, dtype=dtype)
    sd.text_encoder.to(device=device)
    return sd
