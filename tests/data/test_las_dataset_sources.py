"""LAS training data refuses shapes prepared from forbidden folders (a benchmark's real meshes)."""

from __future__ import annotations

import pytest

from shapegen.data.las_dataset import LASDataConfig, LASDataModule, check_sources
from shapegen.data.las_prepare import LASPrepareConfig, prepare_dataset
from shapegen.errors import ShapegenError
from shapegen.geometry.export import export_mesh
from shapegen.geometry.extract import extract_mesh
from shapegen.geometry.primitives import sphere


def test_forbidden_sources_are_refused(tmp_path):
    bench = tmp_path / "bench" / "meshes"
    (bench / "ball").mkdir(parents=True)
    export_mesh(extract_mesh(sphere(radius=0.8), 16), bench / "ball" / "b.obj")
    prepare_dataset(bench, tmp_path / "data", LASPrepareConfig(resolution=8, sketch_size=0), progress=False)
    ok = LASDataModule(LASDataConfig(root=str(tmp_path / "data")), 32)
    assert ok.categories == ["ball"]
    with pytest.raises(ShapegenError, match="forbid_sources"):
        LASDataModule(LASDataConfig(root=str(tmp_path / "data"), forbid_sources=[str(tmp_path / "bench")]), 32)
    with pytest.raises(ShapegenError, match="inside"):  # a data root inside a forbidden folder
        check_sources(tmp_path / "bench" / "x", {"shapes": {}}, [str(tmp_path / "bench")])
    check_sources(tmp_path / "data", ok.index, [str(tmp_path / "elsewhere"), ""])  # other folders: fine
