"""Sketch encoders: ink map ``B H W`` -> patch tokens ``B P C`` in row-major patch order.

* :class:`SmallSketchEncoder`: a trainable CNN stem (stride-2 convs down to one token per
  ``patch x patch`` pixels) followed by a few Transformer layers; needs no download.
* :class:`HubSketchEncoder`: a frozen timm ViT loaded from a hub id or a local weights file
  (LAS uses OpenCLIP ViT-H/14 LAION-2B: timm ``vit_huge_patch14_clip_224.laion2b``). timm is
  imported lazily; without it the constructor raises one line saying what to install. The
  image is the sketch drawn black on white, resized to the model's input size and normalised
  with the model's mean/std; the class/register tokens are dropped (LAS keeps the 256 patch
  tokens of 257).

Both expose ``patches`` (side of the patch grid), ``dim`` (token channels) and
``image_size`` (the sketch side they expect, which is also the projection's image size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from shapegen.errors import ShapegenError
from shapegen.nn.local_attention import sinusoidal_encoding

__all__ = ["HubSketchEncoder", "SketchEncoderConfig", "SmallSketchEncoder", "build_sketch_encoder"]


@dataclass
class SketchEncoderConfig:
    """Which sketch encoder to build."""

    name: str = "small"
    """``small`` (trainable CNN+Transformer, no download) or ``timm:MODEL`` / ``timm:MODEL@FILE``
    (frozen hub ViT; FILE is a local weights file instead of a download)."""
    image_size: int = 224
    """Side of the sketch images (pixels)."""
    patch: int = 14
    """Small encoder: pixels per patch side (a power of two times an odd number; 14 = 224/16)."""
    dim: int = 128
    """Small encoder: token channels."""
    depth: int = 2
    """Small encoder: Transformer layers after the CNN stem."""


class SmallSketchEncoder(nn.Module):
    """Trainable CNN + Transformer sketch encoder (see the module doc)."""

    def __init__(self, cfg: SketchEncoderConfig) -> None:
        super().__init__()
        if cfg.image_size % cfg.patch:
            raise ShapegenError(f"sketch image_size {cfg.image_size} must be a multiple of patch {cfg.patch}")
        self.image_size, self.dim = cfg.image_size, cfg.dim
        self.patches = cfg.image_size // cfg.patch
        layers: list[nn.Module] = [nn.Conv2d(1, cfg.dim // 4, 3, padding=1), nn.GELU()]
        c, size = cfg.dim // 4, cfg.image_size
        while size // 2 >= self.patches and size % 2 == 0:
            layers += [nn.Conv2d(c, min(cfg.dim, 2 * c), 3, stride=2, padding=1), nn.GroupNorm(1, min(cfg.dim, 2 * c)), nn.GELU()]
            c, size = min(cfg.dim, 2 * c), size // 2
        layers += [nn.AdaptiveAvgPool2d(self.patches), nn.Conv2d(c, cfg.dim, 1)]
        self.stem = nn.Sequential(*layers)
        layer = nn.TransformerEncoderLayer(cfg.dim, max(1, cfg.dim // 32), 2 * cfg.dim, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False) if cfg.depth else nn.Identity()

    def forward(self, sketch: Float[Tensor, "B H W"]) -> Float[Tensor, "B P C"]:
        """Tokens of the ink maps (row-major patch order)."""
        x = self.stem(sketch[:, None].float()).flatten(2).transpose(1, 2)
        idx = (torch.arange(self.patches, device=x.device, dtype=x.dtype) + 0.5) / self.patches * 2 - 1
        pos = torch.stack(torch.meshgrid(idx, idx, indexing="ij"), -1).reshape(-1, 2)
        return self.blocks(x + sinusoidal_encoding(pos, self.dim))


class HubSketchEncoder(nn.Module):
    """Frozen timm ViT (e.g. ``vit_huge_patch14_clip_224.laion2b``) as a sketch encoder."""

    def __init__(self, cfg: SketchEncoderConfig) -> None:
        super().__init__()
        spec = cfg.name.split(":", 1)[1]
        model_name, _, file = spec.partition("@")
        try:
            import timm
        except ImportError:
            raise ShapegenError(f"sketch encoder '{cfg.name}' needs timm (pip install timm); or set sketch_encoder.name=small") from None
        kwargs = {"pretrained_cfg_overlay": {"file": file}} if file else {}
        try:
            model = timm.create_model(model_name, pretrained=True, num_classes=0, **kwargs)
        except Exception as exc:  # unknown name, no network, wrong weights
            raise ShapegenError(f"cannot load timm model '{model_name}' ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from exc
        self.model = model.eval().requires_grad_(False)
        data = getattr(model, "pretrained_cfg", {}) or {}
        self.input_size = int(data.get("input_size", (3, 224, 224))[-1])
        self.register_buffer("mean", torch.tensor(data.get("mean", (0.5, 0.5, 0.5))).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(data.get("std", (0.5, 0.5, 0.5))).view(1, 3, 1, 1), persistent=False)
        self.prefix = int(getattr(model, "num_prefix_tokens", 1))
        self.dim = int(model.num_features)
        grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
        self.patches = int(grid[0]) if grid else math.isqrt(model.patch_embed.num_patches)
        self.image_size = cfg.image_size

    def train(self, mode: bool = True) -> HubSketchEncoder:  # stays frozen in eval mode
        super().train(mode)
        self.model.eval()
        return self

    @torch.no_grad()
    def forward(self, sketch: Float[Tensor, "B H W"]) -> Float[Tensor, "B P C"]:
        img = (1.0 - sketch.float())[:, None].expand(-1, 3, -1, -1)
        img = F.interpolate(img, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        feats = self.model.forward_features((img - self.mean) / self.std)
        return feats[:, self.prefix :]


def build_sketch_encoder(cfg: SketchEncoderConfig) -> nn.Module:
    """The encoder named by ``cfg.name`` (``small`` or ``timm:...``)."""
    if cfg.name == "small":
        return SmallSketchEncoder(cfg)
    if cfg.name.startswith("timm:"):
        return HubSketchEncoder(cfg)
    raise ShapegenError(f"unknown sketch encoder '{cfg.name}'; use 'small' or 'timm:MODEL[@FILE]'")
