"""``shapegen train/generate --method msdf`` end to end on the tiny preset."""

from __future__ import annotations

import numpy as np
import pytest
from _cli import run
from _msdf_fixtures import K, N, write_class_folder

from shapegen.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = write_class_folder(tmp_path_factory.mktemp("data"), per_class=2)
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "--method", "msdf", "--config", "tiny", "-o", str(out), "--set", f"data.root={root}",
                 "--set", "train.max_steps=4", "--set", "train.checkpoint_every=2", "--set", "train.log_every=1",
                 "--set", "train.preview_every=-1"])
    assert code == 0
    return out, root


def test_train_writes_checkpoint_plot_and_resumes(run_dir, capsys):
    out, root = run_dir
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "config.yaml").is_file()
    from PIL import Image

    assert Image.open(out / "loss.png").size == (640, 400)
    assert len((out / "loss.csv").read_text().splitlines()) == 1 + 4
    code, o, err = run(capsys, "train", "--method", "msdf", "--config", "tiny", "-o", str(out), "--set", f"data.root={root}",
                       "--set", "train.max_steps=6", "--set", "train.preview_every=1")
    assert code == 0, err
    assert "resuming from" in o
    import torch

    assert torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 6
    # Periodic sample previews (every step here: steps 5 and 6 of the resumed run).
    sheets = sorted(p.parent.name for p in (out / "previews").glob("step_*/preview.png"))
    assert sheets == ["step_0000005", "step_0000006"], sheets
    assert len(list((out / "previews" / "step_0000006").glob("sample_*.msdf.npz"))) == 4


def test_generate_writes_msdf_meshes_and_sheet(run_dir, capsys, tmp_path):
    out, _ = run_dir
    code, o, err = run(capsys, "generate", "--method", "msdf", "--checkpoint", str(out / "checkpoints" / "last.ckpt"),
                       "--class", "sphere", "--num", "2", "-o", str(tmp_path), "--steps", "2", "--resolution", "24")
    assert code == 0, err
    files = sorted(tmp_path.glob("*.msdf.npz"))
    assert len(files) == 2
    with np.load(files[0]) as data:
        assert data["tensor"].shape == (N, 4 + K**3) and int(data["k"]) == K
    glbs = list(tmp_path.glob("*.glb"))
    assert len(glbs) == 2 or "no surface" in o
    assert (tmp_path / "preview.png").is_file()
    # The mesh options are config values; a method that meshes its own way refuses them.
    code, _, err = run(capsys, "generate", "--method", "msdf", "--checkpoint", str(out / "checkpoints" / "last.ckpt"),
                       "--class", "sphere", "--num", "1", "-o", str(tmp_path / "open"), "--steps", "2", "--resolution", "24",
                       "--set", "close_holes=false", "--set", "min_component_fraction=0")
    assert code == 0, err
    code, _, err = run(capsys, "generate", "--method", "msdf", "--checkpoint", str(out / "checkpoints" / "last.ckpt"),
                       "-o", str(tmp_path / "bad"), "--set", "min_component_fraction=2")
    assert code == 2 and "min_component_fraction" in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["generate", "--method", "msdf", "--checkpoint", "missing.ckpt", "-o", "x"], "not found"),
        (["generate", "--method", "nerf2", "--checkpoint", "missing.ckpt", "-o", "x"], "unknown method 'nerf2'"),
        (["train", "--method", "msdf", "--config", "tiny", "--set", "data.root=/no/such/folder"], "not a folder"),
        (["train", "--method", "msdf", "--config", "tiny", "--set", "model.widht=3"], "widht"),
    ],
)
def test_bad_inputs_are_one_line(capsys, tmp_path, argv, needle):
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and needle in err, err


def test_unknown_class_is_one_line(run_dir, capsys, tmp_path):
    out, _ = run_dir
    code, _, err = run(capsys, "generate", "--method", "msdf", "--checkpoint", str(out / "checkpoints" / "last.ckpt"),
                       "--class", "car", "-o", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "unknown class 'car'" in err and "sphere" in err
    assert not any(tmp_path.iterdir())
