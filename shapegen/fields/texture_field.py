"""A surface texture field: hash-grid features of a 3D point -> albedo (and optionally PBR).

The texture stage of ProlificDreamer (threestudio's ``prolificdreamer-texture``) keeps the mesh
fixed and learns a new hash-grid field evaluated at the rasterised surface points; colour is a
function of 3D position, so no UV parametrisation is needed during optimisation (UVs are made
only for export, :mod:`shapegen.geometry.texture`). Points are world coordinates inside the cube
``[-radius, radius]^3``, mapped to the encoding's unit cube.

Heads: ``albedo = sigmoid(f(enc(x)))`` in [0, 1] (sRGB display values, as the NeRF albedo);
with ``material: pbr`` also ``roughness, metallic = sigmoid(g(enc(x)))`` in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor, nn

from shapegen.nn.hash_encoding import HashEncoding, HashEncodingConfig
from shapegen.nn.mlp import MLP

__all__ = ["TextureField", "TextureFieldConfig", "TextureOutput"]


@dataclass
class TextureFieldConfig:
    """Schema of :class:`TextureField`."""

    encoding: HashEncodingConfig = field(default_factory=HashEncodingConfig)
    """Hash-grid encoding of the surface points."""
    radius: float = 1.0
    """Half side of the cube ``[-radius, radius]^3`` holding the mesh (world units)."""
    hidden_dim: int = 64
    """Width of the heads."""
    hidden_layers: int = 1
    """Hidden layers of the heads."""
    material: Literal["albedo", "pbr"] = "albedo"
    """``albedo``: base colour only (threestudio's texture stage); ``pbr``: also roughness and
    metallic, lit with a simple point light at the camera (see the texture stage)."""


@dataclass
class TextureOutput:
    """Per-point values of :class:`TextureField`."""

    albedo: Float[Tensor, "N 3"]
    """Base colour in [0, 1] (sRGB)."""
    roughness: Float[Tensor, " N"] | None = None
    """Perceptual roughness in [0, 1] (``pbr`` only)."""
    metallic: Float[Tensor, " N"] | None = None
    """Metalness in [0, 1] (``pbr`` only)."""


class TextureField(nn.Module):
    """Colour (and PBR parameters) of surface points in world coordinates.

    Args:
        config: the field's schema.
    """

    def __init__(self, config: TextureFieldConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or TextureFieldConfig()
        self.encoding = HashEncoding(cfg.encoding)
        self.albedo_head = MLP(self.encoding.out_dim, 3, cfg.hidden_dim, cfg.hidden_layers)
        self.pbr_head = MLP(self.encoding.out_dim, 2, cfg.hidden_dim, cfg.hidden_layers) if cfg.material == "pbr" else None

    def forward(self, x: Float[Tensor, "N 3"]) -> TextureOutput:
        r = self.config.radius
        feats = self.encoding((x + r) / (2 * r))
        out = TextureOutput(torch.sigmoid(self.albedo_head(feats)))
        if self.pbr_head is not None:
            rm = torch.sigmoid(self.pbr_head(feats))
            out.roughness, out.metallic = rm[:, 0], rm[:, 1]
        return out
