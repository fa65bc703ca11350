"""Occ-SDF fields: a geometry network with SDF, occupancy and feature outputs, and a colour
network whose feature output is decoded to RGB by a linear layer.

Architecture from the official Occ-SDF-Hybrid / MonoSDF code (the paper, arXiv 2303.09152,
defers it to a supplement):

* :class:`GeometryNetwork`: positional encoding ``gamma(x) = [x, sin(2^k x), cos(2^k x)]_{k<L}``
  (NeRF), optionally concatenated with a pure-torch hash grid of ``(x + 1) / 2``
  (:class:`shapegen.nn.hash_encoding.HashEncoding`); an MLP with softplus (beta 100), a skip
  connection (input concatenated, divided by sqrt 2), weight normalisation, and IDR's geometric
  initialisation (Atzmon & Lipman, SAL; ``inside_outside``: the SDF starts as
  ``bias - |x|``, positive inside the sphere, where a room's cameras are). Output
  ``[f_sdf, o_raw, F_geo]``; occupancy ``o = sigmoid(-10 o_raw)`` (negative raw = occupied).
* :class:`ColorNetwork`: ``[x, gamma_4(d), n, F_geo, e_image]`` -> Linear, ReLU, Linear,
  Linear -> ``F`` (no activation after the last two), decoder ``D(F) = 0.5 tanh(W F + b) + 0.5``.
  Rendering ``D(sum_i w_i F_i)`` gives Occ-SDF's feature colour (Eq. 8-9).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from shapegen.nn.hash_encoding import HashEncoding, HashEncodingConfig

__all__ = ["ColorNetwork", "ColorNetworkConfig", "GeometryNetwork", "GeometryNetworkConfig", "positional_encoding"]


def positional_encoding(x: Float[Tensor, "N C"], frequencies: int) -> Float[Tensor, "N D"]:
    """NeRF encoding ``[x, sin(2^k x), cos(2^k x)]`` for ``k < frequencies`` (``D = C (1 + 2 L)``)."""
    if frequencies <= 0:
        return x
    freqs = 2.0 ** torch.arange(frequencies, dtype=x.dtype, device=x.device)
    xf = (x[..., None, :] * freqs[:, None]).flatten(-2)
    return torch.cat([x, torch.sin(xf), torch.cos(xf)], -1)


@dataclass
class GeometryNetworkConfig:
    """Geometry network (defaults: the official "MLP" variant)."""

    hidden_dim: int = 256
    """Width of the hidden layers."""
    num_layers: int = 8
    """Hidden layers."""
    skip_in: list[int] = field(default_factory=lambda: [4])
    """Layers whose input is concatenated with the encoded point."""
    frequencies: int = 6
    """Positional-encoding frequencies L."""
    feature_dim: int = 256
    """Length of the geometry feature F_geo."""
    init_bias: float = 0.9
    """Radius of the initial sphere (0.6 Replica, 0.9 ScanNet, 1.0 Tanks and Temples)."""
    inside_outside: bool = True
    """Scene seen from inside (rooms): the SDF is positive inside the initial sphere."""
    weight_norm: bool = True
    """Weight normalisation of every linear layer."""
    softplus_beta: float = 100.0
    """Sharpness of the softplus activations."""
    encoding: Literal["pe", "hash"] = "pe"
    """``pe``: positional encoding only; ``hash``: also a multi-resolution hash grid."""
    hash: HashEncodingConfig = field(
        default_factory=lambda: HashEncodingConfig(levels=16, features_per_level=2, log2_table_size=19, base_resolution=16, max_resolution=2048)
    )
    """Hash grid (official grid variant: 16 levels x 2, 2^19 rows, 16 -> 2048)."""


class GeometryNetwork(nn.Module):
    """``x in [-1, 1]^3 -> (f_sdf, o_raw, F_geo)``."""

    def __init__(self, config: GeometryNetworkConfig | None = None) -> None:
        super().__init__()
        cfg = self.config = config or GeometryNetworkConfig()
        self.grid = HashEncoding(cfg.hash) if cfg.encoding == "hash" else None
        pe_dim = 3 * (1 + 2 * cfg.frequencies)
        d_in = pe_dim + (self.grid.out_dim if self.grid is not None else 0)
        dims = [d_in] + [cfg.hidden_dim] * cfg.num_layers + [2 + cfg.feature_dim]
        self.num_linear = len(dims) - 1
        layers = []
        for i in range(self.num_linear):
            out_dim = dims[i + 1] - dims[0] if (i + 1) in cfg.skip_in else dims[i + 1]
            lin = nn.Linear(dims[i], out_dim)
            self._geometric_init(lin, i, dims, out_dim)
            if cfg.weight_norm:
                lin = nn.utils.parametrizations.weight_norm(lin)
            layers.append(lin)
        self.layers = nn.ModuleList(layers)
        self.act = nn.Softplus(beta=cfg.softplus_beta)
        self._d_in = d_in

    def _geometric_init(self, lin: nn.Linear, i: int, dims: list[int], out_dim: int) -> None:
        """IDR/MonoSDF geometric initialisation: the network starts as the SDF of a sphere; the
        extra encoding inputs (sin/cos terms, grid features) start with zero weight."""
        cfg = self.config
        with torch.no_grad():
            if i == self.num_linear - 1:
                sign = -1.0 if cfg.inside_outside else 1.0
                nn.init.normal_(lin.weight, mean=sign * math.sqrt(math.pi) / math.sqrt(dims[i]), std=1e-4)
                nn.init.constant_(lin.bias, -sign * cfg.init_bias)
            elif i == 0:
                nn.init.constant_(lin.bias, 0.0)
                nn.init.constant_(lin.weight[:, 3:], 0.0)
                nn.init.normal_(lin.weight[:, :3], 0.0, math.sqrt(2) / math.sqrt(out_dim))
            elif i in cfg.skip_in:
                nn.init.constant_(lin.bias, 0.0)
                nn.init.normal_(lin.weight, 0.0, math.sqrt(2) / math.sqrt(out_dim))
                nn.init.constant_(lin.weight[:, -(dims[0] - 3) :], 0.0)
            else:
                nn.init.constant_(lin.bias, 0.0)
                nn.init.normal_(lin.weight, 0.0, math.sqrt(2) / math.sqrt(out_dim))

    def encode(self, x: Float[Tensor, "N 3"]) -> Float[Tensor, "N D"]:
        enc = positional_encoding(x, self.config.frequencies)
        if self.grid is not None:
            enc = torch.cat([enc, self.grid(((x + 1) / 2).clamp(0, 1))], -1)
        return enc

    def forward(self, x: Float[Tensor, "N 3"]) -> Float[Tensor, "N C"]:
        """Raw outputs ``[f_sdf, o_raw, F_geo]`` (``C = 2 + feature_dim``)."""
        inp = self.encode(x)
        h = inp
        for i, lin in enumerate(self.layers):
            if i in self.config.skip_in:
                h = torch.cat([h, inp], -1) / math.sqrt(2)
            h = lin(h)
            if i < self.num_linear - 1:
                h = self.act(h)
        return h

    def sdf(self, x: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        """Signed distance (positive in free space)."""
        return self.forward(x)[:, 0]

    @staticmethod
    def occupancy(o_raw: Float[Tensor, "*N"]) -> Float[Tensor, "*N"]:
        """Occupancy probability ``sigmoid(-10 o_raw)``."""
        return torch.sigmoid(-10.0 * o_raw)

    def grid_parameters(self) -> list[nn.Parameter]:
        return list(self.grid.parameters()) if self.grid is not None else []


@dataclass
class ColorNetworkConfig:
    """Colour network (defaults: the official code)."""

    hidden_dim: int = 256
    """Width of the layers; also the length of the rendered feature F."""
    view_frequencies: int = 4
    """Positional-encoding frequencies of the view direction."""
    embedding_dim: int = 32
    """Per-image appearance embedding (0: none)."""


class ColorNetwork(nn.Module):
    """``(x, d, n, F_geo, image) -> F``; :meth:`decode` maps F (or a rendered sum of F) to RGB."""

    def __init__(self, geometry_feature_dim: int, num_images: int, config: ColorNetworkConfig | None = None) -> None:
        super().__init__()
        cfg = self.config = config or ColorNetworkConfig()
        d_in = 3 + 3 * (1 + 2 * cfg.view_frequencies) + 3 + geometry_feature_dim + cfg.embedding_dim
        self.embedding = nn.Embedding(max(1, num_images), cfg.embedding_dim) if cfg.embedding_dim > 0 else None
        if self.embedding is not None:
            nn.init.normal_(self.embedding.weight, 0.0, 0.01)
        h = cfg.hidden_dim
        self.net = nn.Sequential(nn.Linear(d_in, h), nn.ReLU(), nn.Linear(h, h), nn.Linear(h, h))
        self.decoder = nn.Linear(h, 3)

    def forward(
        self,
        x: Float[Tensor, "N 3"],
        view_dirs: Float[Tensor, "N 3"],
        normals: Float[Tensor, "N 3"],
        features: Float[Tensor, "N C"],
        image_index: Int[Tensor, " N"],
    ) -> Float[Tensor, "N H"]:
        parts = [x, positional_encoding(view_dirs, self.config.view_frequencies), normals, features]
        if self.embedding is not None:
            parts.append(self.embedding(image_index.clamp(0, self.embedding.num_embeddings - 1)))
        return self.net(torch.cat(parts, -1))

    def decode(self, feature: Float[Tensor, "N H"]) -> Float[Tensor, "N 3"]:
        """``D(F) = 0.5 tanh(W F + b) + 0.5`` in [0, 1]."""
        return 0.5 * torch.tanh(self.decoder(feature)) + 0.5
