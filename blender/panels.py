# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``shapegen`` tab of the 3D view's side panel (N): Text, Class, Sketch, Rig and Jobs."""

from __future__ import annotations

import bpy

from . import jobs, operators, preferences

LAS_VIEWS = [(v, f"{v} deg", f"The sketch is seen from azimuth {v} degrees (0: front, 90: right side, 180: back)") for v in ("0", "45", "90", "135", "180")]


class ShapegenSceneProps(bpy.types.PropertyGroup):
    prompt: bpy.props.StringProperty(
        name="Prompt", default="a round table on a single pedestal", description="What to make, e.g. 'a tall lamp with a wide shade'"
    )
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0, description="Noise seed; the same seed gives the same shape")
    use_vsd: bpy.props.BoolProperty(
        name="VSD (Stable Diffusion)", default=False, description="ProlificDreamer with the Stable Diffusion model set in the preferences (minutes to hours)"
    )
    vsd_preset: bpy.props.EnumProperty(
        name="Preset",
        default="fast",
        items=[("tiny", "Tiny", "CPU smoke run, seconds; meaningless result"), ("fast", "Fast", "GPU"), ("paper", "Paper", "GPU, the paper's settings")],
    )
    shape_class: bpy.props.EnumProperty(name="Class", items=[(c, c.title(), f"A {c}") for c in operators.MSDF_CLASSES])
    variations: bpy.props.IntProperty(name="Variations", default=2, min=1, max=16, description="How many shapes to make")
    sketch_source: bpy.props.EnumProperty(
        name="Sketch",
        items=[
            ("STROKES", "Viewport Strokes", "Annotation / Grease Pencil strokes, as seen from this 3D view"),
            ("IMAGE", "Image File", "A sketch image: dark strokes on light paper"),
        ],
    )
    sketch_path: bpy.props.StringProperty(name="Image", subtype="FILE_PATH", default="")
    image_view: bpy.props.EnumProperty(name="View", items=LAS_VIEWS, default="45", description="Azimuth the image's sketch is seen from")
    category: bpy.props.EnumProperty(
        name="Category", items=[("NONE", "Any", "Let the sketch decide"), *[(c, c.title(), f"A {c}") for c in operators.LAS_CATEGORIES]]
    )
    last_azimuth: bpy.props.FloatProperty(name="View azimuth", default=0.0)
    t_pose: bpy.props.BoolProperty(name="T-pose", default=False, description="The mesh stands in a T-pose (arms horizontal)")
    extra_text: bpy.props.StringProperty(name="Extra options", default="", description="More shapegen text-to-3d options, e.g. --set resolution=96")
    extra_class: bpy.props.StringProperty(name="Extra options", default="", description="More shapegen generate options, e.g. --steps 10")
    extra_sketch: bpy.props.StringProperty(name="Extra options", default="", description="More shapegen sketch-to-3d options")
    extra_rig: bpy.props.StringProperty(name="Extra options", default="", description="More shapegen rig options, e.g. --config tiny")


class _Panel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "shapegen"


class SHAPEGEN_PT_main(_Panel, bpy.types.Panel):
    bl_idname = "SHAPEGEN_PT_main"
    bl_label = "shapegen"

    def draw(self, context):
        prefs = preferences.preferences(context)
        exe = preferences.find_executable(prefs.executable)
        row = self.layout.row()
        row.label(text="Ready" if exe else "shapegen not found (see preferences)", icon="CHECKMARK" if exe else "ERROR")
        self.layout.prop(context.scene.shapegen, "seed")


class SHAPEGEN_PT_text(_Panel, bpy.types.Panel):
    bl_idname = "SHAPEGEN_PT_text"
    bl_label = "Text"
    bl_parent_id = "SHAPEGEN_PT_main"

    def draw(self, context):
        props, layout = context.scene.shapegen, self.layout
        layout.prop(props, "prompt", text="")
        if preferences.preferences(context).sd_model.strip():
            layout.prop(props, "use_vsd")
            if props.use_vsd:
                layout.prop(props, "vsd_preset")
        layout.prop(props, "extra_text")
        layout.operator("shapegen.text", icon="OUTLINER_OB_FONT")


class SHAPEGEN_PT_class(_Panel, bpy.types.Panel):
    bl_idname = "SHAPEGEN_PT_class"
    bl_label = "Class"
    bl_parent_id = "SHAPEGEN_PT_main"

    def draw(self, context):
        props, layout = context.scene.shapegen, self.layout
        layout.prop(props, "shape_class")
        layout.prop(props, "variations")
        layout.prop(props, "extra_class")
        layout.operator("shapegen.generate", icon="MESH_MONKEY")


class SHAPEGEN_PT_sketch(_Panel, bpy.types.Panel):
    bl_idname = "SHAPEGEN_PT_sketch"
    bl_label = "Sketch"
    bl_parent_id = "SHAPEGEN_PT_main"

    def draw(self, context):
        props, layout = context.scene.shapegen, self.layout
        layout.prop(props, "sketch_source", expand=True)
        if props.sketch_source == "IMAGE":
            layout.prop(props, "sketch_path")
            layout.prop(props, "image_view")
        else:
            layout.label(text="Draw with Annotate (or a Grease Pencil object),", icon="GREASEPENCIL")
            layout.label(text="then sketch from the front, side or a 45 deg view")
            rv3d = getattr(context.space_data, "region_3d", None)  # the sidebar's own region_data is None
            if rv3d is not None:
                from . import sketch

                az = sketch.view_azimuth([list(row) for row in rv3d.view_matrix])
                view, mirrored = sketch.las_view(az)
                layout.label(text=f"This view: azimuth {az:.0f} -> LAS view {view:g}{' (mirrored)' if mirrored else ''}")
        layout.prop(props, "category")
        layout.prop(props, "extra_sketch")
        layout.operator("shapegen.sketch", icon="OUTLINER_OB_GREASEPENCIL")


class SHAPEGEN_PT_rig(_Panel, bpy.types.Panel):
    bl_idname = "SHAPEGEN_PT_rig"
    bl_label = "Rig"
    bl_parent_id = "SHAPEGEN_PT_main"

    def draw(self, context):
        props, layout = context.scene.shapegen, self.layout
        ob = context.active_object
        layout.label(text=f"Mesh: {ob.name}" if ob is not None and ob.type == "MESH" else "Select a standing humanoid mesh", icon="ARMATURE_DATA")
        layout.prop(props, "t_pose")
        layout.prop(props, "extra_rig")
        layout.operator("shapegen.rig", icon="OUTLINER_OB_ARMATURE")


class SHAPEGEN_PT_jobs(_Panel, bpy.types.Panel):
    bl_idname = "SHAPEGEN_PT_jobs"
    bl_label = "Jobs"
    bl_parent_id = "SHAPEGEN_PT_main"

    def draw(self, context):
        layout = self.layout
        queue = operators.QUEUE
        if not queue.jobs:
            layout.label(text="No jobs yet")
            return
        for job in reversed(queue.jobs[-8:]):
            box = layout.box()
            row = box.row()
            icon = {jobs.DONE: "CHECKMARK", jobs.FAILED: "ERROR", jobs.CANCELLED: "X"}.get(job.state, "SORTTIME")
            row.label(text=f"{job.id}: {job.kind} '{job.name}'", icon=icon)
            if job.state not in jobs.ENDED:
                row.operator("shapegen.cancel", text="", icon="CANCEL").job_id = job.id
                box.progress(factor=job.fraction, type="BAR", text=job.status_text)
            elif job.state == jobs.FAILED:
                box.label(text=job.message, icon="ERROR")
            previews = operators.PREVIEWS
            if job.state == jobs.DONE and previews is not None and str(job.id) in previews:
                box.template_icon(icon_value=previews[str(job.id)].icon_id, scale=6.0)
        layout.operator("shapegen.clear", icon="TRASH")


CLASSES = (ShapegenSceneProps, SHAPEGEN_PT_main, SHAPEGEN_PT_text, SHAPEGEN_PT_class, SHAPEGEN_PT_sketch, SHAPEGEN_PT_rig, SHAPEGEN_PT_jobs)
