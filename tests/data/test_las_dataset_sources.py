"""LAS training data refuses shapes prepared from forbidden folders (a benchmark's real meshes)."""

from __future__ import annotations

import pytest

from shapegen.data.las_dataset import LASDataConfig, LASDataModule, check_sources
from shapegen.data.las_prepare import LASPrepareConfig, prepare_dataset
from shapegen.errors import ShapegenError
from shapegen.geometry.export import export_mesh
from shapegen.geometry.extract import extract_mesh
from shapegen.geometry.primitives import box, sphere


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


def _prepared(tmp_path, name, category, sdf, resolution=8, sketch_size=0):
    meshes = tmp_path / f"{name}_meshes"
    (meshes / category).mkdir(parents=True)
    export_mesh(extract_mesh(sdf, 16), meshes / category / f"{name}.obj")
    prepare_dataset(meshes, tmp_path / name, LASPrepareConfig(resolution=resolution, sketch_size=sketch_size), progress=False)
    return str(tmp_path / name)


def test_extra_roots_are_trained_on_beside_root(tmp_path):
    balls = _prepared(tmp_path, "balls", "ball", sphere(radius=0.8), sketch_size=32)
    cubes = _prepared(tmp_path, "cubes", "cube", box(half_size=(0.6, 0.6, 0.6)), sketch_size=32)
    dm = LASDataModule(LASDataConfig(root=balls, extra_roots=[cubes], styles=["contour"], batch_size=2), 32)
    assert dm.categories == ["ball", "cube"]
    ds = dm.train_dataloader().dataset
    assert len(ds) == 2
    items = [ds[i] for i in range(len(ds))]
    assert [int(it["label"]) for it in items] == [0, 1]
    # each item carries its own folder's volumes and sketches: the cube fills more of the grid than the ball
    assert int((items[1]["sdf"] < 0).sum()) > int((items[0]["sdf"] < 0).sum())
    assert all(it["sketch"].sum() > 0 and int(it["view"]) >= 0 for it in items)


def test_extra_roots_are_checked_like_root(tmp_path):
    balls = _prepared(tmp_path, "balls", "ball", sphere(radius=0.8))
    coarse = _prepared(tmp_path, "coarse", "cube", box(half_size=(0.6, 0.6, 0.6)), resolution=12)
    with pytest.raises(ShapegenError, match="resolution 12"):
        LASDataModule(LASDataConfig(root=balls, extra_roots=[coarse]), 32)
    bench = _prepared(tmp_path / "bench", "real", "cube", box(half_size=(0.6, 0.6, 0.6)))
    with pytest.raises(ShapegenError, match="forbid_sources"):
        LASDataModule(LASDataConfig(root=balls, extra_roots=[bench], forbid_sources=[str(tmp_path / "bench")]), 32)
