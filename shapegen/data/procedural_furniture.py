"""The ``rich`` variant of the chair, table and mug generators: furniture families seen in real sets.

The classic generators (:mod:`shapegen.data.procedural_classes`) draw one parametric family per
class, and a model trained on them learns that family rather than furniture. The generators here
first draw a ``family`` and then its own parameters; the ``classic`` family replays the classic
generator unchanged, so the rich space contains the classic one.

* chair: classic; dining (square, round, turned, tapered or splayed legs; none, H, box or side
  stretchers; rear legs running on as back posts; ladder, spindle, splat, solid or upholstered
  backs; optional thin arms); office (gas lift, 5-star base, casters, upholstered seat and back on
  a spine, T arms, headrest); armchair (thick upholstered arms and back on a plinth or short legs);
  stool (3-4 splayed or turned legs with a foot ring or stretchers, or a bar pedestal, optional low
  back); cantilever (one bent tube per side); shell (a bucket or egg shell on a pedestal).
* table: classic; legs (square, round, turned or tapered, optionally splayed; apron with drawers;
  none, H, X or box stretchers; lower shelf); pedestal (plain, turned or tapered column on a
  tripod, four spokes, a disc or a cross); trestle (end frames, a long stretcher); glass (a thin top
  on a slender frame). Tops are rectangular, square, round or oval.
* mug: classic; tumbler (no handle: straight, tapered or barrel); teacup (wide and low, small
  handle, optional saucer); tankard (tall, big handle); mug (profiled body with ring, D, angular,
  open-C or twin handles, optional saucer).

Every rich shape also records the keys :mod:`shapegen.data.captions` reads for its class
(``back``, ``support``, ``top_shape``, ``handle``...), said in the classic vocabulary, so captions,
attributes and previews work unchanged. :func:`shapegen.data.procedural.from_params` recognises
a rich shape by its ``family`` parameter. Units are metres in the shapegen frame (+Y up, floor at
y = 0, a chair facing +Z, a mug's handle on +X).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from shapegen.data.procedural_classes import Assembly, Params, _profile_radius, _vessel, chair, mug, table
from shapegen.data.procedural_parts import Part, box, capsule, clip_y, cylinder, revolve, rotation_x, shell, sphere, torus_y, torus_z

CHAIR_FAMILIES = ("classic", "dining", "office", "armchair", "stool", "cantilever", "shell")
TABLE_FAMILIES = ("classic", "legs", "pedestal", "trestle", "glass")
MUG_FAMILIES = ("classic", "tumbler", "teacup", "tankard", "mug")


def _record(P: Params, name: str, value: Any) -> Any:
    """Record a derived value under ``name`` (replayed as recorded): the caption keys.

    A key already drawn must already hold ``value`` (recording would overwrite what was drawn).
    """
    if not P.replay and name in P.values and P.values[name] != value:
        raise AssertionError(f"caption key '{name}' was drawn as {P.values[name]!r}, not {value!r}")
    return P._get(name, lambda: value)


# ------------------------------------------------------------------------------------ helpers
def moved(part: Part, offset: Sequence[float]) -> Part:
    """``part`` translated by ``offset`` (metres)."""
    o = np.asarray(offset, float)
    fn = part.sdf

    def f(p: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        return fn(p - torch.as_tensor(o, dtype=p.dtype, device=p.device))

    return Part(f, tuple(float(x) for x in np.add(part.lo, o)), tuple(float(x) for x in np.add(part.hi, o)))


def tapered_rod(a: Sequence[float], b: Sequence[float], ra: float, rb: float) -> Part:
    """A rod from ``a`` (radius ``ra``) to ``b`` (radius ``rb``) with round ends.

    The distance to the axis less the interpolated radius, divided by ``sqrt(1 + k^2)`` with
    ``k`` the radius slope, so the field stays 1-Lipschitz (a bound, exact for ``ra = rb``).
    """
    a_, b_ = np.asarray(a, float), np.asarray(b, float)
    ba = b_ - a_
    length2 = max(float(ba @ ba), 1e-12)
    k = (rb - ra) / math.sqrt(length2)
    norm = math.sqrt(1 + k * k)

    def f(p: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        pa = p - torch.as_tensor(a_, dtype=p.dtype, device=p.device)
        bat = torch.as_tensor(ba, dtype=p.dtype, device=p.device)
        h = ((pa @ bat) / length2).clamp(0, 1)
        return ((pa - h[:, None] * bat).norm(dim=-1) - (ra + (rb - ra) * h)) / norm

    r = max(ra, rb)
    return Part(f, tuple(float(x) for x in np.minimum(a_, b_) - r), tuple(float(x) for x in np.maximum(a_, b_) + r))


def turned(x: float, z: float, y0: float, y1: float, r: float, beads: int, rng_t: Sequence[float]) -> Part:
    """A lathe-turned vertical leg or column from ``y0`` to ``y1`` at ``(x, z)``: radius ``r``
    with ``beads`` rings (at height fractions ``rng_t``) and a thinner waist between them."""
    prof: list[tuple[float, float]] = [(0.0, y0), (r * 0.8, y0)]
    marks = sorted(rng_t)[:beads]
    for t in marks:
        y = y0 + (y1 - y0) * t
        h = (y1 - y0) * 0.03
        prof += [(r * 0.75, y - 2 * h), (r * 1.25, y - h), (r * 1.25, y + h), (r * 0.75, y + 2 * h)]
    prof += [(r, y1), (0.0, y1)]
    # Keep the profile's heights increasing (beads closer than their width overlap otherwise).
    ys = np.maximum.accumulate(np.array([q[1] for q in prof]))
    prof = [(q[0], float(y)) for q, y in zip(prof, ys)]
    clean = [prof[0]] + [q for q, prev in zip(prof[1:], prof[:-1]) if q != prev]
    return moved(revolve(clean), (x, 0.0, z))


def _leg(style: str, x: float, z: float, top: float, r: float, splay: float, beads: int) -> Part:
    """One leg from the floor to ``top`` at ``(x, z)`` in ``style`` (splay pushes the foot outwards)."""
    k = 1 + splay / max(math.hypot(x, z), 1e-6)
    fx, fz = x * k, z * k
    if style == "square":
        return box((x, top / 2, z), (r, top / 2, r))
    if style == "turned":
        return turned(x, z, 0.0, top, r, beads, (0.15, 0.55, 0.8))
    if style == "tapered":
        return tapered_rod((fx, r * 0.6, fz), (x, top, z), r * 0.6, r)
    return capsule((fx, r, fz), (x, top, z), r)


def _stretchers(A: Assembly, feet: list[tuple[float, float]], tops: list[tuple[float, float]], top_y: float, kind: str,
                y: float, r: float) -> None:
    """Stretchers between four legs (order: -x-z, -x+z, +x-z, +x+z) at height ``y``: side pairs,
    an H (sides and a middle bar), a box (ring) or an X."""
    t = y / max(top_y, 1e-6)
    at = [(fx + (x - fx) * t, fz + (z - fz) * t) for (x, z), (fx, fz) in zip(tops, feet)]

    def bar(i: int, j: int) -> None:
        A.solids.append(capsule((at[i][0], y, at[i][1]), (at[j][0], y, at[j][1]), r))

    if kind in ("sides", "h"):
        bar(0, 1)
        bar(2, 3)
        if kind == "h":
            m0 = ((at[0][0] + at[1][0]) / 2, (at[0][1] + at[1][1]) / 2)
            m1 = ((at[2][0] + at[3][0]) / 2, (at[2][1] + at[3][1]) / 2)
            A.solids.append(capsule((m0[0], y, m0[1]), (m1[0], y, m1[1]), r))
    elif kind == "box":
        for i, j in ((0, 1), (1, 3), (3, 2), (2, 0)):
            bar(i, j)
    elif kind == "x":
        bar(0, 3)
        bar(1, 2)


# -------------------------------------------------------------------------------------- chair
def chair_rich(P: Params) -> Assembly:
    """A chair of one of :data:`CHAIR_FAMILIES` (see the module doc)."""
    family = P.choice("family", CHAIR_FAMILIES, [0.15, 0.3, 0.13, 0.1, 0.12, 0.1, 0.1])
    if family == "classic":
        return chair(P)
    return {"dining": _dining_chair, "office": _office_chair, "armchair": _armchair, "stool": _stool,
            "cantilever": _cantilever_chair, "shell": _shell_chair}[family](P)


def _dining_chair(P: Params) -> Assembly:
    W, D = P.uniform("seat_width", 0.38, 0.58), P.uniform("seat_depth", 0.36, 0.52)
    H, BH = P.uniform("seat_height", 0.4, 0.5), P.uniform("back_height", 0.3, 0.62)
    P.set_size(max(W, D, H + BH))
    T = P.thick("seat_thickness", 0.02, 0.06)
    A = Assembly()
    A.solids.append(box((0, H - T / 2, 0), (W / 2, T / 2, D / 2), rounding=P.uniform("seat_rounding", 0.0, 0.015)))
    if P.flag("cushion", 0.3):
        ct = P.thick("cushion_thickness", 0.03, 0.07)
        A.solids.append(box((0, H + ct / 2 - 0.01, 0.01), (W / 2 - 0.015, ct / 2, D / 2 - 0.02), rounding=ct * 0.4))
    style = P.choice("leg_style", ["square", "round", "turned", "tapered"], [0.3, 0.25, 0.25, 0.2])
    r = P.thick("leg_thickness", 0.025, 0.06) / 2
    inset = P.uniform("leg_inset", 0.0, 0.04) + r
    splay = P.uniform("leg_splay", 0.0, 0.05) if style in ("round", "tapered") else 0.0
    tops = [(sx * (W / 2 - inset), sz * (D / 2 - inset)) for sx in (-1, 1) for sz in (-1, 1)]
    beads = P.integer("leg_beads", 1, 3) if style == "turned" else 0
    feet = []
    for x, z in tops:
        k = 1 + splay / max(math.hypot(x, z), 1e-6)
        feet.append((x * k, z * k))
        A.solids.append(_leg(style, x, z, H - T / 2, r, splay, beads))
    kind = P.choice("stretchers", ["none", "sides", "h", "box"], [0.35, 0.2, 0.25, 0.2])
    if kind != "none":
        _stretchers(A, feet, tops, H - T / 2, kind, (H - T) * P.uniform("stretcher_height", 0.2, 0.45), max(r * 0.55, P.tmin / 2))
    if P.flag("apron", 0.4):
        ah = P.thick("apron_height", 0.04, 0.09)
        at = max(r * 0.5, P.tmin / 2)
        for sz in (-1, 1):
            A.solids.append(box((0, H - T - ah / 2, sz * (D / 2 - inset)), (W / 2 - inset, ah / 2, at)))
        for sx in (-1, 1):
            A.solids.append(box((sx * (W / 2 - inset), H - T - ah / 2, 0), (at, ah / 2, D / 2 - inset)))
    # The back: two posts (the rear legs running on, or separate), tilted; then the filling.
    tilt = P.uniform("back_tilt", 0.0, 14.0)
    R = rotation_x(-tilt)
    pw = max(P.thick("post_width", 0.025, 0.05), 2 * r * 0.8)
    bt = P.thick("back_thickness", 0.02, 0.05)
    pivot = np.array([0.0, H - T, -D / 2 + inset])
    bw = 2 * (W / 2 - inset)

    def piece(c: Sequence[float], half: Sequence[float], rounding: float = 0.0) -> Part:
        return box(pivot + R @ np.asarray(c, float), half, rounding, R)

    L = BH + T
    for sx in (-1, 1):
        A.solids.append(piece((sx * bw / 2, L / 2, 0), (pw / 2, L / 2, max(bt, pw) / 2)))
    back = P.choice("back_kind", ["ladder", "spindle", "splat", "solid", "upholstered"], [0.22, 0.2, 0.2, 0.18, 0.2])
    rail = P.thick("top_rail", 0.03, 0.09)
    inner = bw - pw
    A.solids.append(piece((0, L - rail / 2, 0), (bw / 2 + pw / 2 * P.uniform("rail_overhang", 0.0, 1.5), rail / 2, bt / 2), rounding=0.005))
    lo = P.uniform("back_gap", 0.04, 0.18) * L
    span = L - rail - lo
    if back == "ladder":
        n = P.integer("back_rails", 2, 5)
        rh = P.thick("rail_height", 0.02, 0.05)
        for i in range(n):
            A.solids.append(piece((0, lo + span * (i + 0.5) / n, 0), (inner / 2, rh / 2, max(bt * 0.7, P.tmin) / 2)))
    elif back == "spindle":
        n = P.integer("spindles", 3, 9)
        sr = max(min(P.thick("spindle_thickness", 0.015, 0.03), inner / (2 * n + 1)), P.tmin) / 2
        A.solids.append(piece((0, lo, 0), (inner / 2, max(sr, rail / 4), bt / 2)))
        for i in range(n):
            x = -inner / 2 + inner * (i + 1) / (n + 1)
            A.solids.append(piece((x, lo + span / 2, 0), (sr, span / 2, sr)))
    elif back == "splat":
        sw = inner * P.uniform("splat_width", 0.25, 0.6)
        A.solids.append(piece((0, lo, 0), (inner / 2, max(rail / 3, P.tmin / 2), bt / 2)))
        A.solids.append(piece((0, lo + span / 2, 0), (sw / 2, span / 2, max(bt * 0.7, P.tmin) / 2), rounding=sw * 0.2))
    elif back == "solid":
        A.solids.append(piece((0, lo + span / 2, 0), (inner / 2, span / 2, bt / 2)))
    else:
        ut = P.thick("pad_thickness", 0.04, 0.09)
        A.solids.append(piece((0, lo + span / 2, ut / 4), (inner / 2 + pw / 2, span / 2 + rail / 2, ut / 2), rounding=ut * 0.4))
    arms = P.flag("arms", 0.3)
    if arms:
        ah = P.uniform("arm_height", 0.18, 0.26)
        at = P.thick("arm_thickness", 0.025, 0.05)
        zf = D / 2 - inset
        for sx in (-1, 1):
            x = sx * (W / 2 - inset)
            A.solids.append(capsule((x, H - T / 2, zf), (x, H + ah, zf), at / 2))
            back_pt = pivot + R @ np.array([x, min(ah + T, L - rail), 0.0])
            A.solids.append(capsule((x, H + ah, zf + 0.02), (x, float(back_pt[1]), float(back_pt[2])), at / 2))
    _record(P, "back", True)
    _record(P, "seat_shape", "square")
    _record(P, "back_style", {"ladder": "rails", "spindle": "slats", "splat": "slats", "solid": "solid", "upholstered": "frame"}[back])
    _record(P, "support", "legs")
    _record(P, "legs", 4)
    _record(P, "casters", False)
    return A


def _office_chair(P: Params) -> Assembly:
    W, D = P.uniform("seat_width", 0.45, 0.56), P.uniform("seat_depth", 0.42, 0.52)
    H, BH = P.uniform("seat_height", 0.42, 0.52), P.uniform("back_height", 0.35, 0.75)
    P.set_size(max(W, D, H + BH, 0.6))
    T = P.thick("seat_thickness", 0.06, 0.11)
    A = Assembly()
    A.solids.append(box((0, H - T / 2, 0.02), (W / 2, T / 2, D / 2), rounding=T * 0.4))
    # Gas lift: a mechanism plate under the seat, a column, a 5-star base and casters.
    plate_y = H - T - 0.025
    A.solids.append(box((0, plate_y, 0), (0.1, 0.025, 0.12), rounding=0.01))
    spokes = P.integer("spokes", 4, 5) if P.flag("four_star", 0.15) else 5
    reach = P.uniform("spoke_length", 0.26, 0.34)
    casters = P.flag("casters", 0.85)
    rs = P.thick("spoke_thickness", 0.03, 0.05) / 2
    y0 = 0.07 if casters else rs
    rc = P.thick("column_thickness", 0.04, 0.07) / 2
    cr = P.thick("caster_size", 0.03, 0.05) / 2 if casters else 0.0
    A.solids.append(cylinder((0, (y0 + plate_y) / 2, 0), rc, (plate_y - y0) / 2 + 0.01))
    A.solids.append(cylinder((0, y0 + 0.08, 0), rc * 1.4, 0.08))  # the lift's cover
    for i in range(spokes):
        a = 2 * math.pi * i / spokes
        end = (reach * math.sin(a), y0 - 0.01, reach * math.cos(a))
        A.solids.append(capsule((0, y0 + 0.015, 0), end, rs))
        if casters:
            A.solids.append(cylinder((end[0], cr, end[2]), cr, cr * 0.7, rounding=cr * 0.5))
            A.solids.append(capsule((end[0], cr, end[2]), end, min(rs, cr) * 0.7))
    # Back: an upholstered panel on a spine from under the seat, optional headrest.
    tilt = P.uniform("back_tilt", 4.0, 18.0)
    R = rotation_x(-tilt)
    ut = P.thick("back_thickness", 0.04, 0.09)
    gap = P.uniform("back_gap", 0.03, 0.12)
    z0 = -D / 2 + 0.02
    pivot = np.array([0.0, H, z0])
    bw = W * P.uniform("back_width", 0.75, 1.0)
    A.solids.append(box(pivot + R @ np.array([0.0, gap + BH / 2, 0.0]), (bw / 2, BH / 2, ut / 2), ut * 0.45, R))
    spine = max(P.tmin, 0.03)
    A.solids.append(box((0, plate_y, (z0 - 0.12) / 2), (0.03, spine / 2, abs(z0 + 0.12) / 2)))
    A.solids.append(box(pivot + R @ np.array([0.0, (gap + BH * 0.3) / 2 - (H - plate_y) / 2, -ut / 2 - spine / 2]),
                        (0.035, (gap + BH * 0.3 + H - plate_y) / 2, spine / 2), 0.0, R))
    if P.flag("headrest", 0.25):
        A.solids.append(box(pivot + R @ np.array([0.0, gap + BH + 0.1, 0.0]), (bw * 0.3, 0.06, ut / 2), ut * 0.45, R))
        A.solids.append(box(pivot + R @ np.array([0.0, gap + BH + 0.02, -ut / 2]), (0.02, 0.04, max(spine, ut) / 2), 0.0, R))
    arms = P.flag("arms", 0.6)
    if arms:
        ah = P.uniform("arm_height", 0.18, 0.26)
        at = P.thick("arm_thickness", 0.03, 0.06)
        for sx in (-1, 1):
            x = sx * (W / 2 + at / 2)
            A.solids.append(box((x, H - T / 2 + ah / 2, -0.02), (at / 2, ah / 2 + T / 2, at / 2)))
            A.solids.append(box((x, H + ah, 0.0), (at * 0.9, at / 2, D * 0.3), rounding=at * 0.4))
    _record(P, "back", True)
    _record(P, "seat_shape", "square")
    _record(P, "back_style", "frame")
    _record(P, "support", "pedestal")
    return A


def _armchair(P: Params) -> Assembly:
    W, D = P.uniform("width", 0.65, 0.95), P.uniform("depth", 0.65, 0.9)
    H, top = P.uniform("seat_height", 0.36, 0.46), P.uniform("height", 0.7, 1.05)
    P.set_size(max(W, D, top))
    aw = P.thick("arm_width", 0.08, 0.2)
    ah = P.uniform("arm_height", 0.52, 0.68)
    bt = P.thick("back_depth", 0.12, 0.25)
    base = P.choice("base", ["plinth", "legs"], [0.45, 0.55])
    lift = P.uniform("leg_height", 0.06, 0.18) if base == "legs" else P.uniform("plinth_gap", 0.0, 0.03)
    rr = P.uniform("rounding", 0.01, 0.06)
    A = Assembly()
    ct = P.thick("cushion_thickness", 0.06, 0.12)
    body = (H - 0.8 * ct - lift) / 2
    A.solids.append(box((0, lift + body, 0), (W / 2, body, D / 2), rounding=rr))  # the body under the cushion
    A.solids.append(box((0, H - ct / 2, bt / 2), (W / 2 - aw, ct / 2, (D - bt) / 2), rounding=ct * 0.4))
    for sx in (-1, 1):
        A.solids.append(box((sx * (W / 2 - aw / 2), (lift + ah) / 2, 0), (aw / 2, (ah - lift) / 2, D / 2), rounding=min(rr * 1.5, aw / 2 * 0.9)))
    tilt = P.uniform("back_tilt", 0.0, 12.0)
    R = rotation_x(-tilt)
    A.solids.append(box(np.array([0.0, (lift + top) / 2, -D / 2 + bt / 2]) + R @ np.array([0.0, 0.0, 0.0]), (W / 2, (top - lift) / 2, bt / 2),
                        min(rr * 1.5, bt / 2 * 0.9), R))
    if base == "legs":
        r = P.thick("leg_thickness", 0.03, 0.05) / 2
        for sx in (-1, 1):
            for sz in (-1, 1):
                A.solids.append(tapered_rod((sx * (W / 2 - 0.05), r * 0.7, sz * (D / 2 - 0.05)), (sx * (W / 2 - 0.06), lift + 0.02, sz * (D / 2 - 0.06)),
                                            r * 0.7, r))
    _record(P, "back", True)
    _record(P, "seat_shape", "square")
    _record(P, "back_style", "solid")
    _record(P, "arms", True)
    _record(P, "support", "legs")
    _record(P, "legs", 4)
    _record(P, "casters", False)
    return A


def _stool(P: Params) -> Assembly:
    H = P.uniform("seat_height", 0.42, 0.8)
    W = P.uniform("seat_width", 0.3, 0.45)
    P.set_size(max(W, H))
    seat_shape = P.choice("seat_shape", ["round", "square"], [0.65, 0.35])
    T = P.thick("seat_thickness", 0.025, 0.07)
    A = Assembly()
    if seat_shape == "round":
        A.solids.append(cylinder((0, H - T / 2, 0), W / 2, T / 2, rounding=T * 0.35))
    else:
        A.solids.append(box((0, H - T / 2, 0), (W / 2, T / 2, W / 2), rounding=T * 0.3))
    support = P.choice("support", ["legs", "pedestal"], [0.75, 0.25])
    if support == "legs":
        n = P.integer("legs", 3, 4)
        style = P.choice("leg_style", ["round", "turned", "tapered", "square"], [0.35, 0.25, 0.25, 0.15])
        r = P.thick("leg_thickness", 0.025, 0.05) / 2
        inset = P.uniform("leg_inset", 0.02, 0.06) + r
        splay = P.uniform("leg_splay", 0.02, 0.1) if style in ("round", "tapered") else 0.0
        ang = np.arange(n) * 2 * math.pi / n + math.pi / n
        tops = [((W / 2 - inset) * math.sin(a), (W / 2 - inset) * math.cos(a)) for a in ang]
        feet = []
        for x, z in tops:
            k = 1 + splay / max(math.hypot(x, z), 1e-6)
            feet.append((x * k, z * k))
            A.solids.append(_leg(style, x, z, H - T / 2, r, splay, 2))
        ring = P.choice("foot_rest", ["ring", "bars", "none"], [0.45, 0.3, 0.25])
        y = (H - T) * P.uniform("foot_rest_height", 0.25, 0.45)
        rs = max(r * 0.6, P.tmin / 2)
        t = y / (H - T / 2)
        at = [(fx + (x - fx) * t, fz + (z - fz) * t) for (x, z), (fx, fz) in zip(tops, feet)]
        if ring == "ring":
            A.solids.append(torus_y((0, y, 0), math.hypot(*at[0]), rs))
        elif ring == "bars":
            for i in range(n):
                j = (i + 1) % n
                A.solids.append(capsule((at[i][0], y, at[i][1]), (at[j][0], y, at[j][1]), rs))
    else:
        rc = P.thick("column_thickness", 0.04, 0.07) / 2
        A.solids.append(cylinder((0, H / 2, 0), rc, H / 2))
        A.solids.append(cylinder((0, 0.015, 0), P.uniform("base_radius", 0.16, 0.22), 0.015, rounding=0.01))
        A.solids.append(torus_y((0, H * 0.35, 0), P.uniform("ring_radius", 0.14, 0.2), max(0.012, P.tmin / 2)))
        _record(P, "casters", False)
    back = P.flag("low_back", 0.2)
    if back:
        bh = P.uniform("back_height", 0.12, 0.25)
        bt = P.thick("back_thickness", 0.02, 0.04)
        A.solids.append(box((0, H + bh / 2, -W / 2 + bt), (W * 0.35, bh / 2, bt / 2), rounding=bt * 0.4))
    _record(P, "back", False)  # a stool in words, also with a low backrest
    _record(P, "arms", False)
    return A


def _cantilever_chair(P: Params) -> Assembly:
    W, D = P.uniform("seat_width", 0.42, 0.52), P.uniform("seat_depth", 0.4, 0.5)
    H, BH = P.uniform("seat_height", 0.42, 0.48), P.uniform("back_height", 0.3, 0.5)
    P.set_size(max(W, D + 0.1, H + BH))
    r = P.thick("tube_thickness", 0.02, 0.035) / 2
    T = P.thick("seat_thickness", 0.015, 0.05)
    tilt = P.uniform("back_tilt", 5.0, 16.0)
    A = Assembly()
    zf, zb = D / 2, -D / 2
    lean = P.uniform("front_lean", 0.0, 0.06)
    zfl = zf + lean  # the front bend at the floor
    top_b = np.array([0.0, H + BH, zb - BH * math.tan(math.radians(tilt))])
    for sx in (-1, 1):
        x = sx * (W / 2 - r)
        A.solids.append(capsule((x, r, zb + 0.05), (x, r, zfl), r))  # on the floor
        A.solids.append(capsule((x, r, zfl), (x, H - T, zf), r))  # up at the front
        A.solids.append(capsule((x, H - T, zf), (x, H - T, zb), r))  # under the seat
        A.solids.append(capsule((x, H - T, zb), (x, float(top_b[1]), float(top_b[2])), r))  # the back
    if P.flag("floor_bar", 0.5):
        A.solids.append(capsule((-(W / 2 - r), r, zb + 0.05), (W / 2 - r, r, zb + 0.05), r))
    A.solids.append(box((0, H - T / 2, 0), (W / 2 - r, T / 2, D / 2), rounding=min(T * 0.45, 0.02)))
    R = rotation_x(-tilt)
    bt = P.thick("back_thickness", 0.015, 0.04)
    bp = P.uniform("back_panel", 0.4, 0.9) * BH
    A.solids.append(box(np.array([0.0, H, zb]) + R @ np.array([0.0, BH - bp / 2, 0.0]), (W / 2 - r, bp / 2, bt / 2), min(bt * 0.45, 0.02), R))
    arms = P.flag("arms", 0.2)
    if arms:
        for sx in (-1, 1):
            x = sx * (W / 2 - r)
            A.solids.append(capsule((x, H + 0.2, zb), (x, H + 0.2, zf - 0.05), r))
            A.solids.append(capsule((x, H + 0.2, zf - 0.05), (x, H - T, zf - 0.05), r))
    _record(P, "back", True)
    _record(P, "seat_shape", "square")
    _record(P, "back_style", "solid")
    _record(P, "support", "sled")
    return A


def _clip_plane(part: Part, normal: Sequence[float], offset: float) -> Part:
    """``part`` where ``normal . p <= offset`` (an intersection: a bound; the box is kept)."""
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    fn = part.sdf

    def f(p: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        return torch.maximum(fn(p), p @ torch.as_tensor(n, dtype=p.dtype, device=p.device) - offset)

    return Part(f, part.lo, part.hi)


def _shell_chair(P: Params) -> Assembly:
    Rr = P.uniform("shell_radius", 0.3, 0.45)
    H = P.uniform("seat_height", 0.38, 0.48)
    P.set_size(max(2 * Rr, H + Rr * 1.4))
    t = P.thick("shell_thickness", 0.02, 0.05)
    kind = P.choice("shell", ["bucket", "egg"], [0.6, 0.4])
    cy = H + Rr * (0.45 if kind == "bucket" else 0.7)
    ball = sphere((0, cy, 0), Rr)
    cut = shell(ball, t)
    # Open the front: cut by a plane tilted back (upper front removed), and the top for a bucket.
    a = math.radians(P.uniform("opening", 25.0, 55.0))
    cut = _clip_plane(cut, (0.0, math.sin(a), math.cos(a)), cy * math.sin(a) + Rr * (0.1 if kind == "egg" else -0.15))
    cut = clip_y(cut, y_min=H - t, y_max=cy + Rr * (0.5 if kind == "bucket" else 1.0))
    A = Assembly()
    A.solids.append(cut)
    A.solids.append(cylinder((0, H - t / 2, 0.02), Rr * 0.85, t / 2 + 0.01, rounding=0.01))  # the seat cushion
    base = P.choice("base", ["disc", "star", "legs"], [0.35, 0.35, 0.3])
    rc = P.thick("column_thickness", 0.04, 0.07) / 2
    if base == "legs":
        r = P.thick("leg_thickness", 0.02, 0.04) / 2
        for i in range(4):
            ang = math.pi / 4 + i * math.pi / 2
            A.solids.append(capsule((Rr * 0.8 * math.sin(ang), r, Rr * 0.8 * math.cos(ang)), (Rr * 0.4 * math.sin(ang), H - t, Rr * 0.4 * math.cos(ang)), r))
        support = "legs"
    else:
        A.solids.append(cylinder((0, H / 2, 0), rc, H / 2))
        if base == "disc":
            A.solids.append(cylinder((0, 0.012, 0), Rr * 0.8, 0.012, rounding=0.008))
        else:
            for i in range(4):
                ang = i * math.pi / 2 + math.pi / 4
                A.solids.append(capsule((0, 0.02, 0), (Rr * 0.9 * math.sin(ang), 0.02, Rr * 0.9 * math.cos(ang)), max(0.02, P.tmin / 2)))
        support = "pedestal"
        _record(P, "casters", False)
    _record(P, "back", True)
    _record(P, "seat_shape", "round")
    _record(P, "back_style", "solid")
    _record(P, "arms", kind == "egg")
    _record(P, "support", support)
    _record(P, "legs", 4)
    return A


# -------------------------------------------------------------------------------------- table
def _top(P: Params, A: Assembly, shape: str, W: float, D: float, y: float, t: float) -> None:
    if shape in ("round",):
        A.solids.append(cylinder((0, y - t / 2, 0), W / 2, t / 2, rounding=min(t * 0.3, 0.01)))
    elif shape == "oval":
        A.solids.append(box((0, y - t / 2, 0), (W / 2, t / 2, D / 2), rounding=min(t / 2 * 0.99, 0.02)))
        A.solids.append(box((0, y - t / 2, 0), (W / 2 - D / 4, t / 2, D / 2), rounding=min(t / 2 * 0.99, 0.01)))
        A.solids.append(cylinder((W / 2 - D / 2, y - t / 2, 0), D / 2, t / 2))
        A.solids.append(cylinder((-W / 2 + D / 2, y - t / 2, 0), D / 2, t / 2))
    else:
        A.solids.append(box((0, y - t / 2, 0), (W / 2, t / 2, D / 2), rounding=P.uniform("top_rounding", 0.0, 0.015)))


def table_rich(P: Params) -> Assembly:
    """A table of one of :data:`TABLE_FAMILIES` (see the module doc)."""
    family = P.choice("family", TABLE_FAMILIES, [0.2, 0.35, 0.2, 0.12, 0.13])
    if family == "classic":
        return table(P)
    allowed = {"legs": ["rect", "square", "round", "oval"], "pedestal": ["round", "square", "oval"],
               "trestle": ["rect", "oval"], "glass": ["rect", "square", "round"]}[family]
    shape = P.choice("top_kind", allowed)
    Ht = P.uniform("height", 0.4, 0.8)
    W = P.uniform("width", 0.6, 1.8) if shape in ("rect", "oval") else P.uniform("width", 0.5, 1.2)
    D = W if shape in ("square", "round") else P.uniform("depth_ratio", 0.45, 0.85) * W
    P.set_size(max(W, D, Ht))
    t = P.thick("top_thickness", 0.02, 0.06) if family != "glass" else P.thick("top_thickness", 0.008, 0.02)
    A = Assembly()
    _top(P, A, shape, W, D, Ht, t)
    under = Ht - t
    support, legs, leg_style, shelf = family, 4, "", False
    if family in ("legs", "glass"):
        style = P.choice("leg_style", ["square", "round", "turned", "tapered"], [0.3, 0.3, 0.2, 0.2]) if family == "legs" else "round"
        r = P.thick("leg_thickness", 0.03, 0.08) / 2 if family == "legs" else P.thick("leg_thickness", 0.015, 0.03) / 2
        inset = P.uniform("leg_inset", 0.02, 0.12) + r
        if shape == "round":
            n = P.integer("legs", 3, 4)
            ang = np.arange(n) * 2 * math.pi / n + math.pi / 4
            tops = [((W / 2 - inset) * math.sin(a) * 0.8, (W / 2 - inset) * math.cos(a) * 0.8) for a in ang]
        else:
            n = 4
            tops = [(sx * (W / 2 - inset), sz * (D / 2 - inset)) for sx in (-1, 1) for sz in (-1, 1)]
        splay = P.uniform("leg_splay", 0.0, 0.08) if style in ("round", "tapered") else 0.0
        beads = P.integer("leg_beads", 1, 3) if style == "turned" else 0
        feet = []
        for x, z in tops:
            k = 1 + splay / max(math.hypot(x, z), 1e-6)
            feet.append((x * k, z * k))
            A.solids.append(_leg(style, x, z, under, r, splay, beads))
        if n == 4:
            kind = P.choice("stretchers", ["none", "h", "x", "box", "sides"], [0.4, 0.15, 0.15, 0.15, 0.15])
            if kind != "none":
                _stretchers(A, feet, tops, under, kind, under * P.uniform("stretcher_height", 0.12, 0.35), max(r * 0.6, P.tmin / 2))
            if P.flag("apron", 0.55 if family == "legs" else 0.3):
                ah = P.thick("apron_height", 0.04, 0.12)
                at = max(r * 0.5, P.tmin / 2)
                x0, z0 = W / 2 - inset, D / 2 - inset
                if shape == "round":
                    x0 = z0 = (W / 2 - inset) * 0.8 / math.sqrt(2)
                for sz in (-1, 1):
                    A.solids.append(box((0, under - ah / 2, sz * z0), (x0, ah / 2, at)))
                for sx in (-1, 1):
                    A.solids.append(box((sx * x0, under - ah / 2, 0), (at, ah / 2, z0)))
                if shape != "round" and P.flag("drawers", 0.35):
                    nd = P.integer("drawer_count", 1, 3)
                    dw = 2 * x0 / nd
                    for i in range(nd):
                        cx = -x0 + dw * (i + 0.5)
                        A.solids.append(box((cx, under - ah / 2, z0 + at), (dw / 2 - 0.015, ah / 2 - 0.01, max(at, 0.008))))
                        A.solids.append(sphere((cx, under - ah / 2, z0 + at + max(at, 0.008) + 0.008), max(0.012, P.tmin / 2)))
            shelf = family == "legs" and kind == "none" and P.flag("lower_shelf", 0.2)
            if shelf:
                st = P.thick("shelf_thickness", 0.015, 0.03)
                sy = under * P.uniform("shelf_height", 0.15, 0.3)
                A.solids.append(box((0, sy, 0), (W / 2 - inset, st / 2, D / 2 - inset)))
        legs, leg_style, support = n, style, "legs"
    elif family == "pedestal":
        col = P.choice("column", ["plain", "turned", "tapered"])
        rc = P.thick("column_thickness", 0.06, 0.16) / 2
        foot_y = P.thick("foot_height", 0.03, 0.08)
        if col == "plain":
            A.solids.append(cylinder((0, under / 2, 0), rc, under / 2))
        elif col == "turned":
            A.solids.append(turned(0.0, 0.0, 0.0, under, rc, P.integer("column_beads", 1, 3), (0.2, 0.5, 0.85)))
        else:
            A.solids.append(tapered_rod((0, foot_y, 0), (0, under - 0.02, 0), rc * 1.4, rc * 0.8))
        if shape != "round":
            A.solids.append(box((0, under - 0.02, 0), (min(W, D) * 0.3, 0.02, min(W, D) * 0.3)))
        foot = P.choice("foot", ["tripod", "spokes", "disc", "cross"])
        reach = min(W, D) / 2 * P.uniform("foot_reach", 0.6, 0.95)
        fr = max(rc * 0.5, P.tmin / 2)
        if foot == "disc":
            A.solids.append(cylinder((0, foot_y / 2, 0), reach, foot_y / 2, rounding=foot_y * 0.3))
        elif foot == "cross":
            A.solids.append(box((0, foot_y / 2, 0), (reach, foot_y / 2, fr)))
            A.solids.append(box((0, foot_y / 2, 0), (fr, foot_y / 2, reach)))
        else:
            k = 3 if foot == "tripod" else 4
            for i in range(k):
                a = 2 * math.pi * i / k + math.pi / 4
                end = (reach * math.sin(a), fr, reach * math.cos(a))
                knee = (reach * 0.35 * math.sin(a), foot_y + under * 0.15, reach * 0.35 * math.cos(a))
                A.solids.append(capsule((0, foot_y + under * 0.2, 0), knee, fr))
                A.solids.append(capsule(knee, end, fr))
        legs, support = 1, "pedestal"
    else:  # trestle: two end frames and a long stretcher
        inset = P.uniform("end_inset", 0.05, 0.2)
        xe = W / 2 - inset
        pt = P.thick("end_thickness", 0.04, 0.09)
        ends = P.choice("ends", ["panel", "posts", "x"])
        fd = D / 2 * P.uniform("foot_length", 0.7, 0.95)
        panel = P.uniform("panel_width", 0.2, 0.6) if ends == "panel" else 0.0
        for sx in (-1, 1):
            x = sx * xe
            A.solids.append(box((x, pt / 2, 0), (pt / 2, pt / 2, fd), rounding=0.01))  # the foot
            A.solids.append(box((x, under - pt / 4, 0), (pt / 2, pt / 4, fd * 0.9)))  # under the top
            if ends == "panel":
                A.solids.append(box((x, under / 2, 0), (pt / 2, under / 2, fd * panel)))
            elif ends == "posts":
                for sz in (-1, 1):
                    A.solids.append(box((x, under / 2, sz * fd * 0.5), (pt / 2, under / 2, pt / 2)))
            else:
                A.solids.append(capsule((x, pt, -fd * 0.9), (x, under - pt / 2, fd * 0.9), pt / 2))
                A.solids.append(capsule((x, pt, fd * 0.9), (x, under - pt / 2, -fd * 0.9), pt / 2))
        sy = under * P.uniform("stretcher_height", 0.25, 0.6)
        A.solids.append(box((0, sy, 0), (xe, pt / 2, pt / 2)))
        support = "trestle"
    _record(P, "top_shape", {"oval": "rect"}.get(shape, shape))
    _record(P, "support", support)
    _record(P, "legs", legs)
    if leg_style:
        _record(P, "leg_style", leg_style)
    _record(P, "lower_shelf", bool(shelf))
    return A


# ---------------------------------------------------------------------------------------- mug
#: Body profiles of the rich mugs as (height fraction, radius fraction) points.
MUG_PROFILES = {
    "straight": [(0.0, 1.0), (1.0, 1.0)],
    "tapered": [(0.0, 0.72), (1.0, 1.0)],
    "flared": [(0.0, 0.6), (0.6, 0.75), (1.0, 1.0)],
    "barrel": [(0.0, 0.85), (0.5, 1.0), (1.0, 0.88)],
    "bell": [(0.0, 0.55), (0.25, 0.9), (1.0, 1.0)],
    "waisted": [(0.0, 1.0), (0.5, 0.85), (1.0, 1.0)],
}


def mug_rich(P: Params) -> Assembly:
    """A cup of one of :data:`MUG_FAMILIES` (see the module doc)."""
    family = P.choice("family", MUG_FAMILIES, [0.2, 0.25, 0.15, 0.1, 0.3])
    if family == "classic":
        return mug(P)
    if family == "teacup":
        R, Hm = P.uniform("radius", 0.04, 0.06), P.uniform("height", 0.045, 0.07)
        prof = P.choice("profile", ["bell", "flared", "tapered"])
    elif family == "tankard":
        R, Hm = P.uniform("radius", 0.04, 0.055), P.uniform("height", 0.12, 0.18)
        prof = P.choice("profile", ["straight", "barrel", "tapered"])
    else:
        R, Hm = P.uniform("radius", 0.03, 0.055), P.uniform("height", 0.06, 0.14)
        prof = P.choice("profile", list(MUG_PROFILES))
    saucer = family in ("teacup", "mug") and P.flag("saucer", 0.45 if family == "teacup" else 0.15)
    P.set_size(max(Hm, 2 * R + 0.06, 2 * R * 1.7 if saucer else 0.0))
    wall = P.thick("wall", 0.003, 0.008)
    bottom = P.thick("bottom", 0.006, 0.014)
    A = Assembly(smooth=0.003)
    y0 = 0.0
    if saucer:
        sr = R * P.uniform("saucer_radius", 1.5, 1.8)
        st = max(P.thick("saucer_thickness", 0.005, 0.01), P.tmin)
        A.solids.append(cylinder((0, st / 2, 0), sr, st / 2, rounding=st * 0.45))
        A.solids.append(torus_y((0, st, 0), sr - st / 2, st / 2))
        y0 = st * 0.8
    foot = P.uniform("foot_height", 0.004, 0.01) if P.flag("foot", 0.25) else 0.0
    pts = MUG_PROFILES[prof]
    if foot:
        A.solids.append(cylinder((0, y0 + foot / 2 + 0.001, 0), R * pts[0][1] * 0.8, foot / 2 + 0.001))
    yb = y0 + foot
    _vessel(A, lambda t: R * _profile_radius(pts, t), yb, Hm, wall, bottom)
    rim = P.flag("rim_lip", 0.25)
    if rim:
        A.solids.append(torus_y((0, yb + Hm - wall * 0.6, 0), R * pts[-1][1] - wall / 2, wall * 0.8))
    options = {"tumbler": ["none"], "teacup": ["ring", "ear", "c"], "tankard": ["D", "square", "c"],
               "mug": ["ring", "D", "square", "c", "twin"]}[family]
    handle = P.choice("handle", options)
    if handle != "none":
        hr = P.thick("handle_thickness", 0.006, 0.014) / 2
        span = Hm * P.uniform("handle_span", 0.45, 0.8)
        hy = yb + Hm * P.uniform("handle_center", 0.4, 0.6)
        hy = float(np.clip(hy, yb + span / 2, yb + Hm - span / 2))
        r_at = R * _profile_radius(pts, (hy - yb) / Hm)
        reach = P.uniform("handle_reach", 0.015, 0.04)
        sides = (1, -1) if handle == "twin" else (1,)
        hw = P.uniform("handle_width", 1.0, 1.8) * hr if handle == "square" else 0.0
        for s in sides:
            if handle in ("ring", "twin"):
                A.solids.append(torus_z((s * r_at, hy, 0), span / 2 - hr, hr))
            elif handle == "ear":
                A.solids.append(torus_z((s * (r_at + 0.003), hy, 0), min(span / 2, Hm * 0.16), hr))
            elif handle == "c":  # an open C: a ring with the inner half clipped away by the body
                ring = torus_z((s * (r_at + reach * 0.4), hy, 0), span / 2 - hr, hr)
                A.solids.append(ring)
            else:
                top, bot = hy + span / 2 - hr, hy - span / 2 + hr
                xo, x0 = s * (r_at + reach), s * (r_at - wall)
                if handle == "D":
                    A.solids += [capsule((x0, top, 0), (xo, top, 0), hr), capsule((xo, top, 0), (xo, bot, 0), hr), capsule((x0, bot, 0), (xo, bot, 0), hr)]
                else:
                    A.solids += [box(((x0 + xo) / 2, top, 0), (abs(xo - x0) / 2 + hr, hr, hw)),
                                 box(((x0 + xo) / 2, bot, 0), (abs(xo - x0) / 2 + hr, hr, hw)), box((xo, hy, 0), (hr, span / 2, hw))]
    _record(P, "body", {"straight": "cylinder", "tapered": "tapered", "flared": "tapered", "bell": "rounded",
                        "barrel": "cylinder", "waisted": "cylinder"}[prof])
    _record(P, "foot", bool(foot))
    return A


#: Class -> rich generator (the ``rich`` variant of :func:`shapegen.data.procedural.generate`).
RICH_GENERATORS: dict[str, Callable[[Params], Assembly]] = {"chair": chair_rich, "table": table_rich, "mug": mug_rich}
