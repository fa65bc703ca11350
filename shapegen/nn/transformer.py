"""A permutation-equivariant set Transformer for flow matching over sets of rows.

Used by Mosaic-SDF (arXiv 2312.09222): each of the ``n`` rows of an M-SDF tensor is one token
and there is **no positional encoding**, so permuting the input rows permutes the output rows
(self-attention and row-wise MLPs are equivariant; the conditioning is shared by all tokens).

Conditioning, in the DiT adaLN-Zero style (Peebles & Xie, arXiv 2212.09748):

- time ``t`` in [0, 1]: sinusoidal features of ``time_scale * t`` -> MLP -> a vector ``c``;
- a class label: a learned embedding (index ``num_classes`` is the *null* class used for
  classifier-free guidance) added to ``c``;
- text: the token states of a frozen text encoder, projected to the width and attended to by a
  cross-attention layer in every block; their masked mean is also added to ``c``. Dropped
  conditions are replaced by a learned null context.

Every block regresses shift, scale and gate of its self-attention and MLP from ``c``; the gates
and the output layer start at zero, so the untrained network predicts zero velocity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn


@dataclass
class SetTransformerConfig:
    """Size and conditioning of :class:`SetTransformer`."""

    width: int = 768
    """Token width (model dimension)."""
    depth: int = 12
    """Number of Transformer blocks."""
    heads: int = 12
    """Attention heads (must divide ``width``)."""
    mlp_ratio: float = 4.0
    """Hidden width of each block's MLP as a multiple of ``width``."""
    time_frequencies: int = 128
    """Number of sinusoidal time features before the time MLP."""
    time_scale: float = 100.0
    """Multiplier of ``t`` in [0, 1] before the sinusoidal features (highest angular frequency, rad per unit t).

    DDPM/DiT code uses 1000 (integer diffusion steps). For flow matching that makes the learned
    velocity oscillate in ``t`` with a period (2 pi / 1000 = 0.006) shorter than any solver step,
    so Euler/midpoint/RK4 do not converge to the adaptive solution until hundreds of steps and
    dopri5 needs ~2000 evaluations (``scripts/bench_msdf_generator.py``). At 100 the fixed-step
    solvers converge at their order from 10-20 steps with an equal or lower training loss.
    Checkpoints saved before this field existed were trained with 1000 and load with it."""


def timestep_features(t: Float[Tensor, " B"], dim: int, scale: float = 100.0, max_period: float = 10_000.0) -> Float[Tensor, "B D"]:
    """Sinusoidal features ``cos/sin(scale * t * f_j)`` of ``t`` in [0, 1], ``f_j`` from 1 down to ``1 / max_period``.

    ``scale`` bounds how fast the features (and so the network's output) can vary in ``t``; see
    :attr:`SetTransformerConfig.time_scale`.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = scale * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    """Multi-head attention (self when ``context`` is None) with PyTorch's fused SDPA kernel."""

    def __init__(self, width: int, heads: int, context_dim: int | None = None) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(context_dim or width, 2 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: Float[Tensor, "B N C"], context: Tensor | None = None, mask: Bool[Tensor, "B L"] | None = None) -> Float[Tensor, "B N C"]:
        b, n, c = x.shape
        src = x if context is None else context
        q = self.q(x).view(b, n, self.heads, -1).transpose(1, 2)
        k, v = self.kv(src).view(b, src.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        attn_mask = None if mask is None else mask[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out(y.transpose(1, 2).reshape(b, n, c))


class SetBlock(nn.Module):
    """adaLN-Zero block: modulated self-attention, optional cross-attention, modulated MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, context_dim: int | None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(width, heads)
        self.cross = None
        if context_dim:
            self.norm_cross = nn.LayerNorm(width, eps=1e-6)
            self.cross = Attention(width, heads, context_dim=width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: Tensor, c: Tensor, context: Tensor | None, mask: Tensor | None) -> Tensor:
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c).chunk(6, dim=-1)
        x = x + g1[:, None] * self.attn(_modulate(self.norm1(x), sh1, sc1))
        if self.cross is not None and context is not None:
            x = x + self.cross(self.norm_cross(x), context, mask)
        return x + g2[:, None] * self.mlp(_modulate(self.norm2(x), sh2, sc2))


class SetTransformer(nn.Module):
    """Velocity network ``v(x_t, t, condition)`` over a set of ``n`` rows of ``d`` numbers.

    Args:
        dim: numbers per row (``3 + 1 + k^3`` for M-SDF).
        config: width, depth, heads and MLP ratio.
        num_classes: number of class labels (0: no class conditioning). Index ``num_classes``
            is the null class.
        context_dim: width of the text encoder's token states (0: no text conditioning).
    """

    def __init__(self, dim: int, config: SetTransformerConfig, num_classes: int = 0, context_dim: int = 0) -> None:
        super().__init__()
        w = config.width
        self.num_classes = num_classes
        self.context_dim = context_dim
        self.time_frequencies = config.time_frequencies
        self.time_scale = config.time_scale
        self.proj_in = nn.Linear(dim, w)
        self.time_mlp = nn.Sequential(nn.Linear(config.time_frequencies, w), nn.SiLU(), nn.Linear(w, w))
        self.class_embedding = nn.Embedding(num_classes + 1, w) if num_classes > 0 else None
        if context_dim > 0:
            self.context_proj = nn.Linear(context_dim, w)
            self.null_context = nn.Parameter(torch.zeros(1, 1, context_dim))
            self.pooled_mlp = nn.Sequential(nn.SiLU(), nn.Linear(w, w))
        self.blocks = nn.ModuleList(SetBlock(w, config.heads, config.mlp_ratio, context_dim or None) for _ in range(config.depth))
        self.norm_out = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(w, 2 * w))
        self.proj_out = nn.Linear(w, dim)
        for layer in (self.ada_out[1], self.proj_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @property
    def null_class(self) -> int:
        """Label of the unconditional (dropped) class."""
        return self.num_classes

    def forward(
        self,
        x: Float[Tensor, "B n d"],
        t: Float[Tensor, " B"],
        labels: Int[Tensor, " B"] | None = None,
        context: Float[Tensor, "B L E"] | None = None,
        context_mask: Bool[Tensor, "B L"] | None = None,
        drop: Bool[Tensor, " B"] | None = None,
    ) -> Float[Tensor, "B n d"]:
        """Predict the velocity of every row.

        Args:
            x: noisy rows (normalised).
            t: flow time in [0, 1].
            labels: class labels in ``[0, num_classes]`` (``num_classes`` = null); None: null.
            context: text encoder token states; None: null context.
            context_mask: True for real (non-padding) text tokens.
            drop: rows of the batch whose condition is replaced by the null condition
                (classifier-free guidance dropout and the unconditional branch).
        """
        b = x.shape[0]
        c = self.time_mlp(timestep_features(t, self.time_frequencies, self.time_scale).to(x.dtype))
        if self.class_embedding is not None:
            if labels is None:
                labels = torch.full((b,), self.null_class, device=x.device, dtype=torch.long)
            if drop is not None:
                labels = torch.where(drop, torch.full_like(labels, self.null_class), labels)
            c = c + self.class_embedding(labels)
        ctx = mask = None
        if self.context_dim > 0:
            if context is None:
                context = self.null_context.expand(b, 1, -1)
                context_mask = None
            elif drop is not None:
                context = torch.where(drop[:, None, None], self.null_context.to(context.dtype), context)
                if context_mask is not None:
                    context_mask = context_mask | drop[:, None]
            ctx = self.context_proj(context.to(x.dtype))
            mask = context_mask
            weights = torch.ones(ctx.shape[:2], device=x.device, dtype=ctx.dtype) if mask is None else mask.to(ctx.dtype)
            pooled = (ctx * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp_min(1.0)
            c = c + self.pooled_mlp(pooled)
        h = self.proj_in(x)
        for block in self.blocks:
            h = block(h, c, ctx, mask)
        shift, scale = self.ada_out(c).chunk(2, dim=-1)
        return self.proj_out(_modulate(self.norm_out(h), shift, scale))


__all__ = ["Attention", "SetBlock", "SetTransformer", "SetTransformerConfig", "timestep_features"]
