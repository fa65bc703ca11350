"""Atomic writes never leave partial output."""

from __future__ import annotations

import pytest

from shapegen.errors import ShapegenError
from shapegen.io import atomic_path


def test_atomic_path_renames_on_success(tmp_path):
    target = tmp_path / "sub" / "mesh.glb"
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".glb" and tmp.parent == target.parent and tmp != target
        tmp.write_text("data")
        assert not target.exists()
    assert target.read_text() == "data"
    assert sorted(p.name for p in target.parent.iterdir()) == ["mesh.glb"]


def test_atomic_path_cleans_up_on_failure(tmp_path):
    target = tmp_path / "mesh.glb"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer crashed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["mesh.glb"]


def test_unwritable_folder(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(ShapegenError, match="cannot create output folder"):
        with atomic_path(blocker / "x.glb"):
            pass


def test_output_is_a_folder(tmp_path):
    with pytest.raises(ShapegenError, match="is a folder"):
        with atomic_path(tmp_path):
            pass
