"""``--shard K/N`` on the three data writers, and ``shapegen data merge-shards DIR``.

For ``data procedural``, ``las prepare`` and ``msdf encode``: three shards written into one
folder and merged give the folder of one unsharded run, byte for byte (every file, the index
files included, and no shard file left). The inputs are chosen so that a wrong split shows:
``las prepare`` has two meshes of one stem in different shards (their names are made unique
over the whole folder), and ``msdf encode`` has five meshes in batches of two, which only
whole-batch blocks keep in the batches of an unsharded run. One shard of each is run twice, so
its resume (finished items reused) is checked too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trimesh
from _kill_resume import start

from shapegen.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _ok(capsys, argv: list[str]) -> str:
    code, out, err = _run(capsys, argv)
    assert code == 0, err[-3000:]
    return out


def _files(folder: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under ``folder``, hidden ones included."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_same_folder(got: Path, want: Path) -> None:
    a, b = _files(got), _files(want)
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name] == b[name], name


def _one_error_line(code: int, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# ----------------------------------------------------------------------------------- inputs
@pytest.fixture(scope="module")
def las_meshes(tmp_path_factory) -> Path:
    """Six files in sorted order: chair/a, chair/c0.obj | chair/c0.ply, chair/c1 | table/bad, table/t0
    (shards of three). ``c0.ply`` is ``chair__c0_2`` because ``c0.obj`` comes first, in another shard."""
    root = tmp_path_factory.mktemp("las_meshes")
    (root / "chair").mkdir()
    (root / "table").mkdir()
    trimesh.creation.box(extents=(0.8, 0.5, 0.8)).export(root / "chair" / "a.obj")
    trimesh.creation.box(extents=(0.8, 0.6, 0.8)).export(root / "chair" / "c0.obj")
    trimesh.creation.icosphere(subdivisions=1, radius=0.5).export(root / "chair" / "c0.ply")
    trimesh.creation.box(extents=(0.8, 0.7, 0.6)).export(root / "chair" / "c1.obj")
    (root / "table" / "bad.obj").write_text("v 0 0 0\nf 1 1\n")  # skipped with a reason in the index
    trimesh.creation.icosphere(subdivisions=1, radius=0.6).export(root / "table" / "t0.obj")
    return root


@pytest.fixture(scope="module")
def balls(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("balls")
    for i in range(5):
        trimesh.creation.icosphere(subdivisions=2, radius=0.4 + 0.1 * i).export(root / f"ball{i}.obj")
    return root


def _procedural(out) -> list:
    return ["data", "procedural", "-o", out, "--classes", "mug,bowl", "--per-class", "4", "--resolution", "16", "--workers", "1"]


def _las(meshes, out) -> list:
    return ["las", "prepare", meshes, "-o", out, "--set", "resolution=16", "--set", "sketch_size=32", "--set", "views=[1]",
            "--set", "styles=[contour]"]


def _encode(src, out) -> list:
    return ["msdf", "encode", src, "-o", out, "--config", "tiny"]  # tiny: batch_shapes=2


# --------------------------------------------------------------------- shards + merge == one run
def test_procedural_three_shards_merged_equal_one_run(capsys, tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "run"
    _ok(capsys, _procedural(ref))
    for k in (1, 2, 3):
        said = _ok(capsys, [*_procedural(out), "--shard", f"{k}/3"])
        assert f"index.shard-{k}-of-3.csv" in said and "merge-shards" in said
        assert not (out / "index.csv").exists()  # the shards never write the shared index
    # Shards of 8 shapes: 2, 3 and 3 in class-then-index order.
    assert (out / "index.shard-1-of-3.csv").read_text().count("\n") == 1 + 2
    # Resume per shard: a lost mesh of shard 2 is made again, the others are kept.
    lost = next(p for p in sorted(out.rglob("mug_00002.ply")))
    lost.unlink()
    assert "wrote 1 meshes (2 already there)" in _ok(capsys, [*_procedural(out), "--shard", "2/3"])
    said = _ok(capsys, ["data", "merge-shards", out])
    assert "merged 3 shards of 'data procedural' (8 items)" in said
    _assert_same_folder(out, ref)


def test_procedural_shards_run_at_once_into_one_folder(capsys, tmp_path):
    """Three array jobs started together share the output folder without clobbering each other."""
    ref, out = tmp_path / "ref", tmp_path / "run"
    _ok(capsys, _procedural(ref))
    jobs = [start([str(a) for a in [*_procedural(out), "--shard", f"{k}/3"]]) for k in (1, 2, 3)]
    for job in jobs:
        _, err = job.communicate(timeout=300)
        assert job.returncode == 0, err[-3000:]
    _ok(capsys, ["data", "merge-shards", out])
    _assert_same_folder(out, ref)


def test_las_prepare_three_shards_merged_equal_one_run(capsys, tmp_path, las_meshes):
    ref, out = tmp_path / "ref", tmp_path / "run"
    _ok(capsys, _las(las_meshes, ref))
    for k in (1, 2, 3):
        _ok(capsys, [*_las(las_meshes, out), "--shard", f"{k}/3"])
    assert "prepared 0, reused 2, skipped 0" in _ok(capsys, [*_las(las_meshes, out), "--shard", "2/3"])  # resumes
    assert (out / "shapes" / "chair__c0_2.npz").is_file()  # named over the whole folder, not per shard
    _ok(capsys, ["data", "merge-shards", out])
    _assert_same_folder(out, ref)
    assert "table/bad.obj" in (out / "index.json").read_text()  # the skipped mesh survives the merge


def test_msdf_encode_three_shards_merged_equal_one_run(capsys, tmp_path, balls):
    ref, out = tmp_path / "ref", tmp_path / "run"
    _ok(capsys, _encode(balls, ref))
    said = [_ok(capsys, [*_encode(balls, out), "--shard", f"{k}/3"]) for k in (1, 2, 3)]
    # Five meshes in batches of two: shards of whole batches (2, 2, 1 meshes).
    assert "meshes 1..2 of 5" in said[0] and "meshes 3..4 of 5" in said[1] and "meshes 5..5 of 5" in said[2]
    assert "skipped 2 existing" in _ok(capsys, [*_encode(balls, out), "--shard", "1/3"])  # resumes
    assert "merged 3 shards of 'msdf encode' (5 items)" in _ok(capsys, ["data", "merge-shards", out])
    _assert_same_folder(out, ref)


# ---------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("value", ["0/3", "4/3", "x", "3", "1/0"])
@pytest.mark.parametrize("command", ["procedural", "las", "msdf"])
def test_bad_shard_is_one_line_and_writes_nothing(capsys, tmp_path, las_meshes, balls, command, value):
    out = tmp_path / "out"
    argv = {"procedural": _procedural(out), "las": _las(las_meshes, out), "msdf": _encode(balls, out)}[command]
    line = _one_error_line(*_run(capsys, [*argv, "--shard", value])[::2])
    assert f"--shard '{value}'" in line and "K/N" in line
    assert not out.exists()


def test_shard_of_one_mesh_file_or_with_a_preview_is_refused(capsys, tmp_path, balls):
    out = tmp_path / "out"
    line = _one_error_line(*_run(capsys, [*_encode(balls / "ball0.obj", out / "b.msdf.npz"), "--shard", "1/2"])[::2])
    assert "folder" in line
    line = _one_error_line(*_run(capsys, [*_procedural(out), "--shard", "1/2", "--preview", tmp_path / "sheet.png"])[::2])
    assert "--preview" in line
    assert not out.exists() and not (tmp_path / "sheet.png").exists()


def test_merge_with_a_missing_or_unfinished_shard_is_one_line(capsys, tmp_path):
    out = tmp_path / "run"
    for k in (1, 3):
        _ok(capsys, [*_procedural(out), "--shard", f"{k}/3"])
    before = _files(out)
    line = _one_error_line(*_run(capsys, ["data", "merge-shards", out])[::2])
    assert "shard 2 of 3" in line and "--shard 2/3" in line
    assert _files(out) == before  # nothing merged, nothing removed
    # A shard killed part-way has index files but no manifest yet: unfinished, not merged.
    _ok(capsys, [*_procedural(out), "--shard", "2/3"])
    (out / "shard-2-of-3.json").unlink()
    line = _one_error_line(*_run(capsys, ["data", "merge-shards", out])[::2])
    assert "shard 2 of 3" in line and "unfinished" in line
    assert not (out / "index.csv").exists()


def test_merge_refuses_shards_of_two_splits_and_an_empty_folder(capsys, tmp_path):
    out = tmp_path / "run"
    _ok(capsys, [*_procedural(out), "--shard", "1/2"])
    _ok(capsys, [*_procedural(out), "--shard", "2/3"])
    line = _one_error_line(*_run(capsys, ["data", "merge-shards", out])[::2])
    assert "of 2 and of 3" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    line = _one_error_line(*_run(capsys, ["data", "merge-shards", empty])[::2])
    assert "no shard files" in line
