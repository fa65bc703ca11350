"""Machine-readable progress for programs that run ``shapegen`` (the Blender add-on).

``shapegen --progress json COMMAND ...`` (or ``SHAPEGEN_PROGRESS=json`` in the environment) makes
the commands the add-on runs (``text-to-3d`` with the msdf method, ``generate``, ``sketch-to-3d``,
``rig``) write one JSON object per line on stderr at each progress event::

    {"phase": "sampling", "done": 3, "total": 20}

``phase`` names the stage (``loading``, ``sampling``, ``meshing``, ``occupancy``, ``sdf``, ``rigging``,
``writing``, ``done``); ``done`` and ``total`` count its steps (``total`` is null when unknown).
Human-readable output (stdout, ``warning:`` and ``error:`` lines) is unchanged, so a reader tells
the kinds apart by the leading ``{``. Without the option, :func:`report` does nothing.

The hooks are placed where steps are counted once for every caller: the ODE solver's fixed-step
loop (Mosaic-SDF sampling) and LAS's two ancestral loops; commands add their coarse phases.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from typing import Literal

ProgressMode = Literal["none", "json"]

ENV_VAR = "SHAPEGEN_PROGRESS"
"""Environment variable that turns JSON progress on (value ``json``) when no ``--progress`` is given."""

_mode: ProgressMode | None = None
"""The mode set by :func:`progress_mode`; None: read :data:`ENV_VAR`."""


def current_mode() -> ProgressMode:
    """``json`` when JSON progress is on (``--progress json`` or ``SHAPEGEN_PROGRESS=json``), else ``none``."""
    if _mode is not None:
        return _mode
    return "json" if os.environ.get(ENV_VAR, "").strip().lower() == "json" else "none"


@contextmanager
def progress_mode(mode: ProgressMode | None):
    """Within the block, progress is reported in ``mode`` (None: as the environment says).

    A context manager rather than a setter, so that a command run in-process (tests, scripts)
    leaves the mode as it found it.
    """
    global _mode
    before, _mode = _mode, mode
    try:
        yield
    finally:
        _mode = before


def report(phase: str, done: int | None = None, total: int | None = None) -> None:
    """One progress event: a JSON line on stderr in ``json`` mode, nothing otherwise.

    Args:
        phase: the stage the command is in (``sampling``, ``writing``...).
        done: steps of the phase finished so far (None: not counted).
        total: steps the phase has (None: unknown).
    """
    if current_mode() != "json":
        return
    # Flushed at once: the reader shows it while the command is still working.
    print(json.dumps({"phase": phase, "done": done, "total": total}), file=sys.stderr, flush=True)
