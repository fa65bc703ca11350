"""A NeRF field for text-to-3D: hash-grid features, density and albedo heads, a background.

Density (Instant-NGP encoding, :mod:`shapegen.nn.hash_encoding`; Magic3D/threestudio heads):
``sigma(x) = softplus(f_sigma(enc(x)) + lambda (1 - ||x|| / r))``, where the second term is the
"density blob" that starts the optimisation from a soft ball of radius ``r`` (threestudio:
``lambda = 10, r = 0.5``; a negative ``lambda`` with a large ``r`` inverts it for scenes).
Albedo: ``sigmoid(f_rgb(enc(x)))`` in [0, 1]. Points are world coordinates inside the cube
``[-radius, radius]^3`` (mapped to the encoding's unit cube; outside it the density is 0).

The background (:class:`Background`) is either a constant colour or a small MLP on the view
direction (a learned environment map), as in DreamFusion / threestudio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from shapegen.nn.hash_encoding import HashEncoding, HashEncodingConfig
from shapegen.nn.mlp import MLP

__all__ = ["Background", "BackgroundConfig", "FieldOutput", "NeRFField", "NeRFFieldConfig"]


@dataclass
class NeRFFieldConfig:
    """Schema of :class:`NeRFField`."""

    encoding: HashEncodingConfig = field(default_factory=HashEncodingConfig)
    """Hash-grid encoding of the positions."""
    radius: float = 1.0
    """Half side of the cube ``[-radius, radius]^3`` holding the object (world units)."""
    hidden_dim: int = 64
    """Width of the density and albedo MLPs."""
    hidden_layers: int = 1
    """Hidden layers of the density and albedo MLPs."""
    density_activation: Literal["softplus", "exp", "relu"] = "softplus"
    """Activation turning the pre-activation density into sigma >= 0."""
    blob_density: float = 10.0
    """lambda of the density blob ``lambda (1 - ||x|| / r)`` (0 disables it)."""
    blob_radius: float = 0.5
    """r of the density blob (world units)."""


@dataclass
class FieldOutput:
    """Per-point values of :class:`NeRFField`."""

    density: Float[Tensor, " N"]
    """sigma >= 0 (per world unit)."""
    albedo: Float[Tensor, "N 3"]
    """Diffuse colour in [0, 1]."""


class NeRFField(nn.Module):
    """Density and albedo of points in world coordinates.

    Args:
        config: the field's schema.
    """

    def __init__(self, config: NeRFFieldConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or NeRFFieldConfig()
        self.encoding = HashEncoding(cfg.encoding)
        self.density_head = MLP(self.encoding.out_dim, 1, cfg.hidden_dim, cfg.hidden_layers)
        self.albedo_head = MLP(self.encoding.out_dim, 3, cfg.hidden_dim, cfg.hidden_layers)

    def _encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r = self.config.radius
        inside = (x.abs() <= r).all(-1)
        return self.encoding((x + r) / (2 * r)), inside

    def blob(self, x: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        """The density blob's pre-activation bias ``lambda (1 - ||x|| / r)``."""
        cfg = self.config
        return cfg.blob_density * (1.0 - x.norm(dim=-1) / cfg.blob_radius)

    def _activate(self, raw: Tensor) -> Tensor:
        act = self.config.density_activation
        if act == "softplus":
            return F.softplus(raw)
        if act == "exp":
            return torch.exp(raw.clamp_max(15.0))  # clamp: exp overflows long before it is useful
        return F.relu(raw)

    def _density(self, feats: Tensor, x: Tensor, inside: Tensor) -> Tensor:
        raw = self.density_head(feats)[:, 0] + self.blob(x)
        return torch.where(inside, self._activate(raw), torch.zeros_like(raw))

    def density(self, x: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        """sigma(x) only (for occupancy-grid updates and mesh extraction)."""
        feats, inside = self._encode(x)
        return self._density(feats, x, inside)

    def forward(self, x: Float[Tensor, "N 3"]) -> FieldOutput:
        feats, inside = self._encode(x)
        return FieldOutput(self._density(feats, x, inside), torch.sigmoid(self.albedo_head(feats)))


@dataclass
class BackgroundConfig:
    """Schema of :class:`Background`."""

    kind: Literal["mlp", "constant"] = "mlp"
    """A learned colour per view direction, or a fixed colour."""
    color: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    """The constant colour (RGB in [0, 1]); unused by the MLP."""
    frequencies: int = 2
    """Sinusoidal frequencies of the direction encoding (MLP only)."""
    hidden_dim: int = 32
    """Width of the MLP."""


class Background(nn.Module):
    """Background colour seen along unit directions (camera rays that leave the scene).

    Args:
        config: the background's schema.
    """

    def __init__(self, config: BackgroundConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or BackgroundConfig()
        self.register_buffer("color", torch.tensor(cfg.color, dtype=torch.float32))
        self.mlp = (
            MLP(3 + 6 * cfg.frequencies, 3, cfg.hidden_dim, 1) if cfg.kind == "mlp" else None
        )

    def forward(self, directions: Float[Tensor, "R 3"]) -> Float[Tensor, "R 3"]:
        if self.mlp is None:
            return self.color.to(directions).expand(directions.shape[0], 3)
        freqs = 2.0 ** torch.arange(self.config.frequencies, device=directions.device, dtype=directions.dtype)
        ang = directions[:, None, :] * freqs[None, :, None] * torch.pi  # (R, K, 3)
        enc = torch.cat([directions, ang.sin().flatten(1), ang.cos().flatten(1)], -1)
        return torch.sigmoid(self.mlp(enc))
