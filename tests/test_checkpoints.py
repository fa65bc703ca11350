"""``shapegen.checkpoints``: weights-only loading, atomic saving, the Lightning plugin, and the
shipped demo models loading weights-only."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
import torch

from shapegen.checkpoints import SafeCheckpointIO, load_checkpoint, load_module, save_checkpoint
from shapegen.errors import ShapegenError

REPO = Path(__file__).resolve().parent.parent
MSDF_DEMO = REPO / "assets" / "models" / "msdf_demo" / "msdf_demo.ckpt"
LAS_DEMO = REPO / "assets" / "models" / "las_demo" / "las_demo.ckpt"


class _Touch:
    """Unpickles into a call of ``os.system("touch MARKER")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def _payload_file(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "hyper_parameters": {"x": _Touch(marker)}}, path)
    return path, marker


def test_the_payload_runs_when_unpickled_unsafely(tmp_path):
    # Guards the refusal tests below: the file really does run code under a plain unpickler.
    path, marker = _payload_file(tmp_path)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_load_refuses_a_pickled_call_in_one_line(tmp_path):
    path, marker = _payload_file(tmp_path)
    with pytest.raises(ShapegenError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"refusing to load '{path}'") and "system" in msg
    assert not marker.exists()


def test_load_errors_for_missing_truncated_and_non_dict_files(tmp_path):
    with pytest.raises(ShapegenError, match="not found"):
        load_checkpoint(tmp_path / "none.ckpt")
    good = save_checkpoint({"state_dict": {"w": torch.arange(1000.0)}}, tmp_path / "good.ckpt")
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ShapegenError, match="cannot read checkpoint"):
        load_checkpoint(cut)
    torch.save([1, 2], tmp_path / "list.ckpt")
    with pytest.raises(ShapegenError, match="not a shapegen checkpoint"):
        load_checkpoint(tmp_path / "list.ckpt")


def test_save_then_load_round_trip(tmp_path):
    ckpt = {"state_dict": {"w": torch.randn(3, 4), "b": torch.arange(5)}, "global_step": 7,
            "hyper_parameters": {"config": {"lr": 1e-3, "classes": ["a", "b"], "nested": {"on": True, "none": None}}}}
    (tmp_path / "sub").mkdir()
    path = save_checkpoint(ckpt, tmp_path / "sub" / "m.ckpt")
    back = load_checkpoint(path)
    assert back["global_step"] == 7 and back["hyper_parameters"] == ckpt["hyper_parameters"]
    torch.testing.assert_close(back["state_dict"], ckpt["state_dict"])
    assert [p.name for p in path.parent.iterdir()] == ["m.ckpt"]  # no temporary file left


def test_a_save_that_fails_midway_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "global_step": 1}, tmp_path / "last.ckpt")
    before = path.read_bytes()
    real_save = torch.save

    def half_then_fail(obj, fh, *args, **kwargs):
        real_save(obj, fh, *args, **kwargs)
        fh.truncate(fh.tell() // 2)  # a partial write...
        raise OSError("disk full")  # ...then the failure

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 2}, path)
    assert path.read_bytes() == before
    assert load_checkpoint(path)["global_step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_lightning_plugin_loads_weights_only_even_when_asked_otherwise(tmp_path):
    path, marker = _payload_file(tmp_path)
    with pytest.raises(ShapegenError, match="refusing to load"):
        SafeCheckpointIO().load_checkpoint(path, weights_only=False)
    assert not marker.exists()
    SafeCheckpointIO().save_checkpoint({"global_step": 3}, tmp_path / "p.ckpt")
    assert SafeCheckpointIO().load_checkpoint(tmp_path / "p.ckpt")["global_step"] == 3


def test_load_module_refuses_a_payload_in_a_real_checkpoint(tmp_path):
    from shapegen.methods.msdf import MSDFGenerator

    marker = tmp_path / "MARKER"
    ckpt = load_checkpoint(MSDF_DEMO)
    ckpt["hyper_parameters"]["note"] = _Touch(marker)
    torch.save(ckpt, tmp_path / "evil.ckpt")
    with pytest.raises(ShapegenError, match="refusing to load"):
        load_module(MSDFGenerator, tmp_path / "evil.ckpt")
    assert not marker.exists()


@pytest.mark.parametrize("path,cls", [(MSDF_DEMO, "shapegen.methods.msdf:MSDFGenerator"),
                                      (LAS_DEMO, "shapegen.methods.las:LASDiffusion")])
def test_shipped_models_load_weights_only(path, cls):
    import importlib

    module, _, name = cls.partition(":")
    system = getattr(importlib.import_module(module), name)
    ckpt = load_checkpoint(path)
    model = load_module(system, path)
    assert set(ckpt["state_dict"]) == set(model.state_dict())
    key = next(iter(ckpt["state_dict"]))
    torch.testing.assert_close(model.state_dict()[key], ckpt["state_dict"][key])


def test_garbage_and_foreign_pickles_are_unreadable_not_refused(tmp_path):
    import pickle

    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint")
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"a": 1}, protocol=4))
    for name in ("garbage.ckpt", "plain.pkl"):
        with pytest.raises(ShapegenError, match="cannot read checkpoint") as info:
            load_checkpoint(tmp_path / name)
        assert "\n" not in str(info.value)
