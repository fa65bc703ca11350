"""renderers: cameras, rays, ray marching, volume rendering and differentiable mesh
rasterisation shared by all of shapegen.

This package never imports :mod:`shapegen`. A pure-torch backend defines correctness and
runs on CPU and CUDA; a nerfacc backend is used on CUDA when available
(``backend="auto" | "torch" | "nerfacc"``, see :mod:`renderers.backends`).

Public names are re-exported lazily (``from renderers import volume_render`` imports only
the module that defines it), so ``import renderers`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "cameras": [
        "Intrinsics",
        "CameraBatch",
        "look_at",
        "orbit_pose",
        "opengl_to_opencv",
        "opencv_to_opengl",
        "project_points",
        "sample_cameras_on_sphere",
    ],
    "rays": ["Rays", "RayBounds", "generate_rays", "ray_aabb_intersect", "ray_sphere_intersect"],
    "samples": ["RaySamples"],
    "samplers": ["uniform_bins", "uniform_samples", "sample_pdf", "importance_samples"],
    "occupancy_grid": ["OccupancyGrid"],
    "sdf_samplers": ["ErrorBoundedSampler", "ErrorBoundedSamples"],
    "sphere_tracing": ["SphereTraceOutput", "sphere_trace", "sdf_normals"],
    "volume": [
        "RenderOutput",
        "render_weights",
        "volume_render",
        "accumulate_along_rays",
        "volsdf_density",
        "neus_alpha",
        "neus_alpha_from_gradient",
        "occupancy_alpha",
        "LaplaceDensity",
        "NeuSVariance",
    ],
    "rasterize": [
        "Rasterization",
        "MeshRender",
        "rasterize",
        "interpolate",
        "antialias",
        "face_neighbors",
        "vertex_normals",
        "face_normals",
        "texture_sample",
        "render_gbuffers",
    ],
    "backends": ["BackendUnavailable", "get_backend"],
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"renderers.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'renderers' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
