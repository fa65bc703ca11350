# SPDX-License-Identifier: GPL-3.0-or-later
"""shapegen for Blender: text, class, sketch and rig jobs run by the installed ``shapegen`` command.

The add-on holds no model: each button runs ``shapegen`` in a background process (see
``jobs.py``), shows its progress in the side panel's shapegen tab and imports the GLB it writes.
It installs as a Blender 4.2+ extension (``blender_manifest.toml``) or as a legacy add-on
(``bl_info``); build the zip with ``shapegen blender package`` or install with
``shapegen blender install``.
"""

bl_info = {
    "name": "shapegen",
    "author": "shapegen contributors",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "3D View > Sidebar (N) > shapegen",
    "description": "Generate shapes from text, classes and sketches, and rig humanoids, with the shapegen command",
    "category": "Add Mesh",
}

import bpy  # noqa: E402  (bl_info comes first so legacy installers can read it without importing bpy)

from . import operators, panels, preferences  # noqa: E402

_CLASSES = (*preferences.CLASSES, *operators.CLASSES, *panels.CLASSES)


def register() -> None:
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.shapegen = bpy.props.PointerProperty(type=panels.ShapegenSceneProps)
    bpy.types.WindowManager.shapegen_last_job = bpy.props.IntProperty(name="Last shapegen job", default=0)
    operators.register()


def unregister() -> None:
    operators.unregister()
    del bpy.types.WindowManager.shapegen_last_job
    del bpy.types.Scene.shapegen
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
