"""Synthetic LAS sketches, the view camera, and user-sketch loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from shapegen.data.las_prepare import LASPrepareConfig, mesh_to_volumes
from shapegen.data.sketches import (
    LAS_AZIMUTHS,
    load_sketch,
    render_sketch,
    save_sketch,
    silhouette,
    view_projection,
)
from shapegen.errors import ShapegenError
from shapegen.geometry.extract import extract_mesh
from shapegen.geometry.primitives import box, sphere, union
from shapegen.geometry.voxels import voxel_centers

SIZE = 64


@pytest.fixture(scope="module")
def lopsided():
    """An asymmetric shape (mirror images differ along every axis) as a mesh in [-0.8, 0.8]^3."""
    f = union(box((0.35, -0.3, 0.1), (0.35, 0.25, 0.3)), sphere((-0.35, 0.35, -0.3), 0.3))
    return extract_mesh(f, 32)


@pytest.fixture(scope="module")
def lopsided_sdf(lopsided):
    return mesh_to_volumes(lopsided, LASPrepareConfig(resolution=32))[0]


def _splat(points: torch.Tensor, proj: torch.Tensor, size: int) -> torch.Tensor:
    uvw = points @ proj[:, :3].T + proj[:, 3]
    uv = (uvw[:, :2] / uvw[:, 2:]).floor().long()
    ok = ((uv >= 0) & (uv < size)).all(1)
    img = torch.zeros(size, size)
    img[uv[ok, 1], uv[ok, 0]] = 1.0
    return img


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.bool(), b.bool()
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


@pytest.mark.parametrize("view", range(5))
def test_occupied_voxels_project_onto_own_silhouette(lopsided, lopsided_sdf, view):
    """Axis conventions: voxel grid (ij, axis 0 = x), SDF sampling and the sketch camera agree."""
    sdf = lopsided_sdf
    centres = voxel_centers(32)[sdf < 0]
    az = LAS_AZIMUTHS[view]
    proj = view_projection(az, SIZE)
    sil = silhouette(lopsided, az, SIZE)
    # Voxel centres are ~1.4 px apart at this size: close the splat with one 3x3 dilation + erosion.
    splat = _splat(centres, proj, SIZE)
    closed = -F.max_pool2d(-F.max_pool2d(splat[None, None], 3, 1, 1), 3, 1, 1)[0, 0]
    iou = _iou(closed, sil)
    assert iou > 0.85, iou
    inside = F.max_pool2d(sil[None, None].float(), 3, 1, 1)[0, 0]
    assert float((splat * inside).sum() / splat.sum()) > 0.99
    # The same check with x mirrored fails: the test can tell a flipped axis.
    mirrored = centres * torch.tensor([-1.0, 1.0, 1.0])
    closed_m = -F.max_pool2d(-F.max_pool2d(_splat(mirrored, proj, SIZE)[None, None], 3, 1, 1), 3, 1, 1)[0, 0]
    if view not in (0, 4):  # views along z see x mirrored as a different image too, but check the oblique ones
        assert _iou(closed_m, sil) < iou - 0.1


@pytest.fixture(scope="module")
def cuboid():
    """A box with sharp edges: from an oblique view three faces meet in interior creases."""
    import trimesh

    from shapegen.geometry.mesh import Mesh

    return Mesh.from_trimesh(trimesh.creation.box(extents=(1.4, 1.0, 1.2)))


@pytest.mark.parametrize("style", ["contour", "canny"])
def test_sketch_styles_draw_lines_on_the_shape(cuboid, style):
    ink = render_sketch(cuboid, 45.0, style=style, size=SIZE)
    sil = silhouette(cuboid, 45.0, SIZE).float()
    assert ink.shape == (SIZE, SIZE)
    assert set(ink.unique().tolist()) <= {0.0, 1.0}
    near = F.max_pool2d(sil[None, None], 5, 1, 2)[0, 0]
    assert float((ink * near).sum() / ink.sum()) > 0.97  # strokes sit on the shape
    assert 0.02 < float(ink.mean()) < 0.5  # lines, not fills
    # Lines, not just the outline: some strokes lie strictly inside the silhouette.
    interior = -F.max_pool2d(-sil[None, None], 5, 1, 2)[0, 0]
    assert float((ink * interior).sum()) >= 10


def test_save_and_load_round_trip(tmp_path, lopsided):
    ink = render_sketch(lopsided, 90.0, size=SIZE)
    path = save_sketch(tmp_path / "s.png", ink)
    img = np.asarray(Image.open(path))
    assert img.dtype == np.uint8 and img.min() == 0 and img.max() == 255  # black on white
    assert torch.equal(load_sketch(path, SIZE), ink)


def test_load_sketch_inverted_rgba_and_resized(tmp_path):
    a = np.zeros((100, 200, 4), np.uint8)  # transparent paper, white strokes? no: opaque strokes below
    a[40:60, 20:180] = (0, 0, 0, 255)  # a black bar on transparent paper
    Image.fromarray(a, "RGBA").save(tmp_path / "rgba.png")
    ink = load_sketch(tmp_path / "rgba.png", 50)
    assert ink.shape == (50, 50)
    # Padded to a square, centred: the bar spans rows ~ (50 + 40)/200*50 .. (50 + 60)/200*50.
    rows = ink.sum(1).nonzero()[:, 0]
    assert 21 <= int(rows.min()) <= 23 and 26 <= int(rows.max()) <= 28
    b = np.full((64, 64), 0, np.uint8)
    b[10:12, :] = 255  # white strokes on black
    Image.fromarray(b).save(tmp_path / "inv.png")
    assert load_sketch(tmp_path / "inv.png", 64)[10:12].all()
    assert load_sketch(tmp_path / "inv.png", 64).sum() == 128


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_text("not an image"), "not a readable image"),
        (lambda p: Image.new("L", (64, 64), 255).save(p, format="PNG"), "empty"),
        (lambda p: Image.new("L", (16, 16), 0).save(p, format="PNG"), "pixels"),
        (lambda p: Image.new("L", (400, 40), 255).save(p, format="PNG"), "pixels"),
    ],
)
def test_load_sketch_errors_are_one_line(tmp_path, make, message):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(ShapegenError, match=message) as info:
        load_sketch(path)
    assert "\n" not in str(info.value)


def test_missing_sketch(tmp_path):
    with pytest.raises(ShapegenError, match="does not exist"):
        load_sketch(tmp_path / "nope.png")


def test_hand_style_is_seeded_near_the_shape_and_differs_from_contour(cuboid):
    from shapegen.data.sketches import SKETCH_STYLES

    assert "hand" in SKETCH_STYLES
    a = render_sketch(cuboid, 45.0, style="hand", size=SIZE, seed=3)
    assert torch.equal(a, render_sketch(cuboid, 45.0, style="hand", size=SIZE, seed=3))  # deterministic from the seed
    others = [render_sketch(cuboid, 45.0, style="hand", size=SIZE, seed=s) for s in (4, 5)]
    assert all(not torch.equal(a, o) for o in others)
    contour = render_sketch(cuboid, 45.0, style="contour", size=SIZE)
    sil = silhouette(cuboid, 45.0, SIZE).float()
    for ink in [a, *others]:
        assert ink.shape == (SIZE, SIZE) and set(ink.unique().tolist()) <= {0.0, 1.0}
        assert 0.02 < float(ink.mean()) < 0.5  # lines (and some hatching), not fills
        # Near the shape (the view is off by at most 20 degrees, strokes wobble by a few pixels) ...
        near = F.max_pool2d(sil[None, None], 15, 1, 7)[0, 0]
        assert float((ink * near).sum() / ink.sum()) > 0.9
        # ... but not the clean drawing: hand strokes miss many contour pixels and add others.
        assert _iou(ink, contour) < 0.6


def test_hand_style_keeps_the_view_roughly(lopsided):
    """Averaged over seeds, a hand sketch overlaps its own view's contour more than the mirrored view's."""
    own, other = [], []
    for seed in range(4):
        ink = F.max_pool2d(render_sketch(lopsided, 45.0, style="hand", size=SIZE, seed=seed)[None, None], 5, 1, 2)[0, 0]
        own.append(_iou(ink, F.max_pool2d(silhouette(lopsided, 45.0, SIZE).float()[None, None], 5, 1, 2)[0, 0]))
        other.append(_iou(ink, F.max_pool2d(silhouette(lopsided, 135.0, SIZE).float()[None, None], 5, 1, 2)[0, 0]))
    assert np.mean(own) > np.mean(other)


def test_unknown_style_names_the_styles(cuboid):
    with pytest.raises(ShapegenError, match="contour, canny, hand"):
        render_sketch(cuboid, 0.0, style="pencil", size=SIZE)  # type: ignore[arg-type]
