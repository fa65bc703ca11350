"""A small pixel-space text-to-image diffusion prior trained on renders of the procedural shapes.

Papers: Ho, Jain, Abbeel, "Denoising Diffusion Probabilistic Models", arXiv 2006.11239 (the
objective); Ho and Salimans, "Classifier-Free Diffusion Guidance", arXiv 2207.12598 (caption
dropout); Song, Meng, Ermon, "Denoising Diffusion Implicit Models", arXiv 2010.02502 (sampling).

It stands in for Stable Diffusion in the VSD / SDS text-to-3D pipeline
(:mod:`shapegen.methods.vsd`) where no Stable Diffusion weights can be had: the same parts
(a diffusers ``UNet2DConditionModel`` with cross-attention, a ``CLIPTextModel``, a tokenizer and a
``DDPMScheduler``), trained from scratch on the captioned renders of ``shapegen data renders``
(:mod:`shapegen.data.render_set`), exported as a diffusers folder (``assets/models/render_prior``)
that :func:`shapegen.guidance.prior.load_stable_diffusion` loads by path or as ``render-prior``.

Implemented:

* pixel space: ``x_0`` is the render in [-1, 1] (no VAE); ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps``
  with ``t ~ U{0..T-1}`` and the scheduler's ``abar`` (``beta_schedule``, linear 1e-4..0.02 by default);
* loss ``||eps_theta(x_t, t, tau(y)) - eps||^2`` (``prediction_type: epsilon``) or the same on
  ``v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0`` (``v_prediction``), mean over pixels, then over
  the batch with min-SNR weights ``min(SNR_t, gamma) / SNR_t`` when ``snr_gamma > 0``
  (Hang et al., arXiv 2303.09556; ``SNR_t = abar_t / (1 - abar_t)``);
* the caption ``y`` is replaced by the empty prompt with probability ``data.caption_dropout``, so
  one network gives both branches of classifier-free guidance ``eps_u + s (eps_c - eps_u)``;
* the text encoder ``tau`` (a small ``CLIPTextModel``) is trained jointly with the UNet, from a
  word-level tokenizer over the training captions' words (unknown words map to ``[UNK]``);
* ``camera: true``: the image's camera, ``(sin az, cos az, sin el, cos el)`` of its azimuth and
  elevation (``renders.csv``), enters through the UNet's ``projection`` class embedding, added to
  the timestep embedding and kept in both guidance branches (MVDream, Shi et al., arXiv
  2308.16512, conditions on the camera the same way); its last layer starts at zero, so a plain
  prior is fine-tuned into a camera prior from where it stands;
* an exponential moving average of both networks (:mod:`shapegen.nn.ema`) is what previews,
  sampling and export use.

Deviations: the text encoder is trained, not a frozen pretrained CLIP (none can be downloaded);
each step draws its batch, caption dropout, timesteps and noise from a generator seeded by
``(seed, step)`` instead of a shuffled loader, so a resumed run repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from shapegen.config import from_dict, to_dict
from shapegen.errors import ShapegenError
from shapegen.guidance.prior import CAMERA_FEATURES, camera_features, is_camera_prior
from shapegen.methods.base import RunConfig

__all__ = [
    "PriorDataConfig",
    "PriorRunConfig",
    "PriorSampleConfig",
    "PriorTextConfig",
    "PriorUNetConfig",
    "RenderPrior",
    "RenderPriorConfig",
    "build_tokenizer",
    "export_pipeline",
    "sample_images",
    "write_sample_sheet",
]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "<s>", "</s>")
"""Token ids 0..3 of the tokenizer: padding, unknown word, start and end of text."""

VIEW_WORDS = ("front", "side", "back", "overhead", "view", ",")
"""Words of the view suffixes, always in the vocabulary."""


@dataclass
class PriorUNetConfig:
    """The ``UNet2DConditionModel`` (pixel space: 3 channels in and out)."""

    block_out_channels: list[int] = field(default_factory=lambda: [32, 64, 64])
    """Channels per resolution level (each level but the last halves the side)."""
    cross_attention: list[bool] = field(default_factory=lambda: [False, True, True])
    """Per level: a cross-attention block (text) or a plain residual block."""
    layers_per_block: int = 1
    """Residual layers per level."""
    attention_head_dim: int = 8
    """Channels per attention head."""
    norm_num_groups: int = 8
    """Group-norm groups."""


@dataclass
class PriorTextConfig:
    """The ``CLIPTextModel`` trained with the UNet."""

    hidden_size: int = 64
    """Width of the token states (the UNet's ``cross_attention_dim``)."""
    layers: int = 2
    """Transformer layers."""
    heads: int = 4
    """Attention heads."""
    intermediate_size: int = 128
    """MLP width."""
    max_length: int = 24
    """Tokens per prompt (start and end included; longer prompts are cut)."""


@dataclass
class PriorDataConfig:
    """The captioned renders (``shapegen data renders``)."""

    root: str = "data/render_prior"
    """Folder written by ``shapegen data renders``."""
    split: str = "train"
    """Rows of this split are trained on ("all": every row)."""
    batch_size: int = 32
    """Images per step."""
    caption_dropout: float = 0.1
    """Probability of training on the empty prompt (classifier-free guidance)."""


@dataclass
class PriorSampleConfig:
    """Sampling for previews and sheets (DDIM, classifier-free guidance)."""

    steps: int = 50
    """DDIM steps."""
    guidance_scale: float = 5.0
    """Classifier-free guidance scale."""
    per_prompt: int = 4
    """Samples per prompt on a preview sheet."""
    prompts: list[str] = field(default_factory=lambda: ["chair", "table", "lamp", "mug", "sofa", "vase"])
    """Prompts of the preview sheets (one row each)."""


@dataclass
class PriorRunConfig(RunConfig):
    """Run settings plus the optimiser of the prior."""

    max_steps: int = 6000
    lr: float = 5e-4
    """AdamW learning rate after warm-up."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup_steps: int = 200
    """Linear learning-rate warm-up."""
    lr_schedule: Literal["constant", "cosine"] = "constant"
    """After warm-up: keep ``lr``, or decay it along a half cosine to ``lr * min_lr_ratio`` at ``max_steps``."""
    min_lr_ratio: float = 0.0
    """Where the cosine schedule ends, as a fraction of ``lr``."""
    ema_decay: float = 0.999
    """EMA decay (ramped, :func:`shapegen.nn.ema.ramped_decay`); previews and export use the EMA."""
    camera_lr: float = 0.0
    """AdamW rate of the camera embedding (``camera: true``; 0: ``lr``). It starts at zero under a
    trained UNet, and at ``lr`` its output stayed a few percent of the timestep embedding's over a
    fine-tune; with the same warm-up and schedule as the rest."""
    init_from: str = ""
    """Start from these weights: an exported diffusers folder (``render-prior`` names the shipped
    one) or a training checkpoint of this method. Its vocabulary and architecture are kept."""


@dataclass
class RenderPriorConfig:
    """Schema of the render prior (``configs/render_prior/*.yaml``); saved as hyper-parameters."""

    image_size: int = 32
    """Side of the images; read from the data when training."""
    vocabulary: list[str] = field(default_factory=list)
    """Tokenizer words (after the special tokens); filled from the captions when training."""
    prediction_type: Literal["epsilon", "v_prediction"] = "epsilon"
    """What the UNet predicts."""
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "linear"
    """The ``DDPMScheduler`` noise schedule (linear 1e-4..0.02: DDPM's pixel-space schedule)."""
    num_train_timesteps: int = 1000
    """Diffusion steps T."""
    snr_gamma: float = 0.0
    """Min-SNR loss weighting (Hang et al., arXiv 2303.09556): each image's loss is weighted by
    ``min(SNR_t, gamma) / SNR_t`` (epsilon) or ``min(SNR_t, gamma) / (SNR_t + 1)`` (v), so the
    nearly clean steps stop dominating; 0: the plain mean."""
    x0_loss_weight: float = 0.0
    """Add this times the error of the predicted clean image, ``||x0_hat - x0||^2`` (the epsilon error
    over ``SNR_t``): it weighs the noisy end, where the prompt and the camera decide the layout of the
    image and the (min-SNR) epsilon loss gives almost no weight. 0: the plain objective."""
    camera: bool = False
    """Tell the UNet the camera of each image: sin and cos of its azimuth and elevation through a
    ``projection`` class embedding added to the timestep embedding (zero-initialised, so a prior
    trained without it starts unchanged). View suffixes in captions are four coarse bins a small
    prior may not learn; the camera itself says which side of the object an image shows."""
    unet: PriorUNetConfig = field(default_factory=PriorUNetConfig)
    """The UNet."""
    text: PriorTextConfig = field(default_factory=PriorTextConfig)
    """The text encoder."""
    data: PriorDataConfig = field(default_factory=PriorDataConfig)
    """Training data."""
    sample: PriorSampleConfig = field(default_factory=PriorSampleConfig)
    """Sampling for previews."""
    train: PriorRunConfig = field(default_factory=PriorRunConfig)
    """Run settings."""


# --------------------------------------------------------------------------------- the parts
def lr_factor(tc: PriorRunConfig, step: int) -> float:
    """Learning rate at optimiser ``step`` as a fraction of ``tc.lr``: the linear warm-up, then
    constant or a half cosine down to ``tc.min_lr_ratio`` at ``tc.max_steps``."""
    warm = max(1, tc.warmup_steps)
    if step + 1 < warm:
        return (step + 1) / warm
    if tc.lr_schedule == "constant":
        return 1.0
    t = min(1.0, (step + 1 - warm) / max(1, tc.max_steps - warm))
    return tc.min_lr_ratio + (1.0 - tc.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def build_tokenizer(vocabulary: list[str], max_length: int):
    """A word-level ``PreTrainedTokenizerFast``: lower-cased ``\\w+`` words and punctuation runs,
    ``<s> words </s>`` padded with ``[PAD]`` to ``max_length``; unknown words become ``[UNK]``.
    Built offline from the word list; ``save_pretrained`` writes a standard ``tokenizer.json``."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    words = [w for w in dict.fromkeys([*vocabulary, *VIEW_WORDS]) if w not in SPECIAL_TOKENS]
    vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, *words])}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    # Split at whitespace (dropped), then cut punctuation off the words ("chair," -> "chair" ",").
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Split(Regex(r"\w+|[^\w\s]+"), behavior="isolated")])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 2), ("</s>", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>", eos_token="</s>",
                                   model_max_length=max_length)


def _build_text_encoder(cfg: RenderPriorConfig, vocab_size: int) -> nn.Module:
    from transformers import CLIPTextConfig, CLIPTextModel

    t = cfg.text
    return CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=t.hidden_size, intermediate_size=t.intermediate_size, num_hidden_layers=t.layers,
        num_attention_heads=t.heads, max_position_embeddings=t.max_length, pad_token_id=0, bos_token_id=2, eos_token_id=3,
    ))


def _build_unet(cfg: RenderPriorConfig) -> nn.Module:
    from diffusers import UNet2DConditionModel

    u = cfg.unet
    if len(u.cross_attention) != len(u.block_out_channels):
        raise ShapegenError(f"unet.cross_attention has {len(u.cross_attention)} entries, block_out_channels "
                            f"{len(u.block_out_channels)}; give one per level")
    if cfg.image_size % 2 ** (len(u.block_out_channels) - 1):
        raise ShapegenError(f"image_size {cfg.image_size} is not divisible by 2^{len(u.block_out_channels) - 1} (the UNet's levels)")
    camera = {"class_embed_type": "projection", "projection_class_embeddings_input_dim": CAMERA_FEATURES} if cfg.camera else {}
    unet = UNet2DConditionModel(
        **camera, sample_size=cfg.image_size, in_channels=3, out_channels=3, block_out_channels=tuple(u.block_out_channels),
        layers_per_block=u.layers_per_block,
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in u.cross_attention),
        up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(u.cross_attention)),
        cross_attention_dim=cfg.text.hidden_size, attention_head_dim=u.attention_head_dim, norm_num_groups=u.norm_num_groups,
    )
    if cfg.camera:  # zero: the camera adds nothing until trained
        nn.init.zeros_(unet.class_embedding.linear_2.weight)
        nn.init.zeros_(unet.class_embedding.linear_2.bias)
    return unet


def predicted_x0(out: Tensor, x_t: Tensor, abar: Tensor, prediction_type: str) -> Tensor:
    """The clean image a UNet output (epsilon or v, ``prediction_type``) at ``x_t`` implies, with
    ``abar`` the noise level ``abar_t`` (broadcast against ``x_t``)."""
    if prediction_type == "v_prediction":
        return abar.sqrt() * x_t - (1 - abar).sqrt() * out
    return (x_t - (1 - abar).sqrt() * out) / abar.sqrt()


def build_scheduler(cfg: RenderPriorConfig):
    """The ``DDPMScheduler`` of the config."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                         prediction_type=cfg.prediction_type, clip_sample=False)


# ----------------------------------------------------------------------------------- system
class RenderPrior(pl.LightningModule):
    """UNet and text encoder of the render prior, with their EMA copies.

    Args:
        config: a :class:`RenderPriorConfig` or its plain-dict form.
        hparams: the plain-dict form as keywords (what ``load_from_checkpoint`` passes).
    """

    CONFIG = RenderPriorConfig

    def __init__(self, config: RenderPriorConfig | dict[str, Any] | None = None, **hparams: Any) -> None:
        super().__init__()
        import copy

        if isinstance(config, RenderPriorConfig):
            cfg = config
        else:
            cfg = from_dict(RenderPriorConfig, config if isinstance(config, dict) else hparams)
        self.config = cfg
        # Flat hyper-parameters (the config's own keys), so the resume rule's patterns (train.max_steps) apply.
        self.save_hyperparameters(to_dict(cfg), logger=False)
        self.tokenizer = build_tokenizer(cfg.vocabulary, cfg.text.max_length)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.train.seed)
            self.unet = _build_unet(cfg)
            self.text_encoder = _build_text_encoder(cfg, len(self.tokenizer))
        self.ema_unet = copy.deepcopy(self.unet).requires_grad_(False) if cfg.train.ema_decay > 0 else None
        self.ema_text_encoder = copy.deepcopy(self.text_encoder).requires_grad_(False) if cfg.train.ema_decay > 0 else None
        self.scheduler = build_scheduler(cfg)
        self.register_buffer("alphas_cumprod", self.scheduler.alphas_cumprod.clone().float(), persistent=False)
        self.images: Tensor | None = None
        self.views: Tensor | None = None
        self.token_ids: Tensor | None = None
        self.empty_ids: Tensor | None = None

    # --- data -------------------------------------------------------------------------------

    @classmethod
    def for_training(cls, config: RenderPriorConfig) -> tuple[RenderPrior, None]:
        """Read the renders, fill ``image_size`` and ``vocabulary`` into ``config``, build the system
        (from ``train.init_from`` when set). The system draws its own batches: no datamodule."""
        from shapegen.data.render_set import caption_vocabulary, read_render_cameras, read_render_set

        images, captions, _ = read_render_set(config.data.root, config.data.split)
        cameras = read_render_cameras(config.data.root, config.data.split) if config.camera else None
        if images.shape[-1] != images.shape[-2]:
            raise ShapegenError(f"the renders in {config.data.root} are not square ({tuple(images.shape[-2:])})")
        config.image_size = int(images.shape[-1])
        init = _init_source(config.train.init_from) if config.train.init_from else None
        if init is not None:
            config.vocabulary = init.vocabulary(config)
        else:
            config.vocabulary = caption_vocabulary(captions)
        model = cls(config)
        if init is not None:
            init.load_into(model)
        model.set_data(images, captions, cameras)
        return model, None

    def set_data(self, images: Tensor, captions: list[str], cameras: Tensor | None = None) -> None:
        """Keep the training images (``N 3 H W`` uint8) and their cameras (``N 2`` azimuth, elevation
        in degrees; needed with ``camera``), and tokenise their captions once."""
        if self.config.camera and (cameras is None or len(cameras) != len(images)):
            raise ShapegenError("a camera-conditioned render prior needs each image's azimuth and elevation (renders.csv)")
        self.views = camera_features(cameras[:, 0], cameras[:, 1]) if self.config.camera else None
        self.images = images
        self.token_ids = self.tokenize(captions)
        self.empty_ids = self.tokenize([""])

    def tokenize(self, prompts: list[str]) -> Tensor:
        """Token ids ``B L`` (padded to ``text.max_length``)."""
        return self.tokenizer(prompts, padding="max_length", max_length=self.config.text.max_length, truncation=True,
                              return_tensors="pt").input_ids

    def train_dataloader(self):
        from shapegen.data.cameras import StepDataset

        return torch.utils.data.DataLoader(StepDataset(), batch_size=None)

    # --- training ---------------------------------------------------------------------------

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        cfg = self.config
        if self.images is None or self.token_ids is None:
            raise ShapegenError("the render prior has no training data; build it with RenderPrior.for_training")
        step = int(self.global_step)
        gen = torch.Generator().manual_seed(cfg.train.seed * 1_000_003 + step)  # the same batch at this step on resume
        b = cfg.data.batch_size
        idx = torch.randint(len(self.images), (b,), generator=gen)
        drop = torch.rand(b, generator=gen) < cfg.data.caption_dropout
        t = torch.randint(cfg.num_train_timesteps, (b,), generator=gen)
        x0 = self.images[idx].float() / 127.5 - 1.0
        noise = torch.randn(x0.shape, generator=gen)
        ids = torch.where(drop[:, None], self.empty_ids.expand(b, -1), self.token_ids[idx])
        x0, noise, t, ids = (v.to(self.device) for v in (x0, noise, t, ids))
        abar = self.alphas_cumprod[t].reshape(-1, 1, 1, 1)
        x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        target = abar.sqrt() * noise - (1 - abar).sqrt() * x0 if cfg.prediction_type == "v_prediction" else noise
        states = self.text_encoder(ids)[0]
        labels = {"class_labels": self.views[idx].to(self.device)} if self.views is not None else {}
        pred = self.unet(x_t, t, encoder_hidden_states=states, **labels).sample
        per_image = (pred - target).square().mean(dim=(1, 2, 3))
        if cfg.snr_gamma > 0:
            snr = abar.flatten() / (1 - abar.flatten())
            denom = snr + 1 if cfg.prediction_type == "v_prediction" else snr
            per_image = per_image * snr.clamp(max=cfg.snr_gamma) / denom
        loss = per_image.mean()
        if cfg.x0_loss_weight > 0:
            loss = loss + cfg.x0_loss_weight * (predicted_x0(pred, x_t, abar, cfg.prediction_type) - x0).square().mean()
        self.log("loss", loss, prog_bar=True)
        return loss

    def optimizer_step(self, *args, **kwargs) -> None:
        # Right after the weights move, before any callback (the step's checkpoint) sees them.
        super().optimizer_step(*args, **kwargs)
        from shapegen.nn.ema import ema_update

        if self.ema_unet is None:
            return
        for ema, net in ((self.ema_unet, self.unet), (self.ema_text_encoder, self.text_encoder)):
            ema_update(ema.parameters(), net.parameters(), self.config.train.ema_decay, int(self.global_step) + 1)

    def configure_optimizers(self):
        tc = self.config.train
        camera = list(self.unet.class_embedding.parameters()) if self.config.camera and tc.camera_lr > 0 else []
        ids = {id(p) for p in camera}
        rest = [p for p in [*self.unet.parameters(), *self.text_encoder.parameters()] if id(p) not in ids]
        groups = [{"params": rest}, *([{"params": camera, "lr": tc.camera_lr}] if camera else [])]
        opt = torch.optim.AdamW(groups, lr=tc.lr, weight_decay=tc.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(lr_factor, tc))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # --- sampling ---------------------------------------------------------------------------

    def pipeline(self, use_ema: bool = True):
        """The model as a :class:`~shapegen.guidance.prior.StableDiffusion` (pixel space, ``vae=None``);
        shares the modules (EMA ones with ``use_ema`` when there are some)."""
        from shapegen.guidance.prior import StableDiffusion

        ema = use_ema and self.ema_unet is not None
        return StableDiffusion(unet=self.ema_unet if ema else self.unet, vae=None,
                               text_encoder=self.ema_text_encoder if ema else self.text_encoder,
                               tokenizer=self.tokenizer, scheduler=self.scheduler)

    def write_preview(self, folder, step: int) -> None:
        """A sheet of samples (one row per ``sample.prompts``) as ``FOLDER/stepNNNNNNN.png``."""
        s = self.config.sample
        was = self.training
        self.eval()
        try:
            write_sample_sheet(self.pipeline(), s.prompts, Path(folder) / f"step{step:07d}.png", per_prompt=s.per_prompt,
                               steps=s.steps, guidance_scale=s.guidance_scale, seed=0)
        finally:
            self.train(was)


@torch.no_grad()
def sample_images(sd, prompts: list[str], *, steps: int = 50, guidance_scale: float = 5.0, seed: int = 0,
                  negative_prompt: str = "", eta: float = 0.0, azimuth_deg: float | Tensor = 45.0,
                  elevation_deg: float | Tensor = 20.0) -> Tensor:
    """DDIM samples of a pixel-space prior, one per prompt, as ``B 3 H W`` images in [0, 1].

    Args:
        sd: a :class:`~shapegen.guidance.prior.StableDiffusion` with ``vae=None``.
        prompts: one prompt per sample.
        steps: DDIM steps.
        guidance_scale: classifier-free guidance ``s`` in ``eps_u + s (eps_c - eps_u)``.
        seed: seed of the initial noise (and of the DDIM noise when ``eta > 0``).
        negative_prompt: prompt of the unconditional branch.
        eta: DDIM's eta (0: deterministic).
        azimuth_deg, elevation_deg: the camera of every sample, or ``B`` cameras, for a
            camera-conditioned prior (ignored otherwise; default a three-quarter view from the front).

    Raises:
        ShapegenError: ``sd`` is a latent model.
    """
    from diffusers import DDIMScheduler

    if sd.vae is not None:
        raise ShapegenError("sample_images draws from pixel-space priors (vae=None); this model has a VAE")
    device = next(sd.unet.parameters()).device
    ddim = DDIMScheduler.from_config(sd.scheduler.config, clip_sample=False, set_alpha_to_one=False)
    ddim.set_timesteps(steps)
    tok = sd.tokenizer([negative_prompt, *prompts], padding="max_length", max_length=sd.tokenizer.model_max_length,
                       truncation=True, return_tensors="pt")
    states = sd.text_encoder(tok.input_ids.to(device))[0]
    b = len(prompts)
    uncond, cond = states[:1].expand(b, -1, -1), states[1:]
    gen = torch.Generator().manual_seed(seed)
    side = int(sd.unet.config.sample_size)
    x = torch.randn(b, 3, side, side, generator=gen).to(device)
    dtype = next(sd.unet.parameters()).dtype
    labels = {}
    if is_camera_prior(sd.unet):
        az, el = (torch.as_tensor(v, dtype=torch.float32).expand(b) for v in (azimuth_deg, elevation_deg))
        views = camera_features(az, el).to(device=device, dtype=dtype)
        labels = {"class_labels": torch.cat([views, views])}
    for t in ddim.timesteps:
        tt = torch.full((2 * b,), int(t), device=device)
        out = sd.unet(torch.cat([x, x]).to(dtype), tt, encoder_hidden_states=torch.cat([uncond, cond]).to(dtype),
                      **labels).sample.float()
        out_u, out_c = out.chunk(2)
        x = ddim.step(out_u + guidance_scale * (out_c - out_u), t, x, eta=eta, generator=gen).prev_sample
    return ((x.clamp(-1, 1) + 1) / 2).cpu()


def write_sample_sheet(sd, prompts: list[str], path: str | Path, *, per_prompt: int = 4, steps: int = 50,
                       guidance_scale: float = 5.0, seed: int = 0, scale: int = 2) -> Path:
    """A PNG with one row of ``per_prompt`` samples per prompt (pixels enlarged ``scale`` times)."""
    import numpy as np

    from renderers.preview import save_image

    images = sample_images(sd, [p for p in prompts for _ in range(per_prompt)], steps=steps, guidance_scale=guidance_scale,
                           seed=seed)
    side = images.shape[-1]
    grid = images.reshape(len(prompts), per_prompt, 3, side, side).permute(0, 3, 1, 4, 2).reshape(len(prompts) * side, per_prompt * side, 3)
    grid = (grid * 255).round().to(torch.uint8).numpy()
    return save_image(path, np.kron(grid, np.ones((scale, scale, 1), np.uint8)))


# ------------------------------------------------------------------------- init and export
class _InitSource:
    """Weights to start a run from (``train.init_from``)."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind, self.path = kind, path

    def vocabulary(self, config: RenderPriorConfig) -> list[str]:
        if self.kind == "folder":
            from transformers import AutoTokenizer

            vocab = AutoTokenizer.from_pretrained(self.path, subfolder="tokenizer").get_vocab()
            return [w for w, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if w not in SPECIAL_TOKENS]
        from shapegen.checkpoints import load_checkpoint

        return list(load_checkpoint(self.path)["hyper_parameters"]["vocabulary"])

    def load_into(self, model: RenderPrior) -> None:
        try:
            if self.kind == "folder":
                from diffusers import UNet2DConditionModel
                from transformers import CLIPTextModel

                unet = UNet2DConditionModel.from_pretrained(self.path, subfolder="unet", torch_dtype=torch.float32).state_dict()
                text = CLIPTextModel.from_pretrained(self.path, subfolder="text_encoder", torch_dtype=torch.float32).state_dict()
                pairs = [(model.unet, unet), (model.text_encoder, text), (model.ema_unet, unet), (model.ema_text_encoder, text)]
            else:
                from shapegen.checkpoints import load_checkpoint

                state = load_checkpoint(self.path)["state_dict"]

                def part(prefix: str) -> dict[str, Tensor]:
                    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

                unet, text = part("unet."), part("text_encoder.")
                pairs = [(model.unet, unet), (model.text_encoder, text), (model.ema_unet, part("ema_unet.") or unet),
                         (model.ema_text_encoder, part("ema_text_encoder.") or text)]
            for module, weights in pairs:
                if module is None:
                    continue
                # A camera-conditioned prior may start from one without the camera (its embedding stays zero).
                missing, unexpected = module.load_state_dict(weights, strict=False)
                missing = [k for k in missing if not (model.config.camera and k.startswith("class_embedding."))]
                if missing or unexpected:
                    raise RuntimeError(f"missing {missing[:3]}, unexpected {unexpected[:3]}")
        except (RuntimeError, OSError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0][:160]
            raise ShapegenError(f"train.init_from '{self.path}' does not fit this config ({first}); use the architecture it was "
                                "trained with") from None


def _init_source(name: str) -> _InitSource:
    from shapegen.guidance.prior import resolve_model_name

    path = Path(resolve_model_name(name)).expanduser()
    if path.is_dir() and (path / "unet").is_dir():
        return _InitSource("folder", path)
    if path.is_file():
        return _InitSource("checkpoint", path)
    raise ShapegenError(f"train.init_from '{name}' is neither an exported render-prior folder nor a checkpoint; "
                        "give 'render-prior', a folder written by export-model, or a last.ckpt")


def export_pipeline(checkpoint: str | Path, out: str | Path, *, use_ema: bool = True, half: bool = True):
    """Write a training checkpoint as a diffusers folder: ``unet/``, ``text_encoder/``, ``tokenizer/``,
    ``scheduler/`` (``save_pretrained``, safetensors) and ``model_index.json``; no ``vae/`` (pixel space).

    Args:
        checkpoint: a ``last.ckpt`` of ``shapegen train --method render_prior``.
        out: the folder to write (replaced as a whole once the new one is complete).
        use_ema: export the EMA weights (when the run kept them).
        half: store the weights in float16 (half the size; :func:`~shapegen.guidance.prior.load_stable_diffusion`
            upcasts them to float32).

    Returns:
        An :class:`~shapegen.methods.export.ExportResult` (``path`` is the folder).

    Raises:
        ShapegenError: the checkpoint is not one of this method.
    """
    from shapegen.checkpoints import load_checkpoint
    from shapegen.methods.export import ExportResult

    src, dst = Path(checkpoint), Path(out)
    if dst.exists() and not dst.is_dir():
        raise ShapegenError(f"export-model writes a folder for render_prior; '{dst}' is a file: give a folder path")
    if dst.resolve() == src.resolve() or src.resolve().is_relative_to(dst.resolve()):
        raise ShapegenError(f"export-model would overwrite its input '{src}'; choose another output folder")
    if not src.is_file():
        raise ShapegenError(f"checkpoint '{src}' not found; train one with 'shapegen train --method render_prior'")
    ckpt = load_checkpoint(src)
    hp = ckpt.get("hyper_parameters")
    if not isinstance(hp, dict) or "vocabulary" not in hp or "unet" not in hp:
        raise ShapegenError(f"'{src}' is not a checkpoint of 'shapegen train --method render_prior'")
    model = RenderPrior(hp)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise ShapegenError(f"'{src}' does not match its own config ({str(exc).splitlines()[0][:120]})") from None
    sd = model.pipeline(use_ema=use_ema)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        sd.unet.save_pretrained(tmp / "unet")
        sd.text_encoder.save_pretrained(tmp / "text_encoder")
        if half:
            for weights in (tmp / "unet").glob("*.safetensors"):
                _to_half(weights)
            for weights in (tmp / "text_encoder").glob("*.safetensors"):
                _to_half(weights)
        sd.tokenizer.save_pretrained(tmp / "tokenizer")
        sd.scheduler.save_pretrained(tmp / "scheduler")
        index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": _diffusers_version(),
                 "unet": ["diffusers", "UNet2DConditionModel"], "text_encoder": ["transformers", "CLIPTextModel"],
                 "tokenizer": ["transformers", "PreTrainedTokenizerFast"], "scheduler": ["diffusers", "DDPMScheduler"],
                 "vae": [None, None], "safety_checker": [None, None], "feature_extractor": [None, None],
                 "requires_safety_checker": False, "shapegen": {"pixel_space": True, "image_size": model.config.image_size,
                                                               "global_step": int(ckpt.get("global_step", 0))}}
        (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        # Keep files a previous export had beside the weights (the model card, metrics).
        if dst.is_dir():
            for extra in dst.iterdir():
                if extra.is_file() and not (tmp / extra.name).exists():
                    shutil.copy2(extra, tmp / extra.name)
            old = dst.with_name(f".{dst.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            dst.rename(old)
            tmp.rename(dst)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in dst.rglob("*") if p.is_file())
    step = ckpt.get("global_step")
    return ExportResult(dst, src.stat().st_size, size, use_ema and model.ema_unet is not None, None if step is None else int(step))


def _to_half(path: Path) -> None:
    """Rewrite a safetensors file with its floating-point tensors in float16 (metadata kept)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    save_file({k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}, str(path), metadata=meta)


def _diffusers_version() -> str:
    import diffusers

    return str(diffusers.__version__)
