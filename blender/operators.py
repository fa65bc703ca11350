# SPDX-License-Identifier: GPL-3.0-or-later
"""``bpy.ops.shapegen.*``: one operator per panel button, the job queue and the timer that polls it.

Each job operator builds a ``shapegen`` command line, queues it and returns at once; a
``bpy.app.timers`` callback (:func:`tick`) polls the queue every :data:`TICK_S` seconds without
blocking (non-blocking reads, no ``wait()``) and imports results in Blender's main thread. With
``wait=True`` (scripts, ``blender -b``, where timers do not run) the operator polls its job to the
end itself and reports its outcome.
"""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path

import bpy

from . import jobs, preferences, scene, sketch

TICK_S = 0.1
"""Seconds between two polls of the queue while jobs are active."""

QUEUE = jobs.JobQueue()
PREVIEWS = None
"""``bpy.utils.previews`` collection of the jobs' preview PNGs (key: job id)."""
TICKS: list[tuple[float, bool]] = []
"""``(seconds, imported)`` of the most recent timer callbacks (for the benchmark)."""

MSDF_CLASSES = ("chair", "lamp", "mug", "shelf", "table")
"""Classes of the shipped Mosaic-SDF model (assets/models/msdf_demo: ``config.classes``)."""
LAS_CATEGORIES = MSDF_CLASSES
"""Categories of the shipped LAS sketch model (assets/models/las_demo)."""


# ----------------------------------------------------------------------------- timer
def tick():
    """Poll the queue once (never blocks); import finished results; redraw the panels. Returns the
    next interval, or None (the timer ends) when no job is queued or running."""
    start = time.perf_counter()
    ended = QUEUE.poll()
    for job in ended:
        if job.state == jobs.FAILED:
            _notify("ERROR", f"shapegen {job.kind} '{job.name}': {job.message}")
        elif job.state == jobs.DONE:
            _notify("INFO", f"shapegen {job.kind} '{job.name}': imported {', '.join(job.objects)}")
    _redraw()
    TICKS.append((time.perf_counter() - start, any(j.state == jobs.DONE for j in ended)))
    del TICKS[:-1000]
    return TICK_S if QUEUE.active else None


def ensure_timer() -> None:
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=TICK_S, persistent=True)


def _redraw() -> None:
    wm = bpy.context.window_manager
    for window in getattr(wm, "windows", []):
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def _notify(level: str, message: str) -> None:
    """A report in Blender's status bar and Info log from outside an operator (the timer)."""
    print(f"shapegen: {message}")
    if not bpy.app.background:
        try:
            bpy.ops.shapegen.notify(level=level, message=message)
        except RuntimeError:
            pass


# ----------------------------------------------------------------------------- helpers
def _slug(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())[:limit].strip()
    return text or "shape"


def _folder_name(job_id: int, name: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{job_id:03d}-{re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_')[:30] or 'shape'}"


def _glbs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.glb") if not p.name.startswith("."))


def _load_preview(job: jobs.Job) -> None:
    if PREVIEWS is None or job.preview is None or not job.preview.is_file():
        return
    key = str(job.id)
    if key in PREVIEWS:
        del PREVIEWS[key]
    PREVIEWS.load(key, str(job.preview), "IMAGE")


def _in_a_window(fn):
    """``fn()`` with a window in the context: a timer callback has none, and operators such as the
    glTF importer expect one in a UI session (background mode has no windows and needs none)."""
    wm = bpy.context.window_manager
    if bpy.context.window is None and wm is not None and wm.windows:
        window = wm.windows[0]
        with bpy.context.temp_override(window=window, screen=window.screen):
            return fn()
    return fn()


class _JobOperator:
    """Shared by the four job operators: build the command (:meth:`command`), queue it, wait or not."""

    wait: bpy.props.BoolProperty(
        name="Wait", default=False, options={"SKIP_SAVE"}, description="Block until the job has finished (scripts and background mode)"
    )
    timeout: bpy.props.FloatProperty(
        name="Timeout", default=0.0, min=0.0, options={"SKIP_SAVE"}, description="With wait: cancel the job after this many seconds (0: no limit)"
    )

    kind = ""
    at_cursor = True

    def command(self, context, out_dir: Path) -> tuple[list[str], str, list[str]]:
        """``(arguments after 'shapegen --progress json', object name, extra options)``."""
        raise NotImplementedError

    def results(self, out_dir: Path) -> tuple[list[Path], Path | None]:
        """The GLBs to import and the preview PNG a finished job left in ``out_dir``."""
        return _glbs(out_dir), out_dir / "preview.png"

    def execute(self, context):
        prefs = preferences.preferences(context)
        try:
            prefix = preferences.command_prefix(prefs)
            job_id = jobs.next_id()
            out_dir = preferences.output_root(prefs) / _folder_name(job_id, self.kind)
            args, name, extra = self.command(context, out_dir)
        except (RuntimeError, ValueError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        # The CPU choice also hides GPUs from commands that take no --device (text-to-3d --method vsd, rig).
        QUEUE.env = {"CUDA_VISIBLE_DEVICES": ""} if prefs.device == "cpu" else {}
        QUEUE.max_running = prefs.max_jobs
        at_cursor, results = self.at_cursor, self.results

        def on_done(job: jobs.Job) -> None:
            glbs, job.preview = results(job.out_dir)
            if not glbs:
                raise RuntimeError(f"shapegen wrote no GLB into {job.out_dir}")
            _load_preview(job)
            job.objects = _in_a_window(lambda: scene.import_results(glbs, job.name, at_cursor=at_cursor))

        job = QUEUE.submit(jobs.Job(argv=[*prefix, *args, *extra], out_dir=out_dir, name=name, kind=self.kind, on_done=on_done, id=job_id))
        context.window_manager.shapegen_last_job = job.id
        if not self.wait:
            QUEUE.poll()  # starts it now when a slot is free
            ensure_timer()
            self.report({"INFO"}, f"shapegen job {job.id} queued: {name}")
            return {"FINISHED"}
        QUEUE.wait(job, timeout=self.timeout or None)
        if job.state == jobs.FAILED:
            self.report({"ERROR"}, job.message)
            return {"CANCELLED"}
        if job.state == jobs.CANCELLED:
            self.report({"WARNING"}, f"shapegen job {job.id} was cancelled")
            return {"CANCELLED"}
        self.report({"INFO"}, f"imported {', '.join(job.objects)}")
        return {"FINISHED"}


def _extra(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"extra options: {exc}") from exc


def _device(prefs) -> list[str]:
    return ["--device", prefs.device]


# ----------------------------------------------------------------------------- job operators
class SHAPEGEN_OT_text(_JobOperator, bpy.types.Operator):
    """Generate a shape from the prompt with shapegen text-to-3d, in the background"""

    bl_idname = "shapegen.text"
    bl_label = "Generate from Text"
    bl_options = {"REGISTER"}  # noqa: RUF012 (Blender reads a plain set)
    kind = "text"

    def command(self, context, out_dir):
        props = context.scene.shapegen
        prefs = preferences.preferences(context)
        prompt = props.prompt.strip()
        if not prompt:
            raise ValueError("type a prompt first, e.g. 'a round table on a single pedestal'")
        args = ["text-to-3d", prompt, "-o", str(out_dir), "--seed", str(props.seed)]
        if prefs.sd_model.strip() and props.use_vsd:
            args += ["--method", "vsd", "--model", prefs.sd_model.strip(), "--preset", props.vsd_preset]
        else:
            # The add-on shows the preview PNG and the shape itself: no turntable to render.
            args += ["--set", "turntable_frames=0", "--set", f"device={prefs.device}"]
        return args, _slug(prompt), _extra(props.extra_text)

    def results(self, out_dir):
        for name in ("textured.glb", "geometry.glb", "model.glb"):  # VSD stages, most refined first
            if (out_dir / name).is_file():
                renders = sorted((out_dir / "renders").glob("*.png"), key=lambda p: p.stat().st_mtime)
                return [out_dir / name], (renders[-1] if renders else None)
        return _glbs(out_dir), out_dir / "preview.png"


class SHAPEGEN_OT_generate(_JobOperator, bpy.types.Operator):
    """Generate variations of a class with the shipped Mosaic-SDF model (shapegen generate), in the background"""

    bl_idname = "shapegen.generate"
    bl_label = "Generate Class"
    bl_options = {"REGISTER"}  # noqa: RUF012 (Blender reads a plain set)
    kind = "class"

    def command(self, context, out_dir):
        props = context.scene.shapegen
        prefs = preferences.preferences(context)
        args = [
            "generate",
            "--method",
            "msdf",
            "--class",
            props.shape_class,
            "--num",
            str(props.variations),
            "--seed",
            str(props.seed),
            "-o",
            str(out_dir),
            *_device(prefs),
        ]
        return args, props.shape_class, _extra(props.extra_class)


class SHAPEGEN_OT_sketch(_JobOperator, bpy.types.Operator):
    """Turn a sketch (an image file, or the strokes drawn in the viewport as seen from this view) into a shape with shapegen sketch-to-3d"""

    bl_idname = "shapegen.sketch"
    bl_label = "Sketch to 3D"
    bl_options = {"REGISTER"}  # noqa: RUF012 (Blender reads a plain set)
    kind = "sketch"

    view_matrix: bpy.props.FloatVectorProperty(
        name="View matrix",
        size=16,
        default=(0.0,) * 16,
        options={"SKIP_SAVE"},
        description="Strokes: world-to-view matrix, row by row (all zeros: the current 3D view's)",
    )
    perspective: bpy.props.BoolProperty(
        name="Perspective",
        default=False,
        options={"SKIP_SAVE"},
        description="Strokes with an explicit view matrix: project in perspective (the view's lens) instead of orthographically",
    )

    def _view(self, context):
        """``(view_matrix, window_matrix or None)`` from the operator or the 3D view in the context."""
        if any(self.view_matrix):
            view = [list(self.view_matrix[4 * r : 4 * r + 4]) for r in range(4)]
            window = None
            if self.perspective:
                window = [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, -1.0, -0.2], [0, 0, -1.0, 0]]
            return view, window
        # From the side panel's button the context's region is the sidebar, whose region_data is
        # None: the view is the 3D view space's main region.
        rv3d = getattr(context, "region_data", None) or getattr(context.space_data, "region_3d", None)
        if rv3d is None:
            for area in getattr(context.screen, "areas", []) if context.screen else []:
                if area.type == "VIEW_3D":
                    rv3d = area.spaces.active.region_3d
                    break
        if rv3d is None:
            raise ValueError("no 3D view to see the strokes from: run this from a 3D view's side panel or pass view_matrix")
        return [list(r) for r in rv3d.view_matrix], ([list(r) for r in rv3d.window_matrix] if rv3d.is_perspective else None)

    def command(self, context, out_dir):
        props = context.scene.shapegen
        prefs = preferences.preferences(context)
        if props.sketch_source == "IMAGE":
            path = Path(bpy.path.abspath(props.sketch_path)) if props.sketch_path.strip() else None
            if path is None or not path.is_file():
                raise ValueError(f"sketch image '{props.sketch_path}' does not exist; choose an image file" if path else "choose a sketch image file first")
            view, name = props.image_view, path.stem
            sketch_file = str(path)
        else:
            strokes = scene.viewport_strokes(context)
            view_m, window_m = self._view(context)
            ink, azimuth, view_f, mirrored = sketch.sketch_from_strokes(strokes, view_m, window_m)
            out_dir.mkdir(parents=True, exist_ok=True)
            sketch_file = str(sketch.write_sketch(out_dir / "sketch.png", ink, mirrored))
            view, name = f"{view_f:g}", f"sketch {view_f:g}"
            props.last_azimuth = azimuth
        args = ["sketch-to-3d", sketch_file, "--view", view, "-o", str(out_dir / "sketch_shape.glb"), "--seed", str(props.seed), *_device(prefs)]
        if props.category != "NONE":
            args += ["--category", props.category]
        return args, name, _extra(props.extra_sketch)

    def results(self, out_dir):
        return [out_dir / "sketch_shape.glb"], out_dir / "sketch_shape.png"


class SHAPEGEN_OT_rig(_JobOperator, bpy.types.Operator):
    """Rig the selected humanoid mesh (standing, facing -Y) with shapegen rig, in the background"""

    bl_idname = "shapegen.rig"
    bl_label = "Rig Selected"
    bl_options = {"REGISTER"}  # noqa: RUF012 (Blender reads a plain set)
    kind = "rig"
    at_cursor = False  # the rigged copy lands on the mesh it was made from

    @classmethod
    def poll(cls, context):
        ob = context.active_object
        return ob is not None and ob.type == "MESH"

    def command(self, context, out_dir):
        props = context.scene.shapegen
        ob = context.active_object
        if ob is None or ob.type != "MESH":
            raise ValueError("select the humanoid mesh to rig")
        out_dir.mkdir(parents=True, exist_ok=True)
        mesh = scene.write_obj_yup(ob, context.evaluated_depsgraph_get(), out_dir / "input.obj")
        args = ["rig", str(mesh), "-o", str(out_dir / "rigged.glb"), "--preview", str(out_dir / "preview.png")]
        if props.t_pose:
            args.append("--t-pose")
        return args, f"{ob.name} rig", _extra(props.extra_rig)

    def results(self, out_dir):
        return [out_dir / "rigged.glb"], out_dir / "preview.png"


# ----------------------------------------------------------------------------- job control
class SHAPEGEN_OT_cancel(bpy.types.Operator):
    """Stop this job (its shapegen process is terminated, then killed if it does not exit)"""

    bl_idname = "shapegen.cancel"
    bl_label = "Cancel Job"
    bl_options = {"INTERNAL"}  # noqa: RUF012 (Blender reads a plain set)

    job_id: bpy.props.IntProperty()
    wait: bpy.props.BoolProperty(default=False, options={"SKIP_SAVE"}, description="Block until the process is gone")

    def execute(self, context):
        if not QUEUE.cancel(self.job_id):
            self.report({"WARNING"}, f"no running or queued job {self.job_id}")
            return {"CANCELLED"}
        job = QUEUE.get(self.job_id)
        if self.wait:
            QUEUE.wait(job)
        else:
            ensure_timer()
        return {"FINISHED"}


class SHAPEGEN_OT_clear(bpy.types.Operator):
    """Remove the finished, failed and cancelled jobs from the list"""

    bl_idname = "shapegen.clear"
    bl_label = "Clear Finished"
    bl_options = {"INTERNAL"}  # noqa: RUF012 (Blender reads a plain set)

    def execute(self, context):
        for job in [j for j in QUEUE.jobs if j.state in jobs.ENDED]:
            QUEUE.jobs.remove(job)
            if PREVIEWS is not None and str(job.id) in PREVIEWS:
                del PREVIEWS[str(job.id)]
        return {"FINISHED"}


class SHAPEGEN_OT_notify(bpy.types.Operator):
    """Show a job's outcome as a report (called by the polling timer)"""

    bl_idname = "shapegen.notify"
    bl_label = "shapegen Report"
    bl_options = {"INTERNAL"}  # noqa: RUF012 (Blender reads a plain set)

    level: bpy.props.StringProperty(default="INFO")
    message: bpy.props.StringProperty()

    def execute(self, context):
        self.report({self.level}, self.message)
        return {"FINISHED"}


CLASSES = (SHAPEGEN_OT_text, SHAPEGEN_OT_generate, SHAPEGEN_OT_sketch, SHAPEGEN_OT_rig, SHAPEGEN_OT_cancel, SHAPEGEN_OT_clear, SHAPEGEN_OT_notify)


def register() -> None:
    global PREVIEWS
    import bpy.utils.previews

    PREVIEWS = bpy.utils.previews.new()


def unregister() -> None:
    """Stop every job (processes reaped), end the timer, free the previews."""
    global PREVIEWS
    QUEUE.shutdown()
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    if PREVIEWS is not None:
        bpy.utils.previews.remove(PREVIEWS)
        PREVIEWS = None
