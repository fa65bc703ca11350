# ruff: noqa: F811  (pytest fixtures imported from _las_fixtures are redefined as arguments)
"""The LAS demo recipe as commands (procedural data -> las prepare -> two stages -> las eval), the
evaluation's numbers on cases with a known answer, sketch_to_3d() from Python, and the shipped card."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from _las_fixtures import las_data, las_trained  # noqa: F401

from shapegen.cli import main
from shapegen.errors import ShapegenError
from shapegen.methods.las import LASDiffusion, LASSample

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


# ---------------------------------------------------------------------------- known answers
class _Oracle(LASDiffusion):
    """The real model whose sampler returns a fixed answer: the true SDF of the category's one
    shape (``truth``), or nothing at all (``truth`` empty)."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.truth: dict[str, torch.Tensor] = {}

    def sample(self, num=1, *, category=None, **kwargs) -> LASSample:
        g = self.config.resolution
        sdf = self.truth[category] / self.tau if self.truth else torch.ones(g, g, g)
        return LASSample(torch.zeros(num, g // 2, g // 2, g // 2, dtype=torch.bool), sdf[None].expand(num, -1, -1, -1), [])


def test_eval_scores_a_perfect_and_an_empty_answer(las_trained, las_data) -> None:
    from shapegen.methods.las_eval import evaluate, load_volumes

    model, _ = las_trained
    oracle = _Oracle(copy.deepcopy(model.config))
    vols = load_volumes(las_data)  # one shape per category: chair, table
    oracle.truth = {cat: sdf for cat, sdf in vols.values()}
    perfect = evaluate(oracle, las_data, train_dir=las_data)
    for row in perfect.results.values():
        assert row["overall"]["iou16"] == 1.0 and row["overall"]["iou32"] == 1.0
    assert perfect.results["sketch (both styles)"]["overall"]["n"] == 4  # 2 shapes x 2 styles from one view
    assert perfect.shapes == 2 and perfect.train_shapes == 2
    oracle.truth = {}
    empty = evaluate(oracle, las_data, train_dir=las_data)
    for row in ("sketch (contour)", "sketch (canny)", "sketch (both styles)", "baseline: model without the sketch"):
        assert empty.results[row]["overall"]["iou16"] == 0.0 and empty.results[row]["overall"]["iou32"] == 0.0
    # The training shapes are the evaluated ones: the nearest training shape is the shape itself.
    assert empty.results["oracle: nearest training shape (looks at the truth)"]["overall"]["iou16"] == 1.0


def test_guidance_choice_keeps_the_smallest_weight_on_a_tie(las_trained, las_data) -> None:
    from shapegen.methods.las_eval import choose_guidance, load_volumes

    model, _ = las_trained
    oracle = _Oracle(copy.deepcopy(model.config))
    oracle.truth = {cat: sdf for cat, sdf in load_volumes(las_data).values()}
    choice = choose_guidance(oracle, las_data, [3.0, 1.0, 2.0])  # the oracle ignores guidance: all tie at 1.0
    assert choice["guidance"] == 1.0 and choice["iou16_by_guidance"] == {"3": 1.0, "1": 1.0, "2": 1.0}


def test_eval_refuses_data_of_another_resolution(las_trained, las_data) -> None:
    from shapegen.methods.las_eval import evaluate

    model, _ = las_trained
    other = _Oracle(copy.deepcopy(model.config))
    other.config.resolution = 32
    with pytest.raises(ShapegenError, match="prepared at 16\\^3 but the model samples 32\\^3"):
        evaluate(other, las_data)


# ---------------------------------------------------------------------------- sketch_to_3d
def test_sketch_to_3d_from_python(las_trained, las_data) -> None:
    from shapegen.data.sketches import load_sketch
    from shapegen.methods.las import sketch_to_3d

    model, ckpt = las_trained
    path = las_data / "sketches" / "chair__c1_contour_1.png"
    by_model = sketch_to_3d(path, category="chair", view=45.0, model=model)
    direct = model.sample(1, category="chair", sketch=load_sketch(path, 32), azimuth=45.0, seed=0).meshes[0]
    assert by_model.mesh.num_faces > 0 and torch.equal(by_model.mesh.vertices, direct.vertices)
    by_file = sketch_to_3d(path, category="chair", view=45.0, checkpoint=ckpt)
    assert torch.equal(by_file.mesh.vertices, direct.vertices) and by_file.sketch.shape == (32, 32)
    by_tensor = sketch_to_3d(load_sketch(path, 32), category="chair", view=45.0, model=model)
    assert torch.equal(by_tensor.mesh.vertices, direct.vertices)
    with pytest.raises(ShapegenError, match="unknown category 'lamp'"):
        sketch_to_3d(path, category="lamp", view=45.0, model=model)
    with pytest.raises(ShapegenError, match="finite azimuth"):
        sketch_to_3d(path, category="chair", view=float("nan"), model=model)


needs_demo = pytest.mark.skipif(not (DEMO / "las_demo.ckpt").is_file(), reason="no shipped LAS demo model in this checkout")


@needs_demo
def test_sketch_to_3d_defaults_to_the_shipped_model(tmp_path: Path, capsys) -> None:
    from shapegen.methods import METHODS
    from shapegen.methods.base import default_checkpoint
    from shapegen.methods.las import sketch_to_3d

    assert default_checkpoint(METHODS["las"]) == DEMO / "las_demo.ckpt"
    sketch = DEMO / "examples" / "mug__mug_00060_contour_0.png"
    result = sketch_to_3d(sketch, category="mug", view=0.0)
    assert result.model.config.categories == ["chair", "lamp", "mug", "shelf", "table"]
    assert result.mesh.num_faces > 50
    # The command without --checkpoint: the same shape.
    out = tmp_path / "mug.glb"
    _cli(capsys, "sketch-to-3d", sketch, "--view", "0", "--category", "mug", "-o", out)
    from shapegen.geometry.mesh_io import load_mesh

    assert load_mesh(out).num_faces == result.mesh.num_faces and (tmp_path / "mug.png").is_file()


# ---------------------------------------------------------------------------- the shipped card
@needs_demo
def test_shipped_card_states_the_recipe_and_its_steps() -> None:
    from shapegen.config import CONFIG_ROOT, load_config
    from shapegen.methods.las import LASConfig

    card = (DEMO / "MODEL_CARD.md").read_text()
    metrics = json.loads((DEMO / "metrics.json").read_text())
    demo = load_config(LASConfig, CONFIG_ROOT / "las" / "demo.yaml")
    # The preset's stage steps are the ones the shipped model had.
    assert demo.train.occupancy.max_steps == metrics["train"]["occupancy"]["steps"]
    assert demo.train.sdf.max_steps == metrics["train"]["sdf"]["steps"]
    assert demo.train.sdf.batch_size == metrics["train"]["sdf"]["batch_size"] and demo.train.sdf.lr == metrics["train"]["sdf"]["lr"]
    assert demo.sample.guidance == metrics["validation"]["guidance"]
    for command in ("shapegen data procedural -o data/las_demo/meshes --config las_demo",
                    "shapegen las prepare data/las_demo/meshes/train -o data/las_demo/train --config demo",
                    "shapegen train --method las --config demo --stage occupancy",
                    "shapegen train --method las --config demo --stage sdf",
                    "shapegen las eval data/las_demo/true/held_out"):
        assert command in card, command
    assert f"**{metrics['headline']['sketch']:.3f}**" in card and "scripts/train_las_demo.py" not in card
    raw = torch.load(DEMO / "las_demo.ckpt", map_location="cpu", weights_only=False)
    assert "optimizer_states" not in raw and "las_ema" not in raw


@needs_demo
def test_recipe_data_and_eval_reproduce_the_shipped_numbers(tmp_path: Path, capsys, monkeypatch) -> None:
    """Steps 1, 2 and 5 of the card for one held-out shape: the shipped model scores exactly what
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
