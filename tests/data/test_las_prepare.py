"""LAS data preparation: TSDF volume, occupancy shell, jittered sketches, resumability."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from shapegen.data.las_prepare import LASPrepareConfig, occupancy_shell, prepare_dataset
from shapegen.geometry.export import export_mesh
from shapegen.geometry.extract import extract_mesh
from shapegen.geometry.primitives import sphere
from shapegen.geometry.voxels import touched_voxels, voxel_centers


def test_sphere_volumes_and_jittered_sketches(tmp_path):
    (tmp_path / "m").mkdir()
    export_mesh(extract_mesh(sphere(radius=0.9), 24), tmp_path / "m" / "ball.obj")
    cfg = LASPrepareConfig(resolution=16, sketch_size=32, views=[1], styles=["contour"], jitter_per_view=2)
    report = prepare_dataset(tmp_path / "m", tmp_path / "d", cfg, progress=False)
    assert report.prepared == ["ball"] and not report.skipped
    with np.load(tmp_path / "d" / "shapes" / "ball.npz") as z:
        sdf, shell = torch.from_numpy(z["sdf"].astype(np.float32)), torch.from_numpy(z["shell"])
    # Normalised to [-0.8, 0.8]: the sphere's radius becomes 0.8; SDF clipped at 6.4 voxels.
    exact = (voxel_centers(16).norm(dim=-1) - 0.8).clamp(-0.8, 0.8)
    trunc = 6.4 * 2 / 16
    assert torch.allclose(sdf, exact.clamp(-trunc, trunc), atol=0.03)
    assert shell.shape == (8, 8, 8) and torch.equal(shell, occupancy_shell(sdf, 2 * 2 / 16))
    assert not shell[4, 4, 4] and (shell[6, 4, 4] or shell[7, 4, 4])  # hollow: a shell, not a solid
    index = json.loads((tmp_path / "d" / "index.json").read_text())
    recs = index["sketches"]
    assert len(recs) == 3 and all(r["view"] == 1 for r in recs)
    az = sorted(r["azimuth"] for r in recs)
    assert 45.0 in az and all(22.5 <= a <= 67.5 for a in az) and len(set(az)) == 3
    again = prepare_dataset(tmp_path / "m", tmp_path / "d", cfg, progress=False)
    assert again.reused == ["ball"] and not again.prepared


def test_touched_voxels_keep_a_part_thinner_than_a_voxel():
    g = 16
    h = 2.0 / g
    y = voxel_centers(g)[..., 1]
    # A slab 0.6 voxels thick centred between two rows of voxel centres: no centre is inside it.
    sdf = (y - h).abs() - 0.3 * h  # centres at +-h/2, 3h/2, ...: the slab lies between rows g/2 and g/2 + 1
    assert not bool((sdf < 0).any())
    touched = touched_voxels(sdf)
    rows = touched.any(0).any(1).nonzero().flatten().tolist()
    assert rows == [g // 2, g // 2 + 1]  # the two rows the slab passes between
    coarse = touched_voxels(sdf, pool=2)
    assert coarse.shape == (g // 2,) * 3
    assert coarse.any(0).any(1).nonzero().flatten().tolist() == [g // 4]
    batched = touched_voxels(torch.stack([sdf, sdf + 1.0]), pool=2)
    assert batched.shape == (2, g // 2, g // 2, g // 2) and bool(batched[0].eq(coarse).all()) and not bool(batched[1].any())


def test_workers_give_the_same_data_and_index(tmp_path):
    from shapegen.errors import ShapegenError
    from shapegen.geometry.primitives import box

    (tmp_path / "m" / "a").mkdir(parents=True)
    (tmp_path / "m" / "b").mkdir()
    export_mesh(extract_mesh(sphere(radius=0.9), 20), tmp_path / "m" / "a" / "ball.obj")
    export_mesh(extract_mesh(box(half_size=(0.7, 0.3, 0.5)), 20), tmp_path / "m" / "b" / "brick.obj")
    (tmp_path / "m" / "b" / "broken.obj").write_text("v 0 0 0\nf 1 1 1\n")  # skipped, with its reason
    cfg = LASPrepareConfig(resolution=12, sketch_size=24, views=[0, 2], styles=["contour"])
    one = prepare_dataset(tmp_path / "m", tmp_path / "one", cfg, progress=False)
    two = prepare_dataset(tmp_path / "m", tmp_path / "two", cfg, progress=False, workers=2)
    assert one == two and one.prepared == ["a__ball", "b__brick"] and list(one.skipped) == ["b/broken.obj"]
    a, b = (json.loads((tmp_path / d / "index.json").read_text()) for d in ("one", "two"))
    assert a == b and [r["shape"] for r in a["sketches"]] == ["a__ball"] * 2 + ["b__brick"] * 2
    for name in one.prepared:
        with np.load(tmp_path / "one" / "shapes" / f"{name}.npz") as x, np.load(tmp_path / "two" / "shapes" / f"{name}.npz") as y:
            assert all(np.array_equal(x[k], y[k]) for k in x.files)
    assert prepare_dataset(tmp_path / "m", tmp_path / "two", cfg, progress=False, workers=2).reused == one.prepared
    with pytest.raises(ShapegenError, match="workers must be >= 1"):
        prepare_dataset(tmp_path / "m", tmp_path / "x", cfg, progress=False, workers=0)


def test_hand_style_sketches_differ_per_view_and_jitter_and_repeat(tmp_path):
    from shapegen.errors import ShapegenError
    from shapegen.geometry.primitives import box, union

    (tmp_path / "m").mkdir()
    export_mesh(extract_mesh(union(box((0.3, -0.2, 0.0), (0.3, 0.3, 0.3)), sphere((-0.3, 0.3, 0.0), 0.3)), 24), tmp_path / "m" / "s.obj")
    cfg = LASPrepareConfig(resolution=16, sketch_size=32, views=[1, 2], styles=["hand"], jitter_per_view=1)
    prepare_dataset(tmp_path / "m", tmp_path / "a", cfg, progress=False)
    prepare_dataset(tmp_path / "m", tmp_path / "b", cfg, progress=False, fresh=True)
    recs = json.loads((tmp_path / "a" / "index.json").read_text())["sketches"]
    assert len(recs) == 4 and {r["style"] for r in recs} == {"hand"}
    files = [(tmp_path / "a" / r["file"]).read_bytes() for r in recs]
    assert len(set(files)) == 4  # every view and jitter draws its own strokes
    assert files == [(tmp_path / "b" / r["file"]).read_bytes() for r in recs]  # the same on a second run
    with pytest.raises(ShapegenError, match="contour, canny, hand"):
        prepare_dataset(tmp_path / "m", tmp_path / "c", LASPrepareConfig(styles=["pencil"]), progress=False)
