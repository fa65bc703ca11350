"""Mesh loading, face de-duplication, normalisation and inspection.

Loading goes through trimesh with ``process=False``: vertices keep the order and multiplicity
the file gives them (an OBJ vertex used with several UV/normal combinations may appear once per
combination, as trimesh's OBJ reader produces it). The only changes :func:`load_mesh` makes are
the documented ones: scenes are flattened with their node transforms applied, polygons are
triangulated by the reader, and with ``dedupe=True`` double-sided duplicate faces are dropped
(:func:`dedupe_faces`; vertices are never touched), and a PLY that shapegen itself wrote Z-up
(``export_mesh``'s default for Blender, marked in its header) is rotated back to Y-up, so
export -> load round-trips in every format.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from shapegen.errors import ShapegenError
from shapegen.geometry.mesh import Mesh, Normalization
from shapegen.geometry.rows import row_keys, unique_rows

#: File suffixes :func:`load_mesh` reads (lower case, with the dot); the written ones are
#: :data:`shapegen.geometry.export.EXPORT_SUFFIXES`.
MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")


# ----------------------------------------------------------------------------------- loading
def load_mesh(path: str | os.PathLike, *, dedupe: bool = True) -> Mesh:
    """Read a triangle mesh (OBJ, PLY, STL, OFF, GLB/GLTF) into a :class:`Mesh`.

    Scenes (GLB/GLTF, multi-object files) are concatenated with every node transform applied.
    Per-vertex colours and UVs are kept when the file has them; materials are not read.

    Args:
        path: mesh file; the format is chosen from the suffix.
        dedupe: drop double-sided duplicate faces (see :func:`dedupe_faces`). ShapeNet models
            store every triangle twice with opposite winding, which makes winding numbers
            vanish and manifold checks fail.

    Returns:
        The mesh, vertices in file order.

    Raises:
        ShapegenError: missing file, unknown suffix, unreadable or corrupt file, a file
            without triangles (a point cloud, an image), or non-finite coordinates.
    """
    path = Path(path)
    if not path.exists():
        raise ShapegenError(f"mesh file '{path}' does not exist; check the path")
    if path.is_dir():
        raise ShapegenError(f"'{path}' is a folder; give a mesh file ({', '.join(MESH_SUFFIXES)})")
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise ShapegenError(
            f"'{path.name}' has an unsupported suffix '{suffix or '(none)'}'; "
            f"convert it to one of {', '.join(MESH_SUFFIXES)}"
        )
    if path.stat().st_size == 0:
        raise ShapegenError(f"mesh file '{path}' is empty (0 bytes); re-export it")

    import trimesh

    try:
        loaded = trimesh.load(path, file_type=suffix[1:], process=False, force=None)
    except Exception as exc:  # trimesh raises many types for corrupt input
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise ShapegenError(f"cannot read '{path}' as {suffix[1:].upper()} ({reason}); check that the file is a valid mesh") from exc

    tm = _as_trimesh(loaded, path)
    vertices = np.asarray(tm.vertices, dtype=np.float64)
    faces = np.asarray(tm.faces, dtype=np.int64).reshape(-1, 3)
    if len(faces) == 0 or len(vertices) == 0:
        raise ShapegenError(f"'{path}' contains no triangles; it may be a point cloud or an empty export")
    if not np.isfinite(vertices).all():
        raise ShapegenError(f"'{path}' has NaN or infinite vertex coordinates; repair or re-export the mesh")
    if np.abs(vertices).max() > np.finfo(np.float32).max:
        # Mesh keeps float32: these would turn into infinities on the way in.
        raise ShapegenError(f"'{path}' has vertex coordinates beyond the float32 range (+-3.4e38); rescale the mesh")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ShapegenError(f"'{path}' has face indices outside its {len(vertices)} vertices; the file is corrupt")
    _check_not_truncated(path, suffix, len(vertices), len(faces))

    mesh = Mesh.from_trimesh(tm)
    if suffix == ".ply" and _shapegen_z_up_ply(path):
        # Our own Z-up PLY (export_mesh's default, for Blender): back to the Y-up frame it came from.
        v = mesh.vertices
        mesh.vertices = torch.stack([v[:, 0], v[:, 2], -v[:, 1]], 1).contiguous()
    uv = getattr(getattr(tm, "visual", None), "uv", None)
    if uv is not None and len(uv) == len(vertices):
        # trimesh's OBJ UVs have their origin bottom-left; Mesh.uv follows glTF (top-left).
        uv = np.asarray(uv, dtype=np.float32).copy()
        uv[:, 1] = 1.0 - uv[:, 1]
        mesh.uv = torch.from_numpy(uv)
    return dedupe_faces(mesh) if dedupe else mesh


def _check_not_truncated(path: Path, suffix: str, num_vertices: int, num_faces: int) -> None:
    """Refuse a text mesh that was cut short, which its reader silently accepts as a smaller mesh.

    OFF declares its counts in the header; an OBJ cut inside its last line ends without a
    newline on a vertex or face statement missing coordinates or corners. (Binary PLY, STL and
    glTF readers check lengths themselves; a text file cut exactly between lines is a valid file.)
    """
    hint = "the file was cut short (an interrupted copy or download?); re-export or copy it again"
    if suffix == ".off":
        words: list[bytes] = []
        with open(path, "rb") as fh:
            for line in fh:  # the keyword (OFF, COFF, ...), then vertex, face and edge counts
                words += line.split(b"#", 1)[0].split()
                if len(words) >= 4:
                    break
        if words and words[0].endswith(b"OFF"):
            words = words[1:]
        try:
            declared_v, declared_f = int(words[0]), int(words[1])
        except (IndexError, ValueError):
            return  # the reader accepted a header we cannot parse; leave it be
        if num_vertices < declared_v or num_faces < declared_f:
            raise ShapegenError(f"'{path}' declares {declared_v} vertices and {declared_f} faces but holds "
                                f"{num_vertices} and {num_faces}; {hint}")
    elif suffix == ".obj":
        size = path.stat().st_size
        with open(path, "rb") as fh:
            fh.seek(max(0, size - 4096))
            tail = fh.read()
        if tail.endswith((b"\n", b"\r")):
            return
        *before, last = [line.split() for line in tail.split(b"\n")]
        if not last or last[0] not in (b"f", b"v"):
            return
        # A statement like the ones before it has the same shape: as many numbers per vertex and
        # the same v/vt/vn slashes per corner; a cut one is shorter or has fewer slashes.
        prev = next((line for line in reversed(before) if line and line[0] == last[0]), None)
        shape = (lambda words: len(words)) if last[0] == b"v" else (lambda words: {w.count(b"/") for w in words[1:]})
        if len(last) < 4 or (prev is not None and shape(last) != shape(prev)):
            raise ShapegenError(f"'{path}' ends inside an incomplete '{last[0].decode()}' line; {hint}")


def _shapegen_z_up_ply(path: Path) -> bool:
    """Whether ``path`` is a PLY that :func:`~shapegen.geometry.export.export_mesh` wrote Z-up."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    header = head.split(b"end_header", 1)[0]
    return b"comment generated by shapegen" in header and b"comment axes: +Z up" in header


def _as_trimesh(loaded, path: Path):
    """One :class:`trimesh.Trimesh` from whatever ``trimesh.load`` returned, or a ShapegenError."""
    import trimesh

    if isinstance(loaded, trimesh.Scene):
        meshes = []
        for node in loaded.graph.nodes_geometry:
            transform, name = loaded.graph[node]
            geom = loaded.geometry[name]
            if isinstance(geom, trimesh.Trimesh) and len(geom.faces):
                g = geom.copy()
                g.apply_transform(transform)
                meshes.append(g)
        if not meshes:
            kinds = sorted({type(g).__name__ for g in loaded.geometry.values()}) or ["nothing"]
            raise ShapegenError(f"'{path}' holds no triangle mesh (found {', '.join(kinds)}); give a file with faces")
        return meshes[0] if len(meshes) == 1 else trimesh.util.concatenate(meshes)
    if isinstance(loaded, trimesh.Trimesh):
        return loaded
    kind = type(loaded).__name__
    raise ShapegenError(f"'{path}' holds a {kind}, not a triangle mesh; give a file with faces")


# ------------------------------------------------------------------------------- duplicates
#: Positions closer than this fraction of the bounding-box diagonal are welded (float32 noise).
WELD_TOLERANCE = 1e-7


def weld_ids(vertices: np.ndarray) -> np.ndarray:
    """``V`` ids, equal for vertices at the same position (up to :data:`WELD_TOLERANCE`).

    Positions are snapped to a grid of ``WELD_TOLERANCE * diagonal``; ``-0.0`` and ``0.0`` and
    sub-grid noise (common in STL exports) weld together.
    """
    v = np.asarray(vertices, dtype=np.float64)
    if len(v) == 0:
        return np.zeros(0, dtype=np.int64)
    diag = float(np.linalg.norm(v.max(0) - v.min(0)))
    q = np.round(v / max(diag * WELD_TOLERANCE, 1e-30)).astype(np.int64)
    return unique_rows(q, return_inverse=True)[1]


def _face_keys(mesh: Mesh) -> np.ndarray:
    """``F 3`` sorted position ids per face: equal rows are the same triangle, whatever the winding."""
    # Weld by position: duplicated faces may reference distinct but coincident vertices.
    pos_id = weld_ids(mesh.vertices.detach().cpu().numpy())
    return np.sort(pos_id[mesh.faces.cpu().numpy()], axis=1)


def duplicate_face_mask(mesh: Mesh) -> torch.Tensor:
    """``F`` bool mask, True for a face whose three vertex positions repeat an earlier face's."""
    if mesh.num_faces == 0:
        return torch.zeros(0, dtype=torch.bool, device=mesh.device)
    keys = _face_keys(mesh)
    _, first = np.unique(row_keys(keys), return_index=True)
    dup = np.ones(len(keys), dtype=bool)
    dup[first] = False
    return torch.from_numpy(dup).to(mesh.device)


def dedupe_faces(mesh: Mesh) -> Mesh:
    """Drop faces that repeat an earlier face's vertex positions (in either winding).

    Duplicates are found on positions, not indices, so a double-sided copy that uses its own
    vertices is caught. The first occurrence is kept with its winding; vertices, colours and
    UVs are left exactly as they were (unreferenced vertices are not removed).
    """
    keep = ~duplicate_face_mask(mesh)
    if bool(keep.all()):
        return mesh
    return Mesh(mesh.vertices, mesh.faces[keep], mesh.vertex_colors, mesh.uv, mesh.material)


# ----------------------------------------------------------------------------- normalising
def normalize_mesh(
    mesh: Mesh, mode: Literal["cube", "sphere"] = "cube", padding: float = 1.0
) -> tuple[Mesh, Normalization]:
    """Centre and scale a mesh into the unit cube [-1, 1]^3 or the unit ball.

    ``cube``: the bounding-box centre goes to the origin and the longest side to length
    ``2 * padding``. ``sphere``: the bounding-box centre goes to the origin and the farthest
    vertex to radius ``padding``. Only vertices referenced by a face count.

    Args:
        mesh: input mesh (any device).
        mode: target frame.
        padding: fraction of the unit frame the mesh fills, e.g. 0.9 leaves a 10% margin.

    Returns:
        The normalised mesh and the :class:`Normalization` (``x_unit = (x - center) * scale``;
        ``Normalization.invert`` maps results back).
    """
    if mode not in ("cube", "sphere"):
        raise ShapegenError(f"unknown normalisation mode '{mode}'; use 'cube' or 'sphere'")
    if not padding > 0:
        raise ShapegenError(f"normalisation padding must be positive, got {padding}")
    used = mesh.vertices[mesh.faces.unique()] if mesh.num_faces else mesh.vertices
    if used.shape[0] == 0:
        raise ShapegenError("cannot normalise an empty mesh")
    lo, hi = used.double().amin(0), used.double().amax(0)
    center = (lo + hi) / 2
    if mode == "cube":
        extent = float((hi - lo).max()) / 2
    else:
        extent = float((used.double() - center).norm(dim=-1).max())
    if extent <= 0:
        raise ShapegenError("cannot normalise a mesh whose vertices all coincide")
    norm = Normalization(center=tuple(float(c) for c in center), scale=padding / extent, mode=mode, padding=padding)
    out = Mesh(norm.apply(mesh.vertices.double()).float(), mesh.faces, mesh.vertex_colors, mesh.uv, mesh.material)
    return out, norm


# ------------------------------------------------------------------------------ inspection
@dataclass
class MeshReport:
    """Summary statistics of a mesh, as printed by ``shapegen info``.

    Topology (watertight, components, Euler characteristic) is computed after welding
    vertices with identical positions, so UV/normal seams do not count as boundaries.

    Attributes:
        num_vertices: vertices as stored.
        num_faces: faces as stored.
        num_welded_vertices: distinct vertex positions referenced by faces.
        bounds_min: per-axis minimum of the vertices.
        bounds_max: per-axis maximum of the vertices.
        watertight: every welded edge is shared by exactly two faces.
        num_boundary_edges: welded edges used by one face only.
        num_nonmanifold_edges: welded edges used by more than two faces.
        num_components: connected components, faces joined by shared welded edges.
        euler_characteristic: ``V - E + F`` on the welded mesh (2 for a sphere).
        duplicate_face_fraction: share of faces repeating another face's positions (0.5 when
            fully double-sided).
        num_degenerate_faces: faces of zero area (repeated or collinear corners).
        area: total surface area.
        volume: signed volume (meaningful only when watertight and consistently wound).
    """

    num_vertices: int
    num_faces: int
    num_welded_vertices: int
    bounds_min: tuple[float, float, float]
    bounds_max: tuple[float, float, float]
    watertight: bool
    num_boundary_edges: int
    num_nonmanifold_edges: int
    num_components: int
    euler_characteristic: int
    duplicate_face_fraction: float
    num_degenerate_faces: int
    area: float
    volume: float | None

    def to_dict(self) -> dict:
        """A JSON-serialisable dict of every field."""
        d = asdict(self)
        d["bounds_min"], d["bounds_max"] = list(self.bounds_min), list(self.bounds_max)
        return d

    def lines(self) -> list[str]:
        """Human-readable lines, one fact each."""
        fmt = lambda v: "[" + ", ".join(f"{x:.4g}" for x in v) + "]"
        out = [
            f"vertices: {self.num_vertices} ({self.num_welded_vertices} distinct positions)",
            f"faces: {self.num_faces} ({self.num_degenerate_faces} degenerate, "
            f"{self.duplicate_face_fraction:.1%} duplicated)",
            f"bounds: {fmt(self.bounds_min)} .. {fmt(self.bounds_max)}",
            f"watertight: {'yes' if self.watertight else 'no'} ({self.num_boundary_edges} boundary edges, "
            f"{self.num_nonmanifold_edges} non-manifold edges)",
            f"components: {self.num_components}",
            f"euler characteristic: {self.euler_characteristic}",
            f"area: {self.area:.6g}",
        ]
        if self.volume is not None:
            out.append(f"volume: {self.volume:.6g}")
        return out


#: Faces per block of :func:`inspect_mesh`'s per-face geometry. Small blocks keep the temporaries
#: in recycled heap memory: on millions of faces, first-touching fresh full-size arrays cost more
#: than the arithmetic on them.
_FACE_BLOCK = 1 << 16


def _face_blocks(num_faces: int):
    return (slice(i, i + _FACE_BLOCK) for i in range(0, num_faces, _FACE_BLOCK))


def _edge_keys(wf: np.ndarray) -> np.ndarray:
    """``3F`` keys of the face edges (corners 0-1, then 1-2, then 2-0 of every face), equal for
    the same undirected edge and ordered as the sorted ``(low, high)`` id pairs."""
    nf, nv = len(wf), int(wf.max()) + 1
    if nv >= 1 << 31:  # low * nv + high would overflow int64
        pairs = np.concatenate([wf[:, [0, 1]], wf[:, [1, 2]], wf[:, [2, 0]]])
        return row_keys(np.sort(pairs, axis=1))
    keys = np.empty(3 * nf, dtype=np.int64)
    for k in range(3):
        a, b = wf[:, k], wf[:, (k + 1) % 3]
        keys[k * nf : (k + 1) * nf] = np.minimum(a, b) * nv + np.maximum(a, b)
    return keys


def inspect_mesh(mesh: Mesh) -> MeshReport:
    """Compute a :class:`MeshReport` (counts, bounds, topology after position welding)."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    v = mesh.vertices.detach().cpu().double().numpy()
    f = mesh.faces.detach().cpu().numpy()
    if len(v) == 0:
        raise ShapegenError("the mesh has no vertices; nothing to inspect")
    wf = weld_ids(v)[f]
    nf = len(f)

    areas = np.empty(nf)
    for block in _face_blocks(nf):
        tri = v[f[block]]
        areas[block] = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1) / 2
    scale = max(float(np.ptp(v, axis=0).max()), 1e-30)
    degenerate = (areas <= 1e-12 * scale**2) | (wf[:, 0] == wf[:, 1]) | (wf[:, 1] == wf[:, 2]) | (wf[:, 0] == wf[:, 2])

    if nf:
        keys = np.sort(wf, axis=1)
        dup_frac = 1.0 - len(np.unique(row_keys(keys))) / nf
        _, inverse, counts = np.unique(_edge_keys(wf), return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        n_edges = len(counts)
        boundary = int((counts == 1).sum())
        nonmanifold = int((counts > 2).sum())
        # Faces are graph nodes, joined through the edge nodes they share.
        face_idx = np.tile(np.arange(nf), 3)
        g = sp.coo_matrix((np.ones(3 * nf), (face_idx, nf + inverse)), shape=(nf + n_edges, nf + n_edges))
        _, labels = connected_components(g, directed=False)
        n_comp = len(np.unique(labels[:nf]))
        n_verts_used = len(np.unique(wf))
    else:
        dup_frac, n_edges, boundary, nonmanifold, n_comp, n_verts_used = 0.0, 0, 0, 0, 0, 0
    watertight = nf > 0 and boundary == 0 and nonmanifold == 0
    volume = None
    if watertight:
        terms = np.empty((nf, 3))  # summed whole, as one array: the same total as unblocked
        for block in _face_blocks(nf):
            tri = v[f[block]]
            terms[block] = tri[:, 0] * np.cross(tri[:, 1], tri[:, 2])
        volume = float(terms.sum() / 6)
    return MeshReport(
        num_vertices=len(v),
        num_faces=nf,
        num_welded_vertices=n_verts_used,
        bounds_min=tuple(float(x) for x in v.min(0)),
        bounds_max=tuple(float(x) for x in v.max(0)),
        watertight=bool(watertight),
        num_boundary_edges=boundary,
        num_nonmanifold_edges=nonmanifold,
        num_components=int(n_comp),
        euler_characteristic=int(n_verts_used - n_edges + nf),
        duplicate_face_fraction=float(dup_frac),
        num_degenerate_faces=int(degenerate.sum()),
        area=float(areas.sum()),
        volume=volume,
    )
