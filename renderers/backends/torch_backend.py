"""Pure-torch reference backend: packed transmittance, weights and accumulation.

Runs on CPU and CUDA and defines correctness for every other backend. Packed per-ray scans
are done exactly on a zero-padded ``(R, S_max)`` view (one scatter, one ``cumsum`` /
``cumprod``, one gather) rather than a global cumulative sum with per-ray offsets: the
global version loses float32 precision once sums grow large (e.g. VolSDF's 1e10 last
interval), the padded one does not, and its autograd is exact (``gradcheck`` in float64).
Cost: memory ``R * S_max``; chunk rays if one ray has far more samples than the rest.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

NAME = "torch"


def _padded_index(ray_indices: Int[Tensor, " N"], n_rays: int) -> tuple[Tensor, int]:
    """Column of every packed sample in a ``(R, S_max)`` padded view, and ``S_max``."""
    n = ray_indices.shape[0]
    if n == 0:
        return ray_indices, 0
    if n > 1 and bool((ray_indices[1:] < ray_indices[:-1]).any()):
        raise ValueError("ray_indices must be sorted (samples of one ray contiguous)")
    counts = torch.bincount(ray_indices, minlength=n_rays)
    starts = torch.cumsum(counts, 0) - counts
    col = torch.arange(n, device=ray_indices.device) - starts[ray_indices]
    return col, int(counts.max())


def exclusive_scan(
    x: Float[Tensor, " N"] | Float[Tensor, "R S"],
    ray_indices: Int[Tensor, " N"] | None,
    n_rays: int | None,
    op: str,
) -> Tensor:
    """Per-ray exclusive sum (``op='sum'``) or product (``op='prod'``) along the samples."""
    if ray_indices is None:  # dense (R, S)
        pad = torch.zeros_like(x[..., :1]) if op == "sum" else torch.ones_like(x[..., :1])
        shifted = torch.cat([pad, x[..., :-1]], -1)
        return torch.cumsum(shifted, -1) if op == "sum" else torch.cumprod(shifted, -1)
    col, s_max = _padded_index(ray_indices, n_rays)
    if s_max == 0:
        return x.clone()
    fill = 0.0 if op == "sum" else 1.0
    dense = x.new_full((n_rays, s_max + 1), fill)
    dense = dense.index_put((ray_indices, col + 1), x)  # shift by one column: exclusive
    scanned = torch.cumsum(dense, 1) if op == "sum" else torch.cumprod(dense, 1)
    return scanned[ray_indices, col]


def transmittance_from_alpha(alphas, ray_indices=None, n_rays=None):
    """T_i = prod_{j<i} (1 - alpha_j)."""
    return exclusive_scan(1.0 - alphas, ray_indices, n_rays, "prod")


def weights_from_alpha(alphas, ray_indices=None, n_rays=None):
    """(weights, transmittance) with w_i = T_i alpha_i."""
    trans = transmittance_from_alpha(alphas, ray_indices, n_rays)
    return trans * alphas, trans


def weights_from_density(t_starts, t_ends, sigmas, ray_indices=None, n_rays=None):
    """(weights, transmittance, alphas); T_i = exp(-sum_{j<i} sigma_j delta_j) (NeRF Eq. 3)."""
    tau = sigmas * (t_ends - t_starts)
    trans = torch.exp(-exclusive_scan(tau, ray_indices, n_rays, "sum"))
    alphas = 1.0 - torch.exp(-tau)
    return trans * alphas, trans, alphas


def accumulate(
    weights: Float[Tensor, " N"] | Float[Tensor, "R S"],
    values: Float[Tensor, "N C"] | Float[Tensor, "R S C"] | None,
    ray_indices: Int[Tensor, " N"] | None = None,
    n_rays: int | None = None,
) -> Float[Tensor, "R C"]:
    """sum_i w_i v_i per ray (values None: sum_i w_i, shape (R, 1))."""
    src = weights[..., None] if values is None else weights[..., None] * values
    if ray_indices is None:
        return src.sum(-2)
    out = src.new_zeros((n_rays, src.shape[-1]))
    return out.index_add(0, ray_indices, src)
