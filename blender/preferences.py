# SPDX-License-Identifier: GPL-3.0-or-later
"""Add-on preferences: the shapegen executable, an optional Stable Diffusion model, device, outputs."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import bpy

ADDON_ID = __package__
"""The add-on's module name (``shapegen`` as a legacy add-on, ``bl_ext.REPO.shapegen`` as an extension)."""

SOURCE_DIR = Path(__file__).resolve().parent
HINT_FILE = "shapegen_executable.txt"
"""Written beside the add-on by ``shapegen blender install``: the executable that installed it."""


def _venv_executable(root: Path) -> Path:
    return root / ".venv" / ("Scripts/shapegen.exe" if os.name == "nt" else "bin/shapegen")


def find_executable(configured: str = "") -> str | None:
    """The ``shapegen`` CLI to run: the preference when set, else the first found on PATH, else the
    project's ``.venv`` next to the add-on's source checkout (``<repo>/blender/`` -> ``<repo>/.venv``),
    else the one that ran ``shapegen blender install``. None when there is none."""
    if configured.strip():
        return configured.strip()
    found = shutil.which("shapegen")
    if found:
        return found
    venv = _venv_executable(SOURCE_DIR.parent)
    if venv.is_file():
        return str(venv)
    hint = SOURCE_DIR / HINT_FILE
    if hint.is_file():
        path = hint.read_text(encoding="utf-8").strip()
        if path and Path(path).is_file():
            return path
    return None


def default_output_root() -> Path:
    return Path(tempfile.gettempdir()) / "shapegen_blender"


class ShapegenPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    executable: bpy.props.StringProperty(
        name="shapegen executable",
        subtype="FILE_PATH",
        default="",
        description="Path of the shapegen command; empty: found on PATH, then in the .venv of the add-on's source checkout",
    )
    sd_model: bpy.props.StringProperty(
        name="Stable Diffusion model",
        default="",
        description="Hub id or local diffusers folder for VSD text-to-3D (shows the VSD options in the Text panel); empty: the shipped offline text model only",
    )
    device: bpy.props.EnumProperty(
        name="Device",
        default="auto",
        items=[("auto", "Auto", "CUDA when a GPU is visible"), ("cpu", "CPU", "Always the CPU"), ("cuda", "CUDA", "An NVIDIA GPU")],
    )
    output_dir: bpy.props.StringProperty(
        name="Output folder",
        subtype="DIR_PATH",
        default="",
        description="Where each job writes its folder of results; empty: a shapegen_blender folder in the system's temp folder",
    )
    max_jobs: bpy.props.IntProperty(
        name="Jobs at once",
        default=1,
        min=1,
        max=8,
        description="shapegen processes that may run at the same time; the others wait in the queue (1: each job gets every core)",
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "executable")
        found = find_executable(self.executable)
        layout.label(
            text=f"Using: {found}" if found else "shapegen not found: install it (pip install shapegen) or set the path", icon="CHECKMARK" if found else "ERROR"
        )
        layout.prop(self, "sd_model")
        layout.prop(self, "device")
        layout.prop(self, "output_dir")
        layout.prop(self, "max_jobs")


class _Defaults:
    """The preferences' defaults, for a session that registered the add-on without enabling it
    (``register()`` called by a script): Blender then keeps no preferences for it."""

    executable = sd_model = output_dir = ""
    device = "auto"
    max_jobs = 1


def preferences(context=None):
    """The add-on's preferences (:class:`ShapegenPreferences`, or the defaults when it has none)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None and addon.preferences is not None else _Defaults()


def output_root(prefs) -> Path:
    return Path(bpy.path.abspath(prefs.output_dir)) if prefs.output_dir.strip() else default_output_root()


def command_prefix(prefs) -> list[str]:
    """``[shapegen, --progress, json]``.

    Raises:
        RuntimeError: no shapegen executable is found.
    """
    exe = find_executable(prefs.executable)
    if exe is None:
        raise RuntimeError("shapegen not found: set its path in the add-on's preferences (Edit > Preferences > Add-ons > shapegen)")
    return [exe, "--progress", "json"]


CLASSES = (ShapegenPreferences,)
