"""Killed data writers resume where they stopped and end with the files an uninterrupted run
writes, byte for byte: ``data procedural``, ``las prepare`` and ``msdf encode`` of a folder.

Each is SIGKILLed once its first output exists (and once in the middle of writing an output,
through a ``numpy.savez*`` that writes half the bytes and then kills its own process), run
again with the same command line, and compared with an uninterrupted run: every output is a
pure function of its input and settings, written atomically, so a kill can only leave hidden
temporary files (``.NAME.XXXX``) that nothing reads.
"""

from __future__ import annotations

import json
import signal

import pytest
import trimesh
from _kill_resume import (
    count_at_least,
    interrupt_when,
    kill_when,
    reference,
    run,
    run_ok,
    torn_kill,
    visible_files,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _same_outputs(out, ref, ignore=()) -> None:
    got, want = visible_files(out), visible_files(ref)
    assert got.keys() == want.keys()
    for name in got:
        if name not in ignore:
            assert got[name] == want[name], name


# ------------------------------------------------------------------------------ data procedural
def _procedural_argv(out) -> list[str]:
    return ["data", "procedural", "-o", str(out), "--classes", "mug,lamp", "--per-class", "4", "--resolution", "24",
            "--workers", "1"]


def test_data_procedural_killed_resumes_with_the_same_files(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "run"
    reference(_procedural_argv(ref))
    kill_when(_procedural_argv(out), count_at_least(out, "*/*/*.ply", 1))
    assert not (out / "index.csv").exists()
    again = run_ok(_procedural_argv(out))
    kept = int(again.stdout.split("(")[1].split(" already there")[0])
    assert 1 <= kept < 8, again.stdout  # resumed: the meshes written before the kill were kept
    _same_outputs(out, ref)


def test_data_procedural_ctrl_c_exits_130_and_resumes(tmp_path):
    out = tmp_path / "run"
    argv = ["data", "procedural", "-o", str(out), "--classes", "mug,lamp", "--per-class", "200", "--resolution", "24",
            "--workers", "1"]
    done = interrupt_when(argv, count_at_least(out, "*/*/*.ply", 1))
    assert done.returncode == 128 + signal.SIGINT, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr and lines[-1].startswith("interrupted; run the same command again to resume")
    assert sum("resume" in line for line in lines) == 1
    written = sum(1 for p in out.glob("*/*/*.ply"))
    again = run_ok([*argv[:6], "--per-class", "1", *argv[8:]])  # a smaller set: resumes, keeps what exists
    assert written >= 1 and "wrote 1 meshes (1 already there)" in again.stdout  # mug 0 kept, lamp 0 added


def test_data_procedural_other_settings_name_fresh(tmp_path):
    out = tmp_path / "run"
    run_ok(["data", "procedural", "-o", str(out), "--classes", "mug", "--per-class", "1", "--resolution", "16"])
    other = run(["data", "procedural", "-o", str(out), "--classes", "mug", "--per-class", "1", "--resolution", "20"])
    assert other.returncode == 2 and other.stderr.count("\n") == 1 and "--fresh" in other.stderr
    fresh = run_ok(["data", "procedural", "-o", str(out), "--classes", "mug", "--per-class", "1", "--resolution", "20", "--fresh"])
    assert "wrote 1 meshes (0 already there)" in fresh.stdout


# ---------------------------------------------------------------------------------- las prepare
@pytest.fixture(scope="module")
def las_meshes(tmp_path_factory):
    root = tmp_path_factory.mktemp("las_meshes")
    for i in range(4):  # four meshes per category: enough work left after the first to kill
        (root / "chair").mkdir(exist_ok=True)
        (root / "table").mkdir(exist_ok=True)
        trimesh.creation.box(extents=(0.8, 0.6 + 0.1 * i, 0.8)).export(root / "chair" / f"c{i}.obj")
        trimesh.creation.icosphere(subdivisions=1, radius=0.5 + 0.05 * i).export(root / "table" / f"t{i}.obj")
    return root


@pytest.fixture(scope="module")
def las_reference(las_meshes, tmp_path_factory):
    ref = tmp_path_factory.mktemp("las_ref") / "data"
    reference(_las_argv(las_meshes, ref))
    return ref


def _las_argv(meshes, out) -> list[str]:
    return ["las", "prepare", str(meshes), "-o", str(out), "--set", "resolution=16", "--set", "sketch_size=32",
            "--set", "views=[1,2]", "--set", "styles=[contour]"]


def test_las_prepare_killed_resumes_with_the_same_files(las_meshes, las_reference, tmp_path):
    ref, out = las_reference, tmp_path / "run"
    # index.json is rewritten after each finished mesh (volumes and every sketch): the unit of resume.
    kill_when(_las_argv(las_meshes, out), (out / "index.json").is_file)
    again = run_ok(_las_argv(las_meshes, out))
    reused = int(again.stdout.split("reused ")[1].split(",")[0])
    assert 1 <= reused < 8, again.stdout
    _same_outputs(out, ref, ignore=("index.json",))
    # The index lists the same shapes and sketches (key order follows the order they finished).
    a, b = json.loads((out / "index.json").read_text()), json.loads((ref / "index.json").read_text())
    assert a["settings"] == b["settings"] and a["shapes"] == b["shapes"]
    key = lambda r: (r["shape"], r["file"])
    assert sorted(a["sketches"], key=key) == sorted(b["sketches"], key=key)


def test_las_prepare_killed_while_writing_leaves_no_partial_file(las_meshes, las_reference, tmp_path):
    ref, out = las_reference, tmp_path / "run"
    torn_kill(_las_argv(las_meshes, out), "shapegen.io.write_npz:2")  # the 2nd shape's volumes torn
    assert sorted(p.name for p in (out / "shapes").iterdir() if not p.name.startswith(".")) == ["chair__c0.npz"]
    again = run_ok(_las_argv(las_meshes, out))
    assert "prepared 7, reused 1" in again.stdout
    _same_outputs(out, ref, ignore=("index.json",))


def test_las_prepare_other_settings_name_fresh(las_meshes, tmp_path):
    out = tmp_path / "run"
    run_ok(_las_argv(las_meshes, out))
    other = run([*_las_argv(las_meshes, out), "--set", "sketch_size=24"])
    assert other.returncode == 2 and other.stderr.count("\n") == 1 and "--fresh" in other.stderr and "sketch_size" in other.stderr
    assert "prepared 8, reused 0" in run_ok([*_las_argv(las_meshes, out), "--set", "sketch_size=24", "--fresh"]).stdout


# ------------------------------------------------------------------------------- msdf encode
@pytest.fixture(scope="module")
def balls(tmp_path_factory):
    root = tmp_path_factory.mktemp("balls")
    for i in range(4):
        ball = trimesh.creation.icosphere(subdivisions=2, radius=0.5 + 0.1 * i)
        ball.export(root / f"ball{i}.obj")
    return root


@pytest.fixture(scope="module")
def encode_reference(balls, tmp_path_factory):
    ref = tmp_path_factory.mktemp("msdf_ref") / "out"
    reference(_encode_argv(balls, ref))
    return ref


def _encode_argv(src, out) -> list[str]:
    return ["msdf", "encode", str(src), "-o", str(out), "--config", "tiny", "--set", "batch_shapes=1"]


def test_msdf_encode_folder_killed_resumes_with_the_same_files(balls, encode_reference, tmp_path):
    ref, out = encode_reference, tmp_path / "run"
    kill_when(_encode_argv(balls, out), count_at_least(out, "*.msdf.npz", 1))
    again = run_ok(_encode_argv(balls, out))
    skipped = int(again.stdout.split("skipped ")[1].split(" ")[0])
    assert 1 <= skipped < 4, again.stdout
    _same_outputs(out, ref)


def test_msdf_encode_killed_while_writing_leaves_no_partial_file(balls, encode_reference, tmp_path):
    ref, out = encode_reference, tmp_path / "run"
    torn_kill(_encode_argv(balls, out), "shapegen.io.write_npz:2")
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["ball0.msdf.npz"]
    again = run_ok(_encode_argv(balls, out))
    assert "skipped 1 existing" in again.stdout
    _same_outputs(out, ref)
    other = run([*_encode_argv(balls, out), "--set", "n=16"])
    assert other.returncode == 2 and other.stderr.count("\n") == 1 and "--fresh" in other.stderr
