"""Responsiveness of the Blender add-on while shapegen jobs run, and the time from button to object.

A background Blender (bpy) session enables the add-on from ``blender/``, presses the Text button
(the default prompt and settings) and the Sketch button (viewport strokes of a chair drawn as a
Grease Pencil object, seen from azimuth 45), then calls the add-on's timer callback every
``TICK_S`` seconds, as Blender's event loop would, until each job's object is in the scene. It
times every callback: while the job runs, a callback only drains the job's output and checks its
exit (the target is under 20 ms); the last one also imports the GLB. ``--picture`` renders the
sketch scene (the strokes beside the shape they gave) with Workbench for the README.

Usage: ``python scripts/bench_blender.py [--picture docs/blender_sketch.png] [--no-write]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_MS = 20.0

# A chair drawn as 3D wire strokes in Blender's world (Z up, front towards -Y): seat, legs, back.
CHAIR = [
    [[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.5, 0.5, 0.0], [-0.5, 0.5, 0.0], [-0.5, -0.5, 0.0]],
    *[[[x, y, 0.0], [x, y, -0.9]] for x in (-0.45, 0.45) for y in (-0.45, 0.45)],
    [[-0.5, 0.5, 0.0], [-0.5, 0.5, 1.0], [0.5, 0.5, 1.0], [0.5, 0.5, 0.0]],
]


def child(args: dict) -> None:
    """The bpy session (run in its own process: bpy imports once per process)."""
    # Blender puts USER_SCRIPTS/addons on its add-on path (and sys.path) when bpy starts, if it exists then.
    addons = Path(args["tmp"]) / "addons"
    shutil.copytree(REPO / "blender", addons / "shapegen_bench")
    os.environ["BLENDER_USER_SCRIPTS"] = args["tmp"]
    import bpy  # noqa: I001
    import addon_utils
    from mathutils import Euler, Vector

    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("shapegen_bench", default_set=True, handle_error=None)
    prefs = bpy.context.preferences.addons["shapegen_bench"].preferences
    prefs.executable, prefs.output_dir = args["executable"], str(Path(args["tmp"]) / "out")
    ops = sys.modules["shapegen_bench.operators"]
    scene = bpy.context.scene

    def press(op, **kw) -> dict:
        before = {o.name for o in bpy.data.objects}
        ops.TICKS.clear()
        t0 = time.perf_counter()
        op(wait=False, **kw)  # the button: queues the job and returns
        button_ms = (time.perf_counter() - t0) * 1000
        job = ops.QUEUE.get(bpy.context.window_manager.shapegen_last_job)
        while job.state not in ("done", "failed", "cancelled"):
            time.sleep(ops.TICK_S)
            ops.tick()
        if job.state != "done":
            raise SystemExit(f"error: the {job.kind} job ended {job.state}: {job.message}")
        running = [d * 1000 for d, imported in ops.TICKS if not imported]
        imports = [d * 1000 for d, imported in ops.TICKS if imported]
        return {
            "seconds": time.perf_counter() - t0,
            "button_ms": button_ms,
            "ticks": len(ops.TICKS),
            "max_tick_ms": max(running),
            "mean_tick_ms": sum(running) / len(running),
            "import_tick_ms": max(imports),
            "objects": sorted({o.name for o in bpy.data.objects} - before),
        }

    result = {"text": press(bpy.ops.shapegen.text)}

    # The strokes, and a camera at LAS azimuth 45, elevation 20 whose view the sketch is taken from.
    gp = bpy.data.grease_pencils.new("Sketch")
    strokes = bpy.data.objects.new("Sketch", gp)
    scene.collection.objects.link(strokes)
    mat = bpy.data.materials.new("Ink")
    bpy.data.materials.create_gpencil_data(mat)
    mat.grease_pencil.color = (0.02, 0.02, 0.02, 1.0)
    gp.materials.append(mat)
    drawing = gp.layers.new("Lines").frames.new(scene.frame_current).drawing
    drawing.add_strokes([len(p) for p in CHAIR])
    for stroke, points in zip(drawing.strokes, CHAIR):
        for point, co in zip(stroke.points, points):
            point.position, point.radius = co, 0.02
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    cam.data.type, cam.data.ortho_scale = "ORTHO", 4.6
    az, el = math.radians(45.0), math.radians(20.0)
    right = Vector((math.cos(az), math.sin(az), 0.0))
    cam.rotation_euler = Euler((math.pi / 2 - el, 0.0, az), "XYZ")
    cam.location = 10 * Vector((math.cos(el) * math.sin(az), -math.cos(el) * math.cos(az), math.sin(el))) + 1.1 * right
    bpy.context.view_layer.update()
    scene.shapegen.sketch_source = "STROKES"
    scene.cursor.location = 2.2 * right  # the shape lands beside the strokes in the camera's view
    view = [v for row in cam.matrix_world.inverted() for v in row]
    result["sketch"] = press(bpy.ops.shapegen.sketch, view_matrix=view)

    if args.get("picture"):
        world = bpy.data.worlds.new("White")
        world.color = (1.0, 1.0, 1.0)
        scene.world = world
        for name in result["text"]["objects"]:  # the picture shows the strokes and their shape only
            bpy.data.objects[name].hide_render = True
        scene.view_settings.view_transform = "Standard"  # white paper stays white
        scene.render.engine = "BLENDER_WORKBENCH"
        scene.display.shading.light, scene.display.shading.color_type = "STUDIO", "MATERIAL"
        scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 560, 300, 100
        scene.render.image_settings.color_mode = "RGB"
        scene.render.filepath = args["picture"]
        bpy.ops.render.render(write_still=True)
    addon_utils.disable("shapegen_bench", default_set=True, handle_error=None)
    print("JSON" + json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--picture", metavar="PNG", help="also render the sketch scene (strokes beside the shape) to this PNG")
    ap.add_argument("--no-write", action="store_true", help="print instead of writing docs/benchmarks.md")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    from shapegen.testing import bench as bl

    exe = Path(sys.executable).with_name("shapegen")
    if not exe.is_file():
        sys.exit(f"error: no shapegen console script beside {sys.executable}; pip install -e . first")
    load = Path("/proc/loadavg").read_text().strip() if Path("/proc/loadavg").is_file() else "n/a"
    with tempfile.TemporaryDirectory() as tmp:
        picture = str(Path(tmp) / "picture.png") if args.picture else None
        child_args = {"tmp": tmp, "executable": str(exe), "picture": picture}
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(child_args)], capture_output=True, text=True, check=False)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("JSON")]
        if proc.returncode != 0 or not lines:
            sys.exit(f"error: the Blender session failed:\n{proc.stderr[-3000:]}")
        res = json.loads(lines[-1][4:])
        if picture:
            from PIL import Image

            from shapegen.io import atomic_path

            with Image.open(picture) as im, atomic_path(args.picture) as tmp_png:  # a palette PNG: tens of KB for the README
                im.convert("RGB").quantize(64).save(tmp_png, optimize=True)
            print(f"wrote {args.picture} ({os.path.getsize(args.picture) // 1024} KB)")
    load_after = Path("/proc/loadavg").read_text().strip() if Path("/proc/loadavg").is_file() else "n/a"
    rows = [
        [
            name,
            f"{r['seconds']:.1f}",
            f"{r['button_ms']:.0f}",
            r["ticks"],
            f"{r['max_tick_ms']:.2f}",
            f"{r['mean_tick_ms']:.2f}",
            f"{r['import_tick_ms']:.0f}",
            ", ".join(r["objects"]),
        ]
        for name, r in (("text prompt (default settings)", res["text"]), ("sketch from viewport strokes, azimuth 45", res["sketch"]))
    ]
    body = (
        f"Background Blender {_blender_version()} (bpy), the add-on's timer callback called every 0.1 s as Blender's event loop "
        "calls it, one shapegen process at a time, on the CPU.\n\n"
        + bl.table(
            [
                "job",
                "button to object in scene (s)",
                "button (ms)",
                "timer calls",
                "longest call while running (ms)",
                "mean call while running (ms)",
                "call that imports (ms)",
                "objects",
            ],
            rows,
        )
        + f"\n\nTarget: every call while a job runs under {TARGET_MS:.0f} ms "
        f"({'met' if all(r['max_tick_ms'] < TARGET_MS for r in (res['text'], res['sketch'])) else 'NOT met'}). The one call that "
        "imports the GLB (glTF importer, material, collection, selection) blocks for the time shown. `cat /proc/loadavg`: "
        f"before `{load}`, after `{load_after}`."
    )
    bl.write_section("blender", "Blender add-on: panel responsiveness and time to object", body, dry_run=args.no_write)


def _blender_version() -> str:
    out = subprocess.run([sys.executable, "-c", "import bpy; print(bpy.app.version_string)"], capture_output=True, text=True, check=False)
    return out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else "?"


if __name__ == "__main__":
    main()
