"""``shapegen quickstart``'s sketch part: shipped sketches through a LAS model into GLBs and the preview sheet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _las_fixtures import las_data, las_trained  # noqa: F401
from PIL import Image

from shapegen.cli import main
from shapegen.commands.quickstart import DEMO_MODEL, SKETCHES, QuickstartConfig, read_sketch_manifest, run_quickstart
from shapegen.errors import ShapegenError

needs_model = pytest.mark.skipif(not DEMO_MODEL.is_file(), reason=f"demo model {DEMO_MODEL} is not in this checkout")


def test_shipped_manifest_lists_hand_drawn_sketches_that_exist():
    entries = read_sketch_manifest(SKETCHES)
    assert entries and all(e["file"].is_file() and e["category"] for e in entries)
    hand = [e for e in entries if "by hand" in e["source"]]
    assert hand, "at least one sketch must be drawn by hand"
    for e in hand:
        assert e["file"].with_suffix(".svg").is_file(), "hand sketches keep their stroke source"
        grey = np.asarray(Image.open(e["file"]).convert("L"))
        assert 0.01 < (grey < 128).mean() < 0.3  # dark strokes on white paper


@needs_model
def test_quickstart_turns_each_sketch_into_a_mesh_and_a_preview_row(las_trained, tmp_path):  # noqa: F811
    _, ckpt = las_trained  # a tiny model with the categories chair and table: the shipped chair and table sketches
    entries = [{**e, "file": str(e["file"])} for e in read_sketch_manifest(SKETCHES) if e["category"] in ("chair", "table")]
    manifest = tmp_path / "sketches.json"
    manifest.write_text(json.dumps({"sketches": entries}))
    cfg = QuickstartConfig(resolution=32, preview_size=64, prompts=[])  # the text row: tests/commands/test_quickstart_cli.py
    result = run_quickstart(tmp_path / "qs", cfg, las_model_path=ckpt, sketches=manifest)
    stems = {Path(e["file"]).stem for e in entries}
    assert {"hand_chair", "hand_table"} <= stems
    assert set(result.sketch_meshes) | {e.removeprefix("sketch_") for e in result.empty if e.startswith("sketch_")} == stems
    assert all(p.is_file() and p.name.startswith("sketch_") for p in result.sketch_meshes.values())
    sheet = np.asarray(Image.open(result.preview))
    assert sheet.shape[0] == 3 * 64  # generated shapes, sketches, sketch results


@needs_model
def test_quickstart_checks_sketch_inputs_before_writing(las_trained, tmp_path, capsys):  # noqa: F811
    _, ckpt = las_trained
    out = tmp_path / "out"
    assert main(["quickstart", "-o", str(out), "--las-model", str(tmp_path / "none.ckpt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: LAS demo model") and "sketches=false" in err and "\n" not in err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"sketches": [{"file": str(SKETCHES.parent / "hand_chair.png"), "category": "sofa", "view": 45}]}))
    assert main(["quickstart", "-o", str(out), "--las-model", str(ckpt), "--sketches", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "sofa" in err and "\n" not in err
    assert not out.exists()
    with pytest.raises(ShapegenError, match="malformed"):
        bad.write_text("{}")
        read_sketch_manifest(bad)
