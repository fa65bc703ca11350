"""The add-on's strokes -> sketch image and view azimuth, without Blender (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest
from _addon_modules import load
from _strokes import POLYLINES, dilate, expected_ink, view_matrix
from PIL import Image

sketch = load("sketch")


@pytest.mark.parametrize(
    ("azimuth", "las", "mirrored"),
    [
        (0, 0, False),
        (45, 45, False),
        (90, 90, False),
        (135, 135, False),
        (180, 180, False),
        (-180, 180, False),
        (30, 45, False),
        (-10, 0, False),
        (-45, 45, True),
        (-90, 90, True),
        (-150, 135, True),
        (100, 90, False),
    ],
)
def test_view_azimuth_and_las_view(azimuth, las, mirrored):
    for elevation in (0.0, 20.0, 60.0):  # the elevation does not change the azimuth
        az = sketch.view_azimuth(view_matrix(azimuth, elevation))
        assert abs((az - azimuth + 180) % 360 - 180) < 1e-9
        assert sketch.las_view(az) == (las, mirrored)


def test_blender_named_views():
    # Blender's numpad views as rotations of the world (view matrix rows: view X, Y, Z in world axes).
    front = [[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]]  # numpad 1: looking along +Y
    right = [[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]]  # numpad 3: looking along -X
    back = [[-1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]  # ctrl numpad 1
    assert [round(sketch.view_azimuth(m)) for m in (front, right, back)] == [0, 90, 180]


@pytest.mark.parametrize("azimuth", [45.0, -45.0, 90.0])
def test_strokes_render_where_they_project(tmp_path, azimuth):
    view = view_matrix(azimuth)
    ink, az, las, mirrored = sketch.sketch_from_strokes([np.array(p) for p in POLYLINES], view)
    assert ink.shape == (sketch.SKETCH_SIZE, sketch.SKETCH_SIZE) and abs(az - azimuth) < 1e-9
    want = expected_ink(POLYLINES, view)
    a, b = dilate(ink), dilate(want)
    assert (a & b).sum() / (a | b).sum() > 0.8
    assert not ink[~dilate(want, 3)].any()
    # The file holds what shapegen should read: dark on white, flipped for a left-side view.
    grey = np.asarray(Image.open(sketch.write_sketch(tmp_path / "s.png", ink, mirrored)))
    assert grey.dtype == np.uint8 and set(np.unique(grey)) == {0, 255}
    np.testing.assert_array_equal(grey == 0, ink[:, ::-1] if mirrored else ink)
    assert mirrored == (azimuth < 0) and las == abs(azimuth)


def test_fit_centres_and_scales_whatever_the_zoom():
    far = sketch.fit_to_image([np.array([[0.0, 0.0], [0.01, 0.02]])], 100, fill=0.5)[0]
    near = sketch.fit_to_image([np.array([[0.0, 0.0], [10.0, 20.0]])], 100, fill=0.5)[0]
    np.testing.assert_allclose(far, near)
    np.testing.assert_allclose(near, [[37.5, 75.0], [62.5, 25.0]])  # v grows downwards


def test_perspective_divides_by_depth():
    # Two equal segments, one twice as far from a perspective viewer: half as long on the image.
    view = np.eye(4)
    window = [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, -1.0, -0.2], [0, 0, -1.0, 0]]
    near, far = sketch.project_strokes([np.array([[0, 0, -2.0], [1, 0, -2.0]]), np.array([[0, 0, -4.0], [1, 0, -4.0]])], view, window)
    assert abs(np.ptp(near[:, 0]) - 2 * np.ptp(far[:, 0])) < 1e-9
    assert sketch.project_strokes([np.array([[0, 0, 1.0]])], view, window) == []  # behind the viewer


def test_rasterize_width_and_round_caps():
    ink = sketch.rasterize_polylines([np.array([[10.0, 20.0], [50.0, 20.0]])], 64, width=4.0)
    cols = ink.any(0).nonzero()[0]
    assert ink[:, 30].sum() == 4 and cols.min() == 8 and cols.max() == 51  # 4 px thick, caps of radius 2
    assert sketch.rasterize_polylines([np.array([[5.0, 5.0]])], 16, 4.0).sum() > 0  # a dot is drawn


def test_no_strokes_is_a_clear_error():
    with pytest.raises(ValueError, match="no strokes"):
        sketch.sketch_from_strokes([], np.eye(4))
