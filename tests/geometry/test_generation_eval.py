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
