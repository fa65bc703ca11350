"""Score distillation from a Stable Diffusion prior: VSD (ProlificDreamer) and SDS (DreamFusion).

Paper: Wang et al., "ProlificDreamer: High-Fidelity and Diverse Text-to-3D Generation with
Variational Score Distillation", NeurIPS 2023, arXiv 2305.16213. SDS: Poole et al.,
"DreamFusion: Text-to-3D using 2D Diffusion", arXiv 2209.14988.

Implemented (latents ``z = E(g(theta, c))`` from the VAE encoder ``E`` of a render ``g``; for a
pixel-space prior, ``sd.vae is None``, ``z = 2 g(theta, c) - 1``, the render itself in [-1, 1]):

* forward diffusion ``x_t = alpha_t z + sigma_t eps``, ``alpha_t = sqrt(abar_t)``,
  ``sigma_t = sqrt(1 - abar_t)``;
* prior with classifier-free guidance ``eps_pre = eps_u + s (eps_c - eps_u)`` (s = 7.5 for VSD,
  100 for SDS), view-dependent prompts ("..., front view" etc.) chosen from the camera;
* VSD gradient (Eq. 9): ``grad = w(t) (eps_pre(x_t, t, y) - eps_phi(x_t, t, c, y))`` with
  ``w(t) = 1 - abar_t``, no UNet Jacobian; SDS is the special case ``eps_phi = eps``;
* applied through the surrogate ``0.5 ||z - sg(z - grad)||^2`` summed over latents and divided by
  the batch size, whose gradient with respect to ``z`` is ``grad / B``;
* the variational score ``eps_phi``: the prior's UNet with rank-4 LoRA (peft) on ``to_q``,
  ``to_k``, ``to_v``, ``to_out.0`` of every attention layer, zero-initialised, plus a camera
  embedding (flattened 4x4 camera-to-world -> Linear -> SiLU -> Linear) added to the timestep
  embedding through the UNet's class-embedding slot; trained by the denoising loss (Eq. 10) on
  the detached latents with ``t ~ U{0..T-1}`` (never annealed) and the camera zeroed with
  probability 0.1; a v-prediction UNet is converted with ``eps = alpha_t v + sigma_t x_t``;
* time annealing: ``t ~ U(0.02, 0.98) T`` until ``anneal_step``, then ``U(0.02, 0.5) T``;
* a camera-conditioned prior (:func:`shapegen.guidance.prior.is_camera_prior`, e.g. a render prior
  trained with ``camera: true``) gets each render's azimuth and elevation, read from ``c2w``, in
  both branches of classifier-free guidance; the LoRA model adds its own camera embedding to the
  prior's, so it still starts equal to the prior.

Deviations: the camera MLP's last layer starts at zero (with the zero LoRA this makes the
variational model equal the prior exactly at initialisation; threestudio initialises it
randomly). The prior and the LoRA model share one UNet by default (LoRA disabled and no camera
for the prior pass; the paper uses a separate copy, the notes' "low-memory mode"); set
``share_unet: false`` for a copy.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from shapegen.guidance.prior import StableDiffusion, camera_angles, camera_features, is_camera_prior
from shapegen.nn.mlp import MLP

__all__ = [
    "CameraEmbedding",
    "GuidanceConfig",
    "GuidanceOutput",
    "ScoreDistillation",
    "score_distillation_loss",
    "timestep_bounds",
    "v_to_epsilon",
    "view_index",
    "vsd_gradient",
]

VIEW_SUFFIXES = ("", ", front view", ", side view", ", back view", ", overhead view")
"""Prompt suffixes: view-independent, then DreamFusion's four views (see :func:`view_index`)."""


@dataclass
class GuidanceConfig:
    """Schema of :class:`ScoreDistillation`."""

    mode: Literal["vsd", "sds"] = "vsd"
    """Variational score distillation, or score distillation sampling (no LoRA model)."""
    guidance_scale: float = 7.5
    """Classifier-free guidance scale of the prior (7.5 for VSD, 100 for SDS)."""
    t_min: float = 0.02
    """Lowest diffusion time sampled, as a fraction of the training steps."""
    t_max: float = 0.98
    """Highest diffusion time sampled before ``anneal_step``."""
    t_max_annealed: float = 0.5
    """Highest diffusion time from ``anneal_step`` on."""
    anneal_step: int = 5000
    """Training step at which ``t_max`` drops to ``t_max_annealed`` (negative: never)."""
    lora_rank: int = 4
    """Rank of the LoRA adapters on the attention projections."""
    lora_alpha: float = 4.0
    """LoRA alpha (the adapters are scaled by alpha / rank)."""
    share_unet: bool = True
    """Use the prior's UNet for the LoRA model (adapters off for the prior), saving a copy."""
    camera_dropout: float = 0.1
    """Probability of zeroing the camera in the LoRA model's denoising loss."""
    view_dependent_prompting: bool = True
    """Append "front/side/back/overhead view" to the prompt of the prior from the camera."""
    front_threshold_deg: float = 45.0
    """Azimuths within this of 0 (the +Z side) are "front", within it of 180 "back"."""
    overhead_threshold_deg: float = 60.0
    """Elevations above this are "overhead"."""
    grad_clip: float = 0.0
    """Clamp the gradient elementwise to [-c, c] (0: no clamping)."""
    attention_slicing: bool = False
    """Compute attention in slices (less memory, slower)."""
    gradient_checkpointing: bool = False
    """Recompute UNet activations in the LoRA model's backward pass (less memory)."""


@dataclass
class GuidanceOutput:
    """Losses and diagnostics of one guidance step."""

    loss: Tensor
    """Surrogate score-distillation loss; its gradient w.r.t. the latents is grad / B."""
    loss_lora: Tensor
    """Denoising loss of the LoRA model and camera embedding (0 for SDS)."""
    grad_norm: Tensor
    """Mean over the batch of the L2 norm of grad (no gradient)."""
    timesteps: Int[Tensor, " B"]
    """The diffusion steps sampled."""


def timestep_bounds(step: int, cfg: GuidanceConfig) -> tuple[float, float]:
    """The (low, high) fractions of the diffusion time range at training ``step``."""
    annealed = cfg.anneal_step >= 0 and step >= cfg.anneal_step
    return cfg.t_min, cfg.t_max_annealed if annealed else cfg.t_max


def sample_timesteps(
    n: int, step: int, cfg: GuidanceConfig, num_train_timesteps: int, device=None, generator=None
) -> Int[Tensor, " n"]:
    """``n`` integer steps uniform in ``[round(low T), round(high T)]`` (inclusive)."""
    lo, hi = timestep_bounds(step, cfg)
    t_lo = round(lo * num_train_timesteps)
    t_hi = min(round(hi * num_train_timesteps), num_train_timesteps - 1)
    return torch.randint(t_lo, t_hi + 1, (n,), device=device, generator=generator)


def vsd_gradient(
    eps_prior: Float[Tensor, "B ..."], eps_variational: Float[Tensor, "B ..."], weights: Float[Tensor, " B"]
) -> Float[Tensor, "B ..."]:
    """Eq. 9: ``w(t) (eps_prior - eps_variational)``, NaNs replaced by 0 (SDS: pass the noise)."""
    w = weights.reshape(-1, *([1] * (eps_prior.dim() - 1)))
    return torch.nan_to_num(w * (eps_prior - eps_variational), nan=0.0, posinf=0.0, neginf=0.0)


def score_distillation_loss(latents: Float[Tensor, "B ..."], grad: Float[Tensor, "B ..."]) -> Tensor:
    """``0.5 ||z - sg(z - grad)||^2 / B``: a loss whose gradient w.r.t. ``z`` is ``grad / B``."""
    target = (latents - grad).detach()
    return 0.5 * F.mse_loss(latents, target, reduction="sum") / latents.shape[0]


def v_to_epsilon(v: Tensor, x_t: Tensor, alpha_t: Tensor, sigma_t: Tensor) -> Tensor:
    """Noise prediction from a v-prediction: ``eps = alpha_t v + sigma_t x_t``."""
    shape = (-1, *([1] * (v.dim() - 1)))
    return alpha_t.reshape(shape) * v + sigma_t.reshape(shape) * x_t


def view_index(
    azimuth_deg: Float[Tensor, " B"], elevation_deg: Float[Tensor, " B"], cfg: GuidanceConfig
) -> Int[Tensor, " B"]:
    """Index into :data:`VIEW_SUFFIXES` (1 front, 2 side, 3 back, 4 overhead) per camera."""
    az = torch.remainder(azimuth_deg + 180.0, 360.0) - 180.0  # (-180, 180], 0 = +Z (front)
    idx = torch.full_like(az, 2, dtype=torch.long)
    idx = torch.where(az.abs() < cfg.front_threshold_deg, torch.ones_like(idx), idx)
    idx = torch.where(az.abs() > 180.0 - cfg.front_threshold_deg, torch.full_like(idx, 3), idx)
    return torch.where(elevation_deg > cfg.overhead_threshold_deg, torch.full_like(idx, 4), idx)


class CameraEmbedding(nn.Module):
    """Flattened 4x4 camera-to-world matrix -> Linear -> SiLU -> Linear (last layer zero).

    Args:
        embedding_dim: the UNet's timestep-embedding width (1280 for Stable Diffusion).
        hidden_dim: hidden width (default: ``embedding_dim``, as in threestudio).
    """

    def __init__(self, embedding_dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        self.mlp = MLP(16, embedding_dim, hidden_dim or embedding_dim, 1, "silu", zero_init_last=True)

    @staticmethod
    def drop(
        cameras: Float[Tensor, "B 16"], p: float, generator: torch.Generator | None = None
    ) -> Float[Tensor, "B 16"]:
        """Zero each camera with probability ``p`` (the unconditional case of the LoRA model)."""
        keep = torch.rand(cameras.shape[0], 1, device=cameras.device, generator=generator) >= p
        return cameras * keep.to(cameras.dtype)

    def forward(self, cameras: Float[Tensor, "B 16"]) -> Float[Tensor, "B E"]:
        return self.mlp(cameras)


@contextlib.contextmanager
def _class_embedding(unet: nn.Module, module: nn.Module | None) -> Iterator[None]:
    old = unet.class_embedding
    unet.class_embedding = module
    try:
        yield
    finally:
        unet.class_embedding = old


class _PriorAndCamera(nn.Module):
    """Class embedding of the LoRA model over a camera-conditioned prior: the LoRA camera embedding
    of the flattened ``c2w`` (first 16 inputs) plus the prior's own camera embedding of its camera
    features (the rest), so the LoRA model starts equal to the prior there too."""

    def __init__(self, camera: CameraEmbedding, prior: nn.Module) -> None:
        super().__init__()
        self.camera = camera
        object.__setattr__(self, "_prior", prior)  # the frozen prior's module, not registered twice

    def forward(self, labels: Tensor) -> Tensor:
        return self.camera(labels[:, :16]) + self._prior(labels[:, 16:])


class ScoreDistillation(nn.Module):
    """VSD or SDS guidance for renders of one prompt.

    The frozen prior's modules are held but never trained; :meth:`lora_parameters` lists what
    the LoRA model trains (adapters and camera embedding). Prompt embeddings are computed once
    here; the text encoder is not kept.

    Args:
        sd: the Stable Diffusion model (frozen, on the target device).
        prompt: the text prompt.
        config: the guidance schema.
        negative_prompt: prompt of the unconditional branch of classifier-free guidance.
    """

    def __init__(
        self,
        sd: StableDiffusion,
        prompt: str,
        config: GuidanceConfig | None = None,
        negative_prompt: str = "",
        prompt_variants: tuple[str, ...] | list[str] = (),
    ) -> None:
        super().__init__()
        self.num_prompts = 1 + len(prompt_variants)
        self.config = cfg = config or GuidanceConfig()
        self.scheduler = sd.scheduler
        self.image_size = sd.image_size
        self.unet = sd.unet.requires_grad_(False)
        self.vae = sd.vae.requires_grad_(False) if sd.vae is not None else None
        self.num_train_timesteps = int(sd.scheduler.config.num_train_timesteps)
        self.prediction_type = sd.scheduler.config.prediction_type
        self.register_buffer("alphas_cumprod", sd.scheduler.alphas_cumprod.clone().float(), persistent=False)
        self.register_buffer(
            "text_embeddings", self._encode_prompts(sd, [prompt, *prompt_variants], negative_prompt), persistent=False
        )
        if cfg.attention_slicing:
            self.unet.set_attention_slice("auto")
        # A camera-conditioned prior (shapegen.guidance.prior.is_camera_prior) is told each render's camera.
        self.camera_prior = is_camera_prior(self.unet)
        object.__setattr__(self, "_prior_class_embedding", self.unet.class_embedding if self.camera_prior else None)
        self.lora_unet: nn.Module | None = None
        self.camera_embedding: CameraEmbedding | None = None
        if cfg.mode == "vsd":
            from peft import LoraConfig

            lora_unet = self.unet if cfg.share_unet else copy.deepcopy(self.unet).float()
            lora_unet.add_adapter(
                LoraConfig(
                    r=cfg.lora_rank,
                    lora_alpha=cfg.lora_alpha,
                    init_lora_weights=True,  # B = 0: the adapted UNet equals the prior
                    target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                ),
                adapter_name="vsd",
            )
            if cfg.gradient_checkpointing:
                lora_unet.enable_gradient_checkpointing()
            if not cfg.share_unet:
                self.lora_unet = lora_unet
            emb_dim = self.unet.time_embedding.linear_2.out_features
            self.camera_embedding = CameraEmbedding(emb_dim).to(self.alphas_cumprod.device)

    # --- prompts ----------------------------------------------------------------------------

    @torch.no_grad()
    def _encode_prompts(self, sd: StableDiffusion, prompts: list[str], negative: str) -> Tensor:
        """(1 + P len(VIEW_SUFFIXES), L, C): the negative prompt, then each of the ``P`` prompts
        (the main one, then the variants) per view."""
        texts = [negative] + [p + s for p in prompts for s in VIEW_SUFFIXES]
        tok = sd.tokenizer(
            texts, padding="max_length", max_length=sd.tokenizer.model_max_length, truncation=True, return_tensors="pt"
        )
        device = next(sd.text_encoder.parameters()).device
        return sd.text_encoder(tok.input_ids.to(device))[0].float()

    # --- models -----------------------------------------------------------------------------

    def _lora_model(self) -> nn.Module:
        return self.lora_unet if self.lora_unet is not None else self.unet

    def lora_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters of the variational model (LoRA adapters, camera embedding)."""
        if self.camera_embedding is None:
            return []
        lora = [p for n, p in self._lora_model().named_parameters() if "lora_" in n]
        return lora + list(self.camera_embedding.parameters())

    def _unet_dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def prior_epsilon(self, x_t: Tensor, t: Tensor, cond: Tensor, uncond: Tensor, views: Tensor | None = None) -> Tensor:
        """Classifier-free-guided noise prediction of the frozen prior (LoRA disabled); ``views``:
        the cameras' :func:`~shapegen.guidance.prior.camera_features`, for a camera-conditioned prior."""
        if self.camera_prior and views is None:
            raise ValueError("a camera-conditioned prior needs the cameras' features")
        labels = {"class_labels": torch.cat([views, views]).to(self._unet_dtype())} if self.camera_prior else {}
        shared = self.camera_embedding is not None and self.lora_unet is None
        dt = self._unet_dtype()
        if shared:
            self.unet.disable_adapters()
        try:
            with _class_embedding(self.unet, self._prior_class_embedding):
                out = self.unet(
                    torch.cat([x_t, x_t]).to(dt), torch.cat([t, t]), encoder_hidden_states=torch.cat([uncond, cond]).to(dt), **labels
                ).sample.float()
        finally:
            if shared:
                self.unet.enable_adapters()
        out = self._to_epsilon(out, torch.cat([x_t, x_t]), torch.cat([t, t]))
        eps_u, eps_c = out.chunk(2)
        return eps_u + self.config.guidance_scale * (eps_c - eps_u)

    def lora_output(self, x_t: Tensor, t: Tensor, cond: Tensor, cameras: Float[Tensor, "B 16"], views: Tensor | None = None) -> Tensor:
        """Raw output (epsilon or v, as the scheduler predicts) of the camera-conditioned LoRA model
        (``views`` as in :meth:`prior_epsilon`)."""
        if self.camera_embedding is None:
            raise RuntimeError("SDS has no LoRA model")
        unet = self._lora_model()
        dt = next(unet.parameters()).dtype
        embedding: nn.Module = self.camera_embedding
        if self.camera_prior:
            if views is None:
                raise ValueError("a camera-conditioned prior needs the cameras' features")
            embedding, cameras = _PriorAndCamera(self.camera_embedding, self._prior_class_embedding), torch.cat([cameras, views.to(cameras)], 1)
        with _class_embedding(unet, embedding):
            return unet(x_t.to(dt), t, encoder_hidden_states=cond.to(dt), class_labels=cameras.to(dt)).sample.float()

    def _alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        abar = self.alphas_cumprod[t]
        return abar.sqrt(), (1.0 - abar).sqrt()

    def _to_epsilon(self, out: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        if self.prediction_type == "v_prediction":
            return v_to_epsilon(out, x_t, *self._alpha_sigma(t))
        return out

    # --- losses -----------------------------------------------------------------------------

    def encode_images(self, images: Float[Tensor, "B 3 H W"]) -> Float[Tensor, "B C h w"]:
        """VAE latents of renders in [0, 1] (resized to the prior's resolution), with gradients;
        for a pixel-space prior the renders themselves, mapped to [-1, 1]."""
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            images = F.interpolate(images, (self.image_size, self.image_size), mode="bilinear", align_corners=False)
        if self.vae is None:
            return (images * 2.0 - 1.0).float()
        dist = self.vae.encode((images * 2.0 - 1.0).to(next(self.vae.parameters()).dtype)).latent_dist
        return (dist.sample() * self.vae.config.scaling_factor).float()

    def lora_loss(self, latents: Float[Tensor, "B C h w"], cameras: Float[Tensor, "B 16"], views: Tensor | None = None) -> Tensor:
        """Eq. 10: denoising loss of the LoRA model on detached latents, t over the full range."""
        z = latents.detach()
        t = torch.randint(0, self.num_train_timesteps, (z.shape[0],), device=z.device)
        noise = torch.randn_like(z)
        alpha, sigma = (v.reshape(-1, 1, 1, 1) for v in self._alpha_sigma(t))
        x_t = alpha * z + sigma * noise
        target = alpha * noise - sigma * z if self.prediction_type == "v_prediction" else noise
        cams = CameraEmbedding.drop(cameras, self.config.camera_dropout)
        return F.mse_loss(self.lora_output(x_t, t, self.text_embeddings[1:2].expand(z.shape[0], -1, -1), cams, views), target)

    def forward(
        self,
        images: Float[Tensor, "B 3 H W"],
        c2w: Float[Tensor, "B 4 4"],
        step: int,
        azimuth_deg: Float[Tensor, " B"] | None = None,
        elevation_deg: Float[Tensor, " B"] | None = None,
        variant: Int[Tensor, " B"] | None = None,
    ) -> GuidanceOutput:
        """Score-distillation and LoRA losses for renders ``images`` (in [0, 1]) from ``c2w``.

        ``variant`` picks, per image, the prompt of the prior: 0 the main prompt, ``k`` the
        ``k``-th of ``prompt_variants`` (e.g. a head-view prompt for zoomed cameras); the view
        suffix is appended to it as usual. The LoRA model always sees the main prompt.
        """
        cfg = self.config
        latents = self.encode_images(images)
        b = latents.shape[0]
        t = sample_timesteps(b, step, cfg, self.num_train_timesteps, device=latents.device)
        cameras = c2w.reshape(b, 16).to(latents)
        feats = camera_features(*camera_angles(c2w)).to(latents) if self.camera_prior else None
        if cfg.view_dependent_prompting and azimuth_deg is not None and elevation_deg is not None:
            views = 1 + view_index(azimuth_deg.to(latents.device), elevation_deg.to(latents.device), cfg)
        else:
            views = torch.ones(b, dtype=torch.long, device=latents.device)
        if variant is not None:
            if int(variant.max()) >= self.num_prompts or int(variant.min()) < 0:
                raise ValueError(f"prompt variant out of range [0, {self.num_prompts})")
            views = views + len(VIEW_SUFFIXES) * variant.to(views)
        cond = self.text_embeddings[views]
        uncond = self.text_embeddings[0:1].expand(b, -1, -1)
        with torch.no_grad():
            noise = torch.randn_like(latents)
            alpha, sigma = self._alpha_sigma(t)
            x_t = alpha.reshape(-1, 1, 1, 1) * latents + sigma.reshape(-1, 1, 1, 1) * noise
            eps_prior = self.prior_epsilon(x_t, t, cond, uncond, feats)
            if cfg.mode == "vsd":
                plain = self.text_embeddings[1:2].expand(b, -1, -1)
                eps_var = self._to_epsilon(self.lora_output(x_t, t, plain, cameras, feats), x_t, t)
            else:
                eps_var = noise
            grad = vsd_gradient(eps_prior, eps_var, 1.0 - self.alphas_cumprod[t])
            if cfg.grad_clip > 0:
                grad = grad.clamp(-cfg.grad_clip, cfg.grad_clip)
        loss = score_distillation_loss(latents, grad)
        loss_lora = self.lora_loss(latents, cameras, feats) if cfg.mode == "vsd" else latents.new_zeros(())
        return GuidanceOutput(loss, loss_lora, grad.flatten(1).norm(dim=1).mean(), t)
