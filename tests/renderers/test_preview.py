"""CPU preview rasteriser: analytic silhouettes, occlusion, colours, turntables, file output."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from renderers.preview import rasterize, render_mesh, render_turntable, save_animation, save_image

trimesh = pytest.importorskip("trimesh")


def _sphere(radius: float = 1.0, subdivisions: int = 4):
    tm = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return torch.tensor(tm.vertices, dtype=torch.float32), torch.tensor(tm.faces)


def _covered(img: np.ndarray) -> np.ndarray:
    return (img != 255).any(-1)


def test_sphere_projects_to_a_disc_of_the_analytic_radius():
    v, f = _sphere(1.0)
    d, fov, size = 4.0, 40.0, 128
    img = render_mesh(v, f, width=size, height=size, fov_deg=fov, distance=d, elevation_deg=0)
    assert img.shape == (size, size, 3) and img.dtype == np.uint8
    mask = _covered(img)
    # A sphere of radius r at distance d subtends asin(r / d): projected radius f * tan(asin(r / d)).
    focal = (size / 2) / math.tan(math.radians(fov) / 2)
    radius_px = focal * math.tan(math.asin(1.0 / d))
    area_px = mask.sum()
    assert abs(math.sqrt(area_px / math.pi) - radius_px) < 0.5, (
        math.sqrt(area_px / math.pi),
        radius_px,
    )
    ii, jj = np.nonzero(mask)
    assert (
        abs(ii.mean() + 0.5 - size / 2) < 0.5 and abs(jj.mean() + 0.5 - size / 2) < 0.5
    )  # centred
    # Background is pure white; the headlight makes the centre the brightest part.
    assert (img[~mask] == 255).all()
    assert img[size // 2, size // 2].mean() > img[ii, jj].mean()


def test_auto_fit_keeps_the_object_inside_the_frame():
    v, f = _sphere(3.0, 2)
    img = render_mesh(v + 10, f, width=64, height=48)  # off-centre, non-square
    mask = _covered(img)
    assert mask.any() and not (
        mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
    )


def test_nearer_triangle_occludes_farther_one():
    # Two overlapping squares facing the camera (+Z): red at z = 0.5, green at z = -0.5.
    quad = torch.tensor([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], dtype=torch.float32)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    v = torch.cat([quad + torch.tensor([0, 0, 0.5]), quad * 2 + torch.tensor([0, 0, -0.5])])
    f = torch.cat([faces, faces + 4])
    colors = torch.tensor([[1.0, 0, 0]] * 4 + [[0, 1.0, 0]] * 4)
    for order in (f, f.flip(0)):  # independent of the face order
        img = render_mesh(
            v,
            order,
            vertex_colors=colors,
            azimuth_deg=0,
            elevation_deg=0,
            width=64,
            height=64,
            ambient=1.0,
        )
        centre = img[32, 32].astype(int)
        assert centre[0] > 200 and centre[1] < 50, centre  # red square in front
        assert (img[:, 2, 1] > 200).any()  # the larger green square shows around it


def test_vertex_colours_appear():
    v, f = _sphere(1.0, 3)
    colors = torch.zeros_like(v)
    colors[:, 2] = (v[:, 0] > 0).float()  # blue on +X, black on -X
    colors[:, 0] = (v[:, 0] <= 0).float()  # red on -X
    img = render_mesh(
        v, f, vertex_colors=colors, azimuth_deg=0, elevation_deg=0, width=64, height=64
    )
    left, right = img[32, 20].astype(int), img[32, 44].astype(int)
    # Camera on +Z looking at -Z with +Y up: world +X is on the image's right.
    assert left[0] > 100 and left[2] < 30, left
    assert right[2] > 100 and right[0] < 30, right


def test_rasterize_barycentrics_and_empty_pixels():
    xy = torch.tensor([[[1.0, 1.0], [7.0, 1.0], [1.0, 7.0]]])
    face_id, bary = rasterize(xy, torch.ones(1, 3), 8, 8)
    assert face_id[1, 1] == 0 and face_id[7, 7] == -1
    torch.testing.assert_close(bary[face_id >= 0].sum(-1), torch.ones(int((face_id >= 0).sum())))
    # Pixel (row 1, column 4) has its centre at (4.5, 1.5): weights (0.5, 7/12, 1/12) of the corners.
    torch.testing.assert_close(bary[1, 4], torch.tensor([1 - 3.5 / 6 - 0.5 / 6, 3.5 / 6, 0.5 / 6]))


def test_turntable_and_files(tmp_path):
    v, f = _sphere(1.0, 1)
    frames = render_turntable(v, f, num_frames=4, width=32, height=32)
    assert len(frames) == 4 and all(fr.shape == (32, 32, 3) for fr in frames)
    png = save_image(tmp_path / "a.png", frames[0])
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(png)), frames[0])
    gif = save_animation(tmp_path / "t.gif", frames, fps=10)
    assert Image.open(gif).n_frames == 4
    with pytest.raises(ValueError, match=r"\.gif"):
        save_animation(tmp_path / "t.avi", frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "t.gif"]


def test_mp4_without_ffmpeg_suggests_gif(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    with pytest.raises(ValueError, match=r"imageio-ffmpeg.*\.gif"):
        save_animation(tmp_path / "t.mp4", [np.zeros((8, 8, 3), np.uint8)])
    assert list(tmp_path.iterdir()) == []


def test_sheet_layout_views_images_blanks_labels_and_captions():
    from renderers.cameras import orbit_pose
    from renderers.preview import render_sheet

    class M:  # anything with vertices and faces is a mesh
        def __init__(self, v, f):
            self.vertices, self.faces = v, f

    sphere, empty = M(*_sphere(0.8, 2)), M(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long))
    drawing = np.zeros((10, 20, 3), np.uint8)  # black, resized into its tile
    views = [orbit_pose(a, 20.0, 4.0).float() for a in (0.0, 90.0)]
    t = 32
    sheet = render_sheet([[drawing, sphere, None], [empty]], t, views=views, colors=[[None, (1.0, 0.0, 0.0), None], [None]])
    # Row 0: the drawing (1 tile), the sphere once per view (2 tiles), a blank (1 tile); row 1 a blank.
    assert sheet.shape == (2 * t, 4 * t, 3)
    tiles = [sheet[r * t : (r + 1) * t, c * t : (c + 1) * t] for r in range(2) for c in range(4)]
    assert (tiles[0] == 0).all()
    for k, view in enumerate(views):
        expected = render_mesh(sphere.vertices, sphere.faces, vertex_colors=torch.tensor([1.0, 0.0, 0.0]).expand(len(sphere.vertices), 3),
                               width=t, height=t, c2w=view, fov_deg=40.0)
        assert (tiles[1 + k] == expected).all() and _covered(expected).any()
        assert (expected[_covered(expected)][:, 1:] < expected[_covered(expected)][:, :1]).all()  # red
    assert all((tile == 255).all() for tile in tiles[3:])
    # Without views each mesh is fitted in its own tile; labels mark an item's first tile; captions add a band.
    assert (render_sheet([[sphere]], t) == render_mesh(sphere.vertices, sphere.faces, width=t, height=t)).all()
    labelled = render_sheet([[None, None]], t, labels=[["chair", ""]], captions=[["a wooden chair", ""]])
    assert labelled.shape[0] > t and labelled.shape[1] == 2 * t
    assert _covered(labelled[:t, :t]).any() and not _covered(labelled[:t, t:]).any()
    assert _covered(labelled[t:, :t]).any() and not _covered(labelled[t:, t:]).any()
