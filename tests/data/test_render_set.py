"""Captioned procedural renders (``shapegen data renders``): captions, looks, determinism, shards."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from _cli import run

from shapegen.data.render_set import RenderSetConfig, caption_vocabulary, read_render_set, view_caption, write_render_set
from shapegen.data.shards import Shard
from shapegen.errors import ShapegenError
from shapegen.guidance.vsd import VIEW_SUFFIXES

TINY = RenderSetConfig(classes=["chair", "mug"], per_class=2, views=6, image_size=16, mesh_resolution=24, workers=1,
                       split="train=0-0,test=1-1", distance_range=[1.8, 2.0], fov_range_deg=[45.0, 50.0])
"""Four shapes, six views each, framed so that the object never reaches the image's corners."""


def _rows(folder):
    with open(folder / "renders.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_tiny_set_has_captioned_views_of_every_shape(tmp_path):
    summary = write_render_set(TINY, tmp_path, progress=False)
    assert (summary.written, summary.skipped, summary.images) == (4, 0, 24)
    rows = _rows(tmp_path)
    assert {(r["class"], r["split"]) for r in rows} == {("chair", "train"), ("chair", "test"), ("mug", "train"), ("mug", "test")}
    for r in rows:
        # The suffix is the one the VSD guidance asks for at this camera, or none.
        plain = not r["caption"].endswith(VIEW_SUFFIXES[1:])
        assert view_caption(r["caption"] if plain else r["caption"].rsplit(",", 1)[0], float(r["azimuth"]), float(r["elevation"]),
                            plain) == r["caption"]
    images, captions, classes = read_render_set(tmp_path, "train")
    assert images.shape == (12, 3, 16, 16) and len(captions) == len(classes) == 12
    for r, image in zip([r for r in rows if r["split"] == "train"], images):
        hwc = image.permute(1, 2, 0).numpy()
        corner = hwc[0, 0]
        if r["look"] == "normal":
            assert (corner == 0).all()  # normal maps lie on black, as the geometry stage renders them
        else:
            assert (corner == 255).all()  # shaded and textureless on white
        if r["look"] == "textureless":
            assert (hwc[..., 0] == hwc[..., 1]).all() and (hwc[..., 1] == hwc[..., 2]).all()
        assert (hwc != corner).any(), "the object is in the image"


def test_same_seed_same_bytes_and_resume_and_shards_merge_to_one_run(tmp_path, capsys):
    write_render_set(TINY, tmp_path / "a", progress=False)
    again = write_render_set(TINY, tmp_path / "a", progress=False)
    assert (again.written, again.skipped) == (0, 4)
    for k in (1, 2):
        write_render_set(TINY, tmp_path / "b", progress=False, shard=Shard(k, 2))
    code, _, err = run(capsys, "data", "merge-shards", str(tmp_path / "b"))
    assert code == 0, err
    assert (tmp_path / "a" / "renders.csv").read_text() == (tmp_path / "b" / "renders.csv").read_text()
    for f in (tmp_path / "a").rglob("*.npz"):
        x, y = np.load(f), np.load(tmp_path / "b" / f.relative_to(tmp_path / "a"))
        assert np.array_equal(x["images"], y["images"])


def test_other_settings_in_the_folder_and_bad_settings_are_one_line(tmp_path, capsys):
    write_render_set(TINY, tmp_path, progress=False)
    other = RenderSetConfig(**{**TINY.__dict__, "views": 3})
    with pytest.raises(ShapegenError, match="views"):
        write_render_set(other, tmp_path, progress=False)
    code, _, err = run(capsys, "data", "renders", "-o", str(tmp_path / "x"), "--set", "renders.look_probs=[1.0,1.0,0.0]")
    assert code == 2 and "look_probs" in err and len(err.strip().splitlines()) == 1


def test_vocabulary_splits_words_and_punctuation():
    assert caption_vocabulary(["A chair, front view", "mug"]) == [",", "a", "chair", "front", "mug", "view"]
