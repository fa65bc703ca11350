"""Sparse 3D convolution over occupied voxels in pure torch, and a sparse UNet (LAS stage 2).

LAS-Diffusion runs stage 2 with octree convolutions (``ocnn``). We measured that route on this
project's CPU-only environment: ``ocnn`` 2.3.3 imports torchvision at package import (for its
Image2Shape model only), torchvision would replace the CPU torch build, and octree building needs
point clouds rather than voxel masks. A voxel-hash equivalent is ~150 lines of torch, runs on any
device, and keeps the defining property: only occupied voxels are stored and computed.

Representation: ``coords`` (N, 4) int64 rows ``(b, i, j, k)`` at grid side ``G`` and features
``(N, C)``. Neighbours are found through a dense index grid (``B G^3`` int64, the "hash": the
row of each voxel or -1), built once per level; a 3^3 convolution gathers the 27 neighbour rows
(missing neighbours contribute zero, exactly like an octree conv over empty nodes) and applies one
``(27 C_in, C_out)`` matrix. Down-sampling is a 2^3 stride-2 conv from the present children of
each parent voxel; up-sampling is its transpose (each child reads its parent with the weight of
its child slot). Group normalisation uses per-sample statistics over that sample's voxels only.
Nothing here ever touches an empty voxel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from shapegen.nn.unet3d import timestep_embedding

__all__ = ["SparseLevel", "SparseUNet", "SparseUNetConfig", "build_levels"]

_OFFSETS3 = torch.tensor([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=torch.int64)
_OFFSETS2 = torch.tensor([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=torch.int64)


@dataclass
class SparseLevel:
    """Voxels of one resolution and their neighbour tables."""

    coords: Int[Tensor, "N 4"]
    """``(b, i, j, k)`` of every voxel."""
    side: int
    """Grid side at this level."""
    neighbours: Int[Tensor, "N 27"]
    """Row of each 3^3 neighbour, -1 where absent."""
    children: Int[Tensor, "N 8"] | None = None
    """Rows of the 2^3 children at the finer level (-1 absent); None at the finest level."""
    parent: Int[Tensor, " M"] | None = None
    """For each voxel of the finer level, its parent row here (set on the coarser level)."""
    child_slot: Int[Tensor, " M"] | None = None
    """For each voxel of the finer level, its slot 0..7 in the parent."""


def _index_grid(coords: Tensor, side: int, batch: int) -> Tensor:
    grid = torch.full((batch, side, side, side), -1, dtype=torch.int64, device=coords.device)
    grid[coords[:, 0], coords[:, 1], coords[:, 2], coords[:, 3]] = torch.arange(coords.shape[0], device=coords.device)
    return grid


def _lookup(grid: Tensor, coords: Tensor, offsets: Tensor, side: int) -> Tensor:
    q = coords[:, None, 1:] + offsets.to(coords.device)[None]  # N K 3
    ok = ((q >= 0) & (q < side)).all(-1)
    qc = q.clamp(0, side - 1)
    b = coords[:, None, 0].expand(-1, offsets.shape[0])
    found = grid[b, qc[..., 0], qc[..., 1], qc[..., 2]]
    return torch.where(ok, found, torch.full_like(found, -1))


def build_levels(coords: Int[Tensor, "N 4"], side: int, batch: int, depth: int) -> list[SparseLevel]:
    """The voxel sets of ``depth`` levels, finest first (each coarser level: occupied parents)."""
    levels = []
    cur = coords
    for d in range(depth):
        s = side >> d
        grid = _index_grid(cur, s, batch)
        lvl = SparseLevel(cur, s, _lookup(grid, cur, _OFFSETS3, s))
        if levels:
            fine = levels[-1]
            lvl.children = _lookup(grid.new_full((batch, 2 * s, 2 * s, 2 * s), -1).index_put_(
                (fine.coords[:, 0], fine.coords[:, 1], fine.coords[:, 2], fine.coords[:, 3]),
                torch.arange(fine.coords.shape[0], device=cur.device)),
                torch.cat([cur[:, :1], cur[:, 1:] * 2], 1), _OFFSETS2, 2 * s)
            pc = torch.cat([fine.coords[:, :1], fine.coords[:, 1:] // 2], 1)
            lvl.parent = grid[pc[:, 0], pc[:, 1], pc[:, 2], pc[:, 3]]
            off = fine.coords[:, 1:] % 2
            lvl.child_slot = off[:, 0] * 4 + off[:, 1] * 2 + off[:, 2]
        levels.append(lvl)
        if d + 1 < depth:
            # Parents: unique linear keys (much faster than unique(dim=0) on CPU), sorted by (b, i, j, k).
            h = s // 2
            p = torch.cat([cur[:, :1], cur[:, 1:] // 2], 1)
            key = torch.unique(((p[:, 0] * h + p[:, 1]) * h + p[:, 2]) * h + p[:, 3])
            cur = torch.stack([key // h**3, key // h**2 % h, key // h % h, key % h], 1)
    return levels


def _gather(x: Tensor, idx: Tensor) -> Tensor:
    pad = torch.cat([x, x.new_zeros(1, x.shape[1])])
    return pad[idx.clamp_min(-1) % (x.shape[0] + 1)]  # -1 -> the zero row


class SparseConv3d(nn.Module):
    """3^3 convolution over the voxels of one level (absent neighbours count as zero)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(27 * cin, cout) / math.sqrt(27 * cin))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x: Float[Tensor, "N Ci"], level: SparseLevel) -> Float[Tensor, "N Co"]:
        return _gather(x, level.neighbours).flatten(1) @ self.weight + self.bias


class SparseDown(nn.Module):
    """2^3 stride-2 convolution: each parent from its present children."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8 * cin, cout) / math.sqrt(8 * cin))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x: Tensor, coarse: SparseLevel) -> Tensor:
        return _gather(x, coarse.children).flatten(1) @ self.weight + self.bias


class SparseUp(nn.Module):
    """Transposed 2^3 convolution: each child from its parent, with its slot's weight."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, cin, cout) / math.sqrt(cin))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x: Tensor, coarse: SparseLevel) -> Tensor:
        parent = x[coarse.parent]  # M Ci
        return torch.einsum("mi,mio->mo", parent, self.weight[coarse.child_slot]) + self.bias


class SparseGroupNorm(nn.Module):
    """GroupNorm with statistics per sample over that sample's voxels."""

    def __init__(self, channels: int, groups: int = 8) -> None:
        super().__init__()
        self.groups = math.gcd(channels, groups)
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor, batch_idx: Tensor, batch: int) -> Tensor:
        n, c = x.shape
        xg = x.view(n, self.groups, c // self.groups)
        count = torch.zeros(batch, device=x.device).index_add_(0, batch_idx, torch.ones(n, device=x.device)).clamp_min(1)
        count = count[:, None] * (c // self.groups)
        mean = torch.zeros(batch, self.groups, device=x.device, dtype=x.dtype).index_add_(0, batch_idx, xg.sum(-1)) / count
        xc = xg - mean[batch_idx][..., None]
        var = torch.zeros(batch, self.groups, device=x.device, dtype=x.dtype).index_add_(0, batch_idx, (xc**2).sum(-1)) / count
        y = xc / (var[batch_idx][..., None] + 1e-5).sqrt()
        return y.view(n, c) * self.weight + self.bias


class SparseResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int, dropout: float) -> None:
        super().__init__()
        self.n1, self.c1 = SparseGroupNorm(cin), SparseConv3d(cin, cout)
        self.t = nn.Linear(emb, cout)
        self.n2, self.c2 = SparseGroupNorm(cout), SparseConv3d(cout, cout)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Linear(cin, cout) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, level: SparseLevel, t_emb: Tensor, batch: int) -> Tensor:
        b = level.coords[:, 0]
        h = self.c1(nn.functional.silu(self.n1(x, b, batch)), level)
        h = h + self.t(nn.functional.silu(t_emb))[b]
        h = self.c2(self.drop(nn.functional.silu(self.n2(h, b, batch))), level)
        return self.skip(x) + h


@dataclass
class SparseUNetConfig:
    """Sizes of :class:`SparseUNet` (LAS stage 2: base 32, multipliers 1,2,4,8,8, no attention)."""

    in_channels: int = 1
    """Input channels per voxel (the noisy SDF value)."""
    out_channels: int = 1
    """Output channels per voxel (the x0 estimate)."""
    base_channels: int = 32
    """Channels of the finest level."""
    channel_mults: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 8])
    """Channel multiplier per level; each further level halves the grid side."""
    dropout: float = 0.0
    """Dropout in ResBlocks."""


class SparseUNet(nn.Module):
    """UNet over occupied voxels only: ``(features, coords, t) -> per-voxel output``."""

    def __init__(self, config: SparseUNetConfig) -> None:
        super().__init__()
        self.config = c = config
        ch = [c.base_channels * m for m in c.channel_mults]
        emb = 4 * c.base_channels
        self.time_mlp = nn.Sequential(nn.Linear(c.base_channels, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.stem = SparseConv3d(c.in_channels, ch[0])
        self.down = nn.ModuleList(SparseResBlock(ch[i - 1] if i else ch[0], ch[i], emb, c.dropout) for i in range(len(ch)))
        self.pool = nn.ModuleList(SparseDown(ch[i], ch[i]) for i in range(len(ch) - 1))
        self.mid = SparseResBlock(ch[-1], ch[-1], emb, c.dropout)
        self.up = nn.ModuleList(SparseResBlock(ch[i] + (ch[i + 1] if i + 1 < len(ch) else ch[-1]), ch[i], emb, c.dropout) for i in reversed(range(len(ch))))
        self.unpool = nn.ModuleList(SparseUp(ch[i + 1], ch[i + 1]) for i in reversed(range(len(ch) - 1)))
        self.norm = SparseGroupNorm(ch[0])
        self.head = SparseConv3d(ch[0], c.out_channels)

    @property
    def depth(self) -> int:
        return len(self.config.channel_mults)

    def forward(
        self, x: Float[Tensor, "N Ci"], coords: Int[Tensor, "N 4"], side: int, t: Float[Tensor, " B"],
        levels: list[SparseLevel] | None = None,
    ) -> Float[Tensor, "N Co"]:
        """Per-voxel output for the voxels ``coords`` of a ``side^3`` grid (batch size ``len(t)``)."""
        batch = t.shape[0]
        if levels is None:
            levels = build_levels(coords, side, batch, self.depth)
        t_emb = self.time_mlp(timestep_embedding(t, self.config.base_channels))
        h = self.stem(x, levels[0])
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, levels[i], t_emb, batch)
            skips.append(h)
            if i < len(self.pool):
                h = self.pool[i](h, levels[i + 1])
        h = self.mid(h, levels[-1], t_emb, batch)
        n = len(self.up)
        for j, block in enumerate(self.up):
            i = n - 1 - j
            h = block(torch.cat([h, skips.pop()], 1), levels[i], t_emb, batch)
            if i > 0:
                h = self.unpool[j](h, levels[i])
        return self.head(nn.functional.silu(self.norm(h, levels[0].coords[:, 0], batch)), levels[0])
