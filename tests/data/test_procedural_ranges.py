"""Index-range splits and grown (dilated) meshes of the procedural set (the LAS demo's data preset)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from shapegen.data import procedural, procedural_set
from shapegen.data.procedural_set import ProceduralConfig, parse_splits, split_of, write_procedural_set
from shapegen.errors import ShapegenError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_range_splits_name_the_same_indices_in_every_class() -> None:
    splits = parse_splits("train=0-1+5-6,held_out=2-2,val=3-4")
    assert splits == [("train", ((0, 1), (5, 6))), ("held_out", ((2, 2),)), ("val", ((3, 4),))]
    for cls in ("chair", "mug"):
        assert [split_of(splits, 7, cls, i) for i in range(8)] == ["train", "train", "held_out", "val", "val", "train", "train", None]
    assert parse_splits("train=0.8,val=0.2") == [("train", 0.8), ("val", 0.2)]  # fractions as before


@pytest.mark.parametrize(
    ("spec", "needle"),
    [("train=0-5,val=5-6", "shares indices 5-6 with split 'train'"), ("train=3-1", "bad split"), ("train=0-2,train=3-4", "twice"),
     ("train=0-x", "bad split")],
)
def test_bad_range_splits_are_one_line_errors(spec: str, needle: str) -> None:
    with pytest.raises(ShapegenError, match=needle):
        parse_splits(spec)


def test_a_range_set_writes_only_its_indices(tmp_path: Path) -> None:
    cfg = ProceduralConfig(classes=["mug"], per_class=4, resolution=16, workers=1, split="train=0-0+3-3,held_out=1-1")
    summary = write_procedural_set(cfg, tmp_path, progress=False)
    assert summary.written == 3 and summary.per_split == {"train": 2, "held_out": 1}
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.ply")) == [
        "held_out/mug/mug_00001.ply", "train/mug/mug_00000.ply", "train/mug/mug_00003.ply"]
    with open(tmp_path / "index.csv", newline="") as fh:
        assert [(r["split"], r["index"]) for r in csv.DictReader(fh)] == [("train", "0"), ("held_out", "1"), ("train", "3")]
    with pytest.raises(ShapegenError, match="beyond per_class=4; raise per_class to 6"):
        write_procedural_set(ProceduralConfig(classes=["mug"], per_class=4, split="train=0-5"), tmp_path / "x", progress=False)


def test_dilate_grows_the_shape_and_is_part_of_the_set(tmp_path: Path) -> None:
    from shapegen.geometry.mesh_io import load_mesh

    assert procedural_set.MAX_DILATE == procedural.MAX_DILATE  # the literal copy the config uses
    shape = procedural.generate("table", 0)
    true, grown = procedural.to_mesh(shape, 32), procedural.to_mesh(shape, 32, dilate=0.06)
    (lo_t, hi_t), (lo_g, hi_g) = true.bounds(), grown.bounds()
    # The box grows by the distance on every side (up to marching-cubes error, a fraction of a 2/31 cell).
    assert ((lo_t - lo_g) - 0.06).abs().max() < 0.03 and ((hi_g - hi_t) - 0.06).abs().max() < 0.03
    with pytest.raises(ShapegenError, match="dilate must lie in"):
        procedural.to_mesh(shape, 32, dilate=0.2)
    cfg = ProceduralConfig(classes=["table"], per_class=1, resolution=32, workers=1, split="train=0-0", dilate=0.06)
    write_procedural_set(cfg, tmp_path, progress=False)
    written = load_mesh(tmp_path / "train" / "table" / "table_00000.ply")
    assert abs(float((written.bounds()[1] - written.bounds()[0]).max()) - float((hi_g - lo_g).max())) < 1e-4
    cfg.dilate = 0.0  # a set of grown shapes is not resumed with true ones
    with pytest.raises(ShapegenError, match=r"made with dilate=0\.06"):
        write_procedural_set(cfg, tmp_path, progress=False)
