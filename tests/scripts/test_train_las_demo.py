"""``scripts/train_las_demo.py`` end to end on a tiny budget, and the shipped LAS demo model (if present)."""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from shapegen.cli import main as cli

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "assets" / "models" / "las_demo"
pytestmark = pytest.mark.usefixtures("one_thread")


@functools.cache
def _script():
    # One module object, registered under its name: --jobs 2 pickles train_stage by that name.
    spec = importlib.util.spec_from_file_location("train_las_demo", REPO / "scripts" / "train_las_demo.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["train_las_demo"] = mod
    spec.loader.exec_module(mod)
    return mod


TINY = [
    "--extra",
    "0",
    "--jobs",
    "1",
    "--val",
    "1",
    "--guidance",
    "1,2",
    "--per-class",
    "1",
    "--held-out",
    "1",
    "--classes",
    "chair,mug",
    "--res",
    "16",
    "--sketch",
    "32",
    "--mesh-resolution",
    "32",
    "--minutes",
    "0.5",
    "--steps-occupancy",
    "4",
    "--steps-sdf",
    "2",
    "--sdf-batch",
    "2",
    "--no-bench",
    "--config",
    "tiny",
    "--set",
    "sketch_encoder.patch=8",
    "sample.occupancy_steps=3",
    "sample.sdf_steps=2",
    "data.batch_size=2",
]


def test_script_end_to_end_and_resume(tmp_path: Path, capsys) -> None:
    script = _script()
    out, work = tmp_path / "model", tmp_path / "work"
    argv = ["--dilate", "0", *TINY, "--work", str(work), "--out", str(out)]  # shapes as they are (the grown path: below)
    metrics = script.main(argv)
    ckpt = out / script.CKPT_NAME
    card = (out / "MODEL_CARD.md").read_text()
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["headline"] == metrics["headline"]
    res = saved["results"]
    head = saved["headline"]
    assert head["sketch"] == res["sketch (both styles)"]["overall"]["iou16"]
    assert head["baseline_no_sketch"] == res["baseline: model without the sketch"]["overall"]["iou16"]
    assert res["sketch (both styles)"]["overall"]["n"] == 4  # 2 held-out shapes x 2 styles
    assert sorted(res["sketch (both styles)"]["classes"]) == ["chair", "mug"]
    for r in res.values():
        for v in (r["overall"]["iou16"], r["overall"]["iou32"]):
            assert 0.0 <= v <= 1.0
    # The card states the run's own numbers, command, steps and data.
    assert f"**{head['sketch']:.3f}**" in card and f"{head['baseline_no_sketch']:.3f}" in card
    assert "python scripts/train_las_demo.py " + " ".join(argv) in card
    assert f"Stage 1: {saved['train']['occupancy']['steps']} steps" in card
    assert saved["train"]["occupancy"]["steps"] == 4 and saved["train"]["sdf"]["steps"] == 2
    # Weights only: no optimiser state, no second (EMA) copy; loads and samples.
    raw = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert "optimizer_states" not in raw and "las_ema" not in raw
    from shapegen.commands.methods import load_system

    model = load_system("las", ckpt)
    assert model.config.categories == ["chair", "mug"] and model.stage_steps.tolist() == [4, 2]
    # The guidance weight is chosen on the validation split (the shapes after the held-out ones) and kept.
    val = saved["validation"]
    assert sorted(val["iou16_by_guidance"]) == ["1", "2"] and val["shapes"] == 2 and val["sketches"] == 4
    assert val["guidance"] == max((1.0, 2.0), key=lambda w: (round(val["iou16_by_guidance"][f"{w:g}"], 6), -w))
    assert model.config.sample.guidance == val["guidance"] and f"guidance {val['guidance']:g}" in card
    assert sorted(p.name for p in (work / "meshes" / "val" / "mug").iterdir()) == ["mug_00002.ply"]
    examples = sorted((out / "examples").glob("*.png"))
    assert len(examples) == 2
    # Resumable: a second run reuses the meshes, the prepared data and both trained stages.
    capsys.readouterr()
    again = script.main(argv)
    log = capsys.readouterr().out
    assert "meshes ready (0 written" in log and "reusing" in log and "4 prepared" not in log
    assert again["results"] == metrics["results"]
    # A larger budget continues both stages from their checkpoints instead of starting over.
    more = list(argv)
    more[more.index("--steps-occupancy") + 1], more[more.index("--steps-sdf") + 1] = "6", "3"
    capsys.readouterr()
    longer = script.main(more)
    log = capsys.readouterr().out
    assert "continuing stage_occupancy.ckpt after 4 steps" in log and "continuing stage_sdf.ckpt after 2 steps" in log
    assert longer["train"]["occupancy"]["steps"] == 6 and longer["train"]["sdf"]["steps"] == 3
    assert load_system("las", ckpt).stage_steps.tolist() == [6, 3]
    assert longer["train"]["occupancy"]["continued"][0]["steps"] == 4
    assert "a shorter budget stopped stage 1 after 4 steps" in (out / "MODEL_CARD.md").read_text()


def test_more_training_shapes_continue_both_stages_in_two_processes(tmp_path: Path) -> None:
    script = _script()
    out, work = tmp_path / "model", tmp_path / "work"
    tiny = list(TINY)
    tiny[tiny.index("--classes") + 1] = "mug,lamp"  # chair 3 is too thin for this tiny grid
    base = ["--dilate", "0", *tiny, "--val", "0", "--work", str(work), "--out", str(out)]
    first = script.main(base)
    assert first["data"]["train_shapes"] == 2
    # --extra 1 adds shape 1 + 1 + 0 = 2 of each class; both stages continue, here in two processes at once.
    wider = [*base, "--extra", "1", "--jobs", "2"]
    wider[wider.index("--steps-occupancy") + 1], wider[wider.index("--steps-sdf") + 1] = "6", "3"
    grown = script.main(wider)
    assert sorted(p.name for p in (work / "meshes" / "train" / "mug").iterdir()) == ["mug_00000.ply", "mug_00002.ply"]
    assert grown["data"]["train_shapes"] == 4 and grown["data"]["extra"] == 1
    for stage, (before, now) in {"occupancy": (4, 6), "sdf": (2, 3)}.items():
        rec = grown["train"][stage]
        assert rec["steps"] == now and rec["continued"] == [rec["continued"][0] | {"steps": before, "extra": 0}]
    from shapegen.commands.methods import load_system

    assert load_system("las", out / script.CKPT_NAME).stage_steps.tolist() == [6, 3]
    card = (out / "MODEL_CARD.md").read_text()
    assert "shapes 0..0 and 2..2\n  of each class (4 shapes)" in card and "fewer training shapes" in card
    assert "two processes (`--jobs 2`)" in card


def test_stage_continuation_rule() -> None:
    """Which finished stage a new run trains on (see ``extends``)."""
    ext = _script().extends
    key = {"per_class": 60, "config": "demo", "budget_s": 600.0, "steps": 0}
    rec = {"key": key | {"budget_s": 300.0}, "seconds": 300.2, "steps": 900}
    assert ext(rec, key) == {"seconds": 300.2, "steps": 900}  # stopped by time, more time now
    assert ext({**rec, "key": key}, key) is None  # the same key: reused as it is
    assert ext(rec, key | {"budget_s": 300.0}) is None  # no more time than already spent
    assert ext(rec, key | {"steps": 900}) is None  # the new cap is already reached
    assert ext(rec, key | {"steps": 1000}) == {"seconds": 300.2, "steps": 900}
    assert ext(rec, key | {"per_class": 30}) is None  # other data: trained from scratch
    # A training set that holds the old one (more --extra shapes) continues; a smaller or shifted one does not.
    assert ext(rec, key | {"extra": 140, "val": 10}) == {"seconds": 300.2, "steps": 900}
    wide = {**rec, "key": rec["key"] | {"extra": 140, "val": 10}}
    assert ext(wide, key | {"extra": 200, "val": 10}) == {"seconds": 300.2, "steps": 900}
    assert ext(wide, key | {"extra": 100, "val": 10}) is None
    assert ext(wide, key | {"extra": 140, "val": 5}) is None
    assert ext(wide, key) is None
    assert ext(None, key) is None


def test_split_indices_keep_held_out_and_validation_shapes_fixed() -> None:
    split = _script().split_indices
    plain = split(_script().parse_args(["--per-class", "60", "--held-out", "10", "--val", "10", "--extra", "0"]))
    wide = split(_script().parse_args(["--per-class", "60", "--held-out", "10", "--val", "10", "--extra", "3"]))
    assert plain["held_out"] == wide["held_out"] == list(range(60, 70)) and plain["val"] == wide["val"] == list(range(70, 80))
    assert plain["train"] == list(range(60)) and wide["train"] == [*range(60), 80, 81, 82]


@pytest.mark.parametrize("bad", [["--guidance", "abc"], ["--guidance", ""], ["--guidance", "1,nan"], ["--val", "-1"], ["--extra", "-2"], ["--jobs", "3"]])
def test_bad_arguments_are_one_line_errors(bad, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        _script().parse_args(bad)
    assert exc.value.code == 2 and "error: --" in capsys.readouterr().err.strip().splitlines()[-1]


needs_demo = pytest.mark.skipif(not (DEMO / "las_demo.ckpt").is_file(), reason="no shipped LAS demo model in this checkout")


@needs_demo
def test_shipped_demo_model_card_and_sketch_to_3d(tmp_path: Path, capsys) -> None:
    from shapegen.geometry.mesh_io import load_mesh

    ckpt = DEMO / "las_demo.ckpt"
    metrics = json.loads((DEMO / "metrics.json").read_text())
    card = (DEMO / "MODEL_CARD.md").read_text()
    assert f"**{metrics['headline']['sketch']:.3f}**" in card and metrics["command"] in card
    raw = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert "optimizer_states" not in raw and "las_ema" not in raw
    total = sum(p.stat().st_size for p in (REPO / "assets" / "models").rglob("*") if p.is_file())
    assert total <= 30e6, f"assets/models holds {total / 1e6:.1f} MB (limit 30)"
    # One held-out sketch (never trained on) through the command line.
    sketch = min((DEMO / "examples").glob("*.png"))
    rec = next(e for e in metrics["examples"] if Path(e["file"]).name == sketch.name)
    out = tmp_path / "s.glb"
    assert cli(["sketch-to-3d", str(sketch), "--checkpoint", str(ckpt), "--view", str(rec["azimuth"]), "--category", rec["category"], "-o", str(out)]) == 0, (
        capsys.readouterr().err
    )
    mesh = load_mesh(out)
    assert mesh.num_faces > 50
    lo, hi = mesh.bounds()
    assert float((hi - lo).max()) > 0.5, "a speck, not an object"
    assert (tmp_path / "s.png").is_file()


def test_grown_shapes_are_also_scored_against_the_true_shapes(tmp_path: Path) -> None:
    script = _script()
    out = tmp_path / "model"
    metrics = script.main([*TINY[:-8], "--dilate", "0.05", "--work", str(tmp_path / "work"), "--out", str(out), *TINY[-8:]])
    assert metrics["results_true_shapes"] is not None and metrics["headline"]["against"] == "true shapes"
    true_iou = metrics["results_true_shapes"]["sketch (both styles)"]["overall"]["iou16"]
    assert metrics["headline"]["sketch"] == true_iou
    assert (tmp_path / "work" / "las_true" / "held_out" / "index.json").is_file()
    card = (out / "MODEL_CARD.md").read_text()
    assert "Against the true shapes (the headline)" in card and f"**{true_iou:.3f}**" in card and "grown by 0.05" in card
