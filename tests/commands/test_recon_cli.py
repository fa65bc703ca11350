"""``shapegen room synth``, ``reconstruct`` and ``eval-recon`` end to end on tiny inputs."""

from __future__ import annotations

import json

import pytest
import torch
from _cli import run

from shapegen.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")



@pytest.fixture(scope="module")
def room(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "room"
    assert main(["room", "synth", "-o", str(out), "--set", "num_views=2", "--set", "width=12", "--set", "height=10",
                 "--set", "max_steps=64"]) == 0
    return out


def test_room_synth_refuses_a_non_empty_folder(capsys, room):
    code, _, err = run(capsys, "room", "synth", "-o", str(room), "--set", "num_views=1")
    assert code == 2 and err.count("\n") == 1 and "not an empty folder" in err


def test_reconstruct_tiny_then_resume_then_eval(capsys, room, tmp_path):
    out = tmp_path / "rec.glb"
    code, stdout, err = run(capsys, "reconstruct", str(room), "-o", str(out), "--preset", "tiny", "--no-progress")
    assert code == 0, err
    assert out.is_file() and (tmp_path / "rec.run" / "checkpoints" / "last.ckpt").is_file()
    assert any((tmp_path / "rec.run" / "previews").glob("*_mesh.png"))
    assert any((tmp_path / "rec.run" / "previews").glob("*_views.png"))
    # A second run into the same folder resumes (longer: max_steps may change); other settings
    # are a one-line error naming --fresh.
    code, _, err = run(capsys, "reconstruct", str(room), "-o", str(out), "--preset", "tiny", "--no-progress",
                       "--set", "train.lr=0.01")
    assert code == 2 and err.count("\n") == 1 and "--fresh" in err and "train.lr" in err
    code, stdout, err = run(capsys, "reconstruct", str(room), "-o", str(out), "--preset", "tiny", "--no-progress",
                            "--set", "train.max_steps=3")
    assert code == 0, err
    assert "resuming from" in stdout and "(step 2;" in stdout
    ckpt = torch.load(tmp_path / "rec.run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 3
    code, stdout, err = run(capsys, "eval-recon", str(out), str(room / "gt_mesh.ply"), "--json", "--set", "num_points=2000",
                            "--set", "cull=true")
    assert code == 0, err
    m = json.loads(stdout)
    assert {"accuracy", "completeness", "chamfer_l1", "fscore@5cm", "fscore@2cm", "normal_consistency",
            "recall_thin@5cm", "recall_dark@2cm"} <= set(m)
    assert 0.0 <= m["fscore@5cm"] <= 1.0


def test_bad_inputs_are_one_line_errors_with_no_output(capsys, tmp_path, room):
    out = tmp_path / "x.glb"
    code, _, err = run(capsys, "reconstruct", str(tmp_path / "missing"), "-o", str(out), "--preset", "tiny")
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err
    code, _, err = run(capsys, "reconstruct", str(room), "-o", str(tmp_path / "x.xyz"), "--preset", "tiny")
    assert code == 2 and "unsupported output format" in err
    code, _, err = run(capsys, "reconstruct", str(room), "-o", str(out), "--preset", "tiny", "--set", "train.lr=abc")
    assert code == 2 and "train.lr" in err
    code, _, err = run(capsys, "eval-recon", str(tmp_path / "none.glb"), str(room / "gt_mesh.ply"))
    assert code == 2 and "does not exist" in err
    assert not any(tmp_path.iterdir())
