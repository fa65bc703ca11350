"""View-aware local cross-attention from voxels to sketch patches (LAS-Diffusion, arXiv 2305.04461, Sec. 4.2).

Every voxel centre of a ``r^3`` feature grid over [-1, 1]^3 (:func:`shapegen.geometry.voxels.voxel_centers`)
is projected into the sketch with the view's ``3 x 4`` camera matrix ``P`` (pixels: ``u`` right,
``v`` down, centres at ``+0.5``; :func:`shapegen.data.sketches.view_projection`). Patch tokens are in
row-major order over a ``p x p`` grid (token ``row * p + col``, row along ``v``), as a conv or ViT
patch embedding of the image produces them. A voxel may attend to patch ``(row, col)`` only if the
distance from its projection to the patch centre, in patch widths, is at most the radius ``r``:

    mask[n, row * p + col] = || (u_n, v_n) / patch_px - (col + 1/2, row + 1/2) || <= r

The patch nearest to the (clamped) projection is always admitted, so no row is empty. Samples
without a view (``proj`` rows of NaN, LAS view index -1) attend globally.

Queries are voxel features plus a 3D sinusoidal encoding of the centre; keys and values are a
linear map of the patch tokens plus a 2D sinusoidal encoding of the patch centre (LAS adds
positional encodings on both sides).
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Bool, Float
from torch import Tensor, nn

from shapegen.geometry.voxels import voxel_centers

__all__ = ["LocalCrossAttention", "local_attention_mask", "sinusoidal_encoding", "training_radius"]


def sinusoidal_encoding(x: Float[Tensor, "... D"], dim: int, max_period: float = 100.0) -> Float[Tensor, "... C"]:
    """Concatenated sin/cos features of each coordinate, ``dim`` channels in all (zero-padded)."""
    d = x.shape[-1]
    per = max(1, dim // (2 * d))
    freqs = torch.exp(-math.log(max_period) * torch.arange(per, device=x.device, dtype=x.dtype) / per) * math.pi
    ang = x[..., None] * freqs  # ... D per
    enc = torch.cat([ang.sin(), ang.cos()], -1).flatten(-2)
    return nn.functional.pad(enc, (0, dim - enc.shape[-1]))


def training_radius(batch: int, generator: torch.Generator | None = None, device=None) -> Float[Tensor, " B"]:
    """LAS's training radius ``|N(0, 1)| * 4 + sqrt(2) / 2`` (patch widths), one per sample."""
    return torch.randn(batch, generator=generator, device=device).abs() * 4 + math.sqrt(2) / 2


def local_attention_mask(
    resolution: int,
    proj: Float[Tensor, "B 3 4"],
    patches: int,
    image_size: int,
    radius: float | Float[Tensor, " B"],
) -> Bool[Tensor, "B N P"]:
    """Which patches each voxel may attend to (see the module doc).

    Args:
        resolution: side ``r`` of the voxel grid (``N = r^3`` voxels, ``ij`` order).
        proj: per-sample world-to-pixel matrices; a sample whose matrix holds NaN attends globally.
        patches: side ``p`` of the patch grid (``P = p^2`` tokens).
        image_size: sketch side in pixels (the projection's image).
        radius: admission radius in patch widths, a float or one per sample.

    Returns:
        ``B N P`` boolean mask, True where attention is allowed.
    """
    b = proj.shape[0]
    dev = proj.device
    centres = voxel_centers(resolution, dev).reshape(-1, 3)
    global_view = torch.isnan(proj).flatten(1).any(1)
    p = torch.nan_to_num(proj)
    uvw = torch.einsum("bij,nj->bni", p[:, :, :3], centres) + p[:, None, :, 3]
    uv = uvw[..., :2] / uvw[..., 2:].clamp_min(1e-6)
    uv = uv / (image_size / patches)  # patch units
    idx = torch.arange(patches, device=dev, dtype=uv.dtype) + 0.5
    pc = torch.stack(torch.meshgrid(idx, idx, indexing="ij"), -1).reshape(-1, 2).flip(-1)  # (col, row) per token
    dist = torch.cdist(uv, pc[None].expand(b, -1, -1))  # B N P
    r = torch.as_tensor(radius, dtype=uv.dtype, device=dev).reshape(-1, 1, 1)
    mask = dist <= r
    # Always admit the patch nearest to the projection clamped into the image.
    clamped = uv.clamp(0.5, patches - 0.5)
    nearest = (clamped[..., 1].floor().clamp(0, patches - 1) * patches + clamped[..., 0].floor().clamp(0, patches - 1)).long()
    mask.scatter_(2, nearest[..., None], True)
    return mask | global_view[:, None, None]


class LocalCrossAttention(nn.Module):
    """Masked multi-head cross-attention from a voxel grid to patch tokens, residual.

    Args:
        dim: voxel feature channels.
        context_dim: patch token channels.
        heads: attention heads.
        dropout: attention dropout.
    """

    def __init__(self, dim: int, context_dim: int, heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(min(32, dim // 4) or 1, dim)
        self.q = nn.Conv3d(dim, dim, 1)
        self.kv = nn.Linear(context_dim, 2 * dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.out = nn.Linear(dim, dim)
        self.dim = dim

    def forward(
        self,
        h: Float[Tensor, "B C r r r"],
        tokens: Float[Tensor, "B P Ct"],
        mask: Bool[Tensor, "B N P"] | None = None,
    ) -> Float[Tensor, "B C r r r"]:
        """Attend from every voxel to the admitted tokens (``mask`` None: to all)."""
        b, c, r = h.shape[0], h.shape[1], h.shape[-1]
        p = round(math.sqrt(tokens.shape[1]))
        q = self.q(self.norm(h)).flatten(2).transpose(1, 2)
        q = q + sinusoidal_encoding(voxel_centers(r, h.device).reshape(-1, 3), c).to(q.dtype)
        k, v = self.kv(tokens).chunk(2, -1)
        idx = torch.arange(p, device=h.device, dtype=q.dtype) + 0.5
        pc = torch.stack(torch.meshgrid(idx, idx, indexing="ij"), -1).reshape(-1, 2) / p * 2 - 1
        k = k + sinusoidal_encoding(pc, c).to(k.dtype)
        attn_mask = None
        if mask is not None:
            # nn.MultiheadAttention: True = *not* allowed, shape (B * heads, N, P).
            attn_mask = (~mask).repeat_interleave(self.attn.num_heads, 0)
        o, _ = self.attn(q, k, v, attn_mask=attn_mask, need_weights=False)
        return h + self.out(o).transpose(1, 2).reshape(b, c, r, r, r)
