"""Mesh extraction from scalar fields: grid evaluation, marching cubes and sparse coarse-to-fine.

Conventions shared by every method in shapegen:

* A field is a callable mapping ``N 3`` points to ``N`` values, SDF-like: negative inside,
  surface at ``level`` (0 by default), values in world units where a margin is needed.
* A grid of resolution ``G`` has ``G`` samples per axis that include both corners of the box:
  sample ``(i, j, k)`` sits at ``lo + (hi - lo) * (i, j, k) / (G - 1)`` (``ij`` indexing, so
  array axis 0 is x). The cell size is ``(hi - lo) / (G - 1)`` per axis.
* Extracted faces are counter-clockwise seen from outside: normals point toward increasing
  field values. pymcubes winds the other way for this sign convention, so faces are flipped.

Marching cubes (Lorensen & Cline 1987) runs in pymcubes. Values within ``1e-6`` of a cell size
of the level are moved to exactly that distance on their own side before triangulation, so no
vertex falls on a grid corner: this removes zero-area triangles and coincident vertices
(the surface moves by at most ``1e-6`` cell for an SDF) and makes sparse and dense agree.

Sparse extraction (:func:`extract_mesh`, ``method="sparse"``) evaluates a coarse grid, keeps
the cells that may contain the level set, and refines only those, halving the cell size per
level. A cell is kept when its corners change sign or when some corner is closer to the level
than ``margin`` times the cell's half-diagonal: for a field with ``|grad f| <= margin`` (an SDF
has 1) every point of a discarded cell is then provably on the same side, so thin features are
never lost. At the target resolution the field is evaluated only at corners of kept cells;
every other grid value is known to lie on a known side of the level. Marching cubes then runs
block by block (32^3 cells) on the blocks that hold a sign change, with unknown values replaced
by a constant of the known sign (cells touching them have no sign change, so emit nothing).
The result is the dense mesh up to vertex order and rounding (~1e-7 cell): blocks are stitched
by welding the copies of a vertex that lies on a grid edge shared by two blocks, identified by
the edge's index, which is exactly the per-edge vertex sharing dense marching cubes does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from shapegen.errors import ShapegenError
from shapegen.geometry.mesh import Mesh

FieldFn = Callable[[Float[Tensor, "N 3"]], Float[Tensor, " N"]]
"""An SDF-like field: ``N 3`` points to ``N`` values, negative inside."""

BBox = tuple[Sequence[float], Sequence[float]]
"""Axis-aligned box as ``(min corner, max corner)``."""

DEFAULT_BBOX: BBox = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))

#: Cells per block side in the sparse path's block-wise marching cubes.
BLOCK_CELLS = 32
#: Values closer than this many cell sizes to the level are moved to that distance (see module doc).
LEVEL_NUDGE = 1e-6

_CORNERS = torch.tensor([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=torch.int64)


@dataclass
class ExtractionStats:
    """What an extraction cost.

    Attributes:
        method: ``"sparse"`` or ``"dense"``.
        resolution: samples per axis of the target grid.
        evaluations: number of points at which the field was evaluated, all levels together.
        seconds: wall time of the whole extraction (evaluation, marching cubes, stitching).
        level_cells: cells per axis of each level, coarse to fine (one entry for dense).
        level_evaluations: field evaluations per level.
        surface_cells: target-resolution cells with a sign change (those that emit triangles).
        blocks: blocks of ``BLOCK_CELLS^3`` cells triangulated (sparse only).
    """

    method: str
    resolution: int
    evaluations: int = 0
    seconds: float = 0.0
    level_cells: list[int] = field(default_factory=list)
    level_evaluations: list[int] = field(default_factory=list)
    surface_cells: int = 0
    blocks: int = 0

    @property
    def dense_evaluations(self) -> int:
        """Evaluations a dense grid of the same resolution needs (``G^3``)."""
        return self.resolution**3


# ------------------------------------------------------------------------------------ helpers
def _box(bbox: BBox | Tensor) -> tuple[np.ndarray, np.ndarray]:
    b = np.asarray(bbox.detach().cpu() if isinstance(bbox, Tensor) else bbox, dtype=np.float64)
    if b.shape != (2, 3):
        raise ShapegenError(f"bbox must be two corners of three coordinates, got shape {b.shape}")
    if not np.all(np.isfinite(b)) or not np.all(b[1] > b[0]):
        raise ShapegenError(f"bbox max corner must exceed the min corner on every axis, got {b.tolist()}")
    return b[0], b[1]


def _field_device(fn: FieldFn, device: torch.device | str | None) -> torch.device:
    """``device`` if given, else the device of the field's parameters (an nn.Module), else CPU."""
    if device is not None:
        return torch.device(device)
    params = getattr(fn, "parameters", None)
    if callable(params):
        for p in params():
            return p.device
    return torch.device("cpu")


def _nan_error(bad: int, total: int) -> ShapegenError:
    return ShapegenError(
        f"the field produced NaN or infinite values at {bad} of {total} points; check the model "
        "for divergence (e.g. lower the learning rate or load an earlier checkpoint) or clamp "
        "its output (torch.nan_to_num) before extracting"
    )


class _Evaluator:
    """Calls the field in chunks, checks finiteness and counts evaluations."""

    def __init__(self, fn: FieldFn, chunk_size: int, progress: bool, total: int | None, desc: str) -> None:
        if chunk_size < 1:
            raise ShapegenError(f"chunk_size must be positive, got {chunk_size}")
        self.fn, self.chunk_size, self.count = fn, int(chunk_size), 0
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="pt", unit_scale=True, leave=False)

    def __call__(self, points: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        out = torch.empty(points.shape[0], dtype=torch.float32, device=points.device)
        with torch.no_grad():
            for s in range(0, points.shape[0], self.chunk_size):
                p = points[s : s + self.chunk_size]
                v = self.fn(p).reshape(-1)
                if v.shape[0] != p.shape[0]:
                    raise ShapegenError(f"the field returned {v.shape[0]} values for {p.shape[0]} points; it must map N x 3 points to N values")
                out[s : s + p.shape[0]] = v.to(device=out.device, dtype=torch.float32)
                if self.bar is not None:
                    self.bar.update(p.shape[0])
        bad = int((~torch.isfinite(out)).sum())
        if bad:
            raise _nan_error(bad, out.shape[0])
        self.count += points.shape[0]
        return out

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _axes(lo: np.ndarray, hi: np.ndarray, n: int, device: torch.device) -> list[Tensor]:
    """Sample coordinates per axis for ``n`` samples (float32, identical for every caller)."""
    return [torch.linspace(float(lo[a]), float(hi[a]), n, dtype=torch.float64).to(device=device, dtype=torch.float32) for a in range(3)]


def _unravel(lin: Tensor, n: int) -> Tensor:
    """Linear indices of an ``n^3`` C-ordered grid to ``M 3`` integer coordinates."""
    return torch.stack([lin // (n * n), (lin // n) % n, lin % n], dim=-1)


def _ravel(ijk: Tensor, n: int) -> Tensor:
    return (ijk[..., 0] * n + ijk[..., 1]) * n + ijk[..., 2]


def _points(ijk: Tensor, axes: list[Tensor]) -> Tensor:
    return torch.stack([axes[0][ijk[:, 0]], axes[1][ijk[:, 1]], axes[2][ijk[:, 2]]], dim=-1)


def _nudge(d: Tensor, delta: float) -> Tensor:
    """Move values within ``delta`` of 0 to ``+-delta`` (0 counts as outside, as in pymcubes)."""
    near = d.abs() < delta
    if not bool(near.any()):
        return d
    return torch.where(near, torch.where(d < 0, -delta, delta).to(d.dtype), d)


def _mcubes(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pymcubes at level 0 in index coordinates; faces flipped to point toward increasing values."""
    import mcubes

    verts, faces = mcubes.marching_cubes(d, 0.0)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    # pymcubes winds triangles clockwise seen from the side of larger values; we want CCW.
    return np.asarray(verts, dtype=np.float64).reshape(-1, 3), faces[:, [0, 2, 1]]


# --------------------------------------------------------------------------------- public API
def evaluate_grid(
    fn: FieldFn,
    resolution: int,
    bbox: BBox = DEFAULT_BBOX,
    *,
    chunk_size: int = 1 << 18,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> Float[Tensor, "G G G"]:
    """Evaluate ``fn`` on a ``G^3`` grid spanning ``bbox`` (corners included), in chunks.

    Points are generated chunk by chunk, so memory is ``G^3`` floats for the result plus one
    chunk of points.

    Args:
        fn: field mapping ``N 3`` points to ``N`` values.
        resolution: samples per axis ``G`` (>= 2).
        bbox: ``(min corner, max corner)`` of the grid.
        chunk_size: points per call of ``fn``.
        device: where points are created and ``fn`` runs; default: the device of ``fn``'s
            parameters if it is an ``nn.Module``, else CPU.
        progress: show a tqdm progress bar.

    Returns:
        ``G G G`` float32 values on ``device``; ``values[i, j, k]`` is the field at
        ``lo + (hi - lo) * (i, j, k) / (G - 1)``.

    Raises:
        ShapegenError: for a bad resolution or box, or non-finite field values.
    """
    g = int(resolution)
    if g < 2:
        raise ShapegenError(f"resolution must be at least 2, got {resolution}")
    lo, hi = _box(bbox)
    dev = _field_device(fn, device)
    axes = _axes(lo, hi, g, dev)
    total = g**3
    ev = _Evaluator(fn, chunk_size, progress, total, f"field {g}^3")
    out = torch.empty(total, dtype=torch.float32, device=dev)
    try:
        step = max(int(chunk_size), 1)
        for s in range(0, total, step):
            lin = torch.arange(s, min(s + step, total), device=dev)
            out[s : s + lin.shape[0]] = ev(_points(_unravel(lin, g), axes))
    finally:
        ev.close()
    return out.reshape(g, g, g)


def marching_cubes(values: Float[Tensor, "G G G"], bbox: BBox = DEFAULT_BBOX, level: float = 0.0) -> Mesh:
    """Triangulate the ``level`` set of a grid of values (pymcubes).

    Args:
        values: ``Gx Gy Gz`` samples (each side >= 2) laid out as by :func:`evaluate_grid`.
        bbox: box spanned by the grid (corner samples on its corners).
        level: iso-value; values below it are inside.

    Returns:
        A mesh in world coordinates of ``bbox`` on ``values``' device, faces counter-clockwise
        seen from outside (normals toward increasing values). pymcubes shares one vertex per
        grid edge, so a closed level set gives a watertight mesh; nothing else is merged.
        Values within ``1e-6`` cell of ``level`` are moved to that distance first (module doc).

    Raises:
        ShapegenError: if the values contain NaN or infinity.
    """
    if values.ndim != 3 or min(values.shape) < 2:
        raise ShapegenError(f"marching cubes needs a 3-D grid of side >= 2, got shape {tuple(values.shape)}")
    lo, hi = _box(bbox)
    bad = int((~torch.isfinite(values)).sum())
    if bad:
        raise _nan_error(bad, values.numel())
    spacing = (hi - lo) / (np.asarray(values.shape, dtype=np.float64) - 1)
    d = _nudge(values.detach().to(torch.float32) - float(level), LEVEL_NUDGE * float(spacing.min()))
    verts, faces = _mcubes(d.cpu().numpy())
    world = lo + verts * spacing
    return Mesh(torch.from_numpy(world.astype(np.float32)).to(values.device), torch.from_numpy(faces).to(values.device))


def grid_field(values: Float[Tensor, "G G G"], bbox: BBox = DEFAULT_BBOX) -> FieldFn:
    """Trilinear interpolation of a saved grid of field values, as a field.

    Inside the box the result interpolates the 8 surrounding samples (exact at samples).
    Outside it, the point is clamped onto the box and the distance to the box is added, which
    keeps an SDF grid 1-Lipschitz-like and positive far away. Differentiable w.r.t. points.

    Args:
        values: ``Gx Gy Gz`` samples laid out as by :func:`evaluate_grid`.
        bbox: box spanned by the grid.

    Returns:
        A field evaluated on the points' device (the grid is copied there once and cached).
    """
    if values.ndim != 3 or min(values.shape) < 2:
        raise ShapegenError(f"a grid field needs a 3-D grid of side >= 2, got shape {tuple(values.shape)}")
    lo_np, hi_np = _box(bbox)
    grid = values.detach().to(torch.float32).contiguous()
    shape = torch.tensor(values.shape, dtype=torch.int64)
    cache: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor, Tensor, Tensor]] = {}

    def fn(points: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        key = (points.device, points.dtype)
        if key not in cache:
            cache[key] = (
                grid.to(device=points.device, dtype=points.dtype).reshape(-1),
                torch.as_tensor(lo_np, dtype=points.dtype, device=points.device),
                torch.as_tensor(hi_np, dtype=points.dtype, device=points.device),
                shape.to(points.device),
            )
        flat, lo, hi, n = cache[key]
        q = torch.minimum(torch.maximum(points, lo), hi)
        outside = (points - q).norm(dim=-1)
        u = (q - lo) / (hi - lo) * (n - 1).to(points.dtype)
        i0 = u.detach().floor().long().clamp(min=torch.zeros_like(n), max=n - 2)
        t = u - i0.to(u.dtype)
        out = torch.zeros(points.shape[0], dtype=points.dtype, device=points.device)
        for c in _CORNERS.to(points.device):
            idx = ((i0[:, 0] + c[0]) * n[1] + i0[:, 1] + c[1]) * n[2] + i0[:, 2] + c[2]
            w = torch.where(c.bool(), t, 1 - t).prod(dim=-1)
            out = out + w * flat[idx]
        return out + outside

    return fn


def extract_mesh(
    fn: FieldFn,
    resolution: int = 256,
    bbox: BBox = DEFAULT_BBOX,
    *,
    method: Literal["sparse", "dense"] = "sparse",
    level: float = 0.0,
    coarse_resolution: int = 33,
    margin: float = 1.0,
    chunk_size: int = 1 << 18,
    device: torch.device | str | None = None,
    progress: bool = False,
    return_stats: bool = False,
) -> Mesh | tuple[Mesh, ExtractionStats]:
    """Extract the ``level`` set of a field as a triangle mesh by marching cubes.

    Args:
        fn: field mapping ``N 3`` points to ``N`` values, negative inside.
        resolution: samples per axis ``G`` of the marching-cubes grid (cells: ``G - 1``).
        bbox: box to extract in.
        method: ``"sparse"`` (coarse-to-fine, evaluates only near the surface; same mesh as
            dense up to vertex order, see the module doc) or ``"dense"`` (all ``G^3`` samples).
        level: iso-value of the surface.
        coarse_resolution: samples per axis of the first sparse level; the cell count is
            halved from ``G - 1`` until it is at most ``coarse_resolution - 1``.
        margin: sparse only: assumed bound on ``|grad f|``. A cell is refined if a corner is
            within ``margin`` half-diagonals of the level. 1 is exact for true SDFs; raise it for
            fields that are steeper than an SDF (the sparse mesh then still matches dense).
        chunk_size: points per field call.
        device: where the field is evaluated; default: the field's parameters' device, else CPU.
        progress: show tqdm progress bars.
        return_stats: also return an :class:`ExtractionStats`.

    Returns:
        The mesh (on ``device``), or ``(mesh, stats)`` with ``return_stats``. Vertex order:
        pymcubes' order for dense, ascending grid-edge index for sparse.

    Raises:
        ShapegenError: for bad arguments or non-finite field values.
    """
    t0 = time.perf_counter()
    g = int(resolution)
    if g < 2:
        raise ShapegenError(f"resolution must be at least 2, got {resolution}")
    if method not in ("sparse", "dense"):
        raise ShapegenError(f"unknown extraction method '{method}'; use 'sparse' or 'dense'")
    if coarse_resolution < 2:
        raise ShapegenError(f"coarse_resolution must be at least 2, got {coarse_resolution}")
    if not margin > 0:
        raise ShapegenError(f"margin must be positive, got {margin}")
    dev = _field_device(fn, device)
    if method == "dense" or g <= coarse_resolution:
        values = evaluate_grid(fn, g, bbox, chunk_size=chunk_size, device=dev, progress=progress)
        mesh = marching_cubes(values, bbox, level)
        del values
        stats = ExtractionStats("dense", g, g**3, 0.0, [g - 1], [g**3])
    else:
        mesh, stats = _sparse_extract(fn, g, bbox, level, coarse_resolution - 1, margin, chunk_size, dev, progress)
    stats.seconds = time.perf_counter() - t0
    return (mesh, stats) if return_stats else mesh


# ---------------------------------------------------------------------------- sparse internals
def _cell_corner_values(cells: Tensor, n: int, pts: Tensor, vals: Tensor) -> Tensor:
    """``M 8`` values at the corners of ``cells`` (``M 3``) looked up in sorted point indices."""
    corner = _ravel(cells[:, None, :] + _CORNERS.to(cells.device), n + 1)
    return vals[torch.searchsorted(pts, corner)]


def _children(cells: Tensor, nc: int, nf: int) -> Tensor:
    """Unique linear indices of level-``nf`` cells whose interior overlaps the given level-``nc`` cells."""
    flo = cells * nf // nc
    fhi = ((cells + 1) * nf + nc - 1) // nc - 1  # inclusive; at most ceil(nf/nc)+1 per axis
    span = int((fhi - flo).max()) + 1 if cells.shape[0] else 1
    r = torch.arange(span, device=cells.device)
    off = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    child = flo[:, None, :] + off[None]
    ok = (child <= fhi[:, None, :]).all(-1)
    return torch.unique(_ravel(child[ok], nf))


def _sparse_extract(
    fn: FieldFn, g: int, bbox: BBox, level: float, coarse_cells: int, margin: float, chunk_size: int,
    dev: torch.device, progress: bool,
) -> tuple[Mesh, ExtractionStats]:
    lo, hi = _box(bbox)
    n_final = g - 1
    levels = [n_final]
    while levels[-1] > coarse_cells:
        levels.append(-(-levels[-1] // 2))
    levels.reverse()
    ev = _Evaluator(fn, chunk_size, progress, None, f"sparse {g}^3")
    stats = ExtractionStats("sparse", g, level_cells=list(levels))
    try:
        # Level 0: every cell of a dense coarse grid is a candidate.
        n = levels[0]
        cells = _unravel(torch.arange(n**3, device=dev), n)
        sign = torch.zeros(0, dtype=torch.int8, device=dev)
        active = cells
        for li, n in enumerate(levels):
            final = li == len(levels) - 1
            if li > 0:
                cells = _unravel(_children(active, levels[li - 1], n), n)
            pts = torch.unique(_ravel((cells[:, None, :] + _CORNERS.to(dev)).reshape(-1, 3), n + 1))
            vals = ev(_points(_unravel(pts, n + 1), _axes(lo, hi, n + 1, dev))) - float(level)
            stats.level_evaluations.append(int(pts.shape[0]))
            if final:
                break
            cv = _cell_corner_values(cells, n, pts, vals)
            cmin, cmax = cv.amin(1), cv.amax(1)
            half_diag = 0.5 * float(np.linalg.norm((hi - lo) / n))
            keep = ((cmin < 0) & (cmax >= 0)) | (cv.abs().amin(1) <= margin * half_diag)
            # Side of every cell of this level that is not kept: inherited from the coarser
            # level for cells that were not candidates, from the corners for those that were.
            new_sign = _inherit_sign(sign, levels[li - 1] if li > 0 else 1, n, dev)
            lin = _ravel(cells, n)
            new_sign[lin] = torch.where(keep, 0, torch.where(cmax < 0, -1, 1)).to(torch.int8)
            sign, active = new_sign, cells[keep]
    finally:
        ev.close()
    stats.evaluations = ev.count
    mesh, stats.surface_cells, stats.blocks = _blockwise_mc(cells, pts, vals, sign, levels[-2], n_final, lo, hi, dev)
    return mesh, stats


def _inherit_sign(coarse: Tensor, nc: int, nf: int, dev: torch.device) -> Tensor:
    """Dense ``nf^3`` int8 sides taken from the coarse cell holding each fine cell's centre."""
    if coarse.numel() == 0:
        return torch.zeros(nf**3, dtype=torch.int8, device=dev)
    m = (2 * torch.arange(nf, device=coarse.device) + 1) * nc // (2 * nf)
    c = coarse.reshape(nc, nc, nc)
    return c[m[:, None, None], m[None, :, None], m[None, None, :]].reshape(-1).clone()


def _blockwise_mc(
    cells: Tensor, pts: Tensor, vals: Tensor, coarse_sign: Tensor, nc: int, n: int,
    lo: np.ndarray, hi: np.ndarray, dev: torch.device,
) -> tuple[Mesh, int, int]:
    """Marching cubes over the blocks holding sign changes, stitched by grid-edge index."""
    spacing = (hi - lo) / n
    vals = _nudge(vals, LEVEL_NUDGE * float(spacing.min()))
    cv = _cell_corner_values(cells, n, pts, vals)
    surface = cells[(cv.amin(1) < 0) & (cv.amax(1) >= 0)]
    if surface.shape[0] == 0:
        return Mesh(torch.zeros(0, 3, device=dev), torch.zeros(0, 3, dtype=torch.int64, device=dev)), 0, 0
    nb = -(-n // BLOCK_CELLS)
    blocks = _unravel(torch.unique(_ravel(surface // BLOCK_CELLS, nb)), nb)
    # A constant of the known side for values never evaluated; any magnitude works since the
    # cells touching such a value have no sign change.
    fill = float(vals.abs().max()) + 1.0
    coarse_of = torch.clamp(torch.arange(n + 1, device=dev) * nc // n, max=nc - 1)
    csign = coarse_sign.reshape(nc, nc, nc)
    keys, all_verts, all_faces, offset = [], [], [], 0
    for b in blocks.tolist():
        start = [x * BLOCK_CELLS for x in b]
        rng = [torch.arange(s, min(s + BLOCK_CELLS, n) + 1, device=dev) for s in start]
        q = torch.stack(torch.meshgrid(*rng, indexing="ij"), -1)
        lin = _ravel(q, n + 1).reshape(-1)
        pos = torch.searchsorted(pts, lin).clamp(max=pts.shape[0] - 1)
        found = pts[pos] == lin
        side = csign[coarse_of[q[..., 0]], coarse_of[q[..., 1]], coarse_of[q[..., 2]]].reshape(-1)
        side = torch.where(side == 0, 1, side).to(torch.float32)  # 0 cannot happen (module doc)
        block = torch.where(found, vals[pos], side * fill).reshape(q.shape[:3])
        v, f = _mcubes(block.cpu().numpy())
        if f.shape[0] == 0:
            continue
        base = np.floor(v)
        frac = v - base
        axis = frac.argmax(1)
        # Edge index: lower corner (global) * 3 + axis. A vertex with no fractional part
        # (possible only for fields far steeper than the nudge allows) is not welded.
        corner = base.astype(np.int64) + np.asarray(start, dtype=np.int64)
        key = ((corner[:, 0] * (n + 1) + corner[:, 1]) * (n + 1) + corner[:, 2]) * 3 + axis
        unwelded = frac.max(1) == 0
        if unwelded.any():
            key[unwelded] = -1 - (offset + np.nonzero(unwelded)[0])
        keys.append(key)
        all_verts.append(v + np.asarray(start, dtype=np.float64))
        all_faces.append(f + offset)
        offset += v.shape[0]
    key = np.concatenate(keys)
    uniq, inverse = np.unique(key, return_inverse=True)
    verts = np.empty((uniq.shape[0], 3), dtype=np.float64)
    verts[inverse] = np.concatenate(all_verts)
    faces = inverse[np.concatenate(all_faces)]
    world = lo + verts * spacing
    mesh = Mesh(torch.from_numpy(world.astype(np.float32)).to(dev), torch.from_numpy(faces.astype(np.int64)).to(dev))
    return mesh, int(surface.shape[0]), int(blocks.shape[0])


__all__ = ["DEFAULT_BBOX", "BBox", "ExtractionStats", "FieldFn", "evaluate_grid", "extract_mesh", "grid_field", "marching_cubes"]
