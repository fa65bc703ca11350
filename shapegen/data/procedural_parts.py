"""Bounded SDF primitives for the procedural shape set: each part knows its axis-aligned box.

The procedural generators (:mod:`shapegen.data.procedural`) assemble objects from these parts
and normalise them into ``[-1, 1]^3`` from the union of the parts' analytic boxes, so no mesh
is needed to place a shape. Every SDF here is exact (or, for CSG, a 1-Lipschitz bound), which
:func:`shapegen.geometry.extract.extract_mesh`'s sparse path relies on. Units are metres in the
shapegen frame: +Y up, +Z front, a chair's seat facing +Z.

Exact distance formulas follow Inigo Quilez, "distance functions" (iquilezles.org, 2013):
vertical capped cylinder, capped cone, torus, capsule and (rotated) box.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from shapegen.geometry.primitives import SDF

#: Initial value of a banded union (metres): larger than any distance in a scene.
FAR = 1e6


@dataclass(frozen=True)
class Part:
    """One solid: its SDF and an axis-aligned box that contains it.

    Attributes:
        sdf: ``N 3`` points to ``N`` signed distances (negative inside), metres.
        lo: min corner of a box containing the solid.
        hi: max corner of that box.
    """

    sdf: SDF
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]


def _t(v: Sequence[float], p: Tensor) -> Tensor:
    return torch.tensor(v, dtype=p.dtype, device=p.device)


def _bounds(lo: Sequence[float], hi: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return tuple(float(x) for x in lo), tuple(float(x) for x in hi)


def rotation_x(deg: float) -> np.ndarray:
    """Rotation matrix about +X by ``deg`` degrees (positive tips +Y towards +Z)."""
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def box(center: Sequence[float], half: Sequence[float], rounding: float = 0.0, rotation: np.ndarray | None = None) -> Part:
    """A box with half sizes ``half``, edges rounded by ``rounding``, optionally rotated about its centre.

    Args:
        center: centre in world coordinates.
        half: half sizes along the box's own axes (before rotation).
        rounding: edge radius (kept below the smallest half size).
        rotation: ``3 3`` matrix taking box axes to world axes; None keeps it axis-aligned.
    """
    rounding = min(rounding, 0.999 * min(half))
    c, h = np.asarray(center, float), np.asarray(half, float)
    rot = None if rotation is None else np.asarray(rotation, float)

    def f(p: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        q = p - _t(c, p)
        if rot is not None:
            q = q @ _t(rot, p)  # world -> box frame: R^T q, written row-wise as q R
        q = q.abs() - _t(h - rounding, p)
        return q.clamp_min(0).norm(dim=-1) + q.amax(dim=-1).clamp_max(0) - rounding

    if rot is None:
        return Part(f, *_bounds(c - h, c + h))
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * h @ rot.T + c
    return Part(f, *_bounds(corners.min(0), corners.max(0)))


def cylinder(center: Sequence[float], radius: float, half_height: float, rounding: float = 0.0) -> Part:
    """A vertical (+Y) capped cylinder, edges rounded by ``rounding``."""
    rounding = min(rounding, 0.999 * min(radius, half_height))
    c = np.asarray(center, float)

    def f(p: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        q = p - _t(c, p)
        d = torch.stack([torch.hypot(q[:, 0], q[:, 2]) - (radius - rounding), q[:, 1].abs() - (half_height - rounding)], -1)
        return d.clamp_min(0).norm(dim=-1) + d.amax(dim=-1).clamp_max(0) - rounding

    e = np.array([radius, half_height, radius])
    return Part(f, *_bounds(c - e, c + e))


def cone(center: Sequence[float], r_bottom: float, r_top: float, half_height: float) -> Part:
    """A vertical capped cone (frustum) centred at ``center``, radii at the bottom and the top."""
    c = np.asarray(center, float)
    k2x, k2y = r_top - r_bottom, 2.0 * half_height
    k2n = k2x * k2x + k2y * k2y

    def f(p: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        q = p - _t(c, p)
        qx, qy = torch.hypot(q[:, 0], q[:, 2]), q[:, 1]
        rad = torch.where(qy < 0, torch.full_like(qx, r_bottom), torch.full_like(qx, r_top))
        cax, cay = qx - torch.minimum(qx, rad), qy.abs() - half_height
        t = (((r_top - qx) * k2x + (half_height - qy) * k2y) / k2n).clamp(0, 1)
        cbx, cby = qx - r_top + k2x * t, qy - half_height + k2y * t
        sign = torch.where((cbx < 0) & (cay < 0), -1.0, 1.0).to(q.dtype)
        return sign * torch.sqrt(torch.minimum(cax * cax + cay * cay, cbx * cbx + cby * cby))

    r = max(r_bottom, r_top)
    e = np.array([r, half_height, r])
    return Part(f, *_bounds(c - e, c + e))


def sphere(center: Sequence[float], radius: float) -> Part:
    """A ball."""
    c = np.asarray(center, float)
    return Part(lambda p: (p - _t(c, p)).norm(dim=-1) - radius, *_bounds(c - radius, c + radius))


def capsule(a: Sequence[float], b: Sequence[float], radius: float) -> Part:
    """A segment ``a``-``b`` swept by a ball of ``radius`` (round legs, rods, arms)."""
    a_, b_ = np.asarray(a, float), np.asarray(b, float)
    ba = b_ - a_
    inv = 1.0 / max(float(ba @ ba), 1e-12)

    def f(p: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        pa = p - _t(a_, p)
        h = ((pa @ _t(ba, p)) * inv).clamp(0, 1)
        return (pa - h[:, None] * _t(ba, p)).norm(dim=-1) - radius

    return Part(f, *_bounds(np.minimum(a_, b_) - radius, np.maximum(a_, b_) + radius))


def torus_z(center: Sequence[float], major: float, minor: float) -> Part:
    """A torus whose ring lies in the XY plane (axis +Z): a mug handle seen from the front."""
    c = np.asarray(center, float)

    def f(p: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        q = p - _t(c, p)
        return torch.hypot(torch.hypot(q[:, 0], q[:, 1]) - major, q[:, 2]) - minor

    e = np.array([major + minor, major + minor, minor])
    return Part(f, *_bounds(c - e, c + e))


def torus_y(center: Sequence[float], major: float, minor: float) -> Part:
    """A horizontal ring (axis +Y): rims, foot rings, stretcher hoops."""
    c = np.asarray(center, float)

    def f(p: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        q = p - _t(c, p)
        return torch.hypot(torch.hypot(q[:, 0], q[:, 2]) - major, q[:, 1]) - minor

    e = np.array([major + minor, minor, major + minor])
    return Part(f, *_bounds(c - e, c + e))


def revolve(profile: Sequence[Sequence[float]]) -> Part:
    """A solid of revolution about the +Y axis: the closed polygon ``profile`` of ``(r, y)`` points
    (``r >= 0``, vertices in order, not self-intersecting) swept around the axis (vases, bowls).

    Exact: the distance to the revolved solid is the 2D distance of ``(hypot(x, z), y)`` to the
    polygon, since the nearest point of the solid lies in the half plane through the point.
    """
    v = np.asarray(profile, float)
    if v.ndim != 2 or v.shape[1] != 2 or len(v) < 3 or (v[:, 0] < 0).any():
        raise ValueError("a revolved profile needs at least 3 (r, y) points with r >= 0")
    prev = np.roll(v, 1, axis=0)  # edge i runs from vertex i - 1 to vertex i
    edges = prev - v

    def f(p: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        q = torch.stack([torch.hypot(p[:, 0], p[:, 2]), p[:, 1]], -1)
        d = torch.full((q.shape[0],), math.inf, dtype=p.dtype, device=p.device)
        inside = torch.zeros(q.shape[0], dtype=torch.bool, device=p.device)
        for (vx, vy), (ex, ey), (_, py) in zip(v, edges, prev):
            wx, wy = q[:, 0] - vx, q[:, 1] - vy
            if vx > 0 or vx + ex > 0:  # an edge on the axis is inside the solid, not on its surface
                t = ((wx * ex + wy * ey) / max(ex * ex + ey * ey, 1e-18)).clamp(0, 1)
                d = torch.minimum(d, (wx - ex * t) ** 2 + (wy - ey * t) ** 2)
            # Crossing number: the edge straddles the point's height on its right side.
            up, below, left = q[:, 1] >= vy, q[:, 1] < py, ex * wy > ey * wx
            inside ^= (up & below & left) | (~up & ~below & ~left)
        return torch.where(inside, -1.0, 1.0).to(p.dtype) * d.sqrt()

    r, y0, y1 = float(v[:, 0].max()), float(v[:, 1].min()), float(v[:, 1].max())
    return Part(f, (-r, y0, -r), (r, y1, r))


def shell(part: Part, thickness: float) -> Part:
    """The surface of ``part`` thickened to a solid wall of ``thickness`` (centred on it)."""
    half = thickness / 2
    return Part(lambda p: part.sdf(p).abs() - half, *_bounds(np.subtract(part.lo, half), np.add(part.hi, half)))


def clip_y(part: Part, y_min: float = -math.inf, y_max: float = math.inf) -> Part:
    """``part`` restricted to the slab ``y_min <= y <= y_max`` (an intersection: a bound)."""

    def f(p: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        d = part.sdf(p)
        if y_max < math.inf:
            d = torch.maximum(d, p[:, 1] - y_max)
        if y_min > -math.inf:
            d = torch.maximum(d, y_min - p[:, 1])
        return d

    lo, hi = list(part.lo), list(part.hi)
    lo[1], hi[1] = max(lo[1], y_min), min(hi[1], y_max)
    return Part(f, *_bounds(lo, hi))


def smooth_min(d: Tensor, e: Tensor, k: float) -> Tensor:
    """Polynomial smooth minimum with blend radius ``k`` (plain min for ``k <= 0``).

    Homogeneous: ``smooth_min(s d, s e, s k) = s smooth_min(d, e, k)``, so it commutes with scaling.
    """
    if k <= 0:
        return torch.minimum(d, e)
    h = (0.5 + 0.5 * (e - d) / k).clamp(0, 1)
    return torch.lerp(e, d, h) - k * h * (1 - h)


def union_parts(parts: Sequence[Part], smooth: float = 0.0, band: float = math.inf) -> SDF:
    """The union of ``parts``: min, or the polynomial smooth min with blend radius ``smooth``.

    The smooth min's gradient is a convex combination of the parts' gradients, so the result
    stays 1-Lipschitz (what sparse extraction assumes); it bulges at most ``smooth / 4`` out.

    Args:
        parts: the solids.
        smooth: blend radius (0: plain min).
        band: truncate the result at ``band``. Each part is then evaluated only at points
            inside its box grown by ``band``, since elsewhere its distance is at least ``band``.
            The result is ``min(sdf, band)`` exactly for a plain union, and for a smooth one
            wherever ``sdf < band - smooth`` (a skipped part can only lower values within
            ``smooth`` of the band): the same surface at a fraction of the cost for many
            small parts, still 1-Lipschitz and a lower bound on the distance.
    """
    fns = [q.sdf for q in parts]
    boxes = [(np.asarray(q.lo) - band, np.asarray(q.hi) + band) for q in parts]

    def combine(d: Tensor, e: Tensor) -> Tensor:
        return smooth_min(d, e, smooth)

    def exact(p: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        d = fns[0](p)
        for g in fns[1:]:
            d = combine(d, g(p))
        return d

    def banded(p: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        # Start far above the band (the smooth min of a part with it is the part itself).
        d = torch.full((p.shape[0],), FAR, dtype=p.dtype, device=p.device)
        for g, (lo, hi) in zip(fns, boxes):
            inside = ((p >= _t(lo, p)) & (p <= _t(hi, p))).all(dim=-1)
            idx = inside.nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            if idx.numel() > 0.7 * p.shape[0]:  # gathering would cost more than it saves
                d = combine(d, g(p))
            else:
                d[idx] = combine(d[idx], g(p[idx]))
        return d.clamp_max(band)

    return exact if math.isinf(band) else banded


def bounds_of(parts: Sequence[Part]) -> tuple[np.ndarray, np.ndarray]:
    """Min and max corners of the union of the parts' boxes."""
    return np.min([q.lo for q in parts], axis=0), np.max([q.hi for q in parts], axis=0)
