"""Differentiable marching tetrahedra in pure torch (the surface extraction of DMTet).

Shen et al. 2021, "Deep Marching Tetrahedra: a Hybrid Representation for High-Resolution 3D
Shape Synthesis", arXiv:2111.04276, Sec. 3.1.2 / Eq. 2: on every tetrahedron edge ``(a, b)``
whose SDF values change sign, the surface vertex is the zero of the linear interpolant,

    v_ab = (v_a * s_b - v_b * s_a) / (s_b - s_a),

which is differentiable w.r.t. both the vertex positions ``v`` and the SDF values ``s``. Each
tetrahedron with 1 or 3 inside vertices emits one triangle, with 2 inside vertices a quad
split into two triangles (16 cases in all; the same cases as kaolin's
``marching_tetrahedra``, which is not installable here).

Deviations from kaolin: inside is ``sdf < 0`` (shapegen's SDF convention: negative inside;
kaolin treats ``sdf > 0`` as occupied), and the winding is derived from each tetrahedron's
orientation (the sign of its volume at the given positions) rather than assumed, so tets may be
listed in either orientation. Faces are counter-clockwise seen from outside (normals point
toward increasing SDF). One output vertex is made per grid edge and shared by all tets around
that edge, so a closed level set gives a watertight mesh; nothing is merged by position.
A vertex with ``sdf == 0`` counts as outside, so its edges put their surface vertex exactly on
it (coincident vertices and zero-area triangles, still topologically closed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from shapegen.errors import ShapegenError

# Kuhn (Freudenthal) split of the unit cube into 6 tets along the main diagonal, one per axis
# permutation: 000 -> +e_p0 -> +e_p1 -> 111. The same diagonal in every cube makes the
# triangulation conforming (neighbouring cubes' shared faces are split identically).
_PERMS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


def _kuhn_tets() -> np.ndarray:
    tets = []
    for perm in _PERMS:
        corner = np.zeros(3, dtype=np.int64)
        path = [corner.copy()]
        for axis in perm:
            corner[axis] = 1
            path.append(corner.copy())
        path = np.stack(path)
        if np.linalg.det(path[1:] - path[0]) < 0:  # make every template positively oriented
            path = path[[0, 1, 3, 2]]
        tets.append(path)
    return np.stack(tets)  # 6 4 3 corner offsets


def tet_grid(
    resolution: int, bbox: tuple[Sequence[float], Sequence[float]] = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)),
    *, device: torch.device | str | None = None,
) -> tuple[Float[Tensor, "V 3"], Int[Tensor, "T 4"]]:
    """A cube grid split into 6 positively oriented tetrahedra per cube.

    Args:
        resolution: vertices per axis ``G`` (>= 2); there are ``(G - 1)^3`` cubes.
        bbox: ``(min corner, max corner)`` of the grid.
        device: device of the returned tensors (default CPU).

    Returns:
        ``vertices`` (``G^3 3``, float32) laid out like :func:`shapegen.geometry.extract.evaluate_grid`
        (vertex ``(i, j, k)`` at row ``(i * G + j) * G + k``, so a ``G G G`` SDF grid reshaped
        to ``-1`` matches) and ``tets`` (``6 (G-1)^3 4``, int64).
    """
    g = int(resolution)
    if g < 2:
        raise ShapegenError(f"tet grid resolution must be at least 2, got {resolution}")
    lo = torch.as_tensor(bbox[0], dtype=torch.float64)
    hi = torch.as_tensor(bbox[1], dtype=torch.float64)
    if lo.shape != (3,) or hi.shape != (3,) or not bool((hi > lo).all()):
        raise ShapegenError(f"bbox must be (min corner, max corner) with max > min on every axis, got {bbox}")
    axes = [torch.linspace(float(lo[a]), float(hi[a]), g, dtype=torch.float64) for a in range(3)]
    vertices = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3).float()
    r = torch.arange(g - 1)
    cubes = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 1, 1, 3)
    corners = cubes + torch.from_numpy(_kuhn_tets())[None]  # C 6 4 3
    tets = ((corners[..., 0] * g + corners[..., 1]) * g + corners[..., 2]).reshape(-1, 4)
    return vertices.to(device or "cpu"), tets.to(device or "cpu")


def marching_tetrahedra(
    vertices: Float[Tensor, "V 3"], tets: Int[Tensor, "T 4"], sdf: Float[Tensor, " V"]
) -> tuple[Float[Tensor, "V2 3"], Int[Tensor, "F 3"]]:
    """Extract the zero level set of an SDF sampled on tetrahedron vertices (DMTet, Eq. 2).

    Args:
        vertices: ``V 3`` tet-mesh vertex positions (may require grad, e.g. DMTet deformations).
        tets: ``T 4`` vertex indices of each tetrahedron, in either orientation.
        sdf: ``V`` signed distances, negative inside (may require grad).

    Returns:
        ``verts`` (``V2 3``): one vertex per tet edge with a sign change, ordered by the edge's
        ``(min, max)`` vertex indices, differentiable w.r.t. ``vertices`` and ``sdf``; and
        ``faces`` (``F 3``, int64): counter-clockwise seen from outside. Empty tensors if the
        level set misses every tet.

    Raises:
        ShapegenError: for mismatched shapes or non-finite SDF values.
    """
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ShapegenError(f"vertices must be V x 3, got {tuple(vertices.shape)}")
    if tets.ndim != 2 or tets.shape[1] != 4:
        raise ShapegenError(f"tets must be T x 4, got {tuple(tets.shape)}")
    sdf = sdf.reshape(-1)
    if sdf.shape[0] != vertices.shape[0]:
        raise ShapegenError(f"need one SDF value per vertex: {sdf.shape[0]} values for {vertices.shape[0]} vertices")
    if not bool(torch.isfinite(sdf).all()):
        raise ShapegenError("the SDF has NaN or infinite values; check the network for divergence before extracting")
    device, nv = vertices.device, vertices.shape[0]
    tets = tets.to(device=device, dtype=torch.int64)
    inside = sdf.detach() < 0
    occ = inside[tets]
    count = occ.sum(1)
    valid = (count > 0) & (count < 4)
    tv, occ, count = tets[valid], occ[valid], count[valid]
    empty = (vertices.new_zeros(0, 3), torch.zeros(0, 3, dtype=torch.int64, device=device))
    if tv.shape[0] == 0:
        return empty
    # Reorder each tet so inside vertices come first; the case tables below are written for a
    # positively oriented reordered tet and reversed otherwise (sign of its volume).
    perm = torch.argsort((~occ).to(torch.int8), dim=1, stable=True)
    tv = torch.gather(tv, 1, perm)
    p = vertices.detach()[tv].double()
    det = (torch.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], dim=-1) * (p[:, 3] - p[:, 0])).sum(-1)
    positive = det >= 0

    def edges(rows: Tensor, pairs_pos: list[tuple[int, int]], pairs_neg: list[tuple[int, int]]) -> Tensor:
        """``M k 2`` global vertex pairs of each emitted triangle corner for the selected tets."""
        t, pos = tv[rows], positive[rows]
        a = torch.tensor(pairs_pos, device=device)
        b = torch.tensor(pairs_neg, device=device)
        local = torch.where(pos[:, None, None], a[None], b[None])  # M k 2
        return torch.gather(t[:, None, :].expand(-1, local.shape[1], -1), 2, local)

    # Triangles as corner edges (local indices in the reordered tet: inside vertices first).
    one = edges(count == 1, [(0, 1), (0, 2), (0, 3)], [(0, 1), (0, 3), (0, 2)])
    three = edges(count == 3, [(3, 0), (3, 1), (3, 2)], [(3, 0), (3, 2), (3, 1)])
    two = edges(
        count == 2,
        [(0, 2), (0, 3), (1, 3), (0, 2), (1, 3), (1, 2)],
        [(0, 2), (1, 3), (0, 3), (0, 2), (1, 2), (1, 3)],
    )
    corners = torch.cat([one.reshape(-1, 2), three.reshape(-1, 2), two.reshape(-1, 2)])
    lo, hi = corners.amin(1), corners.amax(1)
    keys, inverse = torch.unique(lo * nv + hi, return_inverse=True)
    a, b = keys // nv, keys % nv
    sa, sb = sdf[a][:, None], sdf[b][:, None]
    # Eq. 2: zero of the linear interpolant along the edge (sa and sb have opposite signs).
    verts = (vertices[a] * sb - vertices[b] * sa) / (sb - sa)
    return verts, inverse.reshape(-1, 3)


__all__ = ["marching_tetrahedra", "tet_grid"]
