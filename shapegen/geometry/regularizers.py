"""Differentiable mesh regularisers: normal consistency and uniform Laplacian smoothness.

Used by the DMTet geometry stage of ProlificDreamer / Magic3D (threestudio's
``lambda_normal_consistency`` and ``lambda_laplacian_smoothness``, both 1e4 there):

* normal consistency: ``mean over interior edges (1 - cos(n_a, n_b))`` of the unit normals of
  the two faces sharing the edge (0 for a flat surface, 2 for a folded-back pair);
* Laplacian smoothness: ``mean_i || mean_{j in N(i)} v_j - v_i ||^2`` with the uniform
  (umbrella) Laplacian over the edge neighbours ``N(i)`` (0 when every vertex is the centroid of
  its neighbours, as on a flat regular grid).
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from renderers.rasterize import face_neighbors, face_normals

__all__ = ["laplacian_smoothness", "normal_consistency", "unique_edges"]


def unique_edges(faces: Int[Tensor, "F 3"]) -> Int[Tensor, "E 2"]:
    """Undirected edges of a triangle mesh, each once as ``(min, max)`` vertex indices."""
    faces = faces.long()
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = torch.sort(e, dim=1).values
    return torch.unique(e, dim=0)


def normal_consistency(vertices: Float[Tensor, "V 3"], faces: Int[Tensor, "F 3"]) -> Tensor:
    """Mean ``1 - cos`` between the normals of faces sharing an edge (0 if no such pair)."""
    faces = faces.long()
    if faces.shape[0] == 0:
        return vertices.sum() * 0.0
    nb = face_neighbors(faces)  # F 3, -1 on boundary / non-manifold edges
    f = torch.arange(faces.shape[0], device=faces.device)[:, None].expand_as(nb)
    pair = nb > f  # each interior edge once
    if not bool(pair.any()):
        return vertices.sum() * 0.0
    n = face_normals(vertices, faces)
    return (1.0 - (n[f[pair]] * n[nb[pair]]).sum(-1)).mean()


def laplacian_smoothness(vertices: Float[Tensor, "V 3"], faces: Int[Tensor, "F 3"]) -> Tensor:
    """Mean squared length of the uniform Laplacian ``mean(neighbours) - v`` over used vertices."""
    if faces.shape[0] == 0:
        return vertices.sum() * 0.0
    e = unique_edges(faces)
    both = torch.cat([e, e.flip(1)])  # directed: (i, j) and (j, i)
    nsum = torch.zeros_like(vertices).index_add(0, both[:, 0], vertices[both[:, 1]])
    deg = torch.zeros(vertices.shape[0], device=vertices.device, dtype=vertices.dtype)
    deg = deg.index_add(0, both[:, 0], torch.ones_like(both[:, 0], dtype=vertices.dtype))
    used = deg > 0
    lap = nsum[used] / deg[used, None] - vertices[used]
    return lap.square().sum(-1).mean()
