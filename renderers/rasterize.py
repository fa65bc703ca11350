"""Differentiable triangle-mesh rasterisation in pure torch (an nvdiffrast-style split).

1. :func:`rasterize`: visibility. Per pixel, the id of the nearest triangle whose interior
   covers the pixel centre (-1 for background), found with bounding-box fragment
   enumeration and a scatter-min z-buffer (:func:`renderers.preview.rasterize`, shared with
   the CPU previews) or a Warp kernel (``backend="warp"``). Visibility is piecewise constant
   and carries no gradient. The perspective-correct barycentrics and the depth of the
   visible triangle are then **recomputed differentiably** from the projected vertices, so
   everything interpolated from them passes gradients to vertex positions (and poses).
2. :func:`interpolate`: vertex (or per-corner) attributes at each pixel.
3. :func:`antialias`: analytic silhouette anti-aliasing after Laine et al., "Modular
   Primitives for High-Performance Differentiable Rendering" (SIGGRAPH Asia 2020,
   arXiv:2011.03277), Sec. 3.3: for neighbouring pixels ``P, Q`` with different triangles
   where a silhouette edge of ``P``'s (nearer) triangle crosses the segment ``PQ`` at
   ``t`` (``0`` at P, ``1`` at Q), the edge is treated as a straight boundary through the
   two pixels' 1-pixel-wide footprints: ``Q`` gets ``(t - 1/2) (c_P - c_Q)`` when
   ``t > 1/2`` and ``P`` gets ``(1/2 - t) (c_Q - c_P)`` when ``t < 1/2``. Horizontal pairs
   handle edges steeper than 45 degrees and vertical pairs the others, so a pixel is not
   blended twice for one edge. ``t`` is differentiable in the vertex positions, which is
   what moves silhouettes under an image loss (e.g. a mask loss).
4. :func:`texture_sample`: bilinear texture lookups at interpolated UVs (``grid_sample``).

:func:`render_gbuffers` chains them into a :class:`MeshRender` (mask, anti-aliased alpha,
depth, interpolated and face normals, attributes, UVs, texture colour).

Frames and units (see :mod:`renderers.cameras`): world points in world units; poses are
camera-to-world with OpenGL axes; pixel ``(i, j)`` (row, column) has its centre at
``(u, v) = (j + 0.5, i + 0.5)``; depth is the distance along the camera's viewing axis.
UVs follow glTF: origin at the top-left texel corner, ``v`` runs down.

Deviations from nvdiffrast, on purpose: triangles with a vertex closer than ``near`` are
dropped, not clipped; rasterisation is two-sided (no back-face culling); coverage uses the
pixel centre with a small tolerance, so a centre on a shared edge goes to the nearer (then
lower-id) triangle.

This module never imports :mod:`shapegen`.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

from renderers.cameras import Intrinsics, project_points
from renderers.preview import barycentric_2d
from renderers.preview import rasterize as _rasterize_ids_torch

__all__ = [
    "MeshRender",
    "RasterBackend",
    "Rasterization",
    "antialias",
    "face_neighbors",
    "face_normals",
    "interpolate",
    "rasterize",
    "render_gbuffers",
    "texture_sample",
    "vertex_normals",
    "warp_import_error",
]

RasterBackend = Literal["auto", "torch", "warp"]
_log = logging.getLogger("renderers")
_logged: set[tuple[str, str, str]] = set()


@dataclass
class Rasterization:
    """Visibility and differentiable barycentrics of a batch of views (from :func:`rasterize`)."""

    face_id: Int[Tensor, "B H W"]
    """Index of the visible face per pixel, -1 for background (no gradient)."""
    bary: Float[Tensor, "B H W 3"]
    """Perspective-correct barycentric weights of the visible face (zero on background);
    differentiable in the vertex positions and poses."""
    depth: Float[Tensor, "B H W"]
    """View depth (world units along the viewing axis) of the visible surface, 0 on
    background; differentiable."""
    faces: Int[Tensor, "F 3"]
    """The rasterised faces (vertex indices)."""
    pixels: Float[Tensor, "B V 2"]
    """Vertex positions in pixels, ``(u, v)``; differentiable (used by :func:`antialias`)."""
    vertex_depth: Float[Tensor, "B V"]
    """View depth of each vertex."""
    near: float
    """Faces with a vertex at depth <= ``near`` were dropped."""

    @property
    def mask(self) -> Bool[Tensor, "B H W"]:
        """True where a face covers the pixel centre."""
        return self.face_id >= 0

    @property
    def height(self) -> int:
        return self.face_id.shape[1]

    @property
    def width(self) -> int:
        return self.face_id.shape[2]


@dataclass
class MeshRender:
    """Per-pixel buffers of a mesh render (from :func:`render_gbuffers`); batch first."""

    mask: Bool[Tensor, "B H W"]
    """Coverage of pixel centres (hard, no gradient)."""
    alpha: Float[Tensor, "B H W 1"]
    """Coverage after silhouette anti-aliasing (equals ``mask`` if anti-aliasing is off);
    differentiable in the vertex positions."""
    depth: Float[Tensor, "B H W"]
    """View depth (world units), 0 on background."""
    normals: Float[Tensor, "B H W 3"]
    """Interpolated area-weighted vertex normals, unit length, world frame; 0 on background."""
    face_normals: Float[Tensor, "B H W 3"]
    """Geometric normal of the visible face (right-hand rule on its vertex order), world frame."""
    attributes: Float[Tensor, "B H W C"] | None
    """Interpolated vertex attributes (anti-aliased when ``antialias=True``), if given."""
    uv: Float[Tensor, "B H W 2"] | None
    """Interpolated texture coordinates, if given."""
    texture: Float[Tensor, "B H W C"] | None
    """Bilinear texture lookups at ``uv`` (anti-aliased when ``antialias=True``), if given."""
    rasterization: Rasterization
    """The underlying visibility and barycentrics."""


def _batched(vertices: Tensor, c2w: Tensor) -> tuple[Tensor, Tensor]:
    c2w = c2w[None] if c2w.dim() == 2 else c2w
    vertices = vertices[None] if vertices.dim() == 2 else vertices
    b = max(c2w.shape[0], vertices.shape[0])
    return vertices.expand(b, *vertices.shape[1:]), c2w.expand(b, 4, 4)


_warp = None
_warp_error: str | None = None


def warp_import_error() -> str | None:
    """Why the Warp rasterisation backend cannot be used (None if it can)."""
    global _warp, _warp_error
    if _warp is None and _warp_error is None:
        try:
            _warp = importlib.import_module("renderers.backends.warp_raster")
        except Exception as exc:  # ImportError, or a broken native library
            _warp_error = (
                f"warp does not import ({type(exc).__name__}: {exc}); pip install warp-lang"
            )
    return _warp_error


def _select_backend(backend: RasterBackend, device: torch.device):
    """The module computing face ids: ``None`` for torch, else the Warp backend module."""
    if backend not in ("auto", "torch", "warp"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'warp', got {backend!r}")
    chosen, reason = None, ""
    if backend == "warp" or (backend == "auto" and device.type in ("cpu", "cuda")):
        err = warp_import_error()
        if err is None:
            chosen = _warp
        elif backend == "warp":
            from renderers.backends import BackendUnavailable

            raise BackendUnavailable(f"backend='warp': {err}")
        else:
            reason = f" ({err})"
    key = (backend, device.type, "torch" if chosen is None else "warp")
    if key not in _logged:
        _logged.add(key)
        _log.info(
            "renderers.rasterize: backend=%s on %s -> %s%s", backend, device.type, key[2], reason
        )
    return chosen


@torch.no_grad()
def _face_ids(
    pixels: Tensor, z: Tensor, faces: Tensor, near: float, height: int, width: int, backend
) -> Tensor:
    """Visible face per pixel, ``(B, H, W)``, -1 for background (no gradient)."""
    keep = (z[:, faces] > near).all(-1)  # (B, F): drop faces reaching behind the near plane
    if backend is not None:
        return backend.face_ids(pixels, z, faces, keep, height, width)
    out = []
    for b in range(pixels.shape[0]):  # one z-buffer per view; faces are binned inside
        kept = torch.nonzero(keep[b]).squeeze(1)
        fk = faces[kept]
        if fk.numel() == 0:
            out.append(torch.full((height, width), -1, dtype=torch.long, device=pixels.device))
            continue
        # 1/z is affine in screen space, so the z-test on -1/z is exact (smaller = nearer).
        ids, _ = _rasterize_ids_torch(pixels[b][fk].float(), -1.0 / z[b][fk].float(), height, width)
        out.append(torch.where(ids >= 0, kept[ids.clamp_min(0)], ids))
    return torch.stack(out)


def _gather_vertices(values: Tensor, tri: Tensor) -> Tensor:
    """``values (B, V, C)`` at vertex indices ``tri (B, ..., 3)`` -> ``(B, ..., 3, C)``."""
    b = torch.arange(values.shape[0], device=tri.device).view(-1, *([1] * (tri.dim() - 1)))
    return values[b, tri]


def rasterize(
    vertices: Float[Tensor, "*B V 3"],
    faces: Int[Tensor, "F 3"],
    c2w: Float[Tensor, "*B 4 4"],
    intrinsics: Intrinsics,
    *,
    near: float = 1e-3,
    backend: RasterBackend = "auto",
) -> Rasterization:
    """Rasterise a triangle mesh into ``B`` views.

    Args:
        vertices: world positions, ``(V, 3)`` shared by all views or ``(B, V, 3)``.
        faces: vertex indices per triangle (any winding; both sides are drawn).
        c2w: camera-to-world poses, OpenGL axes; ``(4, 4)`` or ``(B, 4, 4)``.
        intrinsics: pinhole intrinsics (image size, focal lengths in pixels).
        near: faces with a vertex at view depth <= ``near`` (world units) are dropped.
        backend: ``"torch"`` (the reference), ``"warp"`` (Warp kernels on CPU or CUDA) or
            ``"auto"`` (Warp when it imports and its kernel builds, else torch; logged once).
            Only visibility differs between them; barycentrics, depth and gradients are
            always computed in torch.

    Returns:
        A :class:`Rasterization`; ``bary`` and ``depth`` are differentiable in ``vertices``
        and ``c2w``.
    """
    faces = faces.long()
    vertices, c2w = _batched(vertices, c2w)
    h, w = intrinsics.height, intrinsics.width
    pixels, z = project_points(vertices, c2w, intrinsics, min_depth=near)
    chosen = _select_backend(backend, vertices.device)
    try:
        face_id = _face_ids(pixels.detach(), z.detach(), faces, near, h, w, chosen)
    except Exception as exc:
        if backend != "auto" or chosen is None:
            raise
        # auto: a Warp kernel that fails to build or launch falls back to torch for good.
        global _warp_error
        _warp_error = f"the warp kernel failed ({type(exc).__name__}: {exc})"
        _log.warning("renderers.rasterize: %s; using torch", _warp_error)
        face_id = _face_ids(pixels.detach(), z.detach(), faces, near, h, w, None)

    # Differentiable part: screen-space barycentrics of the pixel centre in the visible face,
    # then perspective correction (Eq.: b_i / z_i normalised; 1/z is affine in screen space).
    bsz = face_id.shape[0]
    flat = torch.nonzero(face_id.reshape(-1) >= 0).squeeze(1)
    bidx = torch.div(flat, h * w, rounding_mode="floor")
    pix = flat - bidx * (h * w)
    tri = faces[face_id.reshape(-1)[flat]]  # (K, 3)
    corners = pixels[bidx[:, None], tri]  # (K, 3, 2)
    zc = z[bidx[:, None], tri]  # (K, 3)
    centre = torch.stack([pix % w, torch.div(pix, w, rounding_mode="floor")], -1)
    screen = barycentric_2d(corners, centre.to(corners.dtype) + 0.5)
    wz = screen / zc
    inv_depth = wz.sum(-1)
    bary = torch.zeros(bsz * h * w, 3, dtype=pixels.dtype, device=pixels.device)
    bary = bary.index_put((flat,), wz / inv_depth[:, None]).view(bsz, h, w, 3)
    depth = torch.zeros(bsz * h * w, dtype=pixels.dtype, device=pixels.device)
    depth = depth.index_put((flat,), 1.0 / inv_depth).view(bsz, h, w)
    return Rasterization(face_id, bary, depth, faces, pixels, z, near)


def interpolate(
    attributes: Float[Tensor, "*B V C"],
    rast: Rasterization,
    faces: Int[Tensor, "F 3"] | None = None,
) -> Float[Tensor, "B H W C"]:
    """Interpolate vertex attributes with the perspective-correct barycentrics.

    Differentiable in ``attributes`` and, through ``rast.bary``, in the vertex positions.

    Args:
        attributes: per-vertex values, ``(V, C)`` shared by all views or ``(B, V, C)``.
        rast: the rasterisation.
        faces: optional attribute indices per face (e.g. UV seams, ``F 3`` into
            ``attributes``); default ``rast.faces``.

    Returns:
        ``(B, H, W, C)``; zero on background.
    """
    faces = rast.faces if faces is None else faces.long()
    bsz = rast.face_id.shape[0]
    attributes = attributes[None] if attributes.dim() == 2 else attributes
    attributes = attributes.expand(bsz, *attributes.shape[1:])
    if faces.shape[0] == 0:
        return attributes.new_zeros(*rast.face_id.shape, attributes.shape[-1])
    # Gather only at covered pixels; background stays zero.
    bsz, h, w = rast.face_id.shape
    flat_ids = rast.face_id.reshape(-1)
    flat = torch.nonzero(flat_ids >= 0).squeeze(1)
    bidx = torch.div(flat, h * w, rounding_mode="floor")
    values = attributes[bidx[:, None], faces[flat_ids[flat]]]  # (K, 3, C)
    bary = rast.bary.reshape(-1, 3)[flat].to(values.dtype)
    out = values.new_zeros(bsz * h * w, values.shape[-1])
    out = out.index_put((flat,), torch.einsum("kj,kjc->kc", bary, values))
    return out.view(bsz, h, w, -1)


def face_neighbors(faces: Int[Tensor, "F 3"]) -> Int[Tensor, "F 3"]:
    """The face across each edge ``k`` (vertices ``k``, ``k+1 mod 3``); -1 on boundary and
    non-manifold edges (both count as silhouettes for :func:`antialias`)."""
    faces = faces.long()
    n = faces.shape[0]
    a, b = faces, faces.roll(-1, dims=1)
    lo, hi = torch.minimum(a, b).reshape(-1), torch.maximum(a, b).reshape(-1)
    key = lo * (int(faces.max()) + 1 if n else 1) + hi
    order = torch.argsort(key, stable=True)
    _, counts = torch.unique_consecutive(key[order], return_counts=True)
    starts = (torch.cumsum(counts, 0) - counts)[counts == 2]  # manifold interior edges
    e0, e1 = order[starts], order[starts + 1]
    out = torch.full((3 * n,), -1, dtype=torch.long, device=faces.device)
    out[e0] = torch.div(e1, 3, rounding_mode="floor")
    out[e1] = torch.div(e0, 3, rounding_mode="floor")
    return out.view(n, 3)


def _signed_area2(p: Tensor) -> Tensor:
    a, b, c = p[..., 0, :], p[..., 1, :], p[..., 2, :]
    return (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (
        c[..., 0] - a[..., 0]
    )


def _edge_values(tri: Tensor, p: Tensor) -> Tensor:
    """Edge functions ``cross(v_{k+1} - v_k, p - v_k)`` of ``tri (K, 3, 2)`` at ``p (K, 2)``."""
    return _edge_value(tri, tri.roll(-1, dims=1), p[:, None, :])


def antialias(
    color: Float[Tensor, "B H W C"],
    rast: Rasterization,
    neighbors: Int[Tensor, "F 3"] | None = None,
) -> Float[Tensor, "B H W C"]:
    """Blend colours across silhouette edges so that silhouettes are differentiable.

    See the module docstring for the rule (nvdiffrast's analytic anti-aliasing). A pixel
    pair is blended only when the crossing edge of the nearer triangle is a silhouette: a
    boundary or non-manifold edge, an edge whose neighbouring face was dropped at the near
    plane, or one between a front- and a back-facing triangle in this view.

    Args:
        color: per-pixel values, e.g. from :func:`interpolate` or ``rast.mask``.
        rast: the rasterisation ``color`` was shaded from.
        neighbors: :func:`face_neighbors` of ``rast.faces`` (computed if None; pass it when
            rendering the same topology often).

    Returns:
        The anti-aliased colours; gradients reach ``color`` and the vertex positions.
    """
    faces = rast.faces
    if neighbors is None:
        neighbors = face_neighbors(faces)
    bsz, h, w = rast.face_id.shape
    silhouette, facing = _silhouette_edges(rast, neighbors)
    flat_ids = rast.face_id.reshape(-1)
    flat_depth = torch.where(flat_ids >= 0, rast.depth.detach().reshape(-1), torch.inf)
    col = color.reshape(bsz * h * w, -1)
    delta = torch.zeros_like(col)
    idx = torch.arange(bsz * h * w, device=flat_ids.device).view(bsz, h, w)
    pixels = rast.pixels.detach()
    for horizontal in (True, False):
        a = (idx[:, :, :-1] if horizontal else idx[:, :-1, :]).reshape(-1)
        b = a + (1 if horizontal else w)
        diff = flat_ids[a] != flat_ids[b]
        a, b = a[diff], b[diff]
        # P: the pixel with the nearer surface (background is infinitely far); Q: the other.
        a_front = flat_depth[a] <= flat_depth[b]
        p, q = torch.where(a_front, a, b), torch.where(a_front, b, a)
        fp, bidx = flat_ids[p], torch.div(p, h * w, rounding_mode="floor")
        # Only faces with a silhouette edge in this view can blend (cheap exact pre-filter).
        keep = torch.nonzero(silhouette[bidx, fp].any(-1)).squeeze(1)
        p, q, fp, bidx = p[keep], q[keep], fp[keep], bidx[keep]
        if p.numel() == 0:
            continue
        tri = faces[fp]
        corners = pixels[bidx[:, None], tri]  # (K, 3, 2)
        cp, cq = _centre(p, h, w, corners), _centre(q, h, w, corners)
        sign = facing[bidx, fp][:, None]
        ep = _edge_values(corners, cp) * sign  # >= 0: P inside its own triangle
        eq = _edge_values(corners, cq) * sign
        crosses = eq < 0  # ep >= 0 up to the coverage tolerance
        t_all = torch.where(crosses, ep / torch.where(crosses, ep - eq, torch.ones_like(ep)), 2.0)
        t, k = t_all.min(-1)  # the segment PQ leaves P's triangle through edge k
        # Edge direction: horizontal pairs take edges steeper than 45 degrees, vertical the rest.
        rows = torch.arange(k.numel(), device=k.device)
        dx, dy = (corners[rows, (k + 1) % 3] - corners[rows, k]).abs().unbind(-1)
        steep = dy >= dx if horizontal else dy < dx
        sel = torch.nonzero((t <= 1.0) & silhouette[bidx, fp, k] & steep).squeeze(1)
        if sel.numel() == 0:
            continue
        p, q, k = p[sel], q[sel], k[sel]
        # Differentiable crossing parameter t = e(P) / (e(P) - e(Q)) of edge k.
        v0 = rast.pixels[bidx[sel], faces[fp[sel], k]]
        v1 = rast.pixels[bidx[sel], faces[fp[sel], (k + 1) % 3]]
        e_p = _edge_value(v0, v1, cp[sel])
        t = e_p / (e_p - _edge_value(v0, v1, cq[sel]))
        colp, colq = col[p], col[q]
        # Q partly covered by P's triangle when the edge lies past the midpoint, else P partly
        # uncovered (1-D coverage of a 1-pixel footprint by a straight edge).
        grow = (t - 0.5).clamp_min(0)[:, None]
        shrink = (0.5 - t).clamp_min(0)[:, None]
        delta = delta.index_add(0, q, grow * (colp - colq)).index_add(0, p, shrink * (colq - colp))
    return (col + delta).view_as(color)


def _centre(flat: Tensor, h: int, w: int, like: Tensor) -> Tensor:
    pix = torch.remainder(flat, h * w)
    return torch.stack([pix % w, torch.div(pix, w, rounding_mode="floor")], -1).to(like.dtype) + 0.5


def _edge_value(v0: Tensor, v1: Tensor, p: Tensor) -> Tensor:
    d, q = v1 - v0, p - v0
    return d[..., 0] * q[..., 1] - d[..., 1] * q[..., 0]


@torch.no_grad()
def _silhouette_edges(rast: Rasterization, neighbors: Tensor) -> tuple[Tensor, Tensor]:
    """Per view, which face edges are silhouettes ``(B, F, 3)`` and each face's screen-space
    orientation (+1 / -1, ``(B, F)``)."""
    faces = rast.faces
    bsz = rast.pixels.shape[0]
    facing = torch.sign(_signed_area2(rast.pixels.detach()[:, faces]))  # (B, F)
    kept = (rast.vertex_depth.detach()[:, faces] > rast.near).all(-1)  # (B, F)
    nb = neighbors.clamp_min(0).reshape(-1)
    nb_kept = kept[:, nb].view(bsz, -1, 3)
    nb_facing = facing[:, nb].view(bsz, -1, 3)
    silhouette = (neighbors < 0)[None] | ~nb_kept | (nb_facing != facing[..., None])
    return silhouette, facing


def _face_cross(vertices: Tensor, faces: Tensor) -> Tensor:
    """Unnormalised face normals (twice the area), ``(..., F, 3)``."""
    a, b, c = (vertices[..., faces[:, i], :] for i in range(3))
    return torch.linalg.cross(b - a, c - a, dim=-1)


def vertex_normals(
    vertices: Float[Tensor, "*B V 3"], faces: Int[Tensor, "F 3"]
) -> Float[Tensor, "*B V 3"]:
    """Area-weighted unit vertex normals (right-hand rule on the face vertex order); differentiable."""
    faces = faces.long()
    fn = _face_cross(vertices, faces)
    vn = torch.zeros_like(vertices)
    for i in range(3):  # scatter each face's area-weighted normal to its three corners
        vn = vn.index_add(-2, faces[:, i], fn)
    return F.normalize(vn, dim=-1, eps=1e-20)


def face_normals(
    vertices: Float[Tensor, "*B V 3"], faces: Int[Tensor, "F 3"]
) -> Float[Tensor, "*B F 3"]:
    """Unit geometric face normals (right-hand rule on the vertex order); differentiable."""
    return F.normalize(_face_cross(vertices, faces.long()), dim=-1, eps=1e-20)


def texture_sample(
    texture: Float[Tensor, "*B Ht Wt C"], uv: Float[Tensor, "B H W 2"]
) -> Float[Tensor, "B H W C"]:
    """Bilinear texture lookups (``grid_sample``, border clamping), glTF UV convention.

    ``(u, v) = (0, 0)`` is the top-left corner of texel ``[0, 0]`` and ``(1, 1)`` the
    bottom-right corner of the last texel (``align_corners=False``). Differentiable in both
    the texture and the UVs.

    Args:
        texture: channels-last texture, shared ``(Ht, Wt, C)`` or per view ``(B, Ht, Wt, C)``.
        uv: texture coordinates per pixel, e.g. ``interpolate(uvs, rast)``.
    """
    tex = texture[None] if texture.dim() == 3 else texture
    tex = tex.expand(uv.shape[0], *tex.shape[1:]).permute(0, 3, 1, 2)
    grid = (uv * 2 - 1).to(tex.dtype)
    out = F.grid_sample(tex, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.permute(0, 2, 3, 1)


def render_gbuffers(
    vertices: Float[Tensor, "*B V 3"],
    faces: Int[Tensor, "F 3"],
    c2w: Float[Tensor, "*B 4 4"],
    intrinsics: Intrinsics,
    *,
    attributes: Float[Tensor, "*B V C"] | None = None,
    uvs: Float[Tensor, "U 2"] | None = None,
    uv_faces: Int[Tensor, "F 3"] | None = None,
    texture: Float[Tensor, "*B Ht Wt C"] | None = None,
    antialias_edges: bool = True,
    neighbors: Int[Tensor, "F 3"] | None = None,
    near: float = 1e-3,
    backend: RasterBackend = "auto",
) -> MeshRender:
    """Rasterise a mesh and fill the usual per-pixel buffers (see :class:`MeshRender`).

    Args:
        vertices, faces, c2w, intrinsics, near, backend: as :func:`rasterize`.
        attributes: optional per-vertex values to interpolate (e.g. colours).
        uvs: optional texture coordinates, per vertex or indexed by ``uv_faces``.
        uv_faces: per-corner indices into ``uvs`` (default ``faces``).
        texture: optional ``(Ht, Wt, C)`` texture sampled at the interpolated UVs.
        antialias_edges: anti-alias ``alpha``, ``attributes`` and ``texture`` along silhouettes.
        neighbors: :func:`face_neighbors` of ``faces`` (computed if None).
    """
    rast = rasterize(vertices, faces, c2w, intrinsics, near=near, backend=backend)
    verts, _ = _batched(vertices, c2w)
    mask = rast.mask
    fid = rast.face_id.clamp_min(0)
    vn = vertex_normals(verts, rast.faces)
    if attributes is not None:  # one gather for normals and attributes
        attributes = attributes[None] if attributes.dim() == 2 else attributes
        attributes = attributes.expand(vn.shape[0], *attributes.shape[1:])
        dtype = torch.promote_types(vn.dtype, attributes.dtype)
        both = interpolate(torch.cat([vn.to(dtype), attributes.to(dtype)], -1), rast)
        vn, attrs = both[..., :3].to(vn.dtype), both[..., 3:].to(attributes.dtype)
    else:
        vn, attrs = interpolate(vn, rast), None
    normals = F.normalize(vn, dim=-1, eps=1e-20) * mask[..., None]
    fn = face_normals(verts, rast.faces)  # (B, F, 3)
    if fn.shape[1]:
        fnormals = torch.gather(fn, 1, fid.view(fid.shape[0], -1, 1).expand(-1, -1, 3)).view(
            *fid.shape, 3
        )
        fnormals = fnormals * mask[..., None]
    else:
        fnormals = torch.zeros_like(normals)
    alpha = mask[..., None].to(rast.bary.dtype)
    uv = interpolate(uvs, rast, uv_faces) if uvs is not None else None
    tex = None
    if texture is not None:
        if uv is None:
            raise ValueError("texture needs uvs")
        tex = texture_sample(texture, uv) * alpha
    if antialias_edges:
        # One pass over the silhouette pairs for every channel.
        parts = [x for x in (alpha, attrs, tex) if x is not None]
        sizes = [x.shape[-1] for x in parts]
        dtype = torch.promote_types(alpha.dtype, parts[-1].dtype)
        blended = antialias(torch.cat([x.to(dtype) for x in parts], -1), rast, neighbors).split(
            sizes, -1
        )
        alpha = blended[0]
        attrs = blended[1] if attrs is not None else None
        tex = blended[-1] if tex is not None else None
    return MeshRender(mask, alpha, rast.depth, normals, fnormals, attrs, uv, tex, rast)
