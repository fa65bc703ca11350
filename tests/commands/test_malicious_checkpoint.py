"""No checkpoint, archive or config given to the CLI runs code.

Every verb and option that reads a checkpoint gets one whose hyper-parameters carry an object
that unpickles into ``os.system("touch MARKER")`` (a plain checkpoint-shaped dict, and where a
real model is at hand, that real checkpoint with the payload added, so nothing can refuse it for
its shape before unpickling). Each must end with exactly one ``error:`` line, status 2, no
traceback, and no marker file. The same holds for ``.npz`` files with object arrays and YAML
configs with Python tags.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from shapegen.cli import main

REPO = Path(__file__).resolve().parents[2]
MSDF_DEMO = REPO / "assets" / "models" / "msdf_demo" / "msdf_demo.ckpt"
LAS_DEMO = REPO / "assets" / "models" / "las_demo" / "las_demo.ckpt"
SKETCH = REPO / "assets" / "sketches" / "hand_chair.png"
# The tiny data builders of the method tests (their folder is not on sys.path from here).
sys.path.insert(0, str(REPO / "tests" / "methods"))

pytestmark = pytest.mark.usefixtures("one_thread")

T2I = ["--preset", "tiny", "--tiny-random-prior", "--set", "steps=2", "--set", "geometry.steps=2", "--set", "texture.steps=2"]
AVATAR = ["--preset", "tiny", "--no-progress", "--set", "vsd.geometry.steps=2", "--set", "vsd.texture.steps=2",
          "--set", "vsd.geometry.tet_resolution=24", "--set", "rest_resolution=32"]
REFUSED = "refusing to load"


class Touch:
    """Unpickles into ``os.system("touch MARKER")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def malicious_checkpoint(path: Path, marker: Path, base: Path | None = None) -> Path:
    """Write a checkpoint carrying the payload to ``path``.

    Args:
        path: where to write (parent folders are made).
        marker: the file the payload creates when unpickled.
        base: a real checkpoint to copy (the payload is added to its hyper-parameters); None: a
            dict shaped like a Lightning checkpoint (state, loops, hyper-parameters).
    """
    if base is None:
        ckpt = {"epoch": 0, "global_step": 1, "pytorch-lightning_version": "2.6.0", "state_dict": {"w": torch.zeros(2)},
                "loops": {}, "optimizer_states": [], "lr_schedulers": [], "callbacks": {},
                "hyper_parameters": {"config": {"steps": 1}, "train": {"stage": "both"}}}
    else:
        ckpt = torch.load(base, map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["note"] = Touch(marker)
    ckpt["state_dict"]["payload"] = Touch(marker)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(result: tuple[int, str, str], marker: Path, needle: str = REFUSED) -> None:
    code, _, err = result
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and needle in err, err
    assert not marker.exists()


def test_the_payload_runs_under_a_plain_unpickler(tmp_path):
    # Without this the tests below could pass with a payload that never runs.
    marker = tmp_path / "MARKER"
    torch.load(malicious_checkpoint(tmp_path / "m.ckpt", marker, MSDF_DEMO), weights_only=False)
    assert marker.exists()


# ---------------------------------------------------------------------- loading trained systems
@pytest.mark.parametrize("real", [False, True], ids=["dict", "real"])
@pytest.mark.parametrize(
    "verb,base",
    [
        (lambda ck, out: ["generate", "--method", "msdf", "--checkpoint", ck, "-o", out, "--num", "1"], MSDF_DEMO),
        (lambda ck, out: ["generate", "--method", "las", "--checkpoint", ck, "-o", out, "--num", "1"], LAS_DEMO),
        (lambda ck, out: ["sketch-to-3d", SKETCH, "--checkpoint", ck, "-o", out / "s.glb"], LAS_DEMO),
        (lambda ck, out: ["quickstart", "-o", out, "--model", ck], MSDF_DEMO),
        (lambda ck, out: ["quickstart", "-o", out, "--las-model", ck], LAS_DEMO),
    ],
    ids=["generate-msdf", "generate-las", "sketch-to-3d", "quickstart-model", "quickstart-las-model"],
)
def test_systems_refuse_a_malicious_checkpoint(capsys, tmp_path, verb, base, real):
    marker = tmp_path / "MARKER"
    ckpt = malicious_checkpoint(tmp_path / "evil.ckpt", marker, base if real else None)
    out = tmp_path / "out"
    assert_refused(run(capsys, *verb(ckpt, out)), marker)
    assert not out.exists()


def run_subprocess(cwd: Path, *argv) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "shapegen.cli", *map(str, argv)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300, check=False)


def test_generate_in_a_subprocess_refuses_a_malicious_checkpoint(tmp_path):
    marker = tmp_path / "MARKER"
    ckpt = malicious_checkpoint(tmp_path / "evil.ckpt", marker, MSDF_DEMO)
    res = run_subprocess(tmp_path, "generate", "--method", "msdf", "--checkpoint", ckpt, "-o", tmp_path / "out")
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1 and REFUSED in res.stderr, res.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------- train
@pytest.fixture(scope="module")
def msdf_data(tmp_path_factory) -> Path:
    from _msdf_fixtures import write_class_folder

    return write_class_folder(tmp_path_factory.mktemp("msdf"), per_class=2)


@pytest.fixture(scope="module")
def las_data(tmp_path_factory) -> Path:
    from _las_fixtures import make_meshes

    from shapegen.data.las_prepare import LASPrepareConfig, prepare_dataset

    root = tmp_path_factory.mktemp("las")
    prepare_dataset(make_meshes(root / "meshes"), root / "data", LASPrepareConfig(resolution=16, sketch_size=32, views=[1]),
                    progress=False)
    return root / "data"


def _las_train(out: Path, data: Path, *extra: str) -> list:
    from _las_fixtures import TINY_OVERRIDES

    sets = [x for o in [f"data.root={data}", *TINY_OVERRIDES, "train.max_steps=2", "train.preview_every=-1", *extra]
            for x in ("--set", o)]
    return ["train", "--method", "las", "--config", "tiny", "-o", out, *sets]


@pytest.mark.parametrize("real", [False, True], ids=["dict", "real"])
def test_train_msdf_refuses_to_resume_a_malicious_last_ckpt(capsys, tmp_path, msdf_data, real):
    marker, out = tmp_path / "MARKER", tmp_path / "run"
    malicious_checkpoint(out / "checkpoints" / "last.ckpt", marker, MSDF_DEMO if real else None)
    assert_refused(run(capsys, "train", "--method", "msdf", "--config", "tiny", "-o", out, "--set", f"data.root={msdf_data}",
                       "--set", "train.max_steps=2", "--set", "train.preview_every=-1"), marker)


@pytest.mark.parametrize("real", [False, True], ids=["dict", "real"])
def test_train_las_refuses_to_resume_a_malicious_last_ckpt(capsys, tmp_path, las_data, real):
    marker, out = tmp_path / "MARKER", tmp_path / "run"
    malicious_checkpoint(out / "checkpoints" / "last.ckpt", marker, LAS_DEMO if real else None)
    assert_refused(run(capsys, *_las_train(out, las_data)), marker)
    assert_refused(run(capsys, *_las_train(out, las_data), "--stage", "sdf"), marker)


@pytest.mark.parametrize("real", [False, True], ids=["dict", "real"])
def test_train_las_refuses_a_malicious_init_from(capsys, tmp_path, las_data, real):
    marker = tmp_path / "MARKER"
    ckpt = malicious_checkpoint(tmp_path / "evil.ckpt", marker, LAS_DEMO if real else None)
    assert_refused(run(capsys, *_las_train(tmp_path / "run", las_data, f"train.init_from={ckpt}")), marker)


def test_train_writes_and_resumes_without_the_weights_only_notice(capsys, tmp_path, msdf_data, monkeypatch):
    import logging

    import shapegen.engine

    monkeypatch.setattr(shapegen.engine, "quiet_lightning", lambda *a, **k: None)  # hear everything Lightning says

    class Keep(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(record.getMessage())

    keep, lightning = Keep(), logging.getLogger("pytorch_lightning")
    level = lightning.level  # commands that quiet Lightning (text-to-3d, avatar) leave it at WARNING
    lightning.setLevel(logging.INFO)
    lightning.addHandler(keep)
    try:
        argv = ["train", "--method", "msdf", "--config", "tiny", "-o", tmp_path / "run", "--set", f"data.root={msdf_data}",
                "--set", "train.preview_every=-1", "--set", "train.checkpoint_every=1"]
        assert run(capsys, *argv, "--set", "train.max_steps=1")[0] == 0
        code, out, err = run(capsys, *argv, "--set", "train.max_steps=2")
    finally:
        lightning.removeHandler(keep)
        lightning.setLevel(level)
    assert code == 0 and "resuming from" in out, err
    assert keep.lines and not [line for line in [*keep.lines, out, err] if "weights_only" in line], keep.lines


# ---------------------------------------------------------------------------- reconstruct
@pytest.fixture(scope="module")
def room(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("room") / "room"
    assert main(["room", "synth", "-o", str(out), "--set", "num_views=2", "--set", "width=12", "--set", "height=10",
                 "--set", "max_steps=64"]) == 0
    return out


def test_reconstruct_refuses_to_resume_a_malicious_last_ckpt(capsys, tmp_path, room):
    marker = tmp_path / "MARKER"
    malicious_checkpoint(tmp_path / "rec.run" / "checkpoints" / "last.ckpt", marker)
    assert_refused(run(capsys, "reconstruct", room, "-o", tmp_path / "rec.glb", "--preset", "tiny", "--no-progress", "--resume"),
                   marker)
    assert not (tmp_path / "rec.glb").exists()


# --------------------------------------------------------------------- text-to-3d and avatar
@pytest.fixture
def cube_obj(tmp_path) -> Path:
    import trimesh

    path = tmp_path / "cube.obj"
    trimesh.creation.box(extents=(1.0, 0.6, 0.8)).export(path)
    return path


def test_text_to_3d_resume_refuses_a_malicious_nerf_checkpoint(capsys, tmp_path):
    marker, out = tmp_path / "MARKER", tmp_path / "run"
    malicious_checkpoint(out / "checkpoints" / "last.ckpt", marker)
    assert_refused(run(capsys, "text-to-3d", "a hamburger", "-o", out, *T2I, "--resume"), marker)


def test_text_to_3d_geometry_stage_refuses_a_malicious_nerf_checkpoint(capsys, tmp_path):
    marker, out = tmp_path / "MARKER", tmp_path / "run"
    malicious_checkpoint(out / "checkpoints" / "last.ckpt", marker)
    assert_refused(run(capsys, "text-to-3d", "a hamburger", "-o", out, *T2I, "--stages", "geometry"), marker)
    # The texture stage reads the geometry stage's checkpoint in the same way.
    malicious_checkpoint(out / "checkpoints" / "geometry" / "last.ckpt", marker)
    assert_refused(run(capsys, "text-to-3d", "a hamburger", "-o", out, *T2I, "--stages", "texture"), marker)


def test_text_to_3d_init_mesh_resume_refuses_a_malicious_geometry_checkpoint(capsys, tmp_path, cube_obj):
    marker, out = tmp_path / "MARKER", tmp_path / "run"
    malicious_checkpoint(out / "checkpoints" / "geometry" / "last.ckpt", marker)
    assert_refused(run(capsys, "text-to-3d", "a box", "-o", out, *T2I, "--stages", "geometry", "--init-mesh", cube_obj,
                       "--resume"), marker)


@pytest.mark.parametrize("suffix", [".glb", ".obj", ".ply"])
@pytest.mark.parametrize(
    "argv",
    [
        lambda mesh, tmp: ["text-to-3d", "a box", "-o", tmp / "run", *T2I, "--stages", "geometry", "--init-mesh", mesh],
        lambda mesh, tmp: ["texture", mesh, "--prompt", "a box", "-o", tmp / "t.glb", "--preset", "tiny", "--tiny-random-prior"],
    ],
    ids=["text-to-3d-init-mesh", "texture"],
)
def test_a_mesh_that_is_a_pickle_is_an_error(capsys, tmp_path, suffix, argv):
    marker = tmp_path / "MARKER"
    mesh = malicious_checkpoint(tmp_path / f"evil{suffix}", marker)
    assert_refused(run(capsys, *argv(mesh, tmp_path)), marker, needle="evil")


def test_avatar_resume_refuses_a_malicious_geometry_checkpoint(capsys, tmp_path):
    marker, out = tmp_path / "MARKER", tmp_path / "knight"
    malicious_checkpoint(out / "checkpoints" / "geometry" / "last.ckpt", marker)
    assert_refused(run(capsys, "avatar", "a knight", "-o", out, *AVATAR, "--resume"), marker)


# --------------------------------------------------------------------------------- texture
def test_texture_refuses_a_diffusers_folder_with_pickled_weights(tmp_path, cube_obj):
    from shapegen.guidance.tiny import build_tiny_stable_diffusion

    marker, folder = tmp_path / "MARKER", tmp_path / "sd"
    build_tiny_stable_diffusion().unet.save_config(folder / "unet")
    malicious_checkpoint(folder / "unet" / "diffusion_pytorch_model.bin", marker)
    # In a subprocess: diffusers logs a warning on the way, and only a fresh process shows what a user sees.
    res = run_subprocess(tmp_path, "texture", cube_obj, "--prompt", "a box", "-o", tmp_path / "t.glb", "--model", folder,
                         "--preset", "tiny")
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert res.returncode == 2 and len(errors) == 1 and "cannot load Stable Diffusion" in errors[0], res.stderr
    assert res.stderr.splitlines()[-1] == errors[0] and "Traceback" not in res.stderr, res.stderr
    assert not marker.exists() and not (tmp_path / "t.glb").exists()


# --------------------------------------------------------------------------- npz and YAML
def _object_npz(path: Path, marker: Path, **arrays) -> Path:
    np.savez(path, **arrays, payload=np.array([Touch(marker)], dtype=object))
    assert not marker.exists()
    return path


def test_npz_object_arrays_are_refused(capsys, tmp_path):
    marker = tmp_path / "MARKER"
    msdf = _object_npz(tmp_path / "evil.msdf.npz", marker, tensor=np.zeros((2, 4 + 27), np.float32), k=np.array(3))
    assert_refused(run(capsys, "msdf", "decode", msdf, "-o", tmp_path / "m.ply"), marker, needle="evil.msdf.npz")
    grid = tmp_path / "grid.npz"
    np.savez(grid, sdf=np.array([Touch(marker)] * 8, dtype=object).reshape(2, 2, 2))
    assert_refused(run(capsys, "extract", grid, "-o", tmp_path / "g.ply"), marker, needle="grid.npz")
    # The payload is real: a pickle-allowing load runs it.
    with np.load(msdf, allow_pickle=True) as data:
        data["payload"]
    assert marker.exists()


YAML_PAYLOAD = '!!python/object/apply:os.system ["touch {marker}"]\n'


@pytest.mark.parametrize(
    "argv",
    [
        lambda cfg, tmp: ["train", "--method", "msdf", "--config", cfg, "-o", tmp / "run"],
        lambda cfg, tmp: ["text-to-3d", "a box", "-o", tmp / "run", "--tiny-random-prior", "--config", cfg],
        lambda cfg, tmp: ["reconstruct", tmp, "-o", tmp / "r.glb", "--preset", cfg],
        lambda cfg, tmp: ["msdf", "decode", tmp / "x.msdf.npz", "-o", tmp / "x.ply", "--config", cfg],
        lambda cfg, tmp: ["texture", tmp / "m.obj", "--prompt", "a box", "-o", tmp / "t.glb", "--config", cfg],
    ],
    ids=["train", "text-to-3d", "reconstruct", "msdf-decode", "texture"],
)
@pytest.mark.parametrize("where", ["top", "value"])
def test_yaml_python_tags_are_refused(capsys, tmp_path, argv, where):
    marker = tmp_path / "MARKER"
    payload = YAML_PAYLOAD.format(marker=marker)
    cfg = tmp_path / "evil.yaml"
    cfg.write_text(payload if where == "top" else f"seed: 1\nnote: {payload}")
    assert_refused(run(capsys, *argv(cfg, tmp_path)), marker, needle="evil.yaml")


def test_procedural_set_resume_refuses_a_python_tag_in_its_record(capsys, tmp_path):
    marker, out = tmp_path / "MARKER", tmp_path / "set"
    out.mkdir()
    (out / "procedural.yaml").write_text("seed: " + YAML_PAYLOAD.format(marker=marker))
    assert_refused(run(capsys, "data", "procedural", "-o", out, "--per-class", "1", "--classes", "mug"), marker,
                   needle="procedural.yaml")


# ----------------------------------------------------------------------------- saved fields
def _evil_program(path: Path, marker: Path) -> Path:
    """A torch.export field whose stored shape expression runs ``touch MARKER`` when loaded."""
    import zipfile

    class Field(torch.nn.Module):
        def forward(self, p: torch.Tensor) -> torch.Tensor:
            return p.norm(dim=-1) - 0.5

    good = path.with_name("good.pt2")
    program = torch.export.export(Field(), (torch.randn(8, 3),), dynamic_shapes=({0: torch.export.Dim("N", min=1)},))
    torch.export.save(program, str(good))
    injected = 0
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("models/model.json"):
                text = data.decode()
                sym = text.split('"expr_str": "', 1)[1].split('"', 1)[0]  # e.g. Symbol('s7', positive=True, ...)
                injected = text.count(sym)
                data = text.replace(sym, f"__import__('os').system('touch {marker}') or {sym}").encode()
            dst.writestr(info, data)
    assert injected
    return path


def test_extract_loads_a_saved_field_only_when_trusted(capsys, tmp_path):
    marker = tmp_path / "MARKER"
    evil = _evil_program(tmp_path / "field.pt2", marker)
    assert_refused(run(capsys, "extract", evil, "-o", tmp_path / "f.obj", "--resolution", "8"), marker, needle="--trust-field")
    assert not (tmp_path / "f.obj").exists()
    # Why the flag exists: torch's own loader runs the payload.
    torch.export.load(str(evil))
    assert marker.exists()
