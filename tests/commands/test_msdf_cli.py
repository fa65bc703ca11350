"""``shapegen msdf encode`` / ``decode`` end to end on a tiny mesh with tiny n, k and steps."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from _cli import run


@pytest.fixture
def ball(tmp_path):
    path = tmp_path / "ball.obj"
    tm = trimesh.creation.icosphere(subdivisions=3, radius=2.0)
    tm.apply_translation([5.0, 0.0, 0.0])  # a source frame that normalisation must undo
    tm.export(path)
    return path


def test_encode_decode_round_trip(capsys, tmp_path, ball):
    enc = tmp_path / "ball.msdf.npz"
    code, out, err = run(capsys, "msdf", "encode", str(ball), "-o", str(enc), "--config", "tiny", "--n", "64", "--k", "4", "--steps", "2")
    assert code == 0, err
    assert enc.is_file() and "signed distance" in out
    data = np.load(enc, allow_pickle=False)
    assert data["tensor"].shape == (64, 4 + 64) and int(data["k"]) == 4
    mesh_path = tmp_path / "ball.ply"
    code, out, err = run(capsys, "msdf", "decode", str(enc), "-o", str(mesh_path), "--resolution", "40")
    assert code == 0, err
    mesh = trimesh.load(mesh_path, process=False)
    # Back in the source frame: a radius-2 ball around x = 5 (PLY is written Z-up: x stays x).
    centre = mesh.vertices.mean(0)
    assert centre[0] == pytest.approx(5.0, abs=0.1)
    assert np.linalg.norm(mesh.vertices - centre, axis=1).mean() == pytest.approx(2.0, rel=0.05)
    code, _, err = run(capsys, "msdf", "decode", str(enc), "-o", str(tmp_path / "unit.obj"), "--resolution", "40", "--normalized")
    assert code == 0, err
    unit = trimesh.load(tmp_path / "unit.obj", process=False, force="mesh")
    assert np.abs(unit.vertices).max() < 1.1


def test_encode_folder_resumes(capsys, tmp_path, ball):
    (tmp_path / "bad.obj").write_text("garbage\n")
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "msdf", "encode", str(tmp_path), "-o", str(out_dir), "--config", "tiny")
    assert code == 0, err
    assert (out_dir / "ball.msdf.npz").is_file() and "failed" in out and "bad.obj" in out
    code, out, _ = run(capsys, "msdf", "encode", str(tmp_path), "-o", str(out_dir), "--config", "tiny")
    assert code == 0 and "skipped 1" in out


def test_bad_inputs_are_one_line_errors(capsys, tmp_path):
    code, _, err = run(capsys, "msdf", "decode", str(tmp_path / "missing.msdf.npz"), "-o", str(tmp_path / "m.glb"))
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1
    bad = tmp_path / "nan.msdf.npz"
    tensor = np.full((4, 12), np.nan, dtype=np.float32)
    np.savez(bad, tensor=tensor, k=2, normalization=np.eye(4), source_hash="", version=1)
    code, _, err = run(capsys, "msdf", "decode", str(bad), "-o", str(tmp_path / "m.glb"))
    assert code == 2 and "NaN" in err and err.count("\n") == 1
    code, _, err = run(capsys, "msdf", "encode", str(tmp_path / "none.obj"), "-o", str(tmp_path / "x.msdf.npz"))
    assert code == 2 and "does not exist" in err
    code, _, err = run(capsys, "msdf", "encode", str(tmp_path), "-o", str(tmp_path / "x.msdf.npz"), "--set", "stepz=3")
    assert code == 2 and "stepz" in err


def test_decode_closes_coverage_gaps_unless_told_not_to(capsys, tmp_path):
    import torch

    from shapegen.fields.mosaic_sdf import MosaicSDF, grid_offsets
    from shapegen.geometry.mesh_io import inspect_mesh, load_mesh

    # Cubes on a lattice around a sphere of radius 0.6, none over its top cap: a hole in the coverage.
    axis = torch.arange(-0.8, 0.81, 0.1, dtype=torch.float64)
    c = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    c = c[((c.norm(dim=1) - 0.6).abs() < 0.12) & (c[:, 1] < 0.45)]
    nodes = c[:, None] + 0.1 * grid_offsets(4, dtype=torch.float64)[None]
    MosaicSDF.from_parts(c, 0.1, nodes.norm(dim=-1) - 0.6).save(tmp_path / "gap.msdf.npz")
    closed, opened = tmp_path / "closed.ply", tmp_path / "open.ply"
    code, _, err = run(capsys, "msdf", "decode", str(tmp_path / "gap.msdf.npz"), "-o", str(closed), "--resolution", "40")
    assert code == 0, err
    report = inspect_mesh(load_mesh(closed))
    assert report.watertight and report.num_components == 1
    code, _, err = run(capsys, "msdf", "decode", str(tmp_path / "gap.msdf.npz"), "-o", str(opened), "--resolution", "40",
                       "--set", "close_holes=false")
    assert code == 0, err
    assert inspect_mesh(load_mesh(opened)).num_boundary_edges > 10
