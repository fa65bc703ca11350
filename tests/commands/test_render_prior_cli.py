"""``--model`` with a pixel-space render prior: text-to-3d's three stages from a tiny prior folder,
and the shipped ``render-prior`` by name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trimesh
from _cli import run

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "methods"))
from _prior_fixtures import tiny_prior_folder

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--preset", "tiny", "--set", "export.turntable_frames=2", "--set", "texture.turntable_frames=2", "--set", "steps=2",
        "--set", "geometry.steps=2", "--set", "texture.steps=2"]


def test_three_stages_from_a_pixel_space_prior_folder(tmp_path, capsys):
    folder = tiny_prior_folder(tmp_path / "prior")
    out = tmp_path / "run"
    code, _, err = run(capsys, "text-to-3d", "a chair", "--method", "vsd", "--model", str(folder), "-o", str(out), *FAST,
                       "--stages", "nerf,geometry,texture")
    assert code == 0, err
    for name in ("model.glb", "geometry.glb", "textured.glb"):
        assert len(trimesh.load(out / name, force="mesh").faces) > 0, name
    assert f"model: {folder}" in (out / "config.yaml").read_text()


def test_the_shipped_render_prior_by_name(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(capsys, "text-to-3d", "a chair", "--method", "vsd", "--model", "render-prior", "-o", str(out), *FAST)
    assert code == 0, err
    assert (out / "model.glb").is_file() and "model: render-prior" in (out / "config.yaml").read_text()


def test_avatar_and_texture_take_the_render_prior(tmp_path, capsys):
    out = tmp_path / "avatar"
    code, _, err = run(capsys, "avatar", "a knight", "-o", str(out), "--preset", "tiny", "--no-progress", "--model", "render-prior",
                       "--set", "vsd.geometry.steps=2", "--set", "vsd.texture.steps=2", "--set", "vsd.geometry.tet_resolution=24",
                       "--set", "rest_resolution=32")
    assert code == 0, err
    assert (out / "avatar.glb").is_file() and "model: render-prior" in (out / "config.yaml").read_text()
    mesh = tmp_path / "box.obj"
    trimesh.creation.box().export(mesh)
    code, _, err = run(capsys, "texture", str(mesh), "--prompt", "a bench", "-o", str(tmp_path / "box.glb"), "--preset", "tiny",
                       "--model", "render-prior", "--set", "texture.steps=2", "--set", "texture.turntable_frames=2", "--no-progress")
    assert code == 0, err
    assert len(trimesh.load(tmp_path / "box.glb", force="mesh").faces) == 12
