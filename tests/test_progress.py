"""``--progress json`` / ``SHAPEGEN_PROGRESS=json``: one JSON line per progress event on stderr,
from the commands the Blender add-on runs, and nothing without the option."""

from __future__ import annotations

import json

import pytest
from _cli import run

from shapegen.progress import current_mode, progress_mode, report

REPO_SKETCH = "assets/sketches/hand_chair.png"


def _events(err: str) -> list[dict]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_report_writes_one_json_line_only_in_json_mode(capsys, monkeypatch):
    monkeypatch.delenv("SHAPEGEN_PROGRESS", raising=False)
    report("sampling", 1, 2)
    assert capsys.readouterr().err == ""
    with progress_mode("json"):
        report("sampling", 3, 20)
        report("writing")
    assert capsys.readouterr().err.splitlines() == ['{"phase": "sampling", "done": 3, "total": 20}', '{"phase": "writing", "done": null, "total": null}']
    assert current_mode() == "none"  # the block restored the mode
    monkeypatch.setenv("SHAPEGEN_PROGRESS", "json")
    assert current_mode() == "json"
    with progress_mode("none"):  # an explicit --progress none wins over the environment
        report("sampling", 1, 1)
    assert capsys.readouterr().err == ""


def test_generate_reports_each_solver_step(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("SHAPEGEN_PROGRESS", raising=False)
    code, out, err = run(
        capsys,
        "--progress",
        "json",
        "generate",
        "--method",
        "msdf",
        "--class",
        "chair",
        "--num",
        "1",
        "--steps",
        "3",
        "--solver",
        "euler",
        "--resolution",
        "24",
        "-o",
        tmp_path / "gen",
    )
    assert code == 0, err
    events = _events(err)
    assert events[0] == {"phase": "loading", "done": None, "total": None}
    assert [e["done"] for e in events if e["phase"] == "sampling"] == [1, 2, 3]
    assert all(e["total"] == 3 for e in events if e["phase"] == "sampling")
    assert [(e["done"], e["total"]) for e in events if e["phase"] == "meshing"] == [(1, 1)]
    assert events[-1] == {"phase": "done", "done": 1, "total": 1}
    assert "wrote" in out and not out.lstrip().startswith("{")  # the human line stays on stdout


@pytest.mark.parametrize("json_by", ["option", "environment", "off"])
def test_sketch_to_3d_reports_both_las_stages(capsys, tmp_path, monkeypatch, json_by):
    monkeypatch.delenv("SHAPEGEN_PROGRESS", raising=False)
    if json_by == "environment":
        monkeypatch.setenv("SHAPEGEN_PROGRESS", "json")
    flags = ["--progress", "json"] if json_by == "option" else []
    code, _, err = run(
        capsys,
        *flags,
        "sketch-to-3d",
        REPO_SKETCH,
        "--view",
        "45",
        "-o",
        tmp_path / "chair.glb",
        "--set",
        "occupancy_steps=2",
        "--set",
        "sdf_steps=3",
        "--set",
        "preview_size=32",
    )
    assert code == 0, err
    events = _events(err)
    if json_by == "off":
        assert events == []
        return
    phases = [(e["phase"], e["done"], e["total"]) for e in events]
    assert phases == [
        ("loading", None, None),
        ("occupancy", 1, 2),
        ("occupancy", 2, 2),
        ("sdf", 1, 3),
        ("sdf", 2, 3),
        ("sdf", 3, 3),
        ("writing", None, None),
        ("done", 1, 1),
    ]


def test_failed_command_ends_with_the_error_line(capsys, tmp_path):
    code, _, err = run(capsys, "--progress", "json", "sketch-to-3d", tmp_path / "missing.png", "--view", "45", "-o", tmp_path / "x.glb")
    assert code == 2
    assert err.splitlines()[-1].startswith("error: sketch") and "does not exist" in err


def test_text_to_3d_reports_sampling_then_meshing_of_each_shape(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("SHAPEGEN_PROGRESS", raising=False)
    code, _out, err = run(capsys, "--progress", "json", "text-to-3d", "a deep bowl", "--num", "2", "--set", "resolution=24",
                         "--set", "turntable_frames=0", "-o", tmp_path / "bowls")
    assert code == 0, err
    events = _events(err)
    phases = [e["phase"] for e in events]
    assert "sampling" in phases and phases.index("sampling") < phases.index("meshing")
    assert [(e["done"], e["total"]) for e in events if e["phase"] == "meshing"] == [(1, 2), (2, 2)]
