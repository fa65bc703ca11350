"""Quieter PyTorch Lightning for commands and benchmarks that print their own progress."""

from __future__ import annotations

import logging
import warnings

#: The loggers Lightning writes its INFO banners to (GPU available, TPU available, ...), under
#: both package names it is installed as, and Fabric's.
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric")


def quiet_lightning(level: int | None = logging.WARNING) -> None:
    """Raise Lightning's loggers to ``level`` and drop two of its warnings that do not apply here.

    Dropped: "module(s) in eval mode" (frozen parts, a diffusion prior or a text encoder, are in
    eval mode on purpose) and "does not have many workers" (the small in-memory datasets need
    none). Both changes are process-wide, as Lightning's own settings are.

    Args:
        level: the lowest level Lightning still logs (``logging.ERROR`` for benchmarks whose
            output is a table); ``None`` leaves the loggers alone (a ``--verbose`` run) and only
            drops the warnings.
    """
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    if level is not None:
        for name in LIGHTNING_LOGGERS:
            logging.getLogger(name).setLevel(level)
