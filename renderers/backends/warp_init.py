"""Start warp quietly: the one place where shapegen and the renderers call ``wp.init()``."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def _native_stderr_to_devnull() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the block (native libraries write there directly)."""
    if sys.stderr is not None:
        sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def init_warp():
    """Import and initialise warp without console noise; returns the ``warp`` module.

    Warp >= 1.10 logs its banner and kernel loads at INFO level, and without a CUDA driver its
    native code prints a warning straight to the stderr descriptor on every start (the CPU
    backend is then used anyway), which would come before a command's own output or error line.
    """
    import warp as wp

    wp.config.log_level = logging.WARNING
    if hasattr(wp.config, "quiet"):
        wp.config.quiet = True
    with _native_stderr_to_devnull():
        wp.init()
    return wp
