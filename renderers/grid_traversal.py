"""Packed, loop-free empty-space skipping through a max-pooled occupancy pyramid.

Pure-torch building blocks of :meth:`renderers.occupancy_grid.OccupancyGrid.traverse`
(CPU and CUDA; devices come from the inputs). A ray's interval ``[a, b]`` inside a grid box
is cut at every cell plane it crosses (``t = (plane - o) / d``, computed analytically); the
pieces lie in one cell each and are kept when that cell is occupied. Starting from the
coarsest level of a max-pooled pyramid, only the kept pieces are cut again at the next
finer level, whose planes inside one parent cell are known (``factor - 1`` per axis), so the
work follows the occupied space instead of the ray length. Everything is batched over
intervals with a per-row sort of a handful of plane distances; there are no Python loops
over rays, only over pyramid levels.

The constant-step samples (``t_k = t_0 + k * step``, the same global grid as a dense
marcher) are then emitted only where their midpoint falls in a kept interval, via
``repeat_interleave`` over per-interval step ranges. The ranges are widened by a small
``eps`` against rounding at cell planes and de-overlapped; the caller filters the
candidates with the exact finest-level occupancy lookup, so the result equals a dense march
filtered by the grid.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

__all__ = ["expand_ranges", "occupied_intervals", "step_ranges"]


def occupied_intervals(
    rays: Float[Tensor, "R 9"],
    ray: Int[Tensor, " I"],
    a: Float[Tensor, " I"],
    b: Float[Tensor, " I"],
    lo: Float[Tensor, " 3"],
    extent: Float[Tensor, " 3"],
    pyramid: list[Bool[Tensor, "Gl Gl Gl"]],
    factor: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Sub-intervals of ``[a, b]`` (inside the box ``lo + [0, extent]``) in occupied cells.

    Args:
        rays: per ray ``(origin, direction, 1 / direction)`` (inf where a component is 0),
            packed so one gather fetches all three.
        ray, a, b: I input intervals (ray index, start, end), sorted by ray then ``a``,
            disjoint, each inside the box.
        lo, extent: the box's minimum corner and edge lengths.
        pyramid: occupancy grids from coarsest to finest; each level's resolution is
            ``factor`` times the previous one.
        factor: refinement between consecutive pyramid levels.

    Returns:
        ``(ray, a, b)`` of the pieces lying in occupied cells of the finest pyramid level, in
        the same order (sorted by ray then ``t``). A piece of length zero is dropped.
    """
    parent: Tensor | None = None
    inside = torch.arange(1, factor, device=a.device, dtype=a.dtype)
    for occ in pyramid:
        res = occ.shape[-1]
        if len(ray) == 0:
            break
        cs = extent / res
        rd = rays[ray]
        o, d, inv = rd[:, :3], rd[:, 3:6], rd[:, 6:]
        if parent is None:  # every plane of the level: (I, 3, res + 1)
            idx = torch.arange(res + 1, device=a.device, dtype=a.dtype).expand(3, -1)
            planes = (lo[:, None] + idx * cs[:, None])[None]
        else:  # the factor - 1 interior planes of the parent cell, per axis: (I, 3, f - 1)
            idx = parent.to(a.dtype)[..., None] * factor + inside
            planes = lo[:, None] + idx * cs[:, None]
        t = ((planes - o[..., None]) * inv[..., None]).flatten(1)
        # Outside (a, b) -- or NaN for an axis-parallel ray on a plane -- sorts to the end.
        t = torch.where((t > a[:, None]) & (t < b[:, None]), t, torch.full_like(t, torch.inf))
        t = torch.cat([a[:, None], t, b[:, None]], 1).sort(1).values
        s, e = t[:, :-1], t[:, 1:]
        x = o[:, None] + (0.5 * (s + e))[..., None] * d[:, None]
        ijk = ((x - lo) / cs).floor_().long().clamp_(0, res - 1)
        flat = (ijk[..., 0] * res + ijk[..., 1]) * res + ijk[..., 2]
        keep = (e < torch.inf) & (e > s) & occ.reshape(-1)[flat]
        sel = keep.reshape(-1).nonzero()[:, 0]
        n_seg = s.shape[1]
        ray = ray[torch.div(sel, n_seg, rounding_mode="floor")]
        a, b = s.reshape(-1)[sel], e.reshape(-1)[sel]
        parent = ijk.reshape(-1, 3)[sel]
    return ray, a, b


def step_ranges(
    ray: Int[Tensor, " I"],
    a: Float[Tensor, " I"],
    b: Float[Tensor, " I"],
    t0: Float[Tensor, " R"],
    n_steps: Int[Tensor, " R"],
    step: float,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-interval ranges ``[k_lo, k_hi)`` of steps whose midpoint lies in ``[a - eps, b + eps)``.

    Step ``k`` of ray ``r`` is ``[t0 + k step, t0 + (k + 1) step]``. The intervals must be
    sorted by ray then ``a`` and disjoint; the returned ranges are clipped so they do not
    overlap (widening by ``eps`` could make neighbours share a step) and to ``[0, n_steps)``.
    """
    tr = t0[ray]
    k_lo = torch.ceil((a - eps - tr) / step - 0.5).long()
    k_hi = torch.ceil((b + eps - tr) / step - 0.5).long()
    n = n_steps[ray]
    k_lo = torch.minimum(k_lo.clamp_min(0), n)
    k_hi = torch.minimum(k_hi.clamp_min(0), n)
    if len(ray) > 1:  # k_hi is non-decreasing along one ray, so the previous one bounds k_lo
        same = ray[1:] == ray[:-1]
        prev = torch.where(same, k_hi[:-1], torch.zeros_like(k_hi[:-1]))
        k_lo = torch.cat([k_lo[:1], torch.maximum(k_lo[1:], prev)])
    return ray, k_lo, torch.maximum(k_hi, k_lo)


def expand_ranges(
    ray: Int[Tensor, " I"], k_lo: Int[Tensor, " I"], k_hi: Int[Tensor, " I"]
) -> tuple[Tensor, Tensor]:
    """Packed ``(ray, k)`` of every step in the ranges, in order (no Python loops)."""
    counts = k_hi - k_lo
    total = int(counts.sum()) if len(counts) else 0
    rng = torch.repeat_interleave(
        torch.arange(len(counts), device=ray.device), counts, output_size=total
    )
    offset = torch.cumsum(counts, 0) - counts
    k = k_lo[rng] + torch.arange(total, device=ray.device) - offset[rng]
    return ray[rng], k
