"""The contract every method in ``METHODS`` keeps, tested the same way for all of them.

Each method brings tiny data (``TINY_DATA`` below: adding a method without an entry fails
``test_every_method_has_tiny_data``) and its ``tiny`` preset; then, through the one library call
behind ``shapegen train``: the spec imports and keeps its promises, two training steps write a
checkpoint, a run stopped after two steps and resumed to four equals four steps in one go, sampling
(or the exported mesh) is the same for the same seed, and a bad config key is one line.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from shapegen.checkpoints import load_checkpoint
from shapegen.errors import ShapegenError
from shapegen.methods import METHODS
from shapegen.methods.training import train

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def _msdf(root: Path) -> list[str]:
    sys.path.insert(0, str(HERE))
    try:
        from _msdf_fixtures import write_class_folder
    finally:
        sys.path.pop(0)
    write_class_folder(root / "data", per_class=2)
    return [f"data.root={root / 'data'}", "data.batch_size=2"]


def _las(root: Path) -> list[str]:
    sys.path.insert(0, str(HERE))
    try:
        from _las_fixtures import TINY_OVERRIDES, make_meshes
    finally:
        sys.path.pop(0)
    from shapegen.data.las_prepare import LASPrepareConfig, prepare_dataset

    prepare_dataset(make_meshes(root / "meshes"), root / "data", LASPrepareConfig(resolution=16, sketch_size=32, views=[1, 2]), progress=False)
    return [f"data.root={root / 'data'}", *TINY_OVERRIDES]


def _occsdf(root: Path) -> list[str]:
    from shapegen.data.room_synth import RoomSynthConfig, write_room

    write_room(root / "room", RoomSynthConfig(num_views=4, width=32, height=32))
    return [f"scene.path={root / 'room'}", "scene.downscale=1"]


def _vsd(root: Path) -> list[str]:
    return ["model=tiny-random"]


def _render_prior(root: Path) -> list[str]:
    sys.path.insert(0, str(HERE))
    try:
        from _prior_fixtures import write_tiny_renders
    finally:
        sys.path.pop(0)
    return write_tiny_renders(root / "renders")


TINY_DATA: dict[str, Callable[[Path], list[str]]] = {"msdf": _msdf, "las": _las, "occsdf": _occsdf, "vsd": _vsd,
                                                     "render_prior": _render_prior}
"""Method name -> writes tiny data under a folder and returns the ``--set`` overrides that use it."""

STEPS_KEY = {"vsd": "steps"}
"""Where a method keeps its run length when it is not ``train.max_steps`` (vsd: each stage has its own)."""


def _steps(name: str, n: int) -> str:
    return f"{STEPS_KEY.get(name, 'train.max_steps')}={n}"


TRAINABLE = sorted(name for name, spec in METHODS.items() if spec.train)
CADENCE = ["train.checkpoint_every=1", "train.log_every=1", "train.preview_every=-1", "train.accelerator=cpu"]


def test_every_method_has_tiny_data():
    assert set(TRAINABLE) <= set(TINY_DATA), "add the new method's tiny data to TINY_DATA"


@pytest.mark.parametrize("name", sorted(METHODS))
def test_spec_keeps_its_promises(name):
    spec = METHODS[name]
    spec.check()  # imports config and system, checks the capabilities it promises
    assert (REPO / "configs" / spec.presets / "tiny.yaml").is_file()
    if spec.default_checkpoint:
        assert (REPO / spec.default_checkpoint).is_file()


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> dict[str, list[str]]:
    cache: dict[str, list[str]] = {}

    def get(name: str) -> list[str]:
        if name not in cache:
            cache[name] = TINY_DATA[name](tmp_path_factory.mktemp(name))
        return cache[name]

    return get


def _weights(last: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(last)["state_dict"]


class _StopAt:
    """Interrupts a run (as Ctrl-C does) when it reaches ``step``, after that step's checkpoint."""

    def __new__(cls, step: int):
        import pytorch_lightning as pl

        class StopAt(pl.Callback):
            def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
                if trainer.global_step == step:
                    raise KeyboardInterrupt

        return StopAt()


@pytest.fixture
def one_thread():
    """Bit-identity needs a fixed order of float additions: with several threads, CPU kernels such as
    a convolution's weight gradient may split their sums differently from run to run (with two
    threads, a resumed tiny run differed from an uninterrupted one by 7e-9 for las and 1.5e-5 for
    vsd), so the comparison runs on one thread, as the kill/resume tests do."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", TRAINABLE)
def test_two_steps_checkpoint_and_resume_equals_uninterrupted(name, tiny_data, tmp_path, one_thread):
    spec = METHODS[name]
    data = [*tiny_data(name), *CADENCE, _steps(name, 5)]
    whole = train(spec, "tiny", data, tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(spec, "tiny", data, tmp_path / "parts", progress=False, callbacks=[_StopAt(2)])
    first = tmp_path / "parts" / "checkpoints" / "last.ckpt"
    assert load_checkpoint(first)["global_step"] == 2
    assert (tmp_path / "parts" / "config.yaml").is_file()
    resumed = train(spec, "tiny", data, tmp_path / "parts", progress=False)
    assert load_checkpoint(resumed)["global_step"] == 5
    a, b = _weights(whole), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=lambda m, k=key: f"{name}: {k}: {m}")
    assert (tmp_path / "whole" / "loss.csv").read_text() == (tmp_path / "parts" / "loss.csv").read_text()


@pytest.mark.parametrize("name", TRAINABLE)
def test_a_checkpoint_of_another_config_is_one_line(name, tiny_data, tmp_path):
    spec = METHODS[name]
    data = tiny_data(name)
    train(spec, "tiny", [*data, *CADENCE, _steps(name, 1)], tmp_path / "run", progress=False)
    with pytest.raises(ShapegenError, match="--fresh") as err:
        train(spec, "tiny", [*data, *CADENCE, _steps(name, 2), "train.grad_clip=0.123"], tmp_path / "run", progress=False)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_bad_config_key_is_one_line_on_the_command_line(name, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "shapegen.cli", "train", "--method", name, "--config", "tiny", "-o", str(tmp_path / "o"),
                           "--set", "train.no_such_key=1"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no_such_key" in lines[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", sorted(n for n, s in METHODS.items() if s.generate and s.train))
def test_samples_are_the_same_for_the_same_seed(name, tiny_data, tmp_path):
    spec = METHODS[name]
    last = train(spec, "tiny", [*tiny_data(name), *CADENCE, _steps(name, 2)], tmp_path / "run", progress=False)
    from shapegen.commands.methods import load_system

    model = load_system(name, last)
    files = []
    for k in range(2):
        result = model.write_samples(tmp_path / f"s{k}", num=2, seed=3, resolution=16)
        files.append({p.name: p.read_bytes() for p in [*result.msdf_files, *result.mesh_files]})
    assert files[0] == files[1]
    assert files[0], "two training steps gave nothing to compare"
    other = model.write_samples(tmp_path / "other", num=2, seed=4, resolution=16)
    assert {p.name: p.read_bytes() for p in [*other.msdf_files, *other.mesh_files]} != files[0]


@pytest.mark.parametrize("name", sorted(n for n, s in METHODS.items() if s.generate and s.train))
def test_exported_model_samples_what_the_training_checkpoint_samples(name, tiny_data, tmp_path):
    spec = METHODS[name]
    last = train(spec, "tiny", [*tiny_data(name), *CADENCE, _steps(name, 3)], tmp_path / "run", progress=False)
    result = spec.export_function()(last, tmp_path / "slim.ckpt")
    assert result.bytes_out < result.bytes_in  # no optimiser state
    from shapegen.commands.methods import load_system

    got = []
    for ckpt in (last, result.path):
        out = load_system(name, ckpt).write_samples(tmp_path / ckpt.stem, num=2, seed=1, resolution=16)
        got.append({p.name: p.read_bytes() for p in [*out.msdf_files, *out.mesh_files]})
    assert got[0] and got[0] == got[1]
