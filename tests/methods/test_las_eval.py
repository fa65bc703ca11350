# ruff: noqa: F811  (pytest fixtures imported from _las_fixtures are redefined as arguments)
"""LAS evaluation (shapegen.methods.las_eval) on cases with a known answer, sketch_to_3d() from Python,
and the shipped model's card against its preset."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from _las_fixtures import las_data, las_trained  # noqa: F401

from shapegen.errors import ShapegenError
from shapegen.methods.las import LASDiffusion, LASSample

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "assets" / "models" / "las_demo"
needs_demo = pytest.mark.skipif(not (DEMO / "las_demo.ckpt").is_file(), reason="no shipped LAS demo model in this checkout")


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


@needs_demo
def test_sketch_to_3d_defaults_to_the_shipped_model() -> None:
    from shapegen.methods import METHODS
    from shapegen.methods.base import default_checkpoint
    from shapegen.methods.las import sketch_to_3d

    assert default_checkpoint(METHODS["las"]) == DEMO / "las_demo.ckpt"
    result = sketch_to_3d(DEMO / "examples" / "mug__mug_00060_contour_0.png", category="mug", view=0.0)
    assert result.model.config.categories == ["chair", "lamp", "mug", "shelf", "table"]
    assert result.mesh.num_faces > 50


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
    # Then the two stage-1 fine-tunes: each config's steps are the ones the shipped model had.
    for step in metrics["finetune"]:
        tune = load_config(LASConfig, CONFIG_ROOT / "las" / f"{step['config']}.yaml")
        assert step["stage"] == "occupancy" and tune.train.occupancy.max_steps == step["steps"]
        assert tune.train.occupancy.lr == step["lr"] and tune.train.occupancy.batch_size == step["batch_size"]
        assert f"--config {step['config']} --stage occupancy" in card
    assert [s["config"] for s in metrics["finetune"]] == ["rich_finetune", "rich_mix"]
    assert load_config(LASConfig, CONFIG_ROOT / "las" / "rich_mix.yaml").data.extra_roots == ["data/las_demo/train_rich"]
    for command in ("shapegen data procedural -o data/las_demo/meshes --config las_demo",
                    "shapegen las prepare data/las_demo/meshes/train -o data/las_demo/train --config demo",
                    "shapegen train --method las --config demo --stage occupancy",
                    "shapegen train --method las --config demo --stage sdf",
                    "shapegen las prepare data/las_rich/meshes/train -o data/las_rich/train --config rich",
                    "shapegen las prepare data/las_demo/meshes/train -o data/las_demo/train_rich --config rich",
                    "shapegen las eval data/las_demo/true/held_out"):
        assert command in card, command
    assert f"**{metrics['headline']['sketch']:.3f}**" in card and "scripts/train_las_demo.py" not in card
    raw = torch.load(DEMO / "las_demo.ckpt", map_location="cpu", weights_only=False)
    assert "optimizer_states" not in raw and "las_ema" not in raw
