"""Shared test fixtures: seeding, the ../shared/data path, and marker-based skips."""

from __future__ import annotations

import importlib.util
import os
import random
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


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """One torch intra-op thread for the test: tiny tensors and many small ops gain nothing from
    threads, and on a busy 2-core machine each op waits for its second thread to get a core."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def shared_data() -> Path:
    """Root of the real test data (meshes, sketches, scenes); skips the test when absent."""
    root = shared_data_root()
    if root is None:
        pytest.skip("../shared/data is absent (set SHAPEGEN_SHARED_DATA to its path)")
    return root


def pytest_collection_modifyitems(config, items):
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU")
    skip_bpy = pytest.mark.skip(reason="needs bpy (pip install -e .[blender])")
    has_cuda = torch.cuda.is_available()
    has_bpy = importlib.util.find_spec("bpy") is not None
    for item in items:
        if "cuda" in item.keywords and not has_cuda:
            item.add_marker(skip_cuda)
        if "blender" in item.keywords and not has_bpy:
            item.add_marker(skip_bpy)
