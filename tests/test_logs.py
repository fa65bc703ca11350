"""quiet_lightning: Lightning's loggers go to the given level and the eval-mode warning is dropped."""

from __future__ import annotations

import logging
import warnings

import pytest

from shapegen.logs import LIGHTNING_LOGGERS, quiet_lightning


@pytest.fixture
def restore_lightning_state():
    levels = {name: logging.getLogger(name).level for name in LIGHTNING_LOGGERS}
    with warnings.catch_warnings():  # restores the filters quiet_lightning adds
        yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("restore_lightning_state")
@pytest.mark.parametrize("level", [logging.WARNING, logging.ERROR])
def test_levels_and_eval_mode_warning(level):
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    quiet_lightning(level)
    assert all(logging.getLogger(name).level == level for name in LIGHTNING_LOGGERS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn("Found 3 module(s) in eval mode at the start of training.", UserWarning, stacklevel=1)
        warnings.warn("The 'train_dataloader' does not have many workers which may be a bottleneck.", UserWarning, stacklevel=1)
        warnings.warn("another warning", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["another warning"]


@pytest.mark.usefixtures("restore_lightning_state")
def test_none_keeps_the_levels_for_verbose_runs():
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    quiet_lightning(None)
    assert all(logging.getLogger(name).level == logging.INFO for name in LIGHTNING_LOGGERS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn("Found 1 module(s) in eval mode at the start of training.", UserWarning, stacklevel=1)
    assert caught == []
