"""Analytic signed distance functions and CSG operators (exact where stated).

Used as analytic goldens in tests and as the embedded default shape of ``shapegen demo``.
All functions take ``N 3`` points and return ``N`` signed distances, negative inside.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

SDF = Callable[[Float[Tensor, "N 3"]], Float[Tensor, " N"]]


def _vec(v: Sequence[float] | Tensor, like: Tensor) -> Tensor:
    return torch.as_tensor(v, dtype=like.dtype, device=like.device)


def sphere(center: Sequence[float] = (0.0, 0.0, 0.0), radius: float = 0.5) -> SDF:
    """Exact SDF of a sphere."""
    return lambda p: (p - _vec(center, p)).norm(dim=-1) - radius


def box(center: Sequence[float] = (0.0, 0.0, 0.0), half_size: Sequence[float] = (0.5, 0.5, 0.5), rounding: float = 0.0) -> SDF:
    """Exact SDF of an axis-aligned box, optionally with rounded edges of radius ``rounding``."""

    def f(p: Tensor) -> Tensor:
        q = (p - _vec(center, p)).abs() - (_vec(half_size, p) - rounding)
        outside = q.clamp_min(0).norm(dim=-1)
        inside = q.amax(dim=-1).clamp_max(0)
        return outside + inside - rounding

    return f


def torus(center: Sequence[float] = (0.0, 0.0, 0.0), major: float = 0.5, minor: float = 0.2) -> SDF:
    """Exact SDF of a torus around the Y axis."""

    def f(p: Tensor) -> Tensor:
        q = p - _vec(center, p)
        ring = torch.sqrt(q[:, 0] ** 2 + q[:, 2] ** 2) - major
        return torch.sqrt(ring**2 + q[:, 1] ** 2) - minor

    return f


def capsule(a: Sequence[float], b: Sequence[float], radius: float) -> SDF:
    """Exact SDF of a capsule (segment ``a``-``b`` swept by a ball)."""

    def f(p: Tensor) -> Tensor:
        pa, ba = p - _vec(a, p), _vec(b, p) - _vec(a, p)
        h = ((pa @ ba) / (ba @ ba)).clamp(0, 1)
        return (pa - h[:, None] * ba).norm(dim=-1) - radius

    return f


def union(*sdfs: SDF) -> SDF:
    """Union (min); exact outside, a bound inside."""
    return lambda p: torch.stack([f(p) for f in sdfs]).amin(0)


def smooth_union(*sdfs: SDF, k: float = 0.05) -> SDF:
    """Polynomial smooth minimum of several SDFs with blend radius ``k``."""

    def f(p: Tensor) -> Tensor:
        d = sdfs[0](p)
        for g in sdfs[1:]:
            e = g(p)
            h = (0.5 + 0.5 * (e - d) / k).clamp(0, 1)
            d = torch.lerp(e, d, h) - k * h * (1 - h)
        return d

    return f


def subtract(a: SDF, b: SDF) -> SDF:
    """``a`` minus ``b`` (max(a, -b)); a bound, not exact."""
    return lambda p: torch.maximum(a(p), -b(p))


def demo_chair() -> SDF:
    """The embedded default shape: a rounded chair of boxes, about 1.6 units tall, Y up."""
    seat = box((0.0, 0.0, 0.0), (0.42, 0.05, 0.42), rounding=0.02)
    back = box((0.0, 0.42, -0.38), (0.42, 0.38, 0.04), rounding=0.02)
    legs = [capsule((x, -0.75, z), (x, 0.0, z), 0.045) for x in (-0.36, 0.36) for z in (-0.36, 0.36)]
    rail = box((0.0, 0.55, -0.38), (0.3, 0.06, 0.06))
    return smooth_union(subtract(union(seat, back), rail), *legs, k=0.03)
