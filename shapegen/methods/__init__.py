"""Methods: one module per method, each described by one :class:`~shapegen.methods.base.MethodSpec`
in :data:`METHODS` (nothing registers itself by import side effect).

Adding a method: its module (config dataclass nesting a ``RunConfig`` at ``train``, a
LightningModule with ``CONFIG`` and ``for_training``), presets in ``configs/NAME/`` (at least
``tiny.yaml``), one line here, its tests; the contract tests then run it like every other method.
"""

from __future__ import annotations

from shapegen.methods.base import MethodSpec, RunConfig

METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec(
            "msdf", "shapegen.methods.msdf:MSDFConfig", "shapegen.methods.msdf:MSDFGenerator",
            "Mosaic-SDF: a flow-matching generator of local SDF grids (class-, text- or un-conditioned)",
            generate=True, may_differ=("data.root", "data.num_workers"),
            default_checkpoint="assets/models/msdf_demo/msdf_demo.ckpt",
            default_text_checkpoint="assets/models/msdf_text/msdf_text.ckpt",
        ),
        MethodSpec(
            "las", "shapegen.methods.las:LASConfig", "shapegen.methods.las:LASDiffusion",
            "LAS-Diffusion: sketch- and category-conditioned two-stage (occupancy, SDF) diffusion",
            generate=True, stages=("both", "occupancy", "sdf"),
            may_differ=("train.init_from", "train.occupancy.max_steps", "train.sdf.max_steps", "data.root", "data.extra_roots",
                        "data.num_workers"),
            default_checkpoint="assets/models/las_demo/las_demo.ckpt", export="shapegen.methods.las:export_model",
        ),
        MethodSpec(
            "occsdf", "shapegen.methods.occsdf:OccSDFConfig", "shapegen.methods.occsdf:OccSDFSystem",
            "Occ-SDF hybrid: a room from posed images with depth and normal priors",
            reconstruct=True, may_differ=("scene.path", "train.render_chunk", "train.preview_resolution", "train.mesh_resolution"),
        ),
        MethodSpec(
            "vsd", "shapegen.methods.vsd:VSDConfig", "shapegen.methods.vsd:VSDSystem",
            "VSD (ProlificDreamer): text-to-3D by variational score distillation on NeRF particles",
            stages=("nerf", "geometry", "texture"), pipeline="shapegen.methods.text_to_3d:train_stage",
        ),
        MethodSpec(
            "render_prior", "shapegen.methods.render_prior:RenderPriorConfig", "shapegen.methods.render_prior:RenderPrior",
            "a small pixel-space text-to-image diffusion prior trained on renders of the procedural shapes (VSD's --model render-prior)",
            may_differ=("data.root", "train.init_from", "train.precision", "train.ema_decay", "train.lr", "snr_gamma", "sample.*"),
            export="shapegen.methods.render_prior:export_pipeline",
        ),
    )
}
"""Method name -> its spec."""

__all__ = ["METHODS", "MethodSpec", "RunConfig"]
