"""FPS point clouds and the eval-generation command on tiny mesh folders."""

from __future__ import annotations

import json

import pytest
import torch
import trimesh

from shapegen.cli import main
from shapegen.geometry.generation_eval import evaluate_generation, farthest_point_sampling


def test_fps_picks_the_cube_corners_first():
    corners = torch.tensor([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)])
    inner = torch.rand(200, 3) * 1.6 - 0.8
    pts = torch.cat([inner, corners])
    idx = farthest_point_sampling(pts, 9, start=200)
    assert set(idx[:8].tolist()) == set(range(200, 208))
    assert len(set(idx.tolist())) == 9


def _folder(path, shift=0.0, n=3):
    path.mkdir()
    for i in range(n):
        m = trimesh.creation.box(extents=(0.5 + 0.2 * i, 0.4, 0.3))
        m.apply_translation((shift, 0, 0))
        m.export(path / f"box{i}.ply")
    return path


def test_identical_and_shifted_sets(tmp_path):
    ref = _folder(tmp_path / "ref")
    same = evaluate_generation(ref, ref, num_points=64, dense_factor=2)
    assert same.generated.cov == 1.0 and same.generated.mmd == pytest.approx(0.0, abs=1e-12)
    far = evaluate_generation(_folder(tmp_path / "far", shift=3.0), ref, baseline=ref, num_points=64, dense_factor=2)
    assert far.generated.mmd > 8.0  # shifted by 3: Chamfer-L2 ~ 2 * 9
    assert far.generated.nna == 1.0  # perfectly separable
    assert far.baseline is not None and far.baseline.cov == 1.0


def test_command_text_json_and_errors(tmp_path, capsys):
    ref = _folder(tmp_path / "ref")
    gen = _folder(tmp_path / "gen", shift=0.05)
    assert main(["eval-generation", str(gen), str(ref), "--set", "num_points=32", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["num_generated"] == 3 and 0 < report["generated"]["mmd"] < 0.05
    assert main(["eval-generation", str(gen), str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a folder" in err


def test_a_generate_folder_counts_each_sample_once(tmp_path):
    # `shapegen generate` writes sample_XX.msdf.npz, sample_XX.glb and preview.png for every sample.
    from shapegen.geometry.generation_eval import find_shapes

    out = tmp_path / "gen"
    out.mkdir()
    for i in range(2):
        (out / f"sample_{i:02d}.msdf.npz").write_bytes(b"")
        (out / f"sample_{i:02d}.glb").write_bytes(b"")
    (out / "preview.png").write_bytes(b"")
    (out / "other.glb").write_bytes(b"")  # a mesh without an M-SDF twin is kept
    assert [p.name for p in find_shapes(out)] == ["other.glb", "sample_00.msdf.npz", "sample_01.msdf.npz"]


def _class_folder(root, swap=False):
    """Two classes that no nearest-neighbour rule confuses: flat boxes and tall thin boxes."""
    shapes = {"flat": [(0.8 + 0.1 * i, 0.1, 0.8) for i in range(3)], "tall": [(0.1, 0.9 + 0.1 * i, 0.1) for i in range(3)]}
    for name, sizes in shapes.items():
        folder = root / ({"flat": "tall", "tall": "flat"}[name] if swap else name)
        folder.mkdir(parents=True)
        for i, ext in enumerate(sizes):
            trimesh.creation.box(extents=ext).export(folder / f"{name}{i}.ply")
    return root


def test_class_fidelity_own_shapes_all_hits_swapped_labels_all_misses(tmp_path):
    ref = _class_folder(tmp_path / "ref")
    own = evaluate_generation(ref, ref, baseline=ref, by_class=True, num_points=64, dense_factor=2)
    assert own.fidelity == 1.0 and [c.name for c in own.classes] == ["flat", "tall"]
    for c in own.classes:
        assert c.fidelity == 1.0 and c.predicted == {c.name: 3} and c.num_reference == 3
        assert c.generated.cov == 1.0 and c.generated.mmd == pytest.approx(0.0, abs=1e-12)
        assert c.baseline_fidelity == 1.0 and c.num_baseline == 3
    swapped = evaluate_generation(_class_folder(tmp_path / "swapped", swap=True), ref, by_class=True, num_points=64, dense_factor=2)
    assert swapped.fidelity == 0.0
    assert {c.name: c.predicted for c in swapped.classes} == {"flat": {"tall": 3}, "tall": {"flat": 3}}
    limited = evaluate_generation(ref, ref, baseline=ref, by_class=True, baseline_limit=1, num_points=32, dense_factor=2)
    assert [c.num_baseline for c in limited.classes] == [1, 1] and limited.num_baseline == 2


def test_an_empty_decode_is_a_miss_and_left_out_of_the_metrics(tmp_path, capsys):
    from shapegen.fields.mosaic_sdf import MosaicSDF

    ref = _class_folder(tmp_path / "ref")
    gen = _class_folder(tmp_path / "gen")
    # A generated sample whose grid values are all positive: no surface, as `shapegen generate` leaves it (no GLB).
    MosaicSDF(torch.cat([torch.zeros(2, 3), torch.full((2, 1), 0.5), torch.ones(2, 8)], 1), 2).save(gen / "flat" / "sample_00.msdf.npz")
    report = evaluate_generation(gen, ref, by_class=True, num_points=32, dense_factor=2,
                                 loader=__import__("shapegen.commands.methods", fromlist=["_shape_loader"])._shape_loader(32))
    flat = report.classes[0]
    assert (flat.num_generated, flat.empty, flat.fidelity) == (4, 1, 0.75) and report.empty == 1
    assert report.fidelity == pytest.approx(6 / 7)
    assert main(["eval-generation", str(gen), str(ref), "--by-class", "--set", "num_points=32", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["classes"]["flat"]["empty"] == 1 and out["classes"]["tall"]["fidelity"] == 1.0
    assert main(["eval-generation", str(gen), str(ref), "--by-class", "--set", "num_points=32"]) == 0
    text = capsys.readouterr().out
    assert "class fidelity: 86%" in text and "flat" in text


def test_by_class_errors_are_one_line(tmp_path, capsys):
    ref = _class_folder(tmp_path / "ref")
    flat = _folder(tmp_path / "loose")  # shapes directly in the folder: no class
    assert main(["eval-generation", str(flat), str(ref), "--by-class"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no class" in err
    other = tmp_path / "other" / "round"
    other.mkdir(parents=True)
    trimesh.creation.icosphere(subdivisions=1).export(other / "a.ply")
    assert main(["eval-generation", str(other.parent), str(ref), "--by-class"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "round" in err and "flat, tall" in err


def test_prefer_mesh_takes_the_mesh_of_a_shape_stored_twice(tmp_path):
    from shapegen.geometry.generation_eval import find_shapes

    out = tmp_path / "set"
    out.mkdir()
    for name in ("chair_00000.ply", "chair_00000.msdf.npz", "sample_00.msdf.npz"):
        (out / name).write_bytes(b"")
    assert [p.name for p in find_shapes(out, "mesh")] == ["chair_00000.ply", "sample_00.msdf.npz"]
    assert [p.name for p in find_shapes(out)] == ["chair_00000.msdf.npz", "sample_00.msdf.npz"]
