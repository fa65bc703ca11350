"""Multi-resolution hash-grid encoding in pure, vectorised torch.

Instant-NGP (Mueller et al. 2022, "Instant Neural Graphics Primitives with a Multiresolution
Hash Encoding", arXiv 2201.05989, Sec. 3): ``L`` levels of resolution
``N_l = floor(N_min * b^l)`` with ``b = exp((ln N_max - ln N_min) / (L - 1))`` (Eq. 2-3); each
level stores ``F`` learnable features per vertex of its grid in a table of ``T = 2^log2_T``
rows. A point's 8 surrounding vertices are looked up and trilinearly interpolated; the
levels' results are concatenated (``L * F`` features). Vertex ``v`` of a level whose
``(N_l + 1)^3`` vertices fit in the table is stored densely at ``v_x + v_y (N_l+1) +
v_z (N_l+1)^2`` (no collisions); finer levels use the spatial hash (Eq. 4)
``(v_x * 1 XOR v_y * 2654435761 XOR v_z * 805459861) mod T``.

Deviations: tables are initialised uniformly in ``[-1e-4, 1e-4]`` as in the paper, but the
whole encoding lives in one parameter (all levels concatenated with per-level offsets) so one
gather serves every level; there is no CUDA kernel (tiny-cuda-nn is a compiled extension).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor, nn

__all__ = ["HashEncoding", "HashEncodingConfig"]

_PRIMES = (1, 2654435761, 805459861)


@dataclass
class HashEncodingConfig:
    """Hyper-parameters of :class:`HashEncoding` (threestudio's VSD values by default)."""

    levels: int = 16
    """Number of resolution levels L."""
    features_per_level: int = 2
    """Features F stored per grid vertex and level."""
    log2_table_size: int = 19
    """log2 of the rows T of each level's table."""
    base_resolution: int = 16
    """Resolution N_min of the coarsest level."""
    max_resolution: int = 4096
    """Resolution N_max of the finest level."""


class HashEncoding(nn.Module):
    """Encodes points in ``[0, 1]^3`` as ``L * F`` interpolated hash-grid features.

    Args:
        config: the encoding's hyper-parameters.
    """

    def __init__(self, config: HashEncodingConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or HashEncodingConfig()
        table = 2**cfg.log2_table_size
        growth = (
            math.exp((math.log(cfg.max_resolution) - math.log(cfg.base_resolution)) / (cfg.levels - 1))
            if cfg.levels > 1
            else 1.0
        )
        resolutions = [math.floor(cfg.base_resolution * growth**lvl) for lvl in range(cfg.levels)]
        sizes = [min(table, (r + 1) ** 3) for r in resolutions]
        offsets = [0]
        for s in sizes[:-1]:
            offsets.append(offsets[-1] + s)
        self.resolutions = resolutions
        self.register_buffer("_res", torch.tensor(resolutions, dtype=torch.long), persistent=False)
        self.register_buffer("_sizes", torch.tensor(sizes, dtype=torch.long), persistent=False)
        self.register_buffer("_offsets", torch.tensor(offsets, dtype=torch.long), persistent=False)
        self.register_buffer(
            "_dense", torch.tensor([(r + 1) ** 3 <= table for r in resolutions]), persistent=False
        )
        # Corner offsets (8, 3) in {0, 1}^3.
        corners = torch.tensor([[(i >> 2) & 1, (i >> 1) & 1, i & 1] for i in range(8)])
        self.register_buffer("_corners", corners, persistent=False)
        self.embeddings = nn.Parameter(torch.empty(sum(sizes), cfg.features_per_level).uniform_(-1e-4, 1e-4))

    @property
    def out_dim(self) -> int:
        """Number of output features ``L * F``."""
        return self.config.levels * self.config.features_per_level

    def vertex_indices(self, vertices: Tensor) -> Tensor:
        """Table rows (global, offsets included) of integer vertices ``(..., L, 3)``."""
        res = self._res.view(*([1] * (vertices.dim() - 2)), -1)
        dense = vertices[..., 0] + vertices[..., 1] * (res + 1) + vertices[..., 2] * (res + 1) ** 2
        hashed = vertices[..., 0] * _PRIMES[0]
        hashed = hashed ^ (vertices[..., 1] * _PRIMES[1])
        hashed = hashed ^ (vertices[..., 2] * _PRIMES[2])
        local = torch.where(self._dense, dense, hashed) % self._sizes
        return local + self._offsets

    def forward(self, x: Float[Tensor, "N 3"]) -> Float[Tensor, "N C"]:
        """Features of points ``x`` in ``[0, 1]^3`` (clamped), ``C = L * F``."""
        n = x.shape[0]
        x = x.clamp(0.0, 1.0)
        pos = x[:, None, :] * self._res[None, :, None].to(x.dtype)  # (N, L, 3)
        base = pos.floor().clamp_max(self._res[None, :, None] - 1).long()
        frac = pos - base.to(x.dtype)  # (N, L, 3) in [0, 1]
        verts = base[:, :, None, :] + self._corners  # (N, L, 8, 3)
        idx = self.vertex_indices(verts.permute(0, 2, 1, 3))  # (N, 8, L)
        # Trilinear weights: the product over axes of frac (corner bit 1) or 1 - frac (bit 0).
        c = self._corners.to(x.dtype)  # (8, 3)
        w = (c[None, :, None, :] * frac[:, None] + (1 - c[None, :, None, :]) * (1 - frac[:, None])).prod(-1)
        feats = self.embeddings[idx]  # (N, 8, L, F)
        out = (w[..., None] * feats).sum(1)  # (N, L, F)
        return out.reshape(n, -1)
