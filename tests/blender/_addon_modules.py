"""Load the add-on's bpy-free modules (``blender/jobs.py``, ``blender/sketch.py``) without Blender."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ADDON = Path(__file__).resolve().parents[2] / "blender"


def load(name: str):
    """``blender/NAME.py`` as the module ``shapegen_addon_NAME`` (registered, so dataclasses resolve)."""
    key = f"shapegen_addon_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, ADDON / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module
