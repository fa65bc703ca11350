"""Mesh clean-up after extraction: dropping floating bits and quadric simplification.

Both functions return new meshes and leave their input untouched; their docstrings list
exactly what changes. Quadric decimation (Garland & Heckbert 1997, "Surface simplification
using quadric error metrics") runs in the optional ``fast-simplification`` package, imported
only when :func:`simplify` is called.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from shapegen.errors import ShapegenError
from shapegen.geometry.mesh import Mesh


def face_components(mesh: Mesh) -> tuple[int, np.ndarray]:
    """Connected components of the faces, connected through shared vertex indices.

    Connectivity is by index, not position: a mesh whose duplicated vertices were never
    welded (e.g. a polygon soup) falls apart into many components.

    Returns:
        ``(count, labels)`` with an ``F`` int array of component ids in ``[0, count)``.
    """
    faces = mesh.faces.detach().cpu().numpy()
    if faces.shape[0] == 0:
        return 0, np.zeros(0, dtype=np.int64)
    n = mesh.num_vertices
    rows = np.concatenate([faces[:, 0], faces[:, 1]])
    cols = np.concatenate([faces[:, 1], faces[:, 2]])
    graph = coo_matrix((np.ones(rows.shape[0], dtype=np.int8), (rows, cols)), shape=(n, n))
    _, vertex_labels = connected_components(graph, directed=False)
    # Relabel densely over faces only (isolated vertices would otherwise leave gaps).
    uniq, labels = np.unique(vertex_labels[faces[:, 0]], return_inverse=True)
    return int(uniq.shape[0]), labels.astype(np.int64)


def component_areas(mesh: Mesh, labels: np.ndarray, count: int) -> np.ndarray:
    """Surface area of each face component (``labels``/``count`` from :func:`face_components`)."""
    tri = mesh.vertices.detach()[mesh.faces].double()
    area = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1).norm(dim=-1).cpu().numpy() / 2
    return np.bincount(labels, weights=area, minlength=count)


def _compact(mesh: Mesh, keep_faces: torch.Tensor) -> Mesh:
    """Keep the selected faces and the vertices they use, both in their original order."""
    faces = mesh.faces[keep_faces]
    used = torch.zeros(mesh.num_vertices, dtype=torch.bool, device=mesh.device)
    used[faces.reshape(-1)] = True
    new_index = torch.cumsum(used.long(), 0) - 1
    pick = lambda t: None if t is None else t[used]
    return Mesh(mesh.vertices[used], new_index[faces], pick(mesh.vertex_colors), pick(mesh.uv), mesh.material)


def remove_small_components(
    mesh: Mesh, *, min_faces: int | None = None, min_area_fraction: float | None = None
) -> Mesh:
    """Drop connected components that are too small (floating debris from extraction).

    A component (faces connected through shared vertex indices, see :func:`face_components`)
    is removed when it has fewer than ``min_faces`` faces, or when its area is less than
    ``min_area_fraction`` of the whole mesh's area; give either criterion or both.

    What changes: the faces of removed components are deleted, and so are the vertices no
    kept face uses (including vertices that were unreferenced to begin with). Kept vertices and
    faces keep their relative order and their winding; vertex colours, UVs and the material
    are carried over. Nothing is merged or moved.

    Args:
        mesh: input mesh (any device).
        min_faces: smallest number of faces a component must have to be kept.
        min_area_fraction: smallest share of the total area (in [0, 1]) a component must have.

    Returns:
        A new mesh on the same device.

    Raises:
        ShapegenError: if neither criterion is given or one is out of range.
    """
    if min_faces is None and min_area_fraction is None:
        raise ShapegenError("remove_small_components needs min_faces or min_area_fraction")
    if min_faces is not None and min_faces < 0:
        raise ShapegenError(f"min_faces must be >= 0, got {min_faces}")
    if min_area_fraction is not None and not 0 <= min_area_fraction <= 1:
        raise ShapegenError(f"min_area_fraction must be in [0, 1], got {min_area_fraction}")
    count, labels = face_components(mesh)
    if count == 0:
        return _compact(mesh, torch.zeros(0, dtype=torch.long, device=mesh.device))
    keep_component = np.ones(count, dtype=bool)
    if min_faces is not None:
        keep_component &= np.bincount(labels, minlength=count) >= min_faces
    if min_area_fraction is not None:
        per_component = component_areas(mesh, labels, count)
        keep_component &= per_component >= min_area_fraction * per_component.sum()
    keep = torch.from_numpy(np.nonzero(keep_component[labels])[0]).to(mesh.device)
    return _compact(mesh, keep)


def simplify(mesh: Mesh, target_faces: int, *, aggressiveness: float = 7.0) -> Mesh:
    """Quadric-error decimation down to at most ``target_faces`` faces (fast-simplification).

    What changes: vertices are collapsed and moved (quadric-optimal positions), so the vertex
    set, vertex order and faces are all new. Vertex colours are carried by giving each output
    vertex the colour of the nearest input vertex; UVs and the material are dropped, because
    collapses across UV seams make the old layout meaningless (re-bake textures afterwards).
    Winding follows the input. A mesh already within budget is returned as an unchanged copy.

    Args:
        mesh: input triangle mesh (any device; decimation runs on the CPU).
        target_faces: face budget (>= 4).
        aggressiveness: fast-simplification's ``agg``: higher is faster and coarser; low values
            may stop above the budget.

    Returns:
        A new mesh on the input's device with at most ``target_faces`` faces when the budget
        is reachable.

    Raises:
        ShapegenError: if fast-simplification is missing or the budget is invalid.
    """
    if target_faces < 4:
        raise ShapegenError(f"target_faces must be at least 4, got {target_faces}")
    if mesh.num_faces <= target_faces:
        return Mesh(mesh.vertices.clone(), mesh.faces.clone(), None if mesh.vertex_colors is None else mesh.vertex_colors.clone(),
                    None if mesh.uv is None else mesh.uv.clone(), mesh.material)
    try:
        import fast_simplification
    except ImportError as exc:
        raise ShapegenError("mesh simplification needs the fast-simplification package; pip install fast-simplification") from exc
    points = mesh.vertices.detach().cpu().double().numpy()
    faces = mesh.faces.detach().cpu().numpy().astype(np.int64)
    new_points, new_faces = fast_simplification.simplify(points, faces, target_count=int(target_faces), agg=float(aggressiveness))
    new_points = np.asarray(new_points, dtype=np.float32)
    colors = None
    if mesh.vertex_colors is not None and new_points.shape[0]:
        from scipy.spatial import cKDTree

        _, nearest = cKDTree(points).query(new_points)
        colors = mesh.vertex_colors[torch.from_numpy(nearest).to(mesh.device)]
    device = mesh.device
    return Mesh(torch.from_numpy(new_points).to(device), torch.from_numpy(np.asarray(new_faces, dtype=np.int64)).to(device), colors)


__all__ = ["component_areas", "face_components", "remove_small_components", "simplify"]
