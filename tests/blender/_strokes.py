"""A chair drawn as 3D polylines, LAS-style view matrices and an independent rendering of the
strokes (Pillow), shared by the add-on's sketch tests with and without Blender."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

SIZE, WIDTH, FILL = 256, 4, 0.8  # the sketch the add-on renders: side, stroke width, share of the side filled

# A chair as a wire drawing in Blender's world (Z up, front towards -Y): seat, legs, back.
SEAT = [[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.5, 0.5, 0.0], [-0.5, 0.5, 0.0], [-0.5, -0.5, 0.0]]
LEGS = [[[x, y, 0.0], [x, y, -0.9]] for x in (-0.45, 0.45) for y in (-0.45, 0.45)]
BACK = [[-0.5, 0.5, 0.0], [-0.5, 0.5, 1.0], [0.5, 0.5, 1.0], [0.5, 0.5, 0.0]]
POLYLINES = [SEAT, *LEGS, BACK]


def view_matrix(azimuth: float, elevation: float = 20.0, distance: float = 5.0) -> np.ndarray:
    """World-to-view matrix of a viewer at LAS ``azimuth`` (0: Blender's front view from -Y, 90: from +X)."""
    az, el = np.radians(azimuth), np.radians(elevation)
    z = np.array([np.cos(el) * np.sin(az), -np.cos(el) * np.cos(az), np.sin(el)])  # towards the viewer
    x = np.cross([0.0, 0.0, 1.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    rot = np.stack([x, y, z])
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rot, -rot @ (distance * z)
    return m


def expected_ink(polylines, view: np.ndarray, mirrored: bool = False) -> np.ndarray:
    """The strokes drawn independently with Pillow: orthographic view plane, centred, the larger
    extent filling FILL of the side, WIDTH-pixel lines."""
    plane = [np.c_[np.asarray(p, float), np.ones(len(p))] @ view.T for p in polylines]
    pts = np.concatenate([p[:, :2] for p in plane])
    lo, hi = pts.min(0), pts.max(0)
    scale, centre = FILL * SIZE / (hi - lo).max(), (lo + hi) / 2
    img = Image.new("L", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(img)
    for p in plane:
        uv = [((x - centre[0]) * scale + SIZE / 2, SIZE / 2 - (y - centre[1]) * scale) for x, y in p[:, :2]]
        draw.line(uv, fill=255, width=WIDTH, joint="curve")
    ink = np.asarray(img) > 127
    return ink[:, ::-1] if mirrored else ink


def dilate(mask: np.ndarray, r: int = 2) -> np.ndarray:
    out = mask.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out |= np.roll(np.roll(mask, dy, 0), dx, 1)
    return out
