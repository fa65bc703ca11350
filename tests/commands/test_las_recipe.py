"""The LAS demo recipe (assets/models/las_demo/MODEL_CARD.md) through the command line at a tiny size:
``data procedural --config las_demo`` -> ``las prepare --config demo`` -> ``train --config demo --stage
occupancy`` then ``--stage sdf`` -> ``las eval``; misuse of ``las``; the recipe's data and ``las eval``
against the shipped model's recorded numbers; ``sketch-to-3d`` without ``--checkpoint``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from shapegen.cli import main
from shapegen.methods.las import LASDiffusion

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "assets" / "models" / "las_demo"


def _cli(capsys, *argv: str) -> str:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


# ---------------------------------------------------------------------------- the recipe, tiny
def test_recipe_end_to_end_through_the_cli(tmp_path: Path, capsys, monkeypatch) -> None:
    """The card's commands with the demo presets, at a tiny size: two classes, one training, one
    held-out and one validation shape each, 16^3 (where these true chairs and mugs still
    enclose voxels; a true table does not), a few steps per stage."""
    monkeypatch.chdir(tmp_path)
    small = ["--per-class", "3", "--split", "train=0-0,held_out=1-1,val=2-2", "--classes", "chair,mug", "--resolution", "32",
             "--workers", "1"]
    _cli(capsys, "data", "procedural", "-o", "meshes", "--config", "las_demo", *small)
    _cli(capsys, "data", "procedural", "-o", "meshes_true", "--config", "las_demo", *small, "--set", "procedural.dilate=0")
    assert sorted(p.name for p in (tmp_path / "meshes" / "held_out" / "mug").iterdir()) == ["mug_00001.ply"]
    tiny_prep = ["--set", "resolution=16", "--set", "sketch_size=32"]
    _cli(capsys, "las", "prepare", "meshes/train", "-o", "las/train", "--config", "demo", *tiny_prep)
    for split in ("train", "held_out", "val"):
        _cli(capsys, "las", "prepare", f"meshes_true/{split}", "-o", f"las/true/{split}", "--config", "demo", *tiny_prep)
    # The grown shapes (level set sdf = 0.06) hold more voxels than the true ones.
    grown, true = (json.loads((tmp_path / d / "index.json").read_text()) for d in ("las/train", "las/true/train"))
    assert grown["settings"]["sketch_size"] == 32 and set(grown["shapes"]) == set(true["shapes"])
    import numpy as np

    def inside(folder: str) -> int:
        return sum(int((np.load(tmp_path / folder / "shapes" / f"{n}.npz")["sdf"] < 0).sum()) for n in grown["shapes"])

    assert inside("las/train") > 1.2 * inside("las/true/train")

    tiny = ["--set", "data.root=las/train", "--set", "sketch_encoder.image_size=32", "--set", "sample.occupancy_steps=2",
            "--set", "sample.sdf_steps=2", "--set", "data.repeat=2", "--accelerator", "cpu"]
    _cli(capsys, "train", "--method", "las", "--config", "demo", "--stage", "occupancy", "-o", "run", *tiny,
         "--set", "train.occupancy.max_steps=2", "--set", "train.occupancy.batch_size=2")
    out = _cli(capsys, "train", "--method", "las", "--config", "demo", "--stage", "sdf", "-o", "run", *tiny,
               "--set", "train.sdf.max_steps=3", "--set", "train.sdf.batch_size=2")
    assert "trained with another stage" in out  # stage 1's weights are loaded, not resumed
    from shapegen.config import load_config
    from shapegen.methods.las import LASConfig

    saved = load_config(LASConfig, tmp_path / "run" / "config.yaml")
    # The stage's own settings became the run's: its steps, its learning rate (demo: 2e-3 for stage 2), its batch.
    assert (saved.train.stage, saved.train.max_steps, saved.train.lr, saved.data.batch_size) == ("sdf", 3, 2e-3, 2)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    from shapegen.checkpoints import load_module

    assert load_module(LASDiffusion, ckpt).stage_steps.tolist() == [2, 3]

    report = json.loads(_cli(capsys, "las", "eval", "las/true/held_out", "--checkpoint", ckpt, "--train-data", "las/true/train",
                             "--guidance", "1,2", "--val", "las/true/val", "--scale", "--export", "model.ckpt", "--json"))
    res = report["results"]
    assert set(res) == {"sketch (contour)", "sketch (canny)", "sketch (both styles)", "baseline: model without the sketch",
                        "baseline: most typical training shape of the class", "oracle: nearest training shape (looks at the truth)",
                        "scale: the true shape moved by a quarter voxel", "scale: the true shape moved by half a voxel"}
    assert res["sketch (both styles)"]["overall"]["n"] == 4 and res["baseline: model without the sketch"]["overall"]["n"] == 2
    assert sorted(res["sketch (both styles)"]["classes"]) == ["chair", "mug"]
    assert report["headline"] == res["sketch (both styles)"]["overall"]["iou16"]
    for row in res.values():
        for cat in [*row["classes"].values(), row["overall"]]:
            assert 0.0 <= cat["iou16"] <= 1.0 and 0.0 <= cat["iou32"] <= 1.0
    # One training shape per class: the typical shape and the nearest one are the same shape.
    assert res["baseline: most typical training shape of the class"]["overall"] == res["oracle: nearest training shape (looks at the truth)"]["overall"]
    val = report["validation"]
    assert sorted(val["iou16_by_guidance"]) == ["1", "2"] and val["shapes"] == 2 and val["sketches"] == 4
    assert report["guidance"] == val["guidance"] == max((1.0, 2.0), key=lambda w: (round(val["iou16_by_guidance"][f"{w:g}"], 6), -w))
    assert [e["shape"] for e in report["examples"]] == ["chair__chair_00001"] * 2 + ["mug__mug_00001"] * 2
    assert all(e["azimuth"] == 45.0 for e in report["examples"])  # view 1 % 5 of shape 1
    # The exported model: the shipped form, the chosen guidance kept.
    raw = torch.load(tmp_path / "model.ckpt", map_location="cpu", weights_only=False)
    assert "optimizer_states" not in raw and "las_ema" not in raw
    exported = load_module(LASDiffusion, tmp_path / "model.ckpt")
    assert exported.config.sample.guidance == val["guidance"] and exported.config.train.stage == "both"
    # The table form names the headline and both metrics.
    text = _cli(capsys, "las", "eval", "las/true/held_out", "--checkpoint", "model.ckpt")
    assert f"guidance {val['guidance']:g}" in text and "| sketch (both styles) |" in text and "iou32" in text


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["las", "eval", "D", "-o", "x"], "'las eval' takes no --output"),
        (["las", "eval", "D", "--set", "resolution=16"], "'las eval' takes no --config/--set"),
        (["las", "prepare", "M", "-o", "x", "--checkpoint", "c.ckpt"], "'las prepare' takes no --checkpoint"),
        (["las", "prepare", "M"], "needs a data folder"),
        (["las", "eval", "D", "--guidance", "1,2"], "add --val DIR"),
        (["las", "eval", "D", "--guidance", "x"], "--guidance 'x'"),
        (["las", "eval", "D", "--export", "m.pt"], "ending in .ckpt"),
    ],
)
def test_las_command_misuse_is_one_line(argv, needle, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and needle in err and len(err.splitlines()) == 1


needs_demo = pytest.mark.skipif(not (DEMO / "las_demo.ckpt").is_file(), reason="no shipped LAS demo model in this checkout")


@needs_demo
def test_recipe_data_and_eval_reproduce_the_shipped_numbers(tmp_path: Path, capsys, monkeypatch) -> None:
    """Steps 1, 2 and 8 of the card for one held-out shape: the shipped model scores exactly what
    its metrics.json recorded for that shape's sketches (sampling is seeded; the data is the same)."""
    monkeypatch.chdir(tmp_path)
    _cli(capsys, "data", "procedural", "-o", "meshes", "--config", "las_demo", "--classes", "mug", "--per-class", "61",
         "--split", "held_out=60-60", "--workers", "1")
    _cli(capsys, "las", "prepare", "meshes/held_out", "-o", "held_out", "--config", "demo")
    report = json.loads(_cli(capsys, "las", "eval", "held_out", "--json"))  # the shipped model by default
    recorded = {(e["shape"], e["style"]): e for e in json.loads((DEMO / "metrics.json").read_text())["examples"]}
    assert len(report["examples"]) == 2
    for e in report["examples"]:
        want = recorded[(e["shape"], e["style"])]
        assert e["azimuth"] == want["azimuth"] and e["iou16"] == pytest.approx(want["iou16"], abs=1e-9), e
        assert e["iou32"] == pytest.approx(want["iou32"], abs=1e-9)


@needs_demo
def test_sketch_to_3d_command_defaults_to_the_shipped_model(tmp_path: Path, capsys) -> None:
    from shapegen.geometry.mesh_io import load_mesh
    from shapegen.methods.las import sketch_to_3d

    sketch = DEMO / "examples" / "mug__mug_00060_contour_0.png"
    out = tmp_path / "mug.glb"
    _cli(capsys, "sketch-to-3d", sketch, "--view", "0", "--category", "mug", "-o", out)
    assert load_mesh(out).num_faces == sketch_to_3d(sketch, category="mug", view=0.0).mesh.num_faces
    assert (tmp_path / "mug.png").is_file()
