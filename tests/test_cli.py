"""End-to-end tests of the ``shapegen`` command on tiny inputs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import trimesh
from _cli import run

from shapegen.geometry import primitives


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "shapegen.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for name in ("demo", "info", "convert", "render", "extract"):
        assert name in out


def test_unknown_config_key_is_one_line(capsys, tmp_path):
    code, _out, err = run(capsys, "demo", "-o", str(tmp_path), "--set", "resolutoin=8")
    assert code == 2
    assert err.count("\n") == 1 and "resolutoin" in err
    assert not any(tmp_path.iterdir())


def test_config_preset_by_name_and_bad_type(capsys, tmp_path):
    code, _, err = run(capsys, "demo", "-o", str(tmp_path), "--config", "nonexistent_preset")
    assert code == 2 and "tiny" in err  # lists the shipped presets
    code, _, err = run(capsys, "demo", "-o", str(tmp_path), "--config", "tiny", "--set", "resolution=abc")
    assert code == 2 and "resolution" in err


def test_demo_tiny_writes_mesh_and_preview(capsys, tmp_path):
    code, _out, err = run(capsys, "demo", "-o", str(tmp_path), "--config", "tiny")
    assert code == 0, err
    glb = tmp_path / "demo_chair.glb"
    png = tmp_path / "demo_chair.png"
    assert glb.is_file() and png.is_file()
    mesh = trimesh.load(glb, force="mesh")
    assert len(mesh.faces) > 100
    # The chair is about 1.6 units tall along +Y (glTF up).
    extent = mesh.bounds[1] - mesh.bounds[0]
    assert extent[1] == pytest.approx(1.6, abs=0.1)
    from PIL import Image

    img = np.asarray(Image.open(png))
    assert img.shape[:2] == (64, 64)
    assert (img[..., :3] < 200).any(axis=-1).mean() > 0.05  # the chair covers part of the image


def test_missing_and_corrupt_inputs(capsys, tmp_path):
    out = tmp_path / "out.glb"
    code, _, err = run(capsys, "info", str(tmp_path / "missing.obj"))
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1
    bad = tmp_path / "bad.obj"
    bad.write_bytes(b"\x00\xff garbage \x01" * 10)
    code, _, err = run(capsys, "convert", str(bad), "-o", str(out))
    assert code == 2 and err.count("\n") == 1
    assert not out.exists()
    code, _, err = run(capsys, "convert", str(bad), "-o", str(tmp_path / "out.xyz"))
    assert code == 2 and ".glb" in err


def _sphere_grid(side: int = 24) -> np.ndarray:
    axis = torch.linspace(-1, 1, side)
    pts = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    return primitives.sphere(radius=0.6)(pts).reshape(side, side, side).numpy()


def test_extract_grid_and_nan(capsys, tmp_path):
    grid = _sphere_grid()
    np.save(tmp_path / "sphere.npy", grid)
    out = tmp_path / "sphere.ply"
    code, _, err = run(capsys, "extract", str(tmp_path / "sphere.npy"), "-o", str(out))
    assert code == 0, err
    mesh = trimesh.load(out, force="mesh", process=False)
    r = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(r - 0.6).max() < 0.03
    grid[3, 4, 5] = np.nan
    np.savez(tmp_path / "nan.npz", sdf=grid)
    out2 = tmp_path / "nan.glb"
    code, _, err = run(capsys, "extract", str(tmp_path / "nan.npz"), "-o", str(out2))
    assert code == 2 and "NaN" in err and not out2.exists()


def test_extract_exported_field_sparse(capsys, tmp_path):
    class Field(torch.nn.Module):
        def forward(self, p: torch.Tensor) -> torch.Tensor:
            return p.norm(dim=-1) - 0.5

    program = torch.export.export(Field(), (torch.randn(8, 3),), dynamic_shapes=({0: torch.export.Dim("N", min=1)},))
    torch.export.save(program, str(tmp_path / "field.pt2"))
    out = tmp_path / "f.obj"
    code, _, err = run(capsys, "extract", str(tmp_path / "field.pt2"), "-o", str(out), "--resolution", "32", "--trust-field")
    assert code == 0, err
    mesh = trimesh.load(out, force="mesh")
    assert np.abs(np.linalg.norm(mesh.vertices, axis=1) - 0.5).max() < 0.03
    (tmp_path / "junk.pt2").write_bytes(b"not a program")
    code, _, err = run(capsys, "extract", str(tmp_path / "junk.pt2"), "-o", str(tmp_path / "j.obj"), "--trust-field")
    assert code == 2 and "torch.export" in err and not (tmp_path / "j.obj").exists()


def test_convert_normalize_and_render(capsys, tmp_path):
    box = trimesh.creation.box(extents=(2.0, 4.0, 1.0))
    box.apply_translation((10, 0, 0))
    src = tmp_path / "box.obj"
    box.export(src)
    out = tmp_path / "box.glb"
    code, _, err = run(capsys, "convert", str(src), "-o", str(out), "--normalize")
    assert code == 0, err
    mesh = trimesh.load(out, force="mesh")
    assert np.allclose(mesh.bounds[1] - mesh.bounds[0], [1.0, 2.0, 0.5], atol=1e-3)
    assert (tmp_path / "box.glb.normalization.json").is_file()
    code, out_text, err = run(capsys, "info", str(src))
    assert code == 0 and "12" in out_text  # 12 faces
    png = tmp_path / "box.png"
    code, _, err = run(capsys, "render", str(out), "-o", str(png), "--set", "width=48", "--set", "height=32")
    assert code == 0, err
    from PIL import Image

    assert np.asarray(Image.open(png)).shape[:2] == (32, 48)
    code, _, err = run(capsys, "render", str(out), "-o", str(tmp_path / "t.png"), "--turntable", "3")
    assert code == 2 and ".gif" in err
