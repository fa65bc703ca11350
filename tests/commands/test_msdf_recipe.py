"""The Mosaic-SDF demo recipe (assets/models/msdf_demo/MODEL_CARD.md) end to end at tiny sizes:
``data procedural --config msdf_demo`` -> ``train --config demo`` -> ``generate`` per class ->
``eval-generation --by-class`` -> ``export-model``, with the shipped presets and small overrides."""

from __future__ import annotations

import csv
import json

import torch

from shapegen.checkpoints import load_checkpoint
from shapegen.cli import main
from shapegen.commands.methods import load_system
from shapegen.config import load_config, resolve_preset

CLASSES = ("chair", "mug")


def _sets(*pairs: str) -> list[str]:
    return [a for kv in pairs for a in ("--set", kv)]


def _run(capsys, *argv: str) -> str:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    return out.out


def test_the_recipe_presets_are_the_card_settings():
    from shapegen.commands.data import DataConfig
    from shapegen.methods.msdf import MSDFConfig

    data = load_config(DataConfig, resolve_preset("msdf_demo", "data")).procedural
    assert data.msdf and (data.msdf_n, data.msdf_k, data.msdf_dilate) == (96, 5, 0.05)
    assert data.classes == ["chair", "table", "shelf", "lamp", "mug"] and data.per_class == 70
    train = load_config(MSDFConfig, resolve_preset("demo", "msdf"))
    assert train.data.split == "train" and train.train.max_steps == 5000 and train.sample.use_ema


def test_recipe_end_to_end_tiny(capsys, tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    _run(capsys, "data", "procedural", "-o", data, "--config", "msdf_demo", "--classes", ",".join(CLASSES), "--per-class", "4",
         "--resolution", "24", *_sets("procedural.split=train=0.5,test=0.5", "procedural.msdf_n=16", "procedural.msdf_k=3",
                                      "procedural.msdf_samples=400", "procedural.workers=1"))
    rows = list(csv.DictReader(open(data / "index.csv")))
    held_out = {r["path"].removesuffix(".ply") for r in rows if r["split"] == "test"}
    assert held_out and all(r["split"] in ("train", "test") for r in rows)

    _run(capsys, "train", "--method", "msdf", "--config", "demo", "-o", run,
         *_sets(f"data.root={data}", "model.width=32", "model.depth=1", "model.heads=2", "model.time_frequencies=16", "value_components=4",
                "train.max_steps=3", "train.checkpoint_every=2", "train.log_every=1", "train.preview_every=-1"))
    last = run / "checkpoints" / "last.ckpt"
    ckpt = load_checkpoint(last)
    assert ckpt["global_step"] == 3 and ckpt["hyper_parameters"]["classes"] == sorted(CLASSES)
    # Trained on the train split only: the held-out shapes never entered the data set.
    from shapegen.data.msdf_dataset import MSDFDataConfig, load_msdf_folder

    seen, _, _ = load_msdf_folder(MSDFDataConfig(**{**ckpt["hyper_parameters"]["data"]}))
    keys = {p.relative_to(data).as_posix().removesuffix(".msdf.npz") for p in seen.paths}
    assert keys and not keys & held_out and all(k.startswith("train/") for k in keys)

    samples = run / "samples"
    for cls in CLASSES:  # the generate loop of the card, straight from the training checkpoint (EMA weights)
        _run(capsys, "generate", "--method", "msdf", "--checkpoint", last, "--class", cls, "--num", "2", "--steps", "2",
             "--resolution", "24", "-o", samples / cls)
    assert len(list(samples.glob("*/sample_*.msdf.npz"))) == 4

    out = _run(capsys, "eval-generation", samples, data / "test", "--by-class", "--baseline", data / "train",
               *_sets("num_points=32", "prefer=mesh", "resolution=24", "baseline_limit=1"), "--json")
    report = json.loads(out)
    assert set(report["classes"]) == set(CLASSES) and 0.0 <= report["fidelity"] <= 1.0
    for row in report["classes"].values():
        assert row["num_generated"] == 2 and row["num_baseline"] == 1 and row["num_reference"] >= 1

    slim = tmp_path / "model" / "msdf_demo.ckpt"
    text = _run(capsys, "export-model", "--method", "msdf", last, "-o", slim)
    assert "EMA weights after 3 steps" in text
    assert slim.stat().st_size < last.stat().st_size / 2
    small, full = load_system("msdf", slim), load_system("msdf", last)
    assert small.ema is None and small.config.train.ema_decay == 0.0 and "optimizer_states" not in load_checkpoint(slim)
    # The exported model samples exactly what the training checkpoint samples (with its EMA weights).
    torch.testing.assert_close(small.sample(2, cls="mug", steps=2, seed=5), full.sample(2, cls="mug", steps=2, seed=5),
                               rtol=0, atol=0)
    assert not torch.equal(full.sample(1, cls="mug", steps=2, use_ema=False), full.sample(1, cls="mug", steps=2))


def test_export_model_errors_are_one_line(capsys, tmp_path):
    assert main(["export-model", "--method", "msdf", str(tmp_path / "missing.ckpt"), "-o", str(tmp_path / "x.ckpt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found" in err and not (tmp_path / "x.ckpt").exists()
    assert main(["export-model", "--method", "occsdf", str(tmp_path / "missing.ckpt"), "-o", str(tmp_path / "x.ckpt")]) == 2
    assert "cannot export" in capsys.readouterr().err
