"""Killed training runs resume and end where an uninterrupted run ends: ``train --method msdf``,
``train --method las`` and ``reconstruct`` (Occ-SDF), each SIGKILLed part-way and, once per
checkpoint writer, in the middle of writing a checkpoint; Ctrl-C stops ``train`` cleanly.

All three are deterministic on one thread once a resume restores the global random generators
(:class:`shapegen.checkpoints.RNGCheckpoint`), so the results are compared bit for bit.
"""

from __future__ import annotations

import csv
import signal

import pytest
from _kill_resume import (
    assert_same_checkpoint,
    interrupt_when,
    kill_after_step_and_resume,
    kill_when,
    reference,
    run_ok,
    step_of,
    torn_kill,
)
from _las_fixtures import TINY_OVERRIDES, las_data  # noqa: F401  -- las_data is a fixture
from _msdf_fixtures import write_class_folder

pytestmark = pytest.mark.usefixtures("one_thread")


def _msdf_argv(root, out, steps: int = 24) -> list[str]:
    # 2 + 2 shapes and batch_size 4 (drop_last): one batch per epoch, so every checkpoint falls
    # at an epoch end and the resumed loader reshuffles exactly as the uninterrupted one.
    return ["train", "--method", "msdf", "--config", "tiny", "-o", str(out), "--set", f"data.root={root}",
            "--set", f"train.max_steps={steps}", "--set", "train.checkpoint_every=2", "--set", "train.log_every=1",
            "--set", "train.preview_every=-1", "--set", "train.warmup_steps=3"]


@pytest.fixture(scope="module")
def msdf_reference(tmp_path_factory):
    root = write_class_folder(tmp_path_factory.mktemp("msdf_data"), per_class=2)
    out = tmp_path_factory.mktemp("msdf_ref")
    reference(_msdf_argv(root, out))
    return root, out


def _loss_steps(out) -> list[int]:
    with open(out / "loss.csv", newline="") as fh:
        return [int(r["step"]) for r in csv.DictReader(fh)]


def test_train_msdf_killed_resumes_bit_identical(msdf_reference, tmp_path):
    root, ref = msdf_reference
    out = tmp_path / "run"
    last = out / "checkpoints" / "last.ckpt"
    kill_after_step_and_resume(_msdf_argv(root, out), last, 2, 24)
    assert_same_checkpoint(last, ref / "checkpoints" / "last.ckpt")
    # The loss log keeps the steps before the kill (one row per step, none twice).
    assert _loss_steps(out) == _loss_steps(ref) == list(range(1, 25))


def test_train_msdf_killed_while_saving_keeps_previous_checkpoint(msdf_reference, tmp_path):
    root, ref = msdf_reference
    out = tmp_path / "run"
    last = out / "checkpoints" / "last.ckpt"
    # The 1st torch.save (step 2) completes; the 2nd (step 4) writes half its bytes, then SIGKILL.
    torn_kill(_msdf_argv(root, out), "torch.save:2")
    assert step_of(last) == 2  # still a whole, loadable checkpoint
    again = run_ok(_msdf_argv(root, out))
    assert f"resuming from {last} (step 2;" in again.stdout
    assert_same_checkpoint(last, ref / "checkpoints" / "last.ckpt")


def test_train_other_config_is_one_line_error_naming_fresh(msdf_reference, tmp_path):
    root, _ = msdf_reference
    out = tmp_path / "run"
    reference(_msdf_argv(root, out, steps=2))
    from _kill_resume import run

    other = run([*_msdf_argv(root, out, steps=4), "--set", "model.width=16"])
    assert other.returncode == 2
    assert other.stderr.startswith("error: ") and other.stderr.count("\n") == 1 and "--fresh" in other.stderr
    assert "model.width=32 (now 16)" in other.stderr
    fresh = run_ok([*_msdf_argv(root, out, steps=2), "--set", "model.width=16", "--fresh"])
    assert "resuming" not in fresh.stdout and step_of(out / "checkpoints" / "last.ckpt") == 2


def test_train_ctrl_c_exits_130_with_one_resume_line(msdf_reference, tmp_path):
    root, _ = msdf_reference
    out = tmp_path / "run"
    last = out / "checkpoints" / "last.ckpt"
    done = interrupt_when(_msdf_argv(root, out, steps=100_000), last.is_file)
    assert done.returncode == 128 + signal.SIGINT, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr
    assert lines[-1].startswith("interrupted; run the same command again to resume")
    assert sum("resume" in line for line in lines) == 1
    assert step_of(last) >= 2


# ------------------------------------------------------------------------------ train --method las
def _las_argv(data, out) -> list[str]:
    # Two shapes, batch 2, repeat 1: one batch per epoch, so every checkpoint is at an epoch end.
    # (A checkpoint in the middle of a shuffled epoch could not be resumed exactly: Lightning
    # restarts a plain DataLoader's epoch, so the rest of that epoch would see other batches.)
    sets = [f"data.root={data}", *TINY_OVERRIDES, "data.repeat=1", "train.max_steps=12", "train.checkpoint_every=2"]
    return ["train", "--method", "las", "--config", "tiny", "-o", str(out), *(x for o in sets for x in ("--set", o))]


def test_train_las_killed_resumes_bit_identical(las_data, tmp_path):  # noqa: F811 (the fixture)
    ref, out = tmp_path / "ref", tmp_path / "run"
    reference(_las_argv(las_data, ref))
    last = out / "checkpoints" / "last.ckpt"
    kill_after_step_and_resume(_las_argv(las_data, out), last, 2, 12)
    # The EMA weights and per-stage step counts travel in the checkpoint too.
    assert_same_checkpoint(last, ref / "checkpoints" / "last.ckpt", keys=("state_dict", "optimizer_states", "global_step", "las_ema"))


# ------------------------------------------------------------------------------ reconstruct
@pytest.fixture(scope="module")
def room_reference(tmp_path_factory):
    room = tmp_path_factory.mktemp("room") / "room"
    reference(["room", "synth", "-o", str(room), "--set", "num_views=2", "--set", "width=12", "--set", "height=10",
            "--set", "max_steps=64"])
    ref = tmp_path_factory.mktemp("rec_ref") / "rec.glb"
    reference(_recon_argv(room, ref))
    return room, ref


def _recon_argv(room, out) -> list[str]:
    return ["reconstruct", str(room), "-o", str(out), "--preset", "tiny", "--no-progress", "--set", "train.max_steps=24"]


def test_reconstruct_killed_resumes_bit_identical(room_reference, tmp_path):
    room, ref = room_reference
    out = tmp_path / "rec.glb"
    last = tmp_path / "rec.run" / "checkpoints" / "last.ckpt"
    kill_when(_recon_argv(room, out), lambda: step_of(last) >= 1 if last.is_file() else False)
    killed_at = step_of(last)
    assert 1 <= killed_at < 24 and not out.exists()
    again = run_ok(_recon_argv(room, out))
    assert f"resuming from {last} (step {killed_at};" in again.stdout
    assert_same_checkpoint(last, ref.with_suffix(".run") / "checkpoints" / "last.ckpt")
    assert out.read_bytes() == ref.read_bytes()


def test_reconstruct_killed_while_saving_keeps_previous_checkpoint(room_reference, tmp_path):
    room, ref = room_reference
    out = tmp_path / "rec.glb"
    last = tmp_path / "rec.run" / "checkpoints" / "last.ckpt"
    torn_kill(_recon_argv(room, out), "torch.save:3")  # steps 1 and 2 saved, step 3's save torn
    assert step_of(last) == 2
    again = run_ok([*_recon_argv(room, out), "--resume"])  # the old flag is still accepted
    assert f"resuming from {last} (step 2;" in again.stdout
    assert out.read_bytes() == ref.read_bytes()
