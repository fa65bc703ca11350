"""UV atlases and texture baking: from a field or vertex colours to glTF PBR textures.

Conventions:
    UVs follow glTF: ``(u, v)`` in [0, 1], origin at the top-left of the image, so texel
    ``(row i, column j)`` of an ``R x R`` texture has its centre at ``((j + .5) / R, (i + .5) / R)``.
    Colours (``color_fn`` outputs, vertex colours, base-colour textures) are sRGB display
    values in [0, 1]; roughness and metallic are linear scalars in [0, 1].

Baking rasterises every triangle in UV space (:func:`renderers.preview.triangle_fragments`),
maps each covered texel centre to a surface point by its barycentrics, and evaluates the
given callables there. Texels in the gutter (up to ``padding`` texels around every chart) are
given the nearest chart triangle and evaluated at the clamped barycentric point, so bilinear
filtering and mip-mapping across chart borders read sensible values and no seams show.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from renderers.preview import barycentric_2d, triangle_fragments
from shapegen.errors import ShapegenError
from shapegen.geometry.mesh import Mesh, PBRMaterial

log = logging.getLogger(__name__)

__all__ = ["bake_textures", "bake_vertex_colors", "uv_atlas", "uv_rasterize"]

FieldFn = Callable[[Float[Tensor, "N 3"]], Tensor]

# The 8-neighbourhood used to grow charts into the gutter.
_NEIGHBOURS = [(-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)]


def uv_atlas(
    mesh: Mesh,
    *,
    method: Literal["auto", "xatlas", "grid"] = "auto",
    resolution: int = 1024,
    padding: int = 4,
) -> Mesh:
    """Give ``mesh`` a non-overlapping UV atlas, splitting vertices along seams.

    Args:
        mesh: any triangle mesh; vertex colours are carried over to the split vertices.
        method: ``"xatlas"`` (charts by xatlas, ``pip install xatlas``), ``"grid"`` (one chart per
            triangle on a regular grid: always works, wasteful, uniform texel size per triangle
            regardless of its area), or ``"auto"`` (xatlas when it imports, else grid).
        resolution: texture size the packing is planned for (charts keep ``padding`` texels apart).
        padding: texels between charts at ``resolution``.

    Returns:
        A new mesh with per-vertex ``uv`` in [0, 1] (glTF convention); vertices on UV seams are
        duplicated, so ``num_vertices`` grows. Faces keep their order and winding.

    Raises:
        ShapegenError: if ``method="xatlas"`` but xatlas is not installed, or the mesh is empty.
    """
    if mesh.num_faces == 0:
        raise ShapegenError("cannot build a UV atlas for a mesh without faces")
    if method in ("auto", "xatlas"):
        try:
            import xatlas
        except ImportError:
            if method == "xatlas":
                raise ShapegenError(
                    "uv_atlas(method='xatlas') needs xatlas: pip install xatlas (or use method='grid')"
                ) from None
            log.info("xatlas is not installed; using the grid UV atlas")
        else:
            return _xatlas_atlas(mesh, xatlas, resolution, padding)
    if method not in ("auto", "xatlas", "grid"):
        raise ShapegenError(f"unknown UV atlas method {method!r}; choose auto, xatlas or grid")
    return _grid_atlas(mesh, resolution, padding)


def _xatlas_atlas(mesh: Mesh, xatlas, resolution: int, padding: int) -> Mesh:
    atlas = xatlas.Atlas()
    atlas.add_mesh(
        mesh.vertices.detach().cpu().numpy(), mesh.faces.detach().cpu().numpy().astype(np.uint32)
    )
    pack = xatlas.PackOptions()
    pack.resolution = resolution
    pack.padding = padding
    pack.bilinear = True
    atlas.generate(xatlas.ChartOptions(), pack)
    vmapping, indices, uvs = atlas[0]
    vmap = torch.from_numpy(vmapping.astype(np.int64)).to(mesh.device)
    return Mesh(
        mesh.vertices[vmap],
        torch.from_numpy(indices.astype(np.int64)).to(mesh.device),
        None if mesh.vertex_colors is None else mesh.vertex_colors[vmap],
        torch.from_numpy(uvs.astype(np.float32)).to(mesh.device),
        mesh.material,
    )


def _grid_atlas(mesh: Mesh, resolution: int, padding: int) -> Mesh:
    num_faces = mesh.num_faces
    cols = int(np.ceil(np.sqrt(num_faces)))
    cell = 1.0 / cols
    pad = min(padding / resolution, 0.25 * cell)
    k = torch.arange(num_faces, device=mesh.device)
    origin = (
        torch.stack([(k % cols).float(), torch.div(k, cols, rounding_mode="floor").float()], -1)
        * cell
        + pad
    )
    size = cell - 2 * pad
    # A right triangle per cell; every face gets its own three vertices (all edges are seams).
    corners = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], device=mesh.device) * size
    uv = (origin[:, None, :] + corners[None]).reshape(-1, 2)
    flat = mesh.faces.reshape(-1)
    return Mesh(
        mesh.vertices[flat],
        torch.arange(3 * num_faces, device=mesh.device).view(num_faces, 3),
        None if mesh.vertex_colors is None else mesh.vertex_colors[flat],
        uv,
        mesh.material,
    )


def uv_rasterize(
    uv: Float[Tensor, "V 2"], faces: Int[Tensor, "F 3"], resolution: int, padding: int = 0
) -> tuple[Int[Tensor, "H W"], Float[Tensor, "H W 3"]]:
    """Which triangle owns each texel, and where, in UV space.

    Args:
        uv: per-vertex UVs (glTF convention).
        faces: triangles.
        resolution: texture side R.
        padding: grow every chart by this many texels into empty neighbours; gutter texels get
            the neighbouring triangle and their barycentrics clamped onto it.

    Returns:
        ``(face_id, bary)``: ``R R`` face index (-1 for empty texels) and ``R R 3`` barycentric
        weights (non-negative, rows sum to 1 where covered).
    """
    r = resolution
    xy = uv.detach().float().cpu()[faces.cpu()] * r
    face_id = torch.full((r * r,), -1, dtype=torch.int64)
    for pix, face, _ in triangle_fragments(xy, r, r):
        face_id[pix] = face
    face_id = face_id.view(r, r)
    for _ in range(padding):
        empty = face_id < 0
        if not empty.any():
            break
        grown = face_id.clone()
        for di, dj in _NEIGHBOURS:
            shifted = torch.full_like(face_id, -1)
            shifted[max(di, 0) : r + min(di, 0), max(dj, 0) : r + min(dj, 0)] = face_id[
                max(-di, 0) : r + min(-di, 0), max(-dj, 0) : r + min(-dj, 0)
            ]
            take = (grown < 0) & (shifted >= 0)
            grown = torch.where(take, shifted, grown)
        face_id = grown
    # Barycentrics of each texel centre with respect to its triangle, clamped onto it.
    bary = torch.zeros(r, r, 3)
    hit = face_id >= 0
    ii, jj = torch.nonzero(hit, as_tuple=True)
    if ii.numel():
        tri = xy[face_id[hit]]
        p = torch.stack([jj.float() + 0.5, ii.float() + 0.5], -1)
        a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
        area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
        safe = torch.where(area.abs() > 1e-12, area, torch.ones_like(area))
        w = barycentric_2d(tri, p, safe)
        w = torch.where((area.abs() > 1e-12)[:, None], w, torch.full_like(w, 1 / 3)).clamp_min(0)
        w = w / w.sum(-1, keepdim=True).clamp_min(1e-20)
        bary[hit] = w
    return face_id.to(uv.device), bary.to(uv.device)


def _check_uv(mesh: Mesh) -> None:
    if mesh.uv is None:
        raise ShapegenError("baking needs UVs; call shapegen.geometry.texture.uv_atlas(mesh) first")
    if mesh.num_faces == 0:
        raise ShapegenError("cannot bake textures for a mesh without faces")


def _evaluate(
    fn: FieldFn, points: Tensor, allowed: tuple[int, ...], name: str, chunk: int
) -> Tensor:
    """Evaluate ``fn`` in chunks without gradients; returns ``N C`` floats clamped to [0, 1]."""
    out = []
    with torch.no_grad():
        for start in range(0, points.shape[0], chunk):
            part = points[start : start + chunk]
            value = torch.as_tensor(fn(part)).float().to(points.device)
            value = value[:, None] if value.ndim == 1 else value
            if value.ndim != 2 or value.shape[0] != part.shape[0] or value.shape[1] not in allowed:
                want = " or ".join(f"N x {c}" for c in allowed)
                raise ValueError(
                    f"{name} must map N x 3 points to {want} values, got {tuple(value.shape)}"
                )
            out.append(value)
    values = torch.cat(out) if out else torch.zeros(0, allowed[0], device=points.device)
    if not torch.isfinite(values).all():
        raise ShapegenError(
            f"{name} returned NaN or infinite values; check the field before baking"
        )
    return values.clamp(0, 1)


def _to_image(values: Tensor, hit: Tensor, channels: int) -> Float[Tensor, "H W C"]:
    """Scatter per-texel values into an image; empty texels get the mean (keeps mip-maps clean)."""
    image = torch.empty(*hit.shape, channels, device=values.device)
    image[:] = values.mean(0) if values.numel() else 0.5
    image[hit] = values
    return image


def bake_textures(
    mesh: Mesh,
    color_fn: FieldFn,
    resolution: int = 1024,
    *,
    roughness_fn: FieldFn | None = None,
    metallic_fn: FieldFn | None = None,
    padding: int = 4,
    chunk_size: int = 2**18,
) -> Mesh:
    """Bake fields evaluated on the surface into glTF metallic-roughness textures.

    Args:
        mesh: a mesh with ``uv`` (see :func:`uv_atlas`).
        color_fn: surface points ``N 3`` (mesh frame) -> ``N 3`` (or ``N 4`` with alpha) sRGB
            colours in [0, 1]; evaluated under ``torch.no_grad`` in chunks of ``chunk_size``.
        resolution: texture side in texels.
        roughness_fn: optional points -> ``N`` or ``N 1`` roughness in [0, 1].
        metallic_fn: optional points -> ``N`` or ``N 1`` metallic in [0, 1].
        padding: gutter width in texels filled around every chart.
        chunk_size: points per call of the callables.

    Returns:
        A copy of ``mesh`` (same vertices, faces, UVs; vertex colours dropped because glTF
        multiplies ``COLOR_0`` into the base colour) with a :class:`PBRMaterial`. When a
        roughness or metallic field is given, the ``metallic_roughness_texture`` holds
        G = roughness, B = metallic (the missing one at the material's default) and both
        factors are 1, as glTF multiplies texture by factor.
    """
    _check_uv(mesh)
    face_id, bary = uv_rasterize(mesh.uv, mesh.faces, resolution, padding)
    hit = face_id >= 0
    tri = mesh.vertices[mesh.faces[face_id[hit]]]
    points = (bary[hit][:, :, None] * tri).sum(1)
    color = _evaluate(color_fn, points, (3, 4), "color_fn", chunk_size)
    base = PBRMaterial() if mesh.material is None else mesh.material
    material = PBRMaterial(
        base_color_texture=_to_image(color, hit, color.shape[1]),
        metallic_factor=base.metallic_factor,
        roughness_factor=base.roughness_factor,
        normal_texture=base.normal_texture,
        name=base.name,
    )
    if roughness_fn is not None or metallic_fn is not None:

        def scalar(fn: FieldFn | None, name: str, default: float) -> Tensor:
            if fn is None:
                return torch.full((points.shape[0], 1), default, device=points.device)
            return _evaluate(fn, points, (1,), name, chunk_size)

        rough = scalar(roughness_fn, "roughness_fn", base.roughness_factor)
        metal = scalar(metallic_fn, "metallic_fn", base.metallic_factor)
        # glTF layout: R unused (occlusion when packed; 1 = unoccluded), G roughness, B metallic.
        mr = torch.cat([torch.ones_like(rough), rough, metal], -1)
        material.metallic_roughness_texture = _to_image(mr, hit, 3)
        material.metallic_factor = material.roughness_factor = 1.0
    return Mesh(mesh.vertices, mesh.faces, None, mesh.uv, material)


def bake_vertex_colors(mesh: Mesh, resolution: int = 1024, *, padding: int = 4) -> Mesh:
    """Turn per-vertex colours into a base-colour texture (for viewers that ignore ``COLOR_0``).

    Colours are interpolated with the barycentrics of each texel inside its triangle, so the
    texture reproduces exactly what vertex-colour shading shows.

    Args:
        mesh: a mesh with ``uv`` and ``vertex_colors``.
        resolution: texture side in texels.
        padding: gutter width in texels.

    Returns:
        A copy with a :class:`PBRMaterial` whose ``base_color_texture`` holds the colours and
        without ``vertex_colors`` (glTF would multiply them into the texture a second time).
    """
    _check_uv(mesh)
    if mesh.vertex_colors is None:
        raise ShapegenError("bake_vertex_colors needs a mesh with vertex_colors")
    face_id, bary = uv_rasterize(mesh.uv, mesh.faces, resolution, padding)
    hit = face_id >= 0
    colors = mesh.vertex_colors[mesh.faces[face_id[hit]]]
    values = (bary[hit][:, :, None] * colors).sum(1).clamp(0, 1)
    if values.shape[1] == 4 and torch.all(values[:, 3] == 1):
        values = values[:, :3]
    base = PBRMaterial() if mesh.material is None else mesh.material
    material = PBRMaterial(
        base_color_texture=_to_image(values, hit, values.shape[1]),
        metallic_roughness_texture=base.metallic_roughness_texture,
        metallic_factor=base.metallic_factor,
        roughness_factor=base.roughness_factor,
        normal_texture=base.normal_texture,
        name=base.name,
    )
    return Mesh(mesh.vertices, mesh.faces, None, mesh.uv, material)
