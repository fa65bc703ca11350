"""Parametric generators of the procedural shape set, one function per object class.

Each generator reads its parameters through a :class:`Params` object, which either draws them
from a random generator (recording every value) or replays a recorded dict, so a shape is fully
described by its JSON-serialisable parameters. Generators return :class:`Assembly` objects in
metres, shapegen frame (+Y up, floor at y = 0, front +Z: a chair faces +Z, a shelf opens to +Z,
a mug's handle is on +X, a desk lamp's head leans to +Z; a sofa's and a bench's back and a bed's
headboard are at -Z, a sofa's chaise on -X, a vase's handles on +-X, a desk's drawer handles
at +Z and its left pedestal (as seen from the front) on -X).

:data:`GENERATORS` lists the classes in data-set order. The first five (chair, table, shelf,
lamp, mug) must keep drawing the same parameters in the same order for the same seed: the
shipped demo models were trained and evaluated on them, and a test pins their parameters.

Thin parts are kept at least ``min_feature`` thick relative to the object's largest dimension
(:meth:`Params.set_size`), so after normalisation into ``[-1, 1]^3`` no part is thinner than
0.07 (2.2 grid cells at the default extraction resolution 64), and marching cubes does not
tear it apart. Thinner parts would also be beyond what the demo models resolve.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import torch

from shapegen.data.procedural_parts import (
    Part,
    box,
    capsule,
    clip_y,
    cone,
    cylinder,
    revolve,
    rotation_x,
    shell,
    sphere,
    torus_y,
    torus_z,
)

#: Smallest part thickness, as a fraction of the normalised full extent 2 (see module doc).
MIN_FEATURE = 0.07 / 1.8


@dataclass
class Assembly:
    """An object before normalisation: solid parts, holes cut from their union, a blend radius.

    Attributes:
        solids: the parts whose union is the object; their boxes bound it.
        holes: parts subtracted from the union (a mug's cavity).
        smooth: polynomial smooth-union radius in metres (0: plain union).
    """

    solids: list[Part] = field(default_factory=list)
    holes: list[Part] = field(default_factory=list)
    smooth: float = 0.0


class Params:
    """Draws (and records) or replays the named parameters of one shape.

    Args:
        rng: the shape's random generator; None to replay ``values``.
        values: recorded parameters to replay; None to draw new ones.
    """

    def __init__(self, rng: np.random.Generator | None = None, values: dict[str, Any] | None = None) -> None:
        self.rng, self.replay = rng, values is not None
        self.values: dict[str, Any] = dict(values) if values is not None else {}
        self.tmin = 0.0

    def _get(self, name: str, draw: Callable[[], Any]) -> Any:
        if self.replay:
            if name not in self.values:
                raise KeyError(f"parameter '{name}' missing from the replayed parameters")
            return self.values[name]
        value = draw()
        self.values[name] = value
        return value

    def uniform(self, name: str, lo: float, hi: float) -> float:
        """A float in ``[lo, hi]``, rounded to 0.1 mm so the JSON record replays exactly."""
        return float(self._get(name, lambda: round(float(self.rng.uniform(lo, hi)), 4)))

    def thick(self, name: str, lo: float, hi: float) -> float:
        """A thickness in ``[lo, hi]``, raised to the minimum feature size set by :meth:`set_size`."""
        return float(self._get(name, lambda: round(max(float(self.rng.uniform(lo, hi)), self.tmin), 4)))

    def integer(self, name: str, lo: int, hi: int) -> int:
        """An integer in ``[lo, hi]`` (both included)."""
        return int(self._get(name, lambda: int(self.rng.integers(lo, hi + 1))))

    def choice(self, name: str, options: Sequence[str], p: Sequence[float] | None = None) -> str:
        """One of ``options`` (probabilities ``p``, default uniform)."""
        return str(self._get(name, lambda: str(options[int(self.rng.choice(len(options), p=p))])))

    def flag(self, name: str, prob: float) -> bool:
        """True with probability ``prob``."""
        return bool(self._get(name, lambda: bool(self.rng.random() < prob)))

    def set_size(self, largest: float) -> None:
        """Set the object's largest dimension (metres), which fixes the minimum part thickness."""
        self.tmin = round(2 * MIN_FEATURE * largest / 2, 4)


# ------------------------------------------------------------------------------------- chair
def chair(P: Params) -> Assembly:
    """Chairs and stools: square or round seat; legs (3-4, round or square, splayed, stretchers),
    office pedestal (4-6 spokes, optional casters) or sled runners; no back, or a solid, slatted,
    railed or framed back, tilted; optional bar or panel arms."""
    has_back = P.flag("back", 0.88)
    if has_back:
        W, D = P.uniform("seat_width", 0.38, 0.62), P.uniform("seat_depth", 0.36, 0.56)
        H = P.uniform("seat_height", 0.36, 0.52)
        BH = P.uniform("back_height", 0.25, 0.62)
    else:  # a stool: narrow and tall (up to bar height), so it does not read as a table
        W, D = P.uniform("seat_width", 0.3, 0.42), P.uniform("seat_depth", 0.3, 0.42)
        H, BH = P.uniform("seat_height", 0.45, 0.8), 0.0
    P.set_size(max(W, D, H + BH))
    T = P.thick("seat_thickness", 0.025, 0.08)
    seat_shape = P.choice("seat_shape", ["square", "round"], [0.75, 0.25] if has_back else [0.3, 0.7])
    if seat_shape == "round":
        D = W  # a round seat's depth is its diameter
    A = Assembly()
    ys = H - T / 2
    if seat_shape == "round":
        A.solids.append(cylinder((0, ys, 0), W / 2, T / 2, rounding=T * 0.3))
    else:
        A.solids.append(box((0, ys, 0), (W / 2, T / 2, D / 2), rounding=P.uniform("seat_rounding", 0.0, 0.02)))

    support = P.choice("support", ["legs", "pedestal", "sled"], [0.65, 0.2, 0.15])
    if support == "legs":
        n = P.integer("legs", 3, 4) if seat_shape == "round" else 4
        style = P.choice("leg_style", ["round", "square"])
        r = P.thick("leg_thickness", 0.03, 0.07) / 2
        inset = P.uniform("leg_inset", 0.0, 0.06) + r
        splay = P.uniform("leg_splay", 0.0, 0.07) if style == "round" else 0.0
        if seat_shape == "round":
            tops = [((W / 2 - inset) * math.sin(a), (W / 2 - inset) * math.cos(a)) for a in np.arange(n) * 2 * math.pi / n + math.pi / n]
        else:
            tops = [(sx * (W / 2 - inset), sz * (D / 2 - inset)) for sx in (-1, 1) for sz in (-1, 1)]
        feet = []
        for x, z in tops:
            k = 1 + splay / max(math.hypot(x, z), 1e-6)
            feet.append((x * k, z * k))
            if style == "round":
                A.solids.append(capsule((x * k, r, z * k), (x, H - T / 2, z), r))
            else:
                A.solids.append(box((x, (H - T / 2) / 2, z), (r, (H - T / 2) / 2, r)))
        stretch = P.choice("stretchers", ["none", "sides", "ring"], [0.55, 0.25, 0.2] if has_back else [0.2, 0.3, 0.5])
        if stretch != "none":
            sh = (H - T) * P.uniform("stretcher_height", 0.25, 0.5)
            rs = max(r * 0.6, P.tmin / 2)
            t = sh / (H - T / 2)
            at = [(fx + (x - fx) * t, fz + (z - fz) * t) for (x, z), (fx, fz) in zip(tops, feet)]
            pairs = [(0, 1), (2, 3)] if n == 4 and stretch == "sides" else [(i, (i + 1) % n) for i in range(n)]
            if n == 4 and stretch == "ring":
                pairs = [(0, 1), (1, 3), (3, 2), (2, 0)]
            for i, j in pairs:
                A.solids.append(capsule((at[i][0], sh, at[i][1]), (at[j][0], sh, at[j][1]), rs))
    elif support == "pedestal":
        spokes = P.integer("spokes", 4, 6)
        reach = P.uniform("spoke_length", 0.22, 0.34)
        rc = P.thick("column_thickness", 0.05, 0.09) / 2
        rsp = max(rc * 0.6, P.tmin / 2)
        casters = P.flag("casters", 0.6)
        y0 = 0.05 if casters else rsp
        A.solids.append(cylinder((0, (y0 + H - T) / 2, 0), rc, (H - T - y0) / 2 + 0.01))
        for i in range(spokes):
            a = 2 * math.pi * i / spokes
            end = (reach * math.sin(a), y0, reach * math.cos(a))
            A.solids.append(capsule((0, y0, 0), end, rsp))
            if casters:
                A.solids.append(sphere((end[0], 0.025, end[2]), 0.025))
    else:  # sled: a bent-tube runner on each side
        r = P.thick("runner_thickness", 0.025, 0.05) / 2
        for sx in (-1, 1):
            x = sx * (W / 2 * 0.6 if seat_shape == "round" else W / 2 - r)
            # Uprights end under the seat: for a round seat, inside the circle at this x.
            zf = (math.sqrt((W / 2) ** 2 - x * x) if seat_shape == "round" else D / 2) - r
            zb = -zf
            A.solids.append(capsule((x, r, zf + 0.03), (x, r, zb - 0.03), r))
            A.solids.append(capsule((x, r, zf), (x, H - T / 2, zf - 0.02), r))
            A.solids.append(capsule((x, r, zb), (x, H - T / 2, zb + 0.02), r))

    if has_back:
        _chair_back(P, A, W, D, H, T, BH, round_seat=seat_shape == "round")
    if has_back and P.flag("arms", 0.35):
        style = P.choice("arm_style", ["bar", "panel"])
        ah = P.uniform("arm_height", 0.17, 0.28)
        at = P.thick("arm_thickness", 0.03, 0.07)
        for sx in (-1, 1):
            x = sx * (W / 2 - at / 2)
            if style == "bar":
                A.solids.append(box((x, H + ah, -0.02), (at / 2, at / 2, D / 2 - 0.02), rounding=at / 4))
                A.solids.append(capsule((x, H - T / 2, D / 2 - 0.06), (x, H + ah, D / 2 - 0.06), at / 2))
            else:
                A.solids.append(box((x, H + ah / 2 - T / 4, 0), (at / 2, ah / 2 + T / 4, D / 2), rounding=at / 4))
    return A


def _chair_back(P: Params, A: Assembly, W: float, D: float, H: float, T: float, BH: float, round_seat: bool) -> None:
    """A back hinged inside the seat's rear edge, tilted backwards (top towards -Z)."""
    style = P.choice("back_style", ["solid", "slats", "rails", "frame"])
    tilt = P.uniform("back_tilt", 0.0, 16.0)
    bt = P.thick("back_thickness", 0.02, 0.05)
    bw = W * (P.uniform("back_width", 0.5, 0.8) if round_seat else P.uniform("back_width", 0.75, 1.0))
    R = rotation_x(-tilt)
    # The hinge sits half a seat thickness down, where the back's corners are still over the
    # seat (for a round seat: on the circle at the back's half width), so the two overlap.
    z_edge = -math.sqrt(max((W / 2) ** 2 - (bw / 2) ** 2, 0.0)) if round_seat else -D / 2
    pivot = np.array([0.0, H - T / 2, z_edge + bt / 2 + (0.01 if round_seat else 0.0)])
    BH += T / 2

    def piece(c: Sequence[float], half: Sequence[float], rounding: float = 0.0) -> Part:
        return box(pivot + R @ np.asarray(c, float), half, rounding, R)

    if style == "solid":
        A.solids.append(piece((0, BH / 2, 0), (bw / 2, BH / 2, bt / 2), P.uniform("back_rounding", 0.0, 0.02)))
        return
    pw = max(P.thick("post_width", 0.025, 0.05), bt)
    for sx in (-1, 1):
        A.solids.append(piece((sx * (bw / 2 - pw / 2), BH / 2, 0), (pw / 2, BH / 2, bt / 2)))
    rail = P.thick("top_rail", 0.03, 0.1)
    A.solids.append(piece((0, BH - rail / 2, 0), (bw / 2, rail / 2, bt / 2)))
    inner = bw - 2 * pw
    if style == "slats":
        n = P.integer("back_slats", 2, 6)
        sw = max(min(P.thick("slat_width", 0.02, 0.06), inner / (n + 1)), P.tmin)
        for i in range(n):
            x = -inner / 2 + inner * (i + 1) / (n + 1)
            A.solids.append(piece((x, (BH - rail) / 2, 0), (sw / 2, (BH - rail) / 2, max(bt * 0.8, P.tmin) / 2)))
    elif style == "rails":
        n = P.integer("back_rails", 1, 4)
        rh = P.thick("rail_height", 0.02, 0.05)
        for i in range(n):
            y = (BH - rail) * (i + 1) / (n + 1)
            A.solids.append(piece((0, y, 0), (inner / 2 + pw / 4, rh / 2, max(bt * 0.8, P.tmin) / 2)))
    else:  # frame: an upholstered panel held between the posts, above the seat
        gap = P.uniform("panel_gap", 0.04, 0.12)
        A.solids.append(piece((0, gap + (BH - rail - gap) / 2, 0), (inner / 2 + pw / 4, (BH - rail - gap) / 2, max(bt * 0.9, P.tmin) / 2)))


# ------------------------------------------------------------------------------------- table
def table(P: Params) -> Assembly:
    """Tables: rectangular, square or round top; four legs (optional apron and lower shelf),
    three legs, a pedestal (disk, cross or spoke foot) or trestle ends; dining to coffee height."""
    shape = P.choice("top_shape", ["rect", "square", "round"], [0.45, 0.25, 0.3])
    Ht = P.uniform("height", 0.4, 0.8)
    if shape == "rect":
        W = P.uniform("width", 0.8, 1.8)
        D = P.uniform("depth", 0.45, min(1.0, 0.85 * W))
    elif shape == "square":
        W = D = P.uniform("width", 0.5, 1.0)
    else:
        W = D = 2 * P.uniform("radius", 0.3, 0.65)
    P.set_size(max(W, D, Ht))
    T = P.thick("top_thickness", 0.02, 0.07)
    A = Assembly()
    yt = Ht - T / 2
    if shape == "round":
        A.solids.append(cylinder((0, yt, 0), W / 2, T / 2, rounding=T * 0.3))
    else:
        A.solids.append(box((0, yt, 0), (W / 2, T / 2, D / 2), rounding=P.uniform("top_rounding", 0.0, 0.02)))
    options = {"rect": (["legs", "trestle"], [0.7, 0.3]), "square": (["legs", "pedestal"], [0.7, 0.3]), "round": (["legs", "pedestal"], [0.45, 0.55])}
    support = P.choice("support", *options[shape])
    under = Ht - T
    if support == "legs":
        n = P.integer("legs", 3, 4) if shape == "round" else 4
        style = P.choice("leg_style", ["round", "square", "tapered"])
        r = P.thick("leg_thickness", 0.03, 0.07) / 2
        inset = P.uniform("leg_inset", 0.0, 0.12) + r
        if shape == "round":
            pos = [((W / 2 - inset) * math.sin(a), (W / 2 - inset) * math.cos(a)) for a in np.arange(n) * 2 * math.pi / n]
        else:
            pos = [(sx * (W / 2 - inset), sz * (D / 2 - inset)) for sx in (-1, 1) for sz in (-1, 1)]
        for x, z in pos:
            if style == "round":
                A.solids.append(cylinder((x, under / 2, z), r, under / 2 + 0.005))
            elif style == "square":
                A.solids.append(box((x, under / 2, z), (r, under / 2 + 0.005, r)))
            else:
                A.solids.append(cone((x, under / 2, z), max(r * 0.55, P.tmin / 2), r, under / 2 + 0.005))
        if P.flag("apron", 0.5):
            ah = P.uniform("apron_height", 0.05, 0.14)
            at = P.thick("apron_thickness", 0.015, 0.03)
            if shape == "round":
                A.solids.append(clip_y(shell(cylinder((0, under - ah / 2, 0), W / 2 - inset, ah / 2 + at), at), under - ah, under + 0.005))
            else:
                xi, zi = W / 2 - inset, D / 2 - inset
                for sz in (-1, 1):
                    A.solids.append(box((0, under - ah / 2, sz * zi), (xi, ah / 2, at / 2)))
                for sx in (-1, 1):
                    A.solids.append(box((sx * xi, under - ah / 2, 0), (at / 2, ah / 2, zi)))
        if shape != "round" and P.flag("lower_shelf", 0.3):
            sh = P.uniform("shelf_height", 0.08, 0.25)
            st = P.thick("shelf_thickness", 0.015, 0.04)
            A.solids.append(box((0, sh, 0), (W / 2 - inset, st / 2, D / 2 - inset)))
    elif support == "pedestal":
        rc = P.thick("column_thickness", 0.06, 0.18) / 2
        A.solids.append(cylinder((0, under / 2, 0), rc, under / 2 + 0.005))
        foot = P.choice("foot", ["disk", "cross", "spokes"])
        reach = min(W, D) / 2 * P.uniform("foot_reach", 0.5, 0.85)
        ft = P.thick("foot_thickness", 0.02, 0.06)
        if foot == "disk":
            A.solids.append(cylinder((0, ft / 2, 0), reach, ft / 2, rounding=ft * 0.3))
        elif foot == "cross":
            A.solids.append(box((0, ft / 2, 0), (reach, ft / 2, ft), rounding=ft / 4))
            A.solids.append(box((0, ft / 2, 0), (ft, ft / 2, reach), rounding=ft / 4))
        else:
            n = P.integer("foot_spokes", 3, 5)
            for i in range(n):
                a = 2 * math.pi * i / n
                A.solids.append(capsule((0, ft / 2 + 0.1, 0), (reach * math.sin(a), ft / 2, reach * math.cos(a)), ft / 2))
    else:  # trestle: a panel at each end on a foot, joined by a stretcher
        pt = P.thick("panel_thickness", 0.03, 0.07)
        inset = P.uniform("panel_inset", 0.03, 0.2)
        pd = D * P.uniform("panel_depth", 0.3, 0.7)
        x = W / 2 - inset - pt / 2
        for sx in (-1, 1):
            A.solids.append(box((sx * x, under / 2, 0), (pt / 2, under / 2 + 0.005, pd / 2)))
            A.solids.append(box((sx * x, pt / 2, 0), (pt, pt / 2, D / 2 * 0.85), rounding=pt / 4))
        if P.flag("stretcher", 0.7):
            A.solids.append(box((0, under * P.uniform("stretcher_height", 0.2, 0.6), 0), (x, pt / 2, pt / 2)))
    return A


# ------------------------------------------------------------------------------------- shelf
def shelf(P: Params) -> Assembly:
    """Shelving: a cabinet (side panels, top and bottom; optional back panel, vertical dividers,
    plinth or feet, top overhang) or an open frame on corner posts; 1-6 interior shelves."""
    W = P.uniform("width", 0.4, 1.3)
    Hs = P.uniform("height", 0.45, 2.0)
    D = P.uniform("depth", 0.22, 0.45)
    P.set_size(max(W, Hs, D))
    style = P.choice("style", ["cabinet", "frame"], [0.7, 0.3])
    t = P.thick("board_thickness", 0.015, 0.04)
    n = P.integer("shelves", 1, max(1, min(6, int(Hs / 0.28))))
    A = Assembly()
    if style == "cabinet":
        base = P.choice("base", ["none", "plinth", "feet"])
        bh = P.uniform("base_height", 0.04, 0.12) if base != "none" else 0.0
        over = P.uniform("top_overhang", 0.0, 0.03) if P.flag("overhang", 0.35) else 0.0
        ys = bh if base == "feet" else 0.0  # sides stand on the feet, or reach the floor
        for sx in (-1, 1):
            A.solids.append(box((sx * (W / 2 - t / 2), (Hs + ys) / 2, 0), (t / 2, (Hs - ys) / 2, D / 2)))
        A.solids.append(box((0, Hs - t / 2, over / 2), (W / 2 + over, t / 2, D / 2 + over / 2)))
        A.solids.append(box((0, bh + t / 2, 0), (W / 2, t / 2, D / 2)))
        if base == "plinth":
            A.solids.append(box((0, bh / 2, 0.02), (W / 2 - t, bh / 2 + 0.002, D / 2 - 0.02)))
        elif base == "feet":
            for sx in (-1, 1):
                for sz in (-1, 1):
                    A.solids.append(box((sx * (W / 2 - t / 2), bh / 2, sz * (D / 2 - t / 2)), (t / 2, bh / 2 + 0.002, t / 2)))
        y0, y1 = bh + t, Hs - t
        if P.flag("back_panel", 0.6):
            A.solids.append(box((0, (y0 + y1) / 2, -D / 2 + t / 4), (W / 2 - t / 2, (y1 - y0) / 2 + t / 2, max(t / 4, P.tmin / 2))))
        dividers = P.integer("dividers", 0, 2) if W > 0.7 else 0
        for i in range(dividers):
            x = -W / 2 + W * (i + 1) / (dividers + 1)
            A.solids.append(box((x, (y0 + y1) / 2, 0), (t / 2, (y1 - y0) / 2 + t / 4, D / 2 - 0.005)))
        xi = W / 2 - t
    else:
        post = P.choice("post_style", ["square", "round"])
        pr = P.thick("post_thickness", 0.02, 0.05) / 2
        for sx in (-1, 1):
            for sz in (-1, 1):
                x, z = sx * (W / 2 - pr), sz * (D / 2 - pr)
                if post == "square":
                    A.solids.append(box((x, Hs / 2, z), (pr, Hs / 2, pr)))
                else:
                    A.solids.append(cylinder((x, Hs / 2, z), pr, Hs / 2))
        y0 = P.uniform("bottom_clearance", 0.02, 0.15)
        y1 = Hs - t
        A.solids.append(box((0, Hs - t / 2, 0), (W / 2, t / 2, D / 2)))
        A.solids.append(box((0, y0 + t / 2, 0), (W / 2, t / 2, D / 2)))
        y0 += t
        xi = W / 2
    for i in range(n):
        y = y0 + (y1 - y0) * (i + 1) / (n + 1)
        A.solids.append(box((0, y, 0), (xi, t / 2, D / 2 - 0.01)))
    return A


# -------------------------------------------------------------------------------------- lamp
def lamp(P: Params) -> Assembly:
    """Lamps: table, floor or articulated desk lamps; disk, square or dome base, or a tripod;
    thin rod or vase body; conical, drum or dome shade, open top and bottom."""
    kind = P.choice("kind", ["table", "floor", "desk"], [0.4, 0.3, 0.3])
    Hl = P.uniform("height", *{"table": (0.35, 0.7), "floor": (1.2, 1.8), "desk": (0.4, 0.7)}[kind])
    lo, hi = {"table": (0.1, 0.22), "floor": (0.18, 0.32), "desk": (0.06, 0.11)}[kind]
    shade_r = P.uniform("shade_radius", lo, min(hi, 0.45 * Hl))  # a short lamp gets a small shade
    P.set_size(max(Hl, 2 * shade_r))
    A = Assembly(smooth=0.004 * Hl)
    base = P.choice("base", ["disk", "square", "dome", "tripod"] if kind == "floor" else ["disk", "square", "dome"])
    br = P.uniform("base_radius", 0.06, 0.12) * (1.8 if kind == "floor" else 1.0)
    bt = P.thick("base_thickness", 0.015, 0.04)
    rod = P.thick("rod_thickness", 0.012, 0.03) / 2
    if base == "disk":
        A.solids.append(cylinder((0, bt / 2, 0), br, bt / 2, rounding=bt * 0.3))
    elif base == "square":
        A.solids.append(box((0, bt / 2, 0), (br * 0.9, bt / 2, br * 0.9), rounding=bt * 0.3))
    elif base == "dome":
        A.solids.append(clip_y(sphere((0, -br * 0.5, 0), br * 1.1), 0.0))
        bt = br * 0.6
    if kind == "desk":
        a1 = math.radians(P.uniform("lower_arm_angle", 0.0, 35.0))
        a2 = math.radians(P.uniform("upper_arm_angle", 45.0, 100.0))
        l1 = P.uniform("lower_arm", 0.45, 0.6) * Hl
        j1 = np.array([0.0, bt, -0.4 * br])
        j2 = j1 + l1 * np.array([0.0, math.cos(a1), -math.sin(a1)])
        l2 = P.uniform("upper_arm", 0.35, 0.55) * Hl
        j3 = j2 + l2 * np.array([0.0, math.cos(a2), math.sin(a2)])
        for a, b in ((j1, j2), (j2, j3)):
            A.solids.append(capsule(a, b, rod))
        if P.flag("joint_knobs", 0.6):
            A.solids.append(sphere(j2, rod * 2.2))
        sh = shade_r * P.uniform("shade_height", 0.8, 1.6)
        top = j3 - np.array([0.0, rod, 0.0])
        shape = P.choice("shade", ["cone", "dome"])
        if shape == "cone":
            cone_shade = _shade_cone(P, (top[0], top[1] - sh / 2, top[2]), shade_r, shade_r * 0.35, sh / 2)
            cap = P.values["shade_wall"] * 1.5  # a closed socket on top joins the shade to the arm
            A.solids += [cone_shade, cylinder((top[0], top[1] - cap, top[2]), shade_r * 0.35 + cap / 2, cap)]
        else:
            A.solids.append(_shade_dome(P, (top[0], top[1] - shade_r * 0.8, top[2]), shade_r))
        return A
    sh = shade_r * P.uniform("shade_height", 0.7, 1.3)
    top_y = Hl - sh
    shape = P.choice("shade", ["cone", "drum", "dome"], [0.5, 0.3, 0.2])
    # Spokes at height yb, reaching radius r_at on the shade, hold it on the rod (a harp),
    # so the lamp is one connected piece.
    if shape == "dome":
        A.solids.append(_shade_dome(P, (0, top_y, 0), shade_r))
        yb, r_at = top_y + 0.3 * shade_r, shade_r * math.sqrt(1 - 0.3**2)
    else:
        taper = P.uniform("shade_taper", 0.45, 0.8) if shape == "cone" else 1.0
        A.solids.append(_shade_cone(P, (0, top_y + sh / 2, 0), shade_r, shade_r * taper, sh / 2))
        yb, r_at = top_y + 0.3 * sh, shade_r * (1 - 0.3 * (1 - taper))
    body = P.choice("body", ["rod", "vase"], [0.4, 0.6]) if kind == "table" else "rod"
    if base == "tripod":
        spread = P.uniform("tripod_spread", 0.2, 0.35)
        hub = top_y * P.uniform("tripod_hub", 0.55, 0.8)
        for i in range(3):
            a = 2 * math.pi * i / 3
            A.solids.append(capsule((spread * math.sin(a), rod, spread * math.cos(a)), (0, hub, 0), rod))
        A.solids.append(capsule((0, hub, 0), (0, yb, 0), rod))
    elif body == "vase":
        vr = P.uniform("vase_radius", 0.05, 0.11)
        vh = P.uniform("vase_height", 0.35, 0.7) * top_y
        vshape = P.choice("vase_shape", ["ball", "drum", "taper"])
        if vshape == "ball":
            A.solids.append(sphere((0, bt + vr * 0.95, 0), vr))
            vh = 2 * vr * 0.95
        elif vshape == "drum":
            A.solids.append(cylinder((0, bt + vh / 2, 0), vr, vh / 2, rounding=vr * 0.3))
        else:
            A.solids.append(cone((0, bt + vh / 2, 0), vr, vr * 0.45, vh / 2))
        A.solids.append(capsule((0, bt + vh * 0.9, 0), (0, yb, 0), rod))
    else:
        A.solids.append(capsule((0, bt * 0.5, 0), (0, yb, 0), rod))
    for i in range(3):
        a = 2 * math.pi * i / 3 + math.pi / 6
        A.solids.append(capsule((0, yb, 0), (r_at * math.sin(a), yb, r_at * math.cos(a)), max(rod * 0.5, P.tmin / 2)))
    return A


def _shade_cone(P: Params, center: Sequence[float], r_bottom: float, r_top: float, half: float) -> Part:
    """An open lampshade: the lateral wall of a frustum, thickened (open at top and bottom)."""
    wall = P.thick("shade_wall", 0.004, 0.01)
    return clip_y(shell(cone(center, r_bottom, r_top, half), wall), center[1] - half + wall / 2, center[1] + half - wall / 2)


def _shade_dome(P: Params, center: Sequence[float], radius: float) -> Part:
    """An open hemispherical shade (opening downwards)."""
    wall = P.thick("shade_wall", 0.004, 0.01)
    return clip_y(shell(sphere(center, radius), wall), center[1])


# --------------------------------------------------------------------------------------- mug
def mug(P: Params) -> Assembly:
    """Mugs and cups: straight, tapered or round-bottomed body; ring, D, square or small ear handle on
    +X; optional rim lip and foot ring; an open cavity with a solid bottom."""
    R = P.uniform("radius", 0.03, 0.055)
    Hm = P.uniform("height", 0.06, 0.13)
    P.set_size(max(Hm, 2 * R + 0.06))
    wall = P.thick("wall", 0.003, 0.008)
    bottom = P.thick("bottom", 0.006, 0.014)
    body = P.choice("body", ["cylinder", "tapered", "rounded"])
    foot = P.uniform("foot_height", 0.004, 0.01) if P.flag("foot", 0.3) else 0.0
    A = Assembly(smooth=0.003)
    yc = foot + Hm / 2
    if body == "cylinder":
        A.solids.append(cylinder((0, yc, 0), R, Hm / 2, rounding=wall * 0.4))
        A.holes.append(cylinder((0, yc + bottom, 0), R - wall, Hm / 2))
        r_mid = R
    elif body == "tapered":
        rb = R * P.uniform("taper", 0.65, 0.9)
        A.solids.append(cone((0, yc, 0), rb, R, Hm / 2))
        # The cavity: the same frustum shifted up by the bottom and shrunk by the wall.
        A.holes.append(cone((0, yc + bottom, 0), rb - wall, R - wall, Hm / 2))
        r_mid = (rb + R) / 2
    else:
        # Rounded bottom, straight walls: a rounded cylinder reaching rho above the rim, clipped
        # at the rim; the cavity is its exact inward offset by the wall, cut at the bottom.
        rho = min(R, Hm / 2) * P.uniform("roundness", 0.3, 0.7)
        outer = cylinder((0, foot + (Hm + rho) / 2, 0), R, (Hm + rho) / 2, rounding=rho)
        A.solids.append(clip_y(outer, y_max=foot + Hm))
        inner, y0 = outer.sdf, foot + bottom
        A.holes.append(Part(lambda p: torch.maximum(inner(p) + wall, y0 - p[:, 1]), outer.lo, outer.hi))
        r_mid = R
    if foot:
        A.solids.append(cylinder((0, foot / 2 + 0.001, 0), R * 0.75, foot / 2 + 0.001))
    if P.flag("rim_lip", 0.3):
        A.solids.append(torus_y((0, foot + Hm - wall * 0.6, 0), R - wall / 2, wall * 0.8))
    handle = P.choice("handle", ["ring", "D", "square", "ear"])
    hr = P.thick("handle_thickness", 0.006, 0.014) / 2
    span = Hm * P.uniform("handle_span", 0.5, 0.8)  # vertical extent of the handle
    # Keep the handle between the foot and the rim.
    hy = float(np.clip(yc + Hm * P.uniform("handle_offset", -0.12, 0.12), foot + span / 2, foot + Hm - span / 2))
    reach = P.uniform("handle_reach", 0.018, 0.04)  # how far it stands out from the body
    x0 = r_mid - wall
    if handle == "ring":
        A.solids.append(torus_z((r_mid, hy, 0), span / 2 - hr, hr))
    elif handle == "ear":
        A.solids.append(torus_z((r_mid + 0.004, foot + Hm * 0.72, 0), Hm * 0.14, hr))
    elif handle == "D":
        top, bot = hy + span / 2 - hr, hy - span / 2 + hr
        xo = r_mid + reach
        A.solids += [capsule((x0, top, 0), (xo - hr, top, 0), hr), capsule((xo, top - hr, 0), (xo, bot + hr, 0), hr),
                     capsule((x0, bot, 0), (xo - hr, bot, 0), hr)]
        A.solids += [sphere((xo - hr * 0.5, top - hr * 0.5, 0), hr * 1.2), sphere((xo - hr * 0.5, bot + hr * 0.5, 0), hr * 1.2)]
    else:
        top, bot = hy + span / 2 - hr, hy - span / 2 + hr
        xo = r_mid + reach
        hw = P.uniform("handle_width", 1.0, 1.8) * hr
        A.solids += [
            box(((x0 + xo) / 2, top, 0), ((xo - x0) / 2 + hr, hr, hw)),
            box(((x0 + xo) / 2, bot, 0), ((xo - x0) / 2 + hr, hr, hw)),
            box((xo, hy, 0), (hr, span / 2, hw)),
        ]
    return A


# -------------------------------------------------------------------------------------- sofa
def sofa(P: Params) -> Assembly:
    """Sofas: two or three seats; square, rolled or no arms; low or high back, with or without
    back cushions; short legs or a plinth to the floor; optional chaise section on the left."""
    n = P.integer("seats", 2, 3)
    sw = P.uniform("seat_width", 0.5, 0.65)
    D = P.uniform("depth", 0.75, 0.95)
    Hs = P.uniform("seat_height", 0.38, 0.46)
    back = P.choice("back", ["low", "high"])
    bh = P.uniform("back_height", 0.22, 0.32) if back == "low" else P.uniform("back_height", 0.42, 0.58)
    chaise = P.flag("chaise", 0.25)
    extra = P.uniform("chaise_length", 0.5, 0.75) if chaise else 0.0
    P.set_size(max(n * sw + 0.44, D + extra, Hs + bh))  # 0.44: the widest arms
    arms = P.choice("arms", ["none", "square", "rolled"], [0.15, 0.5, 0.35])
    aw = P.thick("arm_width", 0.1, 0.22) if arms != "none" else 0.0
    W = n * sw + 2 * aw
    support = P.choice("support", ["legs", "plinth"], [0.6, 0.4])
    lh = P.uniform("leg_height", 0.06, 0.16) if support == "legs" else 0.0
    ct = P.thick("cushion_thickness", 0.08, 0.16)
    bt = P.thick("back_thickness", 0.14, 0.24)
    A = Assembly(smooth=0.01)
    y0, yb = lh, Hs - ct  # the frame spans y0..yb, seat cushions yb..Hs
    zf = D / 2 + extra  # front of the chaise (= D / 2 without one)
    A.solids.append(box((0, (y0 + yb) / 2, 0), (W / 2, (yb - y0) / 2, D / 2), rounding=0.02))
    # The back reaches into the arms, so no rounded edge of it meets an arm (no hidden pockets).
    A.solids.append(box((0, (y0 + Hs + bh) / 2, -D / 2 + bt / 2), (W / 2 - aw / 2, (Hs + bh - y0) / 2, bt / 2), rounding=0.04))
    if chaise:  # the leftmost seat runs forward
        xc = -W / 2 + aw + sw / 2
        A.solids.append(box((xc, (y0 + yb) / 2, D / 2 + extra / 2 - 0.02), (sw / 2, (yb - y0) / 2, extra / 2 + 0.02), rounding=0.02))
    cushions = P.flag("back_cushions", 0.55)
    cd = P.thick("back_cushion_depth", 0.1, 0.16) if cushions else 0.0
    z_back = -D / 2 + bt + cd  # front of the back cushions
    ext = min(aw, 0.05)  # the outer cushions sink into the arms
    for i in range(n):
        xl = -W / 2 + aw + sw * i - (ext if i == 0 else 0.0)
        xr = -W / 2 + aw + sw * (i + 1) + (ext if i == n - 1 else 0.0)
        z0, z1 = -D / 2 + bt - 0.03, (zf if chaise and i == 0 else D / 2)
        # Neighbouring cushions touch: their rounded edges leave open grooves on top and in
        # front; their other edges sink into the frame, back and arms, so no closed pocket forms.
        yc0 = yb - (Hs - yb) / 2
        A.solids.append(box(((xl + xr) / 2, (yc0 + Hs) / 2, (z0 + z1) / 2), ((xr - xl) / 2, (Hs - yc0) / 2, (z1 - z0) / 2), rounding=ct * 0.45))
        if cushions:
            ch = bh * 0.85
            A.solids.append(box(((xl + xr) / 2, Hs - 0.04 + ch / 2, (z0 + z_back) / 2), ((xr - xl) / 2, ch / 2 + 0.04, (z_back - z0) / 2), rounding=cd * 0.45))
            if i:  # fill the junction of four rounded edges under the back cushions' seam
                rr = max(ct, cd) * 0.45
                A.solids.append(box((xl, (yb + Hs + 0.04) / 2, (z0 + z_back - rr) / 2), (rr, (Hs + 0.04 - yb) / 2, (z_back - rr - z0) / 2)))
    if arms != "none":
        ah = P.uniform("arm_height", 0.14, 0.24)
        top = Hs + ah
        for sx in (-1, 1):
            x = sx * (W / 2 - aw / 2)
            if arms == "square":
                A.solids.append(box((x, (y0 + top) / 2, 0), (aw / 2, (top - y0) / 2, D / 2), rounding=0.03))
            else:  # a roll along the arm's top, a little wider than the arm
                rr = aw * 0.6
                A.solids.append(box((x, (y0 + top - rr) / 2, 0), (aw / 2, (top - rr - y0) / 2, D / 2), rounding=0.02))
                A.solids.append(capsule((x + sx * (rr - aw / 2), top - rr, -D / 2 + rr), (x + sx * (rr - aw / 2), top - rr, D / 2 - rr), rr))
    if support == "legs":
        style = P.choice("leg_style", ["round", "square", "tapered"])
        r = P.thick("leg_thickness", 0.035, 0.06) / 2
        xs = [-W / 2 + 0.06, W / 2 - 0.06] + ([0.0] if n == 3 else [])
        zs = [-D / 2 + 0.06, D / 2 - 0.06]
        feet = [(x, z) for x in xs for z in zs] + ([(-W / 2 + aw + sw / 2, zf - 0.06)] if chaise else [])
        for x, z in feet:
            c = (x, lh / 2 + 0.005, z)
            if style == "round":
                A.solids.append(cylinder(c, r, lh / 2 + 0.005))
            elif style == "square":
                A.solids.append(box(c, (r, lh / 2 + 0.005, r)))
            else:
                A.solids.append(cone(c, max(r * 0.6, P.tmin / 2), r, lh / 2 + 0.005))
    return A


# --------------------------------------------------------------------------------------- bed
#: Mattress width ranges (metres) of the bed sizes.
BED_WIDTHS = {"single": (0.9, 1.0), "double": (1.35, 1.5), "king": (1.6, 1.9)}


def bed(P: Params) -> Assembly:
    """Beds: single, double or king size; a mattress on a frame with legs or a platform to the
    floor; no headboard, or a panel, slatted or upholstered one at the head (-Z); optional
    footboard; zero to two pillows."""
    size = P.choice("size", list(BED_WIDTHS), [0.35, 0.4, 0.25])
    W = P.uniform("width", *BED_WIDTHS[size])
    L = P.uniform("length", 1.95, 2.15)
    base = P.choice("base", ["legs", "platform"])
    bh = P.uniform("frame_height", 0.22, 0.38)
    mt = P.uniform("mattress_thickness", 0.15, 0.28)
    Hm = bh + mt  # top of the mattress
    headboard = P.choice("headboard", ["none", "panel", "slats", "upholstered"], [0.15, 0.35, 0.25, 0.25])
    hh = P.uniform("headboard_height", 0.3, 0.7) if headboard != "none" else 0.0
    P.set_size(max(W + 0.1, L + 0.2, Hm + hh))
    A = Assembly()
    ft = P.thick("frame_thickness", 0.04, 0.08)  # side rails, legs, boards
    lh = P.uniform("leg_height", 0.1, 0.2) if base == "legs" else 0.0
    A.solids.append(box((0, (lh + bh) / 2, 0), (W / 2 + 0.02, (bh - lh) / 2, L / 2), rounding=0.01))
    if base == "legs":
        for sx in (-1, 1):
            for sz in (-1, 1):
                A.solids.append(box((sx * (W / 2 + 0.02 - ft / 2), lh / 2 + 0.005, sz * (L / 2 - ft / 2)), (ft / 2, lh / 2 + 0.005, ft / 2)))
    A.solids.append(box((0, bh + mt / 2 - 0.005, 0.0), (W / 2, mt / 2, L / 2 - 0.01), rounding=min(0.06, mt / 3)))
    zh = -L / 2 - ft / 2 + 0.01  # the head board's centre plane, overlapping the frame
    if headboard == "panel":
        A.solids.append(box((0, (Hm + hh) / 2, zh), (W / 2 + 0.03, (Hm + hh) / 2, ft / 2)))
    elif headboard == "upholstered":
        ut = P.thick("headboard_thickness", 0.08, 0.14)
        A.solids.append(box((0, (lh + Hm + hh) / 2, -L / 2 - ut / 2 + 0.01), (W / 2 + 0.06, (Hm + hh - lh) / 2, ut / 2), rounding=ut * 0.45))
    elif headboard == "slats":
        pw = ft * 1.2
        for sx in (-1, 1):  # posts from the floor
            A.solids.append(box((sx * (W / 2 + 0.03 - pw / 2), (Hm + hh) / 2, zh), (pw / 2, (Hm + hh) / 2, ft / 2)))
        rail = P.thick("rail_height", 0.06, 0.12)
        A.solids.append(box((0, Hm + hh - rail / 2, zh), (W / 2 + 0.03, rail / 2, ft / 2)))
        inner = W + 0.06 - 2 * pw
        gap = max(0.08, P.tmin * 1.5)  # gaps of a few grid cells, so the slats stay apart when meshed
        sw = max(ft * 0.8, P.tmin)
        k = P.integer("slats", 2, max(2, min(8, int((inner - gap) / (sw + gap)))))
        for i in range(k):
            x = -inner / 2 + inner * (i + 1) / (k + 1)
            A.solids.append(box((x, (bh + Hm + hh - rail) / 2, zh), (sw / 2, (Hm + hh - rail - bh) / 2 + 0.01, max(ft * 0.8, P.tmin) / 2)))
    if P.flag("footboard", 0.35):
        fh = P.uniform("footboard_height", 0.0, 0.25)
        A.solids.append(
            box(
                (0, (lh + Hm + fh) / 2 if base == "legs" else (Hm + fh) / 2, L / 2 + ft / 2 - 0.01),
                (W / 2 + 0.02, (Hm + fh - (lh if base == "legs" else 0)) / 2, ft / 2),
            )
        )
    pillows = P.integer("pillows", 0, 1 if size == "single" else 2)
    if pillows:
        pt = P.thick("pillow_thickness", 0.09, 0.14)
        pd = P.uniform("pillow_depth", 0.32, 0.42)
        pw = (W - 0.12) / pillows
        for i in range(pillows):
            x = -W / 2 + 0.06 + pw * (i + 0.5)
            A.solids.append(box((x, Hm + pt / 2 - 0.02, -L / 2 + 0.05 + pd / 2), (pw / 2 - 0.02, pt / 2, pd / 2), rounding=pt * 0.45))
    return A


# ------------------------------------------------------------------------------------- bench
def bench(P: Params) -> Assembly:
    """Benches: long and narrow; solid, slatted or padded seat; four legs, slab ends or bent metal
    frames; optional backrest (posts and a board at -Z) and lower shelf."""
    L = P.uniform("length", 1.0, 1.9)
    D = P.uniform("depth", 0.28, 0.42)
    Hs = P.uniform("seat_height", 0.4, 0.48)
    backrest = P.flag("backrest", 0.3)
    bh = P.uniform("back_height", 0.3, 0.45) if backrest else 0.0
    P.set_size(max(L, Hs + bh))
    seat = P.choice("seat", ["solid", "slatted", "padded"], [0.45, 0.3, 0.25])
    T = P.thick("seat_thickness", 0.03, 0.06)
    support = P.choice("support", ["legs", "panels", "frame"], [0.5, 0.3, 0.2])
    inset = P.uniform("support_inset", 0.03, 0.15)
    xe = L / 2 - inset  # where the supports stand
    A = Assembly()
    ys = Hs - T  # underside of the seat board(s)
    if seat == "slatted":
        # Slats along the length on two battens; gaps of a few grid cells so they stay apart.
        gap = max(0.03, P.tmin * 0.9)
        k = 3 if D > 3 * P.tmin + 2 * gap + 0.06 else 2
        sw = (D - (k - 1) * gap) / k
        for i in range(k):
            z = -D / 2 + sw / 2 + i * (sw + gap)
            A.solids.append(box((0, Hs - T / 2, z), (L / 2, T / 2, sw / 2), rounding=min(0.01, T / 4)))
        for sx in (-1, 1):
            A.solids.append(box((sx * xe, ys - T / 2 + 0.005, 0), (max(T, P.tmin) / 2 + 0.01, T / 2, D / 2 - 0.01)))
        ys -= T
    else:
        A.solids.append(box((0, Hs - T / 2, 0), (L / 2, T / 2, D / 2), rounding=min(0.01, T / 4)))
        if seat == "padded":
            pt = P.thick("pad_thickness", 0.05, 0.09)
            A.solids.append(box((0, Hs + pt / 2 - 0.01, 0), (L / 2 - 0.015, pt / 2, D / 2 - 0.015), rounding=pt * 0.45))
    t = P.thick("support_thickness", 0.035, 0.07)
    if support == "legs":
        style = P.choice("leg_style", ["round", "square"])
        for sx in (-1, 1):
            for sz in (-1, 1):
                x, z = sx * xe, sz * (D / 2 - t / 2 - 0.02)
                if style == "round":
                    A.solids.append(cylinder((x, ys / 2, z), t / 2, ys / 2 + 0.005))
                else:
                    A.solids.append(box((x, ys / 2, z), (t / 2, ys / 2 + 0.005, t / 2)))
            A.solids.append(box((sx * xe, ys * 0.3, 0), (max(t * 0.8, P.tmin) / 2, max(t * 0.8, P.tmin) / 2, D / 2 - 0.03)))  # side stretcher
    elif support == "panels":
        for sx in (-1, 1):
            A.solids.append(box((sx * xe, ys / 2, 0), (t / 2, ys / 2 + 0.005, D / 2 - 0.01)))
    else:  # a bent tube at each end: two uprights, a foot bar and a top bar
        r = t / 2
        for sx in (-1, 1):
            x, z = sx * xe, D / 2 - r - 0.02
            A.solids += [
                capsule((x, r, -z), (x, r, z), r),
                capsule((x, r, z), (x, ys - r + 0.005, z), r),
                capsule((x, r, -z), (x, ys - r + 0.005, -z), r),
                capsule((x, ys - r + 0.005, -z), (x, ys - r + 0.005, z), r),
            ]
    if support != "frame" and P.flag("lower_shelf", 0.3):
        sh = P.uniform("shelf_height", 0.08, 0.18)
        A.solids.append(box((0, sh, 0), (xe, max(T * 0.7, P.tmin) / 2, D / 2 - 0.03)))
    if backrest:
        pw = max(t, P.tmin)
        z = -D / 2 + pw / 2
        board = P.thick("back_board", 0.08, 0.16)
        for sx in (-1, 1):
            A.solids.append(box((sx * xe, (ys + Hs + bh) / 2, z), (pw / 2, (Hs + bh - ys) / 2, pw / 2)))
        A.solids.append(box((0, Hs + bh - board / 2, z - pw / 4), (L / 2 - 0.02, board / 2, max(pw * 0.4, P.tmin / 2)), rounding=0.005))
    return A


# ------------------------------------------------------------------------------ vase and bowl
def _profile_radius(points: Sequence[tuple[float, float]], t: float) -> float:
    """Radius at height fraction ``t`` of a piecewise-smooth profile through ``(t, r)`` points
    (a smoothstep between neighbours, so the wall has no kinks)."""
    for (t0, r0), (t1, r1) in pairwise(points):
        if t <= t1 or (t1, r1) == points[-1]:
            u = min(max((t - t0) / max(t1 - t0, 1e-9), 0.0), 1.0)
            return r0 + (r1 - r0) * u * u * (3 - 2 * u)
    return points[-1][1]


def _vessel(A: Assembly, radius: Callable[[float], float], y0: float, H: float, wall: float, bottom: float, samples: int = 40) -> None:
    """An open-topped vessel of revolution on ``A``: outer radius ``radius(t)`` for ``t`` in
    ``[0, 1]`` over heights ``y0 .. y0 + H``, walls ``wall`` thick (along the normal), a solid
    bottom ``bottom`` thick.

    The outer solid is extended straight up above the rim and clipped there; the cavity is its
    inward offset by ``wall`` (exact for an exact SDF) above the bottom, so it opens at the rim.
    """
    ts = np.linspace(0.0, 1.0, samples)
    top = y0 + H + 2 * wall + 0.002
    prof = [(0.0, y0)] + [(radius(float(t)), y0 + H * float(t)) for t in ts] + [(radius(1.0), top), (0.0, top)]
    outer = revolve(prof)
    A.solids.append(clip_y(outer, y_max=y0 + H))
    yb = y0 + bottom
    A.holes.append(Part(lambda p: torch.maximum(outer.sdf(p) + wall, yb - p[:, 1]), outer.lo, outer.hi))


#: Vase body profiles as (height fraction, radius fraction) points.
VASE_PROFILES = {
    "cylinder": [(0.0, 0.9), (1.0, 0.9)],
    "round": [(0.0, 0.55), (0.45, 1.0), (0.85, 0.7), (1.0, 0.62)],
    "tapered": [(0.0, 1.0), (1.0, 0.62)],
    "flared": [(0.0, 0.55), (0.55, 0.62), (1.0, 1.0)],
}


def vase(P: Params) -> Assembly:
    """Vases: cylindrical, round, tapered or flared body; a narrow neck with a small lip or a wide
    mouth; optional pair of loop handles (on +-X) and foot disk; open at the top."""
    H = P.uniform("height", 0.2, 0.5)
    R = H * P.uniform("radius", 0.2, 0.38)  # the widest body radius, as a fraction of the height
    P.set_size(max(H, 2 * R))
    profile = P.choice("profile", list(VASE_PROFILES))
    neck = P.flag("neck", 0.5) if profile != "flared" else False
    wall = P.thick("wall", 0.005, 0.01)
    bottom = P.thick("bottom", 0.008, 0.02)
    fh = P.thick("foot_height", 0.01, 0.03) if P.flag("foot", 0.3) else 0.0
    body = VASE_PROFILES[profile]
    if neck:
        s = P.uniform("shoulder", 0.6, 0.75)  # the body ends at this height fraction
        rn = max(P.uniform("neck_radius", 0.28, 0.45) * R, wall + 2.5 * P.tmin)  # a mouth of a few cells
        pts = [(t * s, r * R) for t, r in body] + [(s + 0.14, rn), (0.95, rn), (1.0, rn * 1.15)]

        def radius(t: float) -> float:
            return _profile_radius(pts, t)
    else:

        def radius(t: float) -> float:
            return _profile_radius(body, t) * R

    A = Assembly(smooth=0.002)
    _vessel(A, radius, fh, H - fh, wall, bottom)
    if fh:
        rf = radius(0.0) * 1.1
        A.solids.append(cylinder((0, fh / 2 + 0.002, 0), rf, fh / 2 + 0.002, rounding=fh * 0.3))
    if P.flag("handles", 0.3):
        ht = P.thick("handle_thickness", 0.008, 0.016) / 2
        tm = (s + 0.07) if neck else 0.8  # around the shoulder, or below the rim
        yh = fh + (H - fh) * tm
        rh = (H - fh) * 0.12
        for sx in (-1, 1):
            A.solids.append(torus_z((sx * (radius(tm) + rh * 0.15), yh, 0), rh, ht))
    return A


def bowl(P: Params) -> Assembly:
    """Bowls: round, conical or straight-sided; shallow or deep; flat bottom, ring foot or a
    pedestal stem; optional rolled rim."""
    R = P.uniform("radius", 0.06, 0.16)
    depth = P.uniform("depth", 0.28, 0.8)  # height of the bowl over its radius
    foot = P.choice("foot", ["none", "ring", "pedestal"], [0.45, 0.35, 0.2])
    stem = R * P.uniform("stem_height", 0.5, 1.0) if foot == "pedestal" else 0.0
    P.set_size(max(2 * R, depth * R + stem))
    profile = P.choice("profile", ["round", "conical", "straight"], [0.5, 0.3, 0.2])
    b = P.uniform("base", 0.35, 0.55)  # flat bottom radius over the rim radius
    wall = P.thick("wall", 0.004, 0.01)
    bottom = P.thick("bottom", 0.006, 0.014)
    H = depth * R
    fh = P.thick("foot_height", 0.006, 0.015) if foot == "ring" else 0.0
    y0 = fh + stem

    def radius(t: float) -> float:
        if profile == "round":
            return R * (b + (1 - b) * math.sqrt(max(1 - (1 - t) ** 2, 0.0)))
        if profile == "conical":
            return R * (b + (1 - b) * t)
        u = min(t / 0.25, 1.0)  # straight walls above a rounded heel
        return R * (0.82 + 0.18 * math.sqrt(max(1 - (1 - u) ** 2, 0.0)))

    A = Assembly(smooth=0.002)
    _vessel(A, radius, y0, H, wall, bottom)
    rb = radius(0.0)
    if foot == "ring":
        fw = max(wall, P.tmin)
        # The side wall of a tall cylinder cut to the foot's height (its caps stay outside the cut).
        A.solids.append(clip_y(shell(cylinder((0, fh / 2, 0), rb * 0.8, fh / 2 + 2 * fw), fw), 0.0, fh + 0.004))
    elif foot == "pedestal":
        rs = P.thick("stem_thickness", 0.015, 0.03) / 2
        ft = P.thick("foot_thickness", 0.006, 0.012)
        A.solids.append(cylinder((0, ft / 2, 0), rb * P.uniform("foot_radius", 0.8, 1.2), ft / 2, rounding=ft * 0.3))
        A.solids.append(cylinder((0, (ft + y0) / 2 + 0.003, 0), rs, (y0 - ft) / 2 + 0.006))
    if P.flag("rim", 0.3):
        A.solids.append(torus_y((0, y0 + H - wall * 0.6, 0), radius(1.0) - wall / 2, max(wall * 0.8, P.tmin / 2)))
    return A


# -------------------------------------------------------------------------------------- desk
def desk(P: Params) -> Assembly:
    """Desks: a rectangular top on four legs or two side panels; a drawer pedestal on the left
    (-X), right (+X) or both sides in place of the legs there (drawers shown by their handles at
    +Z); optional modesty panel at the back (-Z)."""
    W = P.uniform("width", 1.0, 1.6)
    D = P.uniform("depth", 0.5, 0.75)
    H = P.uniform("height", 0.72, 0.78)
    P.set_size(max(W, D, H))
    T = P.thick("top_thickness", 0.025, 0.05)
    support = P.choice("support", ["legs", "panels"], [0.6, 0.4])
    drawers = P.choice("drawers", ["none", "left", "right", "both"], [0.3, 0.25, 0.25, 0.2])
    A = Assembly()
    A.solids.append(box((0, H - T / 2, 0), (W / 2, T / 2, D / 2), rounding=min(0.01, T / 4)))
    under = H - T
    t = P.thick("support_thickness", 0.035, 0.06)
    inset = P.uniform("support_inset", 0.0, 0.05)
    sides = {-1: drawers in ("left", "both"), 1: drawers in ("right", "both")}
    if drawers != "none":
        pw = P.uniform("pedestal_width", 0.35, 0.45)
        n = P.integer("drawer_count", 2, 4)
        hr = max(P.tmin / 2, 0.008)  # handle bar radius
    style = P.choice("leg_style", ["square", "round"]) if support == "legs" else ""
    for sx, cabinet in sides.items():
        x_out = sx * (W / 2 - inset)
        if cabinet:  # a closed box of drawers from the floor to the top, a handle bar per drawer
            xc = x_out - sx * pw / 2
            A.solids.append(box((xc, under / 2, 0), (pw / 2, under / 2 + 0.005, D / 2 - inset - 0.01)))
            for i in range(n):
                y = under - (i + 0.5) * under / n
                A.solids.append(capsule((xc - pw * 0.25, y, D / 2 - inset - 0.01 + hr * 0.6), (xc + pw * 0.25, y, D / 2 - inset - 0.01 + hr * 0.6), hr))
        elif support == "panels":
            A.solids.append(box((x_out - sx * t / 2, under / 2, 0), (t / 2, under / 2 + 0.005, D / 2 - inset)))
        else:
            for sz in (-1, 1):
                c = (x_out - sx * t / 2, under / 2, sz * (D / 2 - inset - t / 2))
                if style == "round":
                    A.solids.append(cylinder(c, t / 2, under / 2 + 0.005))
                else:
                    A.solids.append(box(c, (t / 2, under / 2 + 0.005, t / 2)))
    if P.flag("modesty_panel", 0.45):
        ph = under * P.uniform("panel_height", 0.3, 0.6)
        pt = max(t * 0.6, P.tmin)
        A.solids.append(box((0, under - ph / 2 + 0.005, -D / 2 + inset + pt / 2 + 0.01), (W / 2 - inset - 0.01, ph / 2, pt / 2)))
    return A


GENERATORS: dict[str, Callable[[Params], Assembly]] = {
    "chair": chair,
    "table": table,
    "shelf": shelf,
    "lamp": lamp,
    "mug": mug,
    "sofa": sofa,
    "bed": bed,
    "bench": bench,
    "vase": vase,
    "bowl": bowl,
    "desk": desk,
}
"""Class name -> generator, in the order the data set lists classes."""
