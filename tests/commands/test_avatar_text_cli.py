"""``shapegen avatar PROMPT -o OUT_DIR`` on the tiny preset: outputs, GLB round trip, resume,
bad input, and (marked ``blender``) the rigged, textured GLB posed in real Blender."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh
from _cli import run

from shapegen.cli import main
from shapegen.geometry.export_rigged import load_rigged_glb

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--preset", "tiny", "--no-progress", "--set", "vsd.geometry.steps=2", "--set", "vsd.texture.steps=2",
        "--set", "vsd.geometry.tet_resolution=24", "--set", "rest_resolution=32"]



@pytest.fixture(scope="module")
def avatar(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("avatar") / "knight"
    code = main(["avatar", "a knight in silver armour", "-o", str(out), *FAST, "--preview"])
    torch.set_num_threads(threads)
    assert code == 0
    return out


def test_avatar_writes_a_rigged_textured_glb_and_pngs(avatar):
    for name in ("avatar.glb", "geometry.glb", "rest.png", "poses.png", "config.yaml", "history_geometry.json",
                 "history_texture.json", "checkpoints/geometry/last.ckpt", "checkpoints/texture/last.ckpt"):
        assert (avatar / name).is_file(), name
    history = json.loads((avatar / "history_geometry.json").read_text())
    assert len(history) == 2 and all("loss_prior" in r for r in history)
    from PIL import Image

    rest = np.asarray(Image.open(avatar / "rest.png"))
    assert rest.shape == (32, 32, 3) and rest.std() > 0  # a figure over the background
    assert np.asarray(Image.open(avatar / "poses.png")).shape == (32, 96, 3)


def test_avatar_glb_round_trip_keeps_skin_morphs_and_textures(avatar):
    rigged = load_rigged_glb(avatar / "avatar.glb")
    mesh = rigged.mesh
    lo, hi = mesh.bounds()
    assert float(hi[1] - lo[1]) == pytest.approx(1.7, abs=0.1)  # metres, standing
    assert float(lo[1]) == pytest.approx(0.0, abs=0.08)  # soles on the floor
    assert rigged.skeleton.num_joints == 19
    torch.testing.assert_close(rigged.skin.weights.sum(1), torch.ones(mesh.num_vertices), atol=1e-5, rtol=0)
    assert list(rigged.morph_targets) == ["jawOpen"]
    jaw = rigged.morph_targets["jawOpen"].norm(dim=1)
    assert float(jaw.max()) > 1e-3 and float(mesh.vertices[jaw > 1e-3][:, 1].min()) > 1.4  # in the head
    assert mesh.uv is not None and mesh.uv.shape == (mesh.num_vertices, 2)
    mat = mesh.material
    assert mat.base_color_texture.shape == (64, 64, 3) and mat.metallic_roughness_texture.shape == (64, 64, 3)
    assert float(mat.base_color_texture.std()) > 0  # a baked texture, not a constant
    # Posing the upper arm moves the forearm with it and leaves the pelvis in place (the tiny
    # grid is too coarse for hands).
    from shapegen.geometry.rigging import axis_angle_matrix, linear_blend_skinning

    names = rigged.skeleton.names
    rot = torch.eye(3).repeat(len(names), 1, 1)
    rot[names.index("upper_arm_l")] = axis_angle_matrix((1.0, 0.0, 0.0), 90.0)
    moved = (linear_blend_skinning(mesh.vertices, rigged.skin, rigged.skeleton, rigged.skeleton.forward_kinematics(rot)) - mesh.vertices).norm(dim=1)
    top = rigged.skin.joints[:, 0]
    forearm = (top == names.index("forearm_l")) & (rigged.skin.weights[:, 0] > 0.9)
    assert int(forearm.sum()) > 0 and float(moved[forearm].min()) > 0.05
    assert float(moved[top == names.index("pelvis")].max()) < 1e-5
    # Any glTF reader sees the same mesh with its texture.
    geom = next(iter(trimesh.load(avatar / "avatar.glb").geometry.values()))
    assert np.asarray(geom.visual.material.baseColorTexture).shape[:2] == (64, 64)


def test_avatar_resumes_from_stage_checkpoints(avatar, capsys):
    code, out, err = run(capsys, "avatar", "a knight in silver armour", "-o", str(avatar), *FAST, "--set", "vsd.texture.steps=3")
    assert code == 0, err
    assert len(json.loads((avatar / "history_geometry.json").read_text())) == 2  # finished: not rerun
    history = json.loads((avatar / "history_texture.json").read_text())
    assert [r["step"] for r in history] == [0.0, 1.0, 2.0]  # steps 0-1 restored, step 2 added
    assert "avatar.glb" in out


def test_avatar_resume_refuses_another_body(avatar, capsys):
    before = (avatar / "avatar.glb").stat().st_mtime_ns
    code, _, err = run(capsys, "avatar", "a knight", "-o", str(avatar), *FAST, "--body-params", "height=1.9", "--resume")
    assert code == 2 and err.count("\n") == 1 and "body.height=1.7 (now 1.9)" in err and "--fresh" in err, err
    assert (avatar / "avatar.glb").stat().st_mtime_ns == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--body-params", "size=2"], "unknown key 'size'"),
        (["--body-params", "height=tall"], "must be a number"),
        (["--body-params", "height=9"], "height"),
        (["--resume", "--fresh"], "contradict"),
        (["--preset", "paper"], "sized for a GPU"),
    ],
)
def test_avatar_bad_input_is_one_line_and_writes_nothing(capsys, tmp_path, extra, message):
    if extra == ["--preset", "paper"] and torch.cuda.is_available():
        pytest.skip("the paper preset runs on this machine's GPU")
    out = tmp_path / "out"
    argv = ["avatar", "a knight", "-o", str(out), *FAST, *extra]
    if extra[0] == "--preset":
        argv = ["avatar", "a knight", "-o", str(out), *extra]
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert not out.exists()


def test_avatar_unwritable_output_is_one_line(capsys, tmp_path, readonly_dir):
    afile = tmp_path / "file"
    afile.write_text("x")
    code, _, err = run(capsys, "avatar", "a knight", "-o", str(afile), *FAST)
    assert code == 2 and err.count("\n") == 1 and "is a file" in err
    code, _, err = run(capsys, "avatar", "a knight", "-o", str(readonly_dir / "out"), *FAST)
    assert code == 2 and err.count("\n") == 1 and ("permission denied" in err or "read-only" in err), err
    assert list(readonly_dir.iterdir()) == []




@pytest.mark.blender
def test_avatar_glb_imports_into_blender_ready_to_pose(avatar):
    from _blender_probe import probe_rigged_glb

    info = probe_rigged_glb(avatar / "avatar.glb", "upper_arm_l", "forearm_l")
    assert info["armatures"] == 1 and info["meshes"] == 1 and info["bones"] == 19
    assert "ARMATURE" in info["modifiers"] and info["uv"] >= 1
    assert info["shape_keys"] == ["Basis", "jawOpen"]
    assert info["linked"] == {"Base Color": True, "Metallic": True, "Roughness": True}
    assert info["moved"] > 0.05 and info["still"] < 1e-4
