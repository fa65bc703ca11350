# SPDX-License-Identifier: GPL-3.0-or-later
"""Viewport strokes -> a sketch image and a LAS view, with numpy only (no GPU, no bpy).

Frames: Blender's world is Z-up. shapegen's shapes and the LAS cameras are +Y up with the shape's
front towards +Z; the glTF importer maps them to Blender as ``(x, y, z) -> (x, -z, y)``, so a
shape imported from shapegen faces Blender's -Y (the Front view, numpad 1).

Azimuth (the LAS convention, ``shapegen sketch-to-3d --view``): the angle about the up axis of the
camera's position as seen from the shape, 0 on the shape's front (+Z in shapegen, -Y in Blender)
and increasing towards +X. In Blender: Front view (numpad 1) = 0, Right view (numpad 3) = 90,
Back view (Ctrl numpad 1) = 180, Left view (Ctrl numpad 3) = -90. LAS trains on five views, 0,
45, 90, 135 and 180 degrees at 20 degrees elevation; a view is snapped to the nearest of them,
and a view from the left side (negative azimuth) is mirrored: the sketch is flipped left-right and
sent as the matching right-side view, which gives the same shape for the left-right symmetric
classes the shipped model knows (chairs, tables, lamps, mugs, shelves). Elevation is ignored.
"""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

LAS_AZIMUTHS = (0.0, 45.0, 90.0, 135.0, 180.0)
"""The views the LAS model is trained on (degrees)."""

SKETCH_SIZE = 256
"""Side of the sketch image in pixels. shapegen squares and resizes any sketch to its model's input
(64 for the shipped model): 4 px strokes at 256 become the 1 px lines of its training sketches."""

STROKE_WIDTH = 4.0
"""Stroke width in pixels at :data:`SKETCH_SIZE` (the hand-drawn example sketches use 4)."""

FILL = 0.8
"""Share of the image side the drawing's larger extent is scaled to (the example sketches fill
about 0.8 of theirs); the drawing is centred, so the zoom of the view does not matter."""


def view_azimuth(view_matrix: Sequence[Sequence[float]]) -> float:
    """LAS azimuth in degrees, in (-180, 180], of a Blender view (see the module docstring).

    Args:
        view_matrix: the 4x4 world-to-view matrix (``region_3d.view_matrix``); only its rotation
            is used: its third row is the view's +Z axis, which points from the scene towards the
            viewer.
    """
    z = np.asarray(view_matrix, dtype=np.float64)[2, :3]
    # Blender (x, y) of the viewer's direction; LAS azimuth 0 is Blender -Y, +90 is +X.
    return math.degrees(math.atan2(z[0], -z[1]))


def las_view(azimuth: float) -> tuple[float, bool]:
    """The LAS view to send for a viewport azimuth: ``(view, mirrored)``.

    ``mirrored`` is True for views from the left side that snap to 45, 90 or 135 degrees (the
    front and back views are their own mirror images): the sketch must be flipped left-right and
    sent as the right-side view of the same angle.
    """
    az = (azimuth + 180.0) % 360.0 - 180.0
    view = min(LAS_AZIMUTHS, key=lambda v: abs(v - abs(az)))
    return view, az < 0 and view not in (0.0, 180.0)


def project_strokes(strokes: Sequence[np.ndarray], view_matrix, window_matrix=None) -> list[np.ndarray]:
    """World-space polylines -> view-plane polylines (x right, y up, isotropic units).

    Args:
        strokes: polylines, each an ``N x 3`` array of world points.
        view_matrix: 4x4 world-to-view matrix (``region_3d.view_matrix``).
        window_matrix: 4x4 projection (``region_3d.window_matrix``); None: orthographic. Only the
            perspective divide and the pixel aspect matter, since the drawing is refitted to
            the image afterwards.

    Returns:
        One ``M x 2`` array per stroke (points behind a perspective viewer dropped).
    """
    v = np.asarray(view_matrix, dtype=np.float64)
    w = np.eye(4) if window_matrix is None else np.asarray(window_matrix, dtype=np.float64)
    m = w @ v
    out = []
    for stroke in strokes:
        p = np.asarray(stroke, dtype=np.float64).reshape(-1, 3)
        clip = np.c_[p, np.ones(len(p))] @ m.T
        keep = clip[:, 3] > 1e-9
        ndc = clip[keep, :2] / clip[keep, 3:4]
        # NDC x and y span the region's width and height: undo the window's aspect so a circle
        # stays a circle (the diagonal of the projection holds the focal scale of each axis).
        ndc = ndc / np.array([w[0, 0] or 1.0, w[1, 1] or 1.0])
        if len(ndc):
            out.append(ndc)
    return out


def fit_to_image(polylines: Sequence[np.ndarray], size: int = SKETCH_SIZE, fill: float = FILL) -> list[np.ndarray]:
    """View-plane polylines -> pixel polylines (u right, v down), centred, larger extent ``fill * size``."""
    pts = np.concatenate([p for p in polylines if len(p)]) if polylines else np.zeros((0, 2))
    if len(pts) == 0:
        return []
    lo, hi = pts.min(0), pts.max(0)
    extent = float((hi - lo).max()) or 1.0
    scale = fill * size / extent
    centre = (lo + hi) / 2
    return [np.c_[(p[:, 0] - centre[0]) * scale + size / 2, size / 2 - (p[:, 1] - centre[1]) * scale] for p in polylines]


def rasterize_polylines(polylines: Sequence[np.ndarray], size: int = SKETCH_SIZE, width: float = STROKE_WIDTH) -> np.ndarray:
    """Pixel polylines -> a boolean ink mask (``size x size``, True on a stroke), round caps and joints.

    A pixel is ink when its centre lies within ``width / 2`` of a segment (each segment is
    handled inside its own bounding box, so the cost follows the stroke length).
    """
    ink = np.zeros((size, size), dtype=bool)
    r = width / 2.0
    for line in polylines:
        p = np.asarray(line, dtype=np.float64).reshape(-1, 2)
        if len(p) == 1:
            p = np.r_[p, p]
        for a, b in itertools.pairwise(p):
            x0, x1 = int(max(math.floor(min(a[0], b[0]) - r), 0)), int(min(math.ceil(max(a[0], b[0]) + r), size))
            y0, y1 = int(max(math.floor(min(a[1], b[1]) - r), 0)), int(min(math.ceil(max(a[1], b[1]) + r), size))
            if x0 >= x1 or y0 >= y1:
                continue
            ys, xs = np.mgrid[y0:y1, x0:x1] + 0.5  # pixel centres
            d = b - a
            t = np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / max(float(d @ d), 1e-12), 0.0, 1.0)
            dist2 = (xs - a[0] - t * d[0]) ** 2 + (ys - a[1] - t * d[1]) ** 2
            ink[y0:y1, x0:x1] |= dist2 <= r * r
    return ink


def write_png(path: str | Path, grey: np.ndarray) -> Path:
    """Write an 8-bit greyscale PNG with the standard library (Blender's Python has no Pillow);
    written to a temporary name, then renamed, so no half-written sketch is ever read."""
    grey = np.ascontiguousarray(grey, dtype=np.uint8)
    h, w = grey.shape
    raw = b"".join(b"\x00" + grey[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(png)
    tmp.replace(path)
    return path


def sketch_from_strokes(
    strokes: Sequence[np.ndarray], view_matrix, window_matrix=None, size: int = SKETCH_SIZE, width: float = STROKE_WIDTH
) -> tuple[np.ndarray, float, float, bool]:
    """Strokes seen from a view -> ``(ink, azimuth, las_view, mirrored)``.

    ``ink`` is the ``size x size`` boolean mask as the viewer sees the strokes (before any
    mirroring); :func:`write_sketch` writes what shapegen should read.

    Raises:
        ValueError: no stroke point is in front of the viewer.
    """
    plane = project_strokes(strokes, view_matrix, window_matrix)
    if not plane:
        raise ValueError("no strokes to turn into a sketch: draw some with Annotate or a Grease Pencil object first")
    ink = rasterize_polylines(fit_to_image(plane, size), size, width)
    azimuth = view_azimuth(view_matrix)
    view, mirrored = las_view(azimuth)
    return ink, azimuth, view, mirrored


def write_sketch(path: str | Path, ink: np.ndarray, mirrored: bool = False) -> Path:
    """Dark strokes on white paper as a PNG; flipped left-right when ``mirrored``."""
    img = np.where(ink, 0, 255).astype(np.uint8)
    return write_png(path, img[:, ::-1] if mirrored else img)
