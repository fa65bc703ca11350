"""The Blender add-on in real (background) Blender against the real ``shapegen`` CLI and shipped models.

One child process per session (``_addon_session.py``; bpy keeps global state and imports once
per process): the add-on enabled from its source folder runs every operator with ``wait=True``;
the packaged zip goes through Blender's own extension installer and the legacy add-on
installer; the copy ``shapegen blender install`` writes is enabled from the user repository.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _strokes import POLYLINES, SIZE, dilate, expected_ink, view_matrix
from PIL import Image

from shapegen.blender_package import install_addon, package_addon
from shapegen.fields.body_prior import BodyPriorConfig, HumanoidPrior
from shapegen.geometry.export import export_mesh

pytestmark = pytest.mark.blender

REPO = Path(__file__).resolve().parents[2]
SESSION = Path(__file__).with_name("_addon_session.py")


def _child(mode: str, args: dict, env: dict | None = None) -> dict:
    """Run ``_addon_session.py MODE``; ``env`` values of None remove the variable."""
    environ = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}
    proc = subprocess.run(
        [sys.executable, str(SESSION), mode, json.dumps(args)], capture_output=True, text=True, timeout=900, check=False, env=environ, cwd=args["tmp"]
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("JSON")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:] + proc.stdout[-4000:]
    return json.loads(lines[-1][4:])


def _executable() -> str:
    exe = Path(sys.executable).with_name("shapegen")
    assert exe.is_file(), f"the shapegen console script is not installed beside {sys.executable} (pip install -e .)"
    return str(exe)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("addon")
    body = HumanoidPrior(BodyPriorConfig()).template_mesh(40)
    humanoid = export_mesh(body, tmp / "body.obj")
    args = {
        "tmp": str(tmp),
        "source": str(REPO / "blender"),
        "executable": _executable(),
        "output": str(tmp / "out"),
        "sketch": str(REPO / "assets" / "sketches" / "hand_chair.png"),
        "polylines": POLYLINES,
        "view_matrix": view_matrix(45.0).ravel().tolist(),
        "humanoid": str(humanoid),
    }
    # The CLI children import this checkout's shapegen, as the tests do.
    return _child("source", args, {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])})


def _only_mesh(run: dict) -> tuple[str, dict]:
    meshes = [(n, d) for n, d in run["added"].items() if d["type"] == "MESH"]
    assert len(meshes) == 1, run
    return meshes[0]


def test_text_prompt_imports_a_named_shape_at_the_cursor(session):
    run = session["text"]
    assert run["result"] == ["FINISHED"], run
    name, ob = _only_mesh(run)
    assert name == "a round table on a single pedestal" and run["active"] == name
    assert ob["collections"] == ["shapegen"] and ob["materials"] and ob["selected"]
    np.testing.assert_allclose(ob["location"], [1.0, 2.0, 0.5], atol=1e-6)  # the 3D cursor
    assert ob["vertices"] > 100
    assert run["job"]["has_preview_icon"] and Path(run["job"]["preview"]).is_file()
    argv = run["job"]["argv"]
    assert argv[1:4] == ["--progress", "json", "text-to-3d"] and "--method" not in argv  # the shipped msdf model


def test_class_variations_side_by_side(session):
    run = session["class"]
    assert run["result"] == ["FINISHED"], run
    assert sorted(run["added"]) == ["chair 01", "chair 02"]
    xs = sorted(ob["location"][0] for ob in run["added"].values())
    np.testing.assert_allclose(xs, [1.0, 3.5], atol=1e-6)  # cursor, cursor + SPACING along X
    assert all(ob["collections"] == ["shapegen"] and ob["materials"] for ob in run["added"].values())
    assert run["job"]["argv"][3:9] == ["generate", "--method", "msdf", "--class", "chair", "--num"]


def test_sketch_image_to_shape(session):
    run = session["sketch_image"]
    assert run["result"] == ["FINISHED"], run
    name, ob = _only_mesh(run)
    assert name == "hand_chair" and ob["collections"] == ["shapegen"] and ob["materials"]
    argv = run["job"]["argv"]
    assert argv[argv.index("--view") + 1] == "45"
    assert Path(run["job"]["preview"]).name == "sketch_shape.png" and run["job"]["has_preview_icon"]


def test_viewport_strokes_become_the_sketch_and_view(session):
    run = session["sketch_strokes"]
    assert run["result"] == ["FINISHED"], run
    assert abs(run["azimuth"] - 45.0) < 1e-3
    argv = run["job"]["argv"]
    assert argv[argv.index("--view") + 1] == "45"
    _only_mesh(run)
    sketch = Path(argv[argv.index("sketch-to-3d") + 1])
    grey = np.asarray(Image.open(sketch).convert("L"))
    assert grey.shape == (SIZE, SIZE)
    ink, want = grey < 128, expected_ink(POLYLINES, view_matrix(45.0))
    a, b = dilate(ink), dilate(want)
    assert (a & b).sum() / (a | b).sum() > 0.8
    # Every stroke vertex, projected independently, has ink under it; paper stays paper.
    assert ink[dilate(want, 0)].mean() > 0.9 and not ink[~dilate(want, 3)].any()


def test_rig_selected_humanoid(session):
    run = session["rig"]
    assert run["result"] == ["FINISHED"], run
    arms = [d for d in run["added"].values() if d["type"] == "ARMATURE"]
    skinned = [d for d in run["added"].values() if d["type"] == "MESH" and d["parent"] is not None]
    assert len(arms) == 1 and arms[0]["bones"] > 10 and arms[0]["collections"] == ["shapegen"]
    assert skinned and "ARMATURE" in skinned[0]["modifiers"] and skinned[0]["materials"]
    assert [n for n, d in run["added"].items() if d["type"] == "MESH" and d["parent"] is None and "shapegen" in d["collections"]] == []
    assert abs(arms[0]["location"][0]) < 1e-6  # not moved to the cursor: the file holds world coordinates


def test_failures_report_one_line_and_add_nothing(session):
    bad = session["bad_prompt"]
    assert bad["result"] == ["ERROR"] and bad["added"] == {}
    assert "names no class" in bad["error"] and "\n" not in bad["job"]["message"] and bad["job"]["state"] == "failed"
    missing = session["missing_sketch"]
    assert missing["result"] == ["ERROR"] and missing["added"] == {} and "does not exist" in missing["error"]


def test_cancel_ends_the_process(session):
    run = session["cancel"]
    assert run["state_before"] == "running" and run["state"] == "cancelled"
    assert run["returncode"] is not None and not run["pid_alive"]  # reaped: no process, no zombie
    assert run["added"] == []


def test_disabling_leaves_no_timer_handler_or_process(session):
    after = session["after_disable"]
    assert session["timer_registered_before_disable"]  # the cancel above started it
    assert not after["timer"] and after["handlers_after"] == after["handlers_before"]
    assert not after["scene_prop"] and not after["operator"] and after["running"] == [] and after["previews"]


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return package_addon(tmp_path_factory.mktemp("zip") / "shapegen_blender.zip")


def test_zip_installs_with_blenders_extension_installer(package, tmp_path):
    args = {"tmp": str(tmp_path), "zip": str(package), "executable": _executable(), "output": str(tmp_path / "out")}
    res = _child(
        "extension", args, {"BLENDER_USER_RESOURCES": str(tmp_path / "config"), "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    )
    assert res["install"] == ["FINISHED"] and res["enabled"]
    assert "blender_manifest.toml" in res["files"] and "__init__.py" in res["files"]
    assert res["class"]["result"] == ["FINISHED"] and list(res["class"]["added"]) == ["table"]


def test_zip_installs_as_a_legacy_addon(package, tmp_path):
    # Without this checkout on the path: a legacy add-on is a top-level module named shapegen, like
    # the package (in Blender's own Python, which has no shapegen package, the names never meet).
    res = _child("legacy", {"tmp": str(tmp_path), "zip": str(package)}, {"BLENDER_USER_RESOURCES": str(tmp_path / "config"), "PYTHONPATH": None})
    assert res["install"] == ["FINISHED"] and res["operator"]
    assert Path(res["module_file"]) == tmp_path / "config" / "scripts" / "addons" / "shapegen" / "__init__.py"


def test_installed_copy_enables_and_finds_its_executable(tmp_path):
    exe = tmp_path / "bin" / "shapegen"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    (tmp_path / "config").mkdir()
    target = install_addon(tmp_path / "config", executable=str(exe))
    # No shapegen on PATH: the add-on falls back to the executable the installer recorded.
    res = _child("installed", {"tmp": str(tmp_path)}, {"BLENDER_USER_RESOURCES": str(tmp_path / "config"), "PATH": os.defpath})
    assert res["operator"] and Path(res["module_file"]) == target / "__init__.py"
    assert res["found_executable"] == str(exe)


def test_panels_draw_with_the_real_layout_api(session):
    for drawn in (session["panels"], session["panels_strokes"]):
        assert set(drawn) == {"SHAPEGEN_PT_main", "SHAPEGEN_PT_text", "SHAPEGEN_PT_class", "SHAPEGEN_PT_sketch", "SHAPEGEN_PT_rig", "SHAPEGEN_PT_jobs"}
        errors = {k: v for k, v in drawn.items() if isinstance(v, str)}
        assert errors == {}
    ops = [c[1] for c in session["panels"].values() for c in c if c[0] == "operator"]
    assert {"shapegen.text", "shapegen.generate", "shapegen.sketch", "shapegen.rig", "shapegen.clear"} <= set(ops)
    jobs = session["panels"]["SHAPEGEN_PT_jobs"]
    # Every job has ended: previews for the finished ones, the one-line error of the failed ones.
    assert sum(c[0] == "template_icon" for c in jobs) == 5  # text, class, image sketch, strokes sketch, rig
    assert any(c[0] == "label" and any("names no class" in a for a in c) for c in jobs)
    assert not any(c[0] == "progress" for c in jobs)
    sketch = session["panels"]["SHAPEGEN_PT_sketch"]
    assert ["prop", "sketch_path"] in sketch and ["prop", "image_view"] in sketch
