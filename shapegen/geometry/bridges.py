"""Join the pieces of an extracted surface into one by adding thin struts between them.

A generated signed distance field can leave a part detached: a lamp shade above the end of its
stem, a leg a few voxels below the seat. Dropping such a piece loses it, and keeping it gives a
mesh that cannot be printed or booleaned. :func:`plan_bridges` plans the struts that join every
piece to the rest, one piece at a time, always the piece nearest to what is already joined
(Prim's order), from the nearest pair of their vertices; :func:`bridged_field` adds the struts
to the field (the union ``min(f, capsule)``) so that one extraction of it gives one piece.

A strut is a capsule (a segment with a radius). Its radius follows the part it continues: the
depth of the field's deepest point near the piece's end (``-min f`` in a ball around it, which is
the half-thickness of a stem or a leg), clamped to ``[min_radius, max_radius]`` times the grid
spacing so that marching cubes keeps it and it never grows into a slab. The ends reach one radius
into each piece so that the union is solid. The capsules are exact distance functions, so the
union stays 1-Lipschitz wherever the field is, which the sparse extraction relies on.

What this does not do: choose where a part *should* attach. The strut goes where the two pieces
come closest, which is where a broken stem or leg continues; a piece that floats far from
everything gets a long strut. Callers keep the choice (``one_piece=False`` in the decoders).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from jaxtyping import Float
from scipy.spatial import cKDTree
from torch import Tensor

from shapegen.geometry.cleanup import component_areas, face_components
from shapegen.geometry.mesh import Mesh

FieldFn = Callable[[Tensor], Tensor]


def capsule_distance(points: Float[Tensor, "N 3"], bridges: Float[Tensor, "B 7"]) -> Float[Tensor, " N"]:
    """Signed distance to the union of capsules ``[ax, ay, az, bx, by, bz, r]`` (negative inside)."""
    if bridges.shape[0] == 0:
        return torch.full((points.shape[0],), torch.inf, dtype=points.dtype, device=points.device)
    b = bridges.to(points)
    a, ab, r = b[:, :3], b[:, 3:6] - b[:, :3], b[:, 6]
    ap = points[:, None, :] - a[None]
    t = ((ap * ab[None]).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)[None]).clamp(0, 1)
    d = (ap - t[..., None] * ab[None]).norm(dim=-1) - r[None]
    return d.amin(1)


def bridged_field(field: FieldFn, bridges: Float[Tensor, "B 7"]) -> FieldFn:
    """The union of ``field`` and the capsules: ``min(field(p), capsule_distance(p))``."""
    if bridges.shape[0] == 0:
        return field

    def union(p: Tensor) -> Tensor:
        f = field(p)
        return torch.minimum(f, capsule_distance(p.to(f.dtype), bridges.to(f.device)).to(f.dtype))

    return union


def _local_radius(field: FieldFn, center: np.ndarray, reach: float) -> float:
    """``-min f`` over a small ball of points around ``center`` (0 if no point is inside)."""
    g = np.linspace(-reach, reach, 7)
    offsets = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    offsets = offsets[np.linalg.norm(offsets, axis=1) <= reach + 1e-9]
    pts = torch.from_numpy((center[None] + offsets).astype(np.float32))
    with torch.no_grad():
        values = field(pts).float().cpu().numpy()
    return float(max(0.0, -values.min()))


def plan_bridges(
    mesh: Mesh,
    field: FieldFn,
    spacing: float,
    *,
    min_radius: float = 1.0,
    max_radius: float = 3.0,
    box: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> Float[Tensor, "B 7"]:
    """Capsules that join every connected component of ``mesh`` to the others (module doc).

    Args:
        mesh: the extracted surface (its components are joined).
        field: the field it was extracted from (negative inside); sampled near each strut's end
            to size the strut.
        spacing: the marching-cubes grid spacing, the unit of the radius bounds.
        min_radius: smallest strut radius in grid spacings: every point of a segment is within
            ``sqrt(3) / 2`` spacings of a grid node, so a strut of one spacing always has inside
            nodes along its whole length and survives marching cubes.
        max_radius: largest strut radius in grid spacings.
        box: the extraction box ``(lo, hi)``; struts stay one radius and one spacing inside it,
            so the surface never reaches the box's faces (where it would stay open).

    Returns:
        ``B x 7`` float32 rows ``[a, b, r]`` (``B`` = components - 1; empty for one piece).
    """
    count, labels = face_components(mesh)
    if count <= 1:
        return torch.zeros(0, 7)
    verts = mesh.vertices.detach().cpu().double().numpy()
    faces = mesh.faces.detach().cpu().numpy()
    members = [np.unique(faces[labels == c]) for c in range(count)]
    joined = [int(np.argmax(component_areas(mesh, labels, count)))]
    rest = set(range(count)) - set(joined)
    trees = {c: cKDTree(verts[members[c]]) for c in range(count)}
    # nearest[c] = (distance, vertex of c, vertex of the joined set) to the nearest joined piece.
    nearest: dict[int, tuple[float, int, int]] = {}

    def update(new: int) -> None:
        for c in rest:
            d, j = trees[new].query(verts[members[c]])
            i = int(np.argmin(d))
            if c not in nearest or d[i] < nearest[c][0]:
                nearest[c] = (float(d[i]), int(members[c][i]), int(members[new][j[i]]))

    update(joined[0])
    rows = []
    while rest:
        c = min(rest, key=lambda k: nearest[k][0])
        _, i, j = nearest[c]
        a, b = verts[i], verts[j]
        r = _local_radius(field, a, reach=3.0 * spacing)
        r = float(np.clip(r, min_radius * spacing, max_radius * spacing))
        direction = b - a
        length = np.linalg.norm(direction)
        direction = direction / length if length > 1e-12 else np.zeros(3)
        # Reach one radius into both pieces so that the union is solid where they meet.
        ends = np.stack([a - r * direction, b + r * direction])
        if box is not None:
            inset = r + spacing
            ends = np.clip(ends, np.asarray(box[0]) + inset, np.asarray(box[1]) - inset)
        rows.append([*ends[0], *ends[1], r])
        rest.remove(c)
        update(c)
    return torch.tensor(np.asarray(rows), dtype=torch.float32)


__all__ = ["bridged_field", "capsule_distance", "plan_bridges"]
