"""``shapegen text-to-3d --stages nerf,geometry,texture`` and ``shapegen texture`` on the tiny preset."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import trimesh
from _cli import one_error_line, run

from shapegen.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--preset", "tiny", "--tiny-random-prior", "--set", "export.turntable_frames=2", "--set", "texture.turntable_frames=2",
        "--set", "steps=2", "--set", "geometry.steps=2", "--set", "texture.steps=2"]



@pytest.fixture(scope="module")
def three_stages(tmp_path_factory):
    import torch as _torch

    threads = _torch.get_num_threads()
    _torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("t3d") / "run"
    code = main(["text-to-3d", "a hamburger", "-o", str(out), *FAST, "--stages", "nerf,geometry,texture"])
    _torch.set_num_threads(threads)
    assert code == 0
    return out


def _texture_of(path) -> np.ndarray:
    scene = trimesh.load(path)
    geom = next(iter(scene.geometry.values()))
    return np.asarray(geom.visual.material.baseColorTexture)


def test_three_stages_end_to_end(three_stages):
    out = three_stages
    for name in ("model.glb", "geometry.glb", "textured.glb", "config.yaml", "history.json"):
        assert (out / name).is_file(), name
    for stage in ("geometry", "texture"):
        ckpt = torch.load(out / "checkpoints" / stage / "last.ckpt", map_location="cpu", weights_only=False)
        assert ckpt["shapegen_stage"] == stage and ckpt["global_step"] == 2
        assert [int(r["step"]) for r in json.loads((out / f"history_{stage}.json").read_text())] == [0, 1]
    geometry = trimesh.load(out / "geometry.glb", force="mesh")
    textured = trimesh.load(out / "textured.glb", force="mesh")
    assert len(geometry.faces) > 20 and len(textured.faces) == len(geometry.faces)
    # The textured mesh is the geometry-stage mesh (UV seams only duplicate vertices).
    np.testing.assert_allclose(textured.bounds, geometry.bounds, atol=1e-5)
    tex = _texture_of(out / "textured.glb")
    assert tex.shape[:2] == (64, 64) and tex.std() > 0
    assert any(p.name.startswith("turntable_textured") for p in out.iterdir())
    assert sorted(p.name for p in (out / "renders").glob("texture_*")) == ["texture_step000001.png", "texture_step000002.png"]


def test_resume_one_stage_from_its_checkpoint(three_stages, capsys, tmp_path):
    # Resume a copy: the shared run stays as the other tests of this module expect it.
    out = tmp_path / "run"
    shutil.copytree(three_stages, out)
    before = (out / "geometry.glb").read_bytes()
    code, _, err = run(capsys, "text-to-3d", "a hamburger", "-o", str(out), *FAST, "--set", "texture.steps=3",
                       "--stages", "texture")  # resuming is the default
    assert code == 0, err
    steps = [int(r["step"]) for r in json.loads((out / "history_texture.json").read_text())]
    assert steps == [0, 1, 2]  # continued from step 2, not restarted
    assert (out / "geometry.glb").read_bytes() == before  # earlier stages untouched


def test_a_checkpoint_from_before_the_run_settings_still_resumes(three_stages, capsys, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(three_stages, out)
    path = out / "checkpoints" / "texture" / "last.ckpt"
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    del ckpt["hyper_parameters"]["config"]["train"]  # as written before the stages shared train.*
    torch.save(ckpt, path)
    code, stdout, err = run(capsys, "text-to-3d", "a hamburger", "-o", str(out), *FAST, "--set", "texture.steps=3", "--stages", "texture")
    assert code == 0, err
    assert f"resuming from {path} (step 2;" in stdout
    # A run setting that is not the default is still a difference.
    code, _, err = run(capsys, "text-to-3d", "a hamburger", "-o", str(out), *FAST, "--set", "texture.steps=4",
                       "--set", "train.grad_clip=1.0", "--stages", "texture")
    one_error_line(code, err)
    assert "train.grad_clip=0.0 (now 1.0)" in err


@pytest.mark.parametrize(
    ("stages", "message"),
    [("nerf,dmtet", "unknown stage 'dmtet'"), ("geometry", "needs the nerf stage's result"),
     ("texture", "needs the geometry stage's result"), ("nerf,texture", "texture needs geometry")],
)
def test_bad_stages_are_one_line_and_write_nothing(capsys, tmp_path, stages, message):
    out = tmp_path / "run"
    code, _, err = run(capsys, "text-to-3d", "a cat", "-o", str(out), *FAST, "--stages", stages)
    one_error_line(code, err)
    assert message in err
    assert not out.exists()


def test_unfinished_predecessor_is_refused(three_stages, capsys, tmp_path):
    out = tmp_path / "copy"
    (out / "checkpoints").mkdir(parents=True)
    ckpt = torch.load(three_stages / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    ckpt["global_step"] = 1
    torch.save(ckpt, out / "checkpoints" / "last.ckpt")
    code, _, err = run(capsys, "text-to-3d", "a cat", "-o", str(out), *FAST, "--stages", "geometry")
    one_error_line(code, err)
    assert "stopped at step 1 of 2" in err
    assert sorted(p.name for p in out.rglob("*")) == ["checkpoints", "last.ckpt"]


def test_texture_command_keeps_the_mesh_frame(capsys, tmp_path):
    src = trimesh.creation.icosphere(subdivisions=2, radius=3.0)
    src.apply_translation([5.0, 0.0, 0.0])
    src.export(tmp_path / "ball.obj")
    out = tmp_path / "ball.glb"
    code, stdout, err = run(capsys, "texture", str(tmp_path / "ball.obj"), "--prompt", "a red ball", "-o", str(out),
                            "--preset", "tiny", "--tiny-random-prior", "--set", "texture.steps=2")
    assert code == 0, err
    assert "wrote" in stdout
    got = trimesh.load(out, force="mesh")
    np.testing.assert_allclose(got.bounds, src.bounds, atol=1e-4)  # original position and size
    assert len(got.faces) == len(src.faces)
    assert _texture_of(out).shape[:2] == (64, 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ball.glb", "ball.obj", "ball.run"]
    run_dir = tmp_path / "ball.run"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file() and (run_dir / "config.yaml").is_file()
    assert sorted(p.name for p in (run_dir / "renders").iterdir()) == ["texture_step000001.png", "texture_step000002.png"]


@pytest.fixture
def textured_ball(capsys, tmp_path):
    """A texture run of 2 steps on a ball: (argv without -o, output path)."""
    trimesh.creation.icosphere(subdivisions=1, radius=0.3).export(tmp_path / "ball.obj")
    argv = ["texture", str(tmp_path / "ball.obj"), "--prompt", "a red ball", "--preset", "tiny", "--tiny-random-prior",
            "--no-progress", "--set", "texture.render_every=0"]
    out = tmp_path / "ball.glb"
    code, _, err = run(capsys, *argv, "-o", str(out), "--set", "texture.steps=2")
    assert code == 0, err
    return argv, out


def _steps(run_dir) -> list[int]:
    return [int(r["step"]) for r in json.loads((run_dir / "history_texture.json").read_text())]


def test_texture_command_resumes_from_its_run_folder(textured_ball, capsys):
    argv, out = textured_ball
    last = out.with_suffix(".run") / "checkpoints" / "last.ckpt"
    code, stdout, err = run(capsys, *argv, "-o", str(out), "--set", "texture.steps=3")
    assert code == 0, err
    assert f"resuming from {last} (step 2;" in stdout
    assert _steps(out.with_suffix(".run")) == [0, 1, 2]  # steps 0-1 restored, step 2 added
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 3
    code, stdout, err = run(capsys, *argv, "-o", str(out), "--set", "texture.steps=2", "--fresh")
    assert code == 0, err
    assert "resuming" not in stdout and _steps(out.with_suffix(".run")) == [0, 1]


def test_texture_command_refuses_another_configs_checkpoint(textured_ball, capsys, tmp_path):
    argv, out = textured_ball
    before = out.read_bytes()
    code, _, err = run(capsys, *[a if a != "a red ball" else "a blue ball" for a in argv], "-o", str(out))
    one_error_line(code, err)
    assert "prompt=a red ball (now a blue ball)" in err and "--fresh" in err
    # The same config on another mesh is refused as well: the checkpoint holds the mesh it textures.
    trimesh.creation.box(extents=[0.4, 0.4, 0.4]).export(tmp_path / "box.obj")
    code, _, err = run(capsys, *[str(tmp_path / "box.obj") if a.endswith("ball.obj") else a for a in argv], "-o", str(out))
    one_error_line(code, err)
    assert "mesh=" in err and "--fresh" in err
    assert out.read_bytes() == before


@pytest.mark.parametrize(
    ("mesh", "output", "message"),
    [("missing.obj", "out.glb", "does not exist"), ("ball.obj", "out.ply", "textures need a .glb")],
)
def test_texture_command_bad_input(capsys, tmp_path, mesh, output, message):
    trimesh.creation.icosphere(subdivisions=1).export(tmp_path / "ball.obj")
    code, _, err = run(capsys, "texture", str(tmp_path / mesh), "--prompt", "x", "-o", str(tmp_path / output),
                       "--preset", "tiny", "--tiny-random-prior")
    one_error_line(code, err)
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ball.obj"]


BLENDER_PROBE = r'''
import json, sys
import bpy
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath=sys.argv[1])
objs = [o for o in bpy.context.scene.objects if o.type == "MESH"]
mat = objs[0].data.materials[0]
bsdf = [n for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled"][0]
todo, found = [l.from_node for l in bsdf.inputs["Base Color"].links], []
while todo:
    node = todo.pop(0)
    if node.bl_idname == "ShaderNodeTexImage" and node.image:
        found.append({"size": list(node.image.size), "mean": sum(node.image.pixels[:]) / len(node.image.pixels)})
    for inp in node.inputs:
        todo += [l.from_node for l in inp.links]
print("JSON" + json.dumps({"faces": len(objs[0].data.polygons), "uv": len(objs[0].data.uv_layers), "images": found}))
'''


@pytest.mark.blender
def test_textured_glb_opens_in_blender_with_its_image_texture(three_stages):
    path = three_stages / "textured.glb"
    proc = subprocess.run([sys.executable, "-c", BLENDER_PROBE, str(path)], capture_output=True, text=True, timeout=300, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("JSON")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    info = json.loads(lines[-1][4:])
    assert info["faces"] == len(trimesh.load(path, force="mesh").faces)
    assert info["uv"] == 1
    assert len(info["images"]) == 1 and info["images"][0]["size"] == [64, 64]
    assert 0.0 < info["images"][0]["mean"] < 1.0


def test_geometry_stage_from_a_mesh(capsys, tmp_path):
    """--init-mesh: the DMTet grid starts from any mesh's SDF (e.g. a Mosaic-SDF or LAS result)."""
    box = trimesh.creation.box(extents=[2.0, 1.0, 1.0])
    box.export(tmp_path / "box.obj")
    out = tmp_path / "run"
    code, _, err = run(capsys, "text-to-3d", "a brick", "-o", str(out), *FAST, "--set", "geometry.steps=1",
                       "--set", "geometry.tet_resolution=16", "--set", "geometry.lr=1e-6", "--stages", "geometry",
                       "--init-mesh", str(tmp_path / "box.obj"))
    assert code == 0, err
    got = trimesh.load(out / "geometry.glb", force="mesh")
    ext = got.bounds[1] - got.bounds[0]
    # Normalised to a largest half-extent of 0.5: a 1.0 x 0.5 x 0.5 box, within a tet cell.
    np.testing.assert_allclose(ext, [1.0, 0.5, 0.5], atol=0.1)
    assert not (out / "model.glb").exists()


def test_init_mesh_needs_the_geometry_stage_first(capsys, tmp_path):
    trimesh.creation.box().export(tmp_path / "box.obj")
    out = tmp_path / "run"
    code, _, err = run(capsys, "text-to-3d", "a brick", "-o", str(out), *FAST, "--init-mesh", str(tmp_path / "box.obj"))
    one_error_line(code, err)
    assert "--init-mesh starts the geometry stage" in err and not out.exists()
