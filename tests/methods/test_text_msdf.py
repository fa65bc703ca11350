"""``text_to_shape`` and ``shapegen text-to-3d --method msdf`` with a tiny text model trained in the test."""

from __future__ import annotations

import argparse

import pytest
from _msdf_fixtures import write_class_folder

from shapegen.cli import main
from shapegen.errors import ShapegenError
from shapegen.geometry.mesh_io import inspect_mesh, load_mesh
from shapegen.methods import METHODS
from shapegen.methods.text_msdf import TextToShapeConfig, read_prompt, text_to_shape

SMALL = TextToShapeConfig(resolution=16, turntable_frames=2, turntable_size=32, preview_size=32, device="cpu")
SMALL_SET = ["--set", "resolution=16", "--set", "turntable_frames=2", "--set", "turntable_size=32", "--set", "preview_size=32",
             "--set", "device=cpu"]


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    """A tiny text-conditioned M-SDF model: spheres captioned as bowls, slabs as tables (a few steps)."""
    from shapegen.methods.training import train

    root = write_class_folder(tmp_path_factory.mktemp("data"), per_class=2)
    rows = ["path,caption"]
    for i in range(2):
        rows += [f"sphere/s{i},bowl", f"sphere/s{i},a deep round bowl"]
        rows += [f"slab/b{i},table", f"slab/b{i},\"table, square top\""]
    (root / "captions.csv").write_text("\n".join(rows) + "\n")
    run = tmp_path_factory.mktemp("run")
    overrides = [f"data.root={root}", "conditioning=text", "text_encoder=words", "data.labels=captions",
                 "data.captions=captions.csv", "train.max_steps=4", "train.checkpoint_every=4", "train.preview_every=-1"]
    return train(METHODS["msdf"], "tiny", overrides, run, progress=False)


def test_vocabulary_is_recorded_from_the_captions(text_model):
    from shapegen.checkpoints import load_module
    from shapegen.methods.msdf import MSDFGenerator

    model = load_module(MSDFGenerator, text_model)
    assert model.config.vocabulary == ["a", "bowl", "deep", "round", "square", "table", "top"]


def test_text_to_shape_writes_glb_preview_and_turntable(text_model, tmp_path):
    warnings: list[str] = []
    result = text_to_shape("a deep bowl", tmp_path / "out", num=2, seed=3, checkpoint=text_model, config=SMALL, warn=warnings.append)
    assert not warnings and result.words.classes == ["bowl"]
    assert [p.name for p in result.msdf_files] == ["shape_00.msdf.npz", "shape_01.msdf.npz"]
    assert len(result.meshes) + len(result.empty) == 2 and result.meshes
    for path in result.meshes:
        assert path.suffix == ".glb" and path.is_file()
        assert inspect_mesh(load_mesh(path)).watertight  # holes are closed by default
    assert result.preview.is_file() and result.preview.suffix == ".png"
    assert len(result.turntables) == len(result.meshes) and all(p.is_file() for p in result.turntables)
    again = text_to_shape("a deep bowl", tmp_path / "again", num=2, seed=3, checkpoint=text_model, config=SMALL)
    assert [p.read_bytes() for p in again.msdf_files] == [p.read_bytes() for p in result.msdf_files]


def test_unknown_words_give_one_warning_naming_them_and_the_classes(text_model, tmp_path):
    warnings: list[str] = []
    result = text_to_shape("a zorblax table, glittering", tmp_path / "out", checkpoint=text_model, config=SMALL, warn=warnings.append)
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "'zorblax', 'glittering'" in warnings[0] and "table, bowl" in warnings[0]
    assert result.words.unknown == ["zorblax", "glittering"] and result.words.classes == ["table"]


def test_prompt_reading_uses_synonyms_and_whole_words():
    vocab = ["a", "coffee", "cup", "mug", "table", "lamp", "round"]
    assert read_prompt("A round coffee mug", vocab).classes == ["mug"]
    assert read_prompt("a cup", vocab).classes == ["mug"]  # a synonym the captions use
    words = read_prompt("a tablet", vocab)
    assert words.classes == [] and words.unknown == ["tablet"] and words.known_classes == ["table", "lamp", "mug"]


def test_no_known_class_is_one_line_exit_2_and_writes_nothing(text_model, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["text-to-3d", "a zorblax", "-o", str(out), "--checkpoint", str(text_model), *SMALL_SET])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "names no class" in err and "table, bowl (e.g. 'a table')" in err
    assert not out.exists()
    with pytest.raises(ShapegenError, match="names no class"):
        text_to_shape("", tmp_path / "empty", checkpoint=text_model, config=SMALL)


def test_cli_defaults_to_msdf_and_warns_on_stderr(text_model, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["text-to-3d", "a flying bowl", "-o", str(out), "--checkpoint", str(text_model), "--seed", "1", *SMALL_SET])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert err.count("\n") == 1 and err.startswith("warning: ") and "'flying'" in err
    assert (out / "preview.png").is_file() and (out / "shape.msdf.npz").is_file()
    assert "preview.png" in stdout


def test_a_class_model_is_refused_in_one_line(tmp_path, capsys):
    from shapegen.methods.base import default_checkpoint

    ckpt = str(default_checkpoint(METHODS["msdf"]))
    out = tmp_path / "out"
    code = main(["text-to-3d", "a chair", "-o", str(out), "--method", "msdf", "--checkpoint", ckpt, *SMALL_SET])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "class-conditioned" in err
    assert not out.exists()


def _args(**given) -> argparse.Namespace:
    from shapegen.commands.text_to_3d import VSD_OPTIONS

    base = dict.fromkeys([*VSD_OPTIONS, "method", "num", "checkpoint", "accelerator", "devices", "num_nodes", "strategy", "precision"])
    return argparse.Namespace(**{**base, **given})


def test_method_choice():
    from shapegen.commands.text_to_3d import pick_method

    assert pick_method(_args()) == "msdf"
    assert pick_method(_args(model="some/sd-model")) == "vsd"
    assert pick_method(_args(tiny_random_prior=True)) == "vsd"
    assert pick_method(_args(config="tiny")) == "vsd"
    with pytest.raises(ShapegenError, match="--stages apply to --method vsd only"):
        pick_method(_args(method="msdf", stages="nerf"))
    with pytest.raises(ShapegenError, match="--num apply to --method msdf only"):
        pick_method(_args(model="tiny-random", num=2))


def test_default_text_model_is_the_specs():
    from shapegen.methods.base import default_checkpoint

    path = default_checkpoint(METHODS["msdf"], text=True)
    assert path.as_posix().endswith("assets/models/msdf_text/msdf_text.ckpt")
    assert default_checkpoint(METHODS["msdf"]).name == "msdf_demo.ckpt"
    with pytest.raises(ShapegenError, match="ships no text-conditioned model"):
        default_checkpoint(METHODS["las"], text=True)
