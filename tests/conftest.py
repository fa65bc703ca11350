"""Shared test fixtures: seeding, the ../shared/data path, marker-based skips, checks that no test
leaves global state or files behind, and ``--reverse`` / ``--shuffle SEED`` orders that show whether
a test depends on the ones before it."""

from __future__ import annotations

import importlib.util
import logging
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


def shared_data_root() -> Path | None:
    """``$SHAPEGEN_SHARED_DATA`` or ``../shared/data`` beside the repository, if it exists."""
    env = os.environ.get("SHAPEGEN_SHARED_DATA")
    root = Path(env) if env else REPO.parent / "shared" / "data"
    return root if root.is_dir() else None


def pytest_addoption(parser):
    group = parser.getgroup("order", "test order (tests must not depend on it)")
    group.addoption(
        "--reverse",
        action="store_true",
        help="run the test modules, and the tests in each, in reverse order",
    )
    group.addoption(
        "--shuffle",
        type=int,
        default=None,
        metavar="SEED",
        help="run the test modules, and the tests in each, in an order shuffled with this seed",
    )


def _git_status() -> set[str] | None:
    """Untracked and ignored paths of the repository (bytecode caches left out), or None outside a
    git checkout. Edits to tracked files are left out: a developer may save one during the run."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    skip = ("__pycache__/", ".pytest_cache/", ".venv/", ".egg-info/")
    return {
        line
        for line in out.splitlines()
        if line[:2] in ("??", "!!") and not any(part in line for part in skip)
    }


@pytest.fixture(autouse=True, scope="session")
def _repository_stays_clean():
    """Tests write into ``tmp_path``, never into the repository (or the cwd, which is usually the
    repository): a file left there would change what later tests and later runs see."""
    before = _git_status()
    yield
    after = _git_status()
    if before is not None and after is not None and after - before:
        pytest.fail(
            "the tests wrote into the repository (write into tmp_path instead): "
            + ", ".join(sorted(after - before)),
            pytrace=False,
        )


# Variables the code under test sets on purpose, for the rest of its process: Lightning's
# ``seed_everything`` records the seed for worker processes (the training commands call it), and the
# body prior points Anny's first-build cache before importing it. They are restored after each test
# like any other variable, but setting them is not a fault of the test.
_SET_BY_DESIGN = {"PL_GLOBAL_SEED", "PL_SEED_WORKERS", "ANNY_CACHE_DIR"}


def _environment() -> dict[str, str]:
    """``os.environ`` without the variable pytest itself changes between test phases."""
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


def _restore_environment(before: dict[str, str], modules_imported: bool) -> list[str]:
    """Puts ``os.environ`` back as ``before`` and returns the variables the test changed.

    Variables added while the test imported new modules are kept and not blamed on it: libraries
    set some for themselves when first imported (``lightning_fabric`` sets
    ``PYTORCH_NVML_BASED_CUDA_CHECK``), whichever test happens to import them first."""
    after = _environment()
    added = set(after) - set(before)
    if modules_imported:
        added = set()
    changed = {k for k in before if after.get(k) != before[k]}
    for key in added:
        del os.environ[key]
    os.environ.update(before)
    return sorted((added | changed) - _SET_BY_DESIGN)


def _global_state() -> dict:
    return {
        "torch threads": torch.get_num_threads(),
        "torch default dtype": torch.get_default_dtype(),
        "torch grad mode": torch.is_grad_enabled(),
        "torch deterministic algorithms": torch.are_deterministic_algorithms_enabled(),
        "cwd": os.getcwd(),
        "root logging level": logging.getLogger().level,
        "numpy floating-point error handling": np.geterr(),
    }


@pytest.fixture(autouse=True)
def _global_state_unchanged():
    """Restores, after each test, the process-wide state tests are likely to change, and fails the
    test that changed it, so that no test passes or fails because of what an earlier one left."""
    before, environment, modules = _global_state(), _environment(), len(sys.modules)
    yield
    after = _global_state()
    leaked = _restore_environment(environment, modules_imported=len(sys.modules) > modules)
    torch.set_num_threads(before["torch threads"])
    torch.set_default_dtype(before["torch default dtype"])
    torch.set_grad_enabled(before["torch grad mode"])
    torch.use_deterministic_algorithms(before["torch deterministic algorithms"])
    os.chdir(before["cwd"])
    logging.getLogger().setLevel(before["root logging level"])
    np.seterr(**before["numpy floating-point error handling"])
    faults = [
        f"{key} {before[key]!r} -> {after[key]!r}" for key in before if after[key] != before[key]
    ]
    if leaked:
        faults.append(f"environment variables {leaked}")
    if faults:
        pytest.fail("the test left global state changed: " + "; ".join(faults), pytrace=False)


def _seed_everything() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _seed() -> None:
    _seed_everything()


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef, request):
    """Module-, class- and session-scoped fixtures are set up before the test's own seeding, by
    whichever test needs them first: seed them too, so what they build does not depend on the
    random numbers the tests before them drew."""
    if fixturedef.scope != "function":
        _seed_everything()
    return (yield)


@pytest.fixture
def one_thread():
    """One torch intra-op thread for the test: tiny tensors and many small ops gain nothing from
    threads, and on a busy 2-core machine each op waits for its second thread to get a core."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def readonly_dir(tmp_path):
    """An empty folder nobody can write into, also root: a read-only tmpfs mount when running as
    root (root ignores folder permissions; CI runs as root), a mode-0500 folder otherwise."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    if os.name == "posix" and os.geteuid() == 0:
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True, text=True)
        assert res.returncode == 0, f"cannot mount a read-only tmpfs as root: {res.stderr.strip()}"
        try:
            yield folder
        finally:
            subprocess.run(["umount", str(folder)], check=False, capture_output=True)
    else:
        folder.chmod(0o500)
        try:
            yield folder
        finally:
            folder.chmod(0o700)


@pytest.fixture
def shared_data() -> Path:
    """Root of the real test data (meshes, sketches, scenes); skips the test when absent."""
    root = shared_data_root()
    if root is None:
        pytest.skip("../shared/data is absent (set SHAPEGEN_SHARED_DATA to its path)")
    return root


def _reorder(config, items) -> None:
    """``--reverse`` / ``--shuffle SEED``: a new order of the modules and of the tests in each."""
    reverse, seed = config.getoption("--reverse"), config.getoption("--shuffle")
    if not reverse and seed is None:
        return
    modules: dict[str, list] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    groups = list(modules.values())
    if reverse:
        groups = [group[::-1] for group in groups[::-1]]
    else:
        rng = random.Random(seed)
        rng.shuffle(groups)
        for group in groups:
            rng.shuffle(group)
    items[:] = [item for group in groups for item in group]


def pytest_collection_modifyitems(config, items):
    _reorder(config, items)
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU")
    skip_bpy = pytest.mark.skip(reason="needs bpy (pip install -e .[blender])")
    has_cuda = torch.cuda.is_available()
    has_bpy = importlib.util.find_spec("bpy") is not None
    for item in items:
        if "cuda" in item.keywords and not has_cuda:
            item.add_marker(skip_cuda)
        if "blender" in item.keywords and not has_bpy:
            item.add_marker(skip_bpy)
