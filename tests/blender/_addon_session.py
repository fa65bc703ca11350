"""One background Blender (bpy) session driving the shapegen add-on against the real CLI.

Run as ``python _addon_session.py MODE ARGS_JSON`` in a child process (bpy can be imported once
per process and keeps global state); prints one ``JSON{...}`` line with what it saw. Modes:

* ``source``: enable the add-on from a copy of the source folder and run every operator with
  ``wait=True`` (text, class, sketch image, viewport strokes, rig, failures, cancel), then disable it.
* ``extension``: install the packaged zip with Blender's own extension installer
  (``bpy.ops.extensions.package_install_files``) into the user repository of
  ``$BLENDER_USER_RESOURCES`` and run one class job with it.
* ``legacy``: install the same zip with the legacy add-on installer and enable it.
* ``installed``: enable the copy ``shapegen blender install`` put into ``$BLENDER_USER_RESOURCES``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import bpy

MODE, ARGS = sys.argv[1], json.loads(sys.argv[2])
import addon_utils  # noqa: E402  (importable once bpy has put Blender's script modules on sys.path)

OUT: dict = {}


def handler_counts() -> dict:
    return {
        name: len(getattr(bpy.app.handlers, name))
        for name in dir(bpy.app.handlers)
        if not name.startswith("_") and isinstance(getattr(bpy.app.handlers, name), list)
    }


def objects() -> set[str]:
    return {o.name for o in bpy.data.objects}


def describe(name: str) -> dict:
    ob = bpy.data.objects[name]
    mats = [m.name for m in getattr(ob.data, "materials", []) if m is not None] if ob.data is not None else []
    return {
        "type": ob.type,
        "collections": [c.name for c in ob.users_collection],
        "materials": mats,
        "location": list(ob.location),
        "selected": ob.select_get(),
        "parent": ob.parent.name if ob.parent else None,
        "modifiers": [m.type for m in getattr(ob, "modifiers", [])],
        "bones": len(ob.data.bones) if ob.type == "ARMATURE" else 0,
        "vertices": len(ob.data.vertices) if ob.type == "MESH" else 0,
    }


def run_op(op, **kwargs) -> dict:
    """Call a job operator with wait=True: its result or its error report, and the objects it added."""
    before = objects()
    start = time.perf_counter()
    try:
        result, error = sorted(op(wait=True, **kwargs)), ""
    except RuntimeError as exc:  # an operator that reports an ERROR raises when called from Python
        result, error = ["ERROR"], str(exc).strip()
    added = sorted(objects() - before)
    ops = sys.modules[f"{ADDON}.operators"]
    job = ops.QUEUE.get(bpy.context.window_manager.shapegen_last_job)
    return {
        "result": result,
        "error": error,
        "added": {n: describe(n) for n in added},
        "seconds": time.perf_counter() - start,
        "job": {
            "state": job.state,
            "message": job.message,
            "argv": job.argv,
            "preview": str(job.preview or ""),
            "out_dir": str(job.out_dir),
            "has_preview_icon": str(job.id) in ops.PREVIEWS,
        }
        if job
        else None,
        "active": bpy.context.view_layer.objects.active.name if bpy.context.view_layer.objects.active else None,
    }


def set_prefs() -> None:
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.executable = ARGS["executable"]
    prefs.output_dir = ARGS["output"]


def gp_strokes(polylines: list[list[list[float]]]) -> None:
    """A Grease Pencil (v3) object holding ``polylines`` (world points), created through the Python API."""
    gp = bpy.data.grease_pencils.new("Sketch")
    ob = bpy.data.objects.new("Sketch", gp)
    bpy.context.scene.collection.objects.link(ob)
    layer = gp.layers.new("Lines")
    drawing = layer.frames.new(bpy.context.scene.frame_current).drawing
    drawing.add_strokes([len(p) for p in polylines])
    for stroke, points in zip(drawing.strokes, polylines):
        for point, co in zip(stroke.points, points):
            point.position = co


LAYOUT_FUNCTIONS = {f.identifier: {p.identifier for p in f.parameters} for f in bpy.types.UILayout.bl_rna.functions}


class CheckedLayout:
    """A stand-in for ``UILayout`` (background Blender draws no panels) that checks each call
    against the real API: the function and its keyword names exist, ``prop`` names a property of
    its data, ``operator`` names a registered operator."""

    def __init__(self, calls: list) -> None:
        object.__setattr__(self, "calls", calls)

    def __getattr__(self, name):
        if name not in LAYOUT_FUNCTIONS:
            raise AttributeError(f"UILayout has no function {name}")

        def call(*args, **kwargs):
            unknown = set(kwargs) - LAYOUT_FUNCTIONS[name]
            if unknown:
                raise TypeError(f"UILayout.{name} takes no {sorted(unknown)}")
            if name == "prop" and args[1] not in args[0].bl_rna.properties:
                raise AttributeError(f"{args[0]} has no property {args[1]}")
            if name == "operator":
                group, op = args[0].split(".")
                getattr(getattr(bpy.ops, group), op).get_rna_type()
            self.calls.append([name, *[a for a in args if isinstance(a, str)], *[f"{k}={v}" for k, v in sorted(kwargs.items()) if k != "icon_value"]])
            return CheckedLayout(self.calls)

        return call

    def __setattr__(self, name, value):  # operator properties set on a button
        self.calls.append(["set", name, value])


def draw_panels(module) -> dict:
    """Each panel of the add-on drawn with a :class:`CheckedLayout`: its calls, or the error."""
    out = {}
    for cls in module.CLASSES:
        if not issubclass(cls, bpy.types.Panel):
            continue
        calls: list = []
        fake = type("Drawn", (), {"layout": CheckedLayout(calls)})()
        try:
            cls.draw(fake, bpy.context)
            out[cls.__name__] = calls
        except Exception as exc:
            out[cls.__name__] = f"{type(exc).__name__}: {exc}"
    return out


def source_session() -> None:
    global ADDON
    bpy.ops.wm.read_factory_settings(use_empty=True)
    handlers_before = handler_counts()
    addons = Path(ARGS["tmp"]) / "addons"
    shutil.copytree(ARGS["source"], addons / "shapegen_source")
    sys.path.insert(0, str(addons))
    ADDON = "shapegen_source"
    addon_utils.enable(ADDON, default_set=True, handle_error=None)
    set_prefs()
    ops = sys.modules[f"{ADDON}.operators"]
    props = bpy.context.scene.shapegen
    scene = bpy.context.scene
    scene.cursor.location = (1.0, 2.0, 0.5)

    props.prompt, props.extra_text = "a round table on a single pedestal", "--set resolution=32"
    OUT["text"] = run_op(bpy.ops.shapegen.text)
    props.shape_class, props.variations, props.extra_class = "chair", 2, "--steps 4 --resolution 32"
    OUT["class"] = run_op(bpy.ops.shapegen.generate)
    fast_las = "--set occupancy_steps=8 --set sdf_steps=8 --set preview_size=64"
    props.sketch_source, props.sketch_path, props.image_view, props.extra_sketch = "IMAGE", ARGS["sketch"], "45", fast_las
    OUT["sketch_image"] = run_op(bpy.ops.shapegen.sketch)

    # Viewport strokes, seen through an explicit view matrix (no 3D view in background mode).
    gp_strokes(ARGS["polylines"])
    props.sketch_source = "STROKES"
    OUT["sketch_strokes"] = run_op(bpy.ops.shapegen.sketch, view_matrix=ARGS["view_matrix"])
    OUT["sketch_strokes"]["azimuth"] = props.last_azimuth

    # Rig a humanoid imported from an OBJ (+Y up in the file; the importer turns it Z-up, facing -Y).
    bpy.ops.wm.obj_import(filepath=ARGS["humanoid"])
    body = bpy.context.selected_objects[0]
    body.location = (3.0, 0.0, 0.0)
    bpy.context.view_layer.objects.active = body
    props.extra_rig = "--config tiny"
    OUT["rig"] = run_op(bpy.ops.shapegen.rig)
    OUT["rig"]["body"] = {"name": body.name, "location": list(body.location), "dimensions": list(body.dimensions)}

    props.prompt, props.extra_text = "zzz", ""
    OUT["bad_prompt"] = run_op(bpy.ops.shapegen.text)
    props.sketch_source, props.sketch_path = "IMAGE", str(Path(ARGS["tmp"]) / "no_such_sketch.png")
    OUT["missing_sketch"] = run_op(bpy.ops.shapegen.sketch)

    # Cancel: a job started without waiting, polled as the timer would until it runs, then cancelled.
    props.prompt = "a chair with four legs"
    before = objects()
    bpy.ops.shapegen.text(wait=False)
    job = ops.QUEUE.get(bpy.context.window_manager.shapegen_last_job)
    deadline = time.monotonic() + 60
    while job.phase in ("queued", "starting") and time.monotonic() < deadline:  # running, and shapegen has started
        ops.tick()
        time.sleep(0.05)
    state_before_cancel = job.state
    bpy.ops.shapegen.cancel(job_id=job.id, wait=True)
    try:
        os.kill(job.proc.pid, 0)
        pid_alive = True
    except ProcessLookupError:
        pid_alive = False
    OUT["cancel"] = {
        "state_before": state_before_cancel,
        "phase_before": job.phase,
        "state": job.state,
        "returncode": job.proc.poll(),
        "pid_alive": pid_alive,
        "added": sorted(objects() - before),
    }
    props.sketch_source = "STROKES"
    OUT["panels_strokes"] = draw_panels(sys.modules[f"{ADDON}.panels"])
    props.sketch_source = "IMAGE"
    OUT["panels"] = draw_panels(sys.modules[f"{ADDON}.panels"])
    OUT["timer_registered_before_disable"] = bpy.app.timers.is_registered(ops.tick)

    addon_utils.disable(ADDON, default_set=True, handle_error=None)
    OUT["after_disable"] = {
        "timer": bpy.app.timers.is_registered(ops.tick),
        "handlers_before": handlers_before,
        "handlers_after": handler_counts(),
        "scene_prop": hasattr(bpy.types.Scene, "shapegen"),
        "operator": hasattr(bpy.types, "SHAPEGEN_OT_text"),
        "running": [j.id for j in ops.QUEUE.active],
        "previews": ops.PREVIEWS is None,
    }


def extension_session() -> None:
    global ADDON
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = bpy.ops.extensions.package_install_files(filepath=ARGS["zip"], repo="user_default", enable_on_install=True)
    ADDON = "bl_ext.user_default.shapegen"
    OUT["install"] = sorted(result)
    OUT["enabled"] = ADDON in bpy.context.preferences.addons
    OUT["files"] = sorted(p.name for p in Path(bpy.utils.user_resource("EXTENSIONS"), "user_default", "shapegen").iterdir())
    set_prefs()
    props = bpy.context.scene.shapegen
    props.shape_class, props.variations, props.extra_class = "table", 1, "--steps 2 --resolution 24"
    OUT["class"] = run_op(bpy.ops.shapegen.generate)
    addon_utils.disable(ADDON, default_set=True, handle_error=None)


def legacy_session() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    OUT["install"] = sorted(bpy.ops.preferences.addon_install(filepath=ARGS["zip"]))
    mod = addon_utils.enable("shapegen", default_set=True, handle_error=None)
    OUT["module_file"] = getattr(mod, "__file__", None)
    OUT["operator"] = hasattr(bpy.types, "SHAPEGEN_OT_text")
    addon_utils.disable("shapegen", default_set=True, handle_error=None)


def installed_session() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.extensions.repo_refresh_all()
    mod = addon_utils.enable("bl_ext.user_default.shapegen", default_set=True, handle_error=None)
    OUT["module_file"] = getattr(mod, "__file__", None)
    OUT["operator"] = hasattr(bpy.types, "SHAPEGEN_OT_text")
    prefs = bpy.context.preferences.addons["bl_ext.user_default.shapegen"].preferences
    ops = sys.modules["bl_ext.user_default.shapegen.preferences"]
    OUT["found_executable"] = ops.find_executable(prefs.executable)


ADDON = ""
{"source": source_session, "extension": extension_session, "legacy": legacy_session, "installed": installed_session}[MODE]()
print("JSON" + json.dumps(OUT))
