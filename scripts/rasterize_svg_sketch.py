"""Rasterise a hand-drawn SVG sketch (``<polyline>`` strokes only) to a black-on-white PNG beside it.

Usage: ``python scripts/rasterize_svg_sketch.py assets/sketches/hand_chair.svg [--size 256]``

Reads the ``points`` and ``stroke-width`` of every polyline (a width on the enclosing ``<g>`` applies
to all of them) in the SVG's pixel coordinates and draws them with round joints with Pillow. Only
the subset of SVG the project's hand sketches use is read; anything else is refused.
"""

from __future__ import annotations

import argparse
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from PIL import Image, ImageDraw

NS = "{http://www.w3.org/2000/svg}"


def polylines(svg: Path) -> tuple[int, int, list[tuple[float, list[tuple[float, float]]]]]:
    """``(width, height, [(stroke_width, points), ...])`` of an SVG made of polylines."""
    if not svg.is_file():
        raise SystemExit(f"error: '{svg}' does not exist; give the path of an SVG sketch")
    try:
        root = ET.parse(svg).getroot()
    except ET.ParseError as exc:
        raise SystemExit(f"error: '{svg.name}' is not readable SVG ({exc}); save the sketch as plain SVG") from exc
    w, h = int(float(root.get("width", "256"))), int(float(root.get("height", "256")))
    strokes = []

    def walk(node: ET.Element, width: float) -> None:
        width = float(node.get("stroke-width", width))
        for child in node:
            tag = child.tag.replace(NS, "")
            if tag == "g":
                walk(child, width)
            elif tag == "polyline":
                try:
                    nums = [float(v) for v in re.split(r"[\s,]+", child.get("points", "").strip()) if v]
                except ValueError as exc:
                    raise SystemExit(f"error: {svg.name}: a <polyline> has non-numeric points ({exc})") from exc
                if len(nums) < 4 or len(nums) % 2:
                    raise SystemExit(f"error: {svg.name}: a <polyline> needs at least two x,y points")
                strokes.append((float(child.get("stroke-width", width)), list(zip(nums[::2], nums[1::2]))))
            elif tag not in ("title", "desc"):
                raise SystemExit(f"error: {svg.name}: unsupported SVG element <{tag}>; use <polyline> strokes")

    walk(root, 1.0)
    if not strokes:
        raise SystemExit(f"error: {svg.name} has no <polyline> strokes")
    return w, h, strokes


def rasterize(svg: Path, size: int | None = None) -> Path:
    w, h, strokes = polylines(svg)
    scale = 1.0 if size is None else size / max(w, h)
    img = Image.new("L", (round(w * scale), round(h * scale)), 255)
    draw = ImageDraw.Draw(img)
    for width, pts in strokes:
        p = [(x * scale, y * scale) for x, y in pts]
        r = width * scale / 2
        draw.line(p, fill=0, width=max(1, round(width * scale)), joint="curve")
        for x, y in (p[0], p[-1]):  # round caps
            draw.ellipse([x - r, y - r, x + r, y + r], fill=0)
    out = svg.with_suffix(".png")
    tmp = out.with_suffix(".tmp.png")
    img.save(tmp)
    os.replace(tmp, out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("svg", nargs="+", type=Path)
    ap.add_argument("--size", type=int, default=None, help="longest side in pixels (default: the SVG's)")
    args = ap.parse_args()
    for svg in args.svg:
        print(rasterize(svg, args.size))


if __name__ == "__main__":
    main()
