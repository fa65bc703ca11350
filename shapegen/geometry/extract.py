"""Mesh extraction from scalar fields: grid evaluation, marching cubes and sparse coarse-to-fine.

Conventions shared by every method in shapegen:

* A field is a callable mapping ``N 3`` points to ``N`` values, SDF-like: negative inside,
  surface at ``level`` (0 by default), values in world units where a margin is needed.
* A grid of resolution ``G`` has ``G`` samples per axis that include both corners of the box:
  sample ``(i, j, k)`` sits at ``lo + (hi - lo) * (i, j, k) / (G - 1)`` (``ij`` indexing, so
  array axis 0 is x). The cell size is ``(hi - lo) / (G - 1)`` per axis.
* Extracted faces are counter-clockwise seen from outside: normals point toward increasing
  field values. pymcubes winds the other way for this sign convention, so faces are flipped.

Marching cubes (Lorensen & Cline 1987) runs in pymcubes. Values within ``1e-3`` of a cell size
of the level are moved to exactly that distance on their own side before triangulation, so no
vertex falls on a grid corner: this removes zero-area triangles and coincident vertices
(the surface moves by at most ``1e-3`` cell for an SDF) and makes sparse and dense agree. The
nudge stays above the position weld of mesh files (``mesh_io.WELD_TOLERANCE`` times the
diagonal, about ``2e-7 G`` cells at resolution ``G``) up to several thousand samples per axis,
so welding never merges two vertices of one corner into a non-manifold edge.

Sparse extraction (:func:`extract_mesh`, ``method="sparse"``) evaluates a coarse grid, keeps
the cells that may contain the level set, and refines only those, halving the cell size per
level. A cell is kept when its corners change sign or when some corner is closer to the level
than ``margin`` times the cell's half-diagonal: for a field with ``|grad f| <= margin`` (an SDF
has 1) every point of a discarded cell is then provably on the same side, so thin features are
never lost. At the target resolution the field is evaluated only at corners of kept cells;
every other grid value is known to lie on a known side of the level. Marching cubes then runs
block by block (32^3 cells) on the blocks that hold a sign change, with unknown values replaced
by a constant of the known sign (cells touching them have no sign change, so emit nothing).
Memory: two ``G^3`` boolean masks (1 byte per sample) plus the evaluated values, stored per
32^3 block, against 4 bytes per sample for the dense float grid.
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
LEVEL_NUDGE = 1e-3

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
        Values within ``LEVEL_NUDGE`` cell of ``level`` are moved to that distance first (module doc).

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
def _corner_offsets(n_points: int, device: torch.device) -> Tensor:
    """Linear offsets of a cell's 8 corners in a C-ordered grid with ``n_points`` per axis."""
    return _ravel(_CORNERS.to(device), n_points)


def _children(cells: Tensor, nc: int, nf: int) -> Tensor:
    """Sorted linear indices of level-``nf`` cells whose interior overlaps the given level-``nc`` cells."""
    flo = cells * nf // nc
    fhi = ((cells + 1) * nf + nc - 1) // nc - 1  # inclusive; at most ceil(nf/nc)+1 per axis
    span = int((fhi - flo).max()) + 1 if cells.shape[0] else 1
    r = torch.arange(span, device=cells.device)
    fx, fy, fz = (flo[:, a, None] + r for a in range(3))  # M span each
    ok = (fx <= fhi[:, 0, None])[:, :, None, None] & (fy <= fhi[:, 1, None])[:, None, :, None] & (fz <= fhi[:, 2, None])[:, None, None, :]
    lin = (fx[:, :, None, None] * nf + fy[:, None, :, None]) * nf + fz[:, None, None, :]
    mask = torch.zeros(nf**3, dtype=torch.bool, device=cells.device)
    mask[lin[ok]] = True  # a bitmap instead of torch.unique: cheaper, and sorted for free
    return mask.nonzero().squeeze(1)


def _corner_points(cells: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Lower-corner point index of each cell and the sorted unique corner points of all cells."""
    base = _ravel(cells, n + 1)
    corners = (base[:, None] + _corner_offsets(n + 1, cells.device)).reshape(-1)
    mask = torch.zeros((n + 1) ** 3, dtype=torch.bool, device=cells.device)
    mask[corners] = True
    return base, mask.nonzero().squeeze(1)


def _sparse_extract(
    fn: FieldFn, g: int, bbox: BBox, level: float, coarse_cells: int, margin: float, chunk_size: int,
    dev: torch.device, progress: bool,
) -> tuple[Mesh, ExtractionStats]:
    lo, hi = _box(bbox)
    levels = [g - 1]
    while levels[-1] > coarse_cells:
        levels.append(-(-levels[-1] // 2))
    levels.reverse()
    ev = _Evaluator(fn, chunk_size, progress, None, f"sparse {g}^3")
    stats = ExtractionStats("sparse", g, level_cells=list(levels))
    try:
        sign = torch.zeros(0, dtype=torch.int8, device=dev)
        active = torch.zeros(0, 3, dtype=torch.int64, device=dev)
        for li, n in enumerate(levels):
            if li == 0:  # every cell of the dense coarse grid is a candidate
                cells = _unravel(torch.arange(n**3, device=dev), n)
            elif active.shape[0] == 0:  # nothing near the level: an empty mesh, as dense gives
                stats.evaluations = ev.count
                return Mesh(torch.zeros(0, 3, device=dev), torch.zeros(0, 3, dtype=torch.int64, device=dev)), stats
            else:
                cells = _unravel(_children(active, levels[li - 1], n), n)
            base, pts = _corner_points(cells, n)
            vals = ev(_points(_unravel(pts, n + 1), _axes(lo, hi, n + 1, dev))) - float(level)
            stats.level_evaluations.append(int(pts.shape[0]))
            if li == len(levels) - 1:
                break
            # Intermediate levels are at most half the target resolution: a dense value grid
            # (unknown = NaN) makes the corner look-ups plain indexing.
            grid = torch.full(((n + 1) ** 3,), torch.nan, dtype=torch.float32, device=dev)
            grid[pts] = vals
            cv = grid[base[:, None] + _corner_offsets(n + 1, dev)]
            cmin, cmax = cv.amin(1), cv.amax(1)
            half_diag = 0.5 * float(np.linalg.norm((hi - lo) / n))
            keep = ((cmin < 0) & (cmax >= 0)) | (cv.abs().amin(1) <= margin * half_diag)
            # Side of every cell of this level that is not kept: inherited from the coarser
            # level for cells that were not candidates, from the corners for those that were.
            new_sign = _inherit_sign(sign, levels[li - 1] if li > 0 else 1, n, dev)
            new_sign[_ravel(cells, n)] = torch.where(keep, 0, torch.where(cmax < 0, -1, 1)).to(torch.int8)
            sign, active = new_sign, cells[keep]
            del grid, cv
    finally:
        ev.close()
    stats.evaluations = ev.count
    mesh, stats.surface_cells, stats.blocks = _blockwise_mc(cells, pts, vals, sign, levels[-2], levels[-1], lo, hi, dev)
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
    lo: np.ndarray, hi: np.ndarray, dev: torch.device, batch: int = 64,
) -> tuple[Mesh, int, int]:
    """Marching cubes over the blocks holding candidate cells, stitched by grid-edge index."""
    B = BLOCK_CELLS
    spacing = (hi - lo) / n
    vals = _nudge(vals, LEVEL_NUDGE * float(spacing.min()))
    # Evaluated values in per-block storage: point block (p // B) owns points p % B, and only
    # blocks owning an evaluated point get a slot, so memory follows the surface, not G^3.
    nbp = -(-(n + 1) // B)
    ijk = _unravel(pts, n + 1)
    owner = _ravel(ijk // B, nbp)
    slot_of = torch.full((nbp**3,), -1, dtype=torch.int64, device=dev)
    used = torch.zeros(nbp**3, dtype=torch.bool, device=dev)
    used[owner] = True
    slot_of[used] = torch.arange(int(used.sum()), device=dev)
    store = torch.full((int(used.sum()) * B**3,), torch.nan, dtype=torch.float32, device=dev)
    store[slot_of[owner] * B**3 + _ravel(ijk % B, B)] = vals
    del ijk, owner
    nb = -(-n // B)
    blocks = _unravel(torch.unique(_ravel(cells // B, nb)), nb)
    # A constant of the known side for values never evaluated; any magnitude works since the
    # cells touching such a value have no sign change.
    fill = float(vals.abs().max()) + 1.0
    coarse_of = torch.clamp(torch.arange(n + 1, device=dev) * nc // n, max=nc - 1)
    csign = coarse_sign.reshape(nc, nc, nc)
    r = torch.arange(B + 1, device=dev)
    keys, all_verts, all_faces, offset, surface_cells, meshed = [], [], [], 0, 0, 0
    for s in range(0, blocks.shape[0], batch):
        start = blocks[s : s + batch] * B  # K 3
        q = (start[:, :, None] + r).clamp(max=n)  # K 3 B+1 (clamped rows are sliced off below)
        qb, ql = q // B, q % B
        slot = slot_of[((qb[:, 0, :, None, None] * nbp + qb[:, 1, None, :, None]) * nbp + qb[:, 2, None, None, :])]
        local = (ql[:, 0, :, None, None] * B + ql[:, 1, None, :, None]) * B + ql[:, 2, None, None, :]
        value = torch.where(slot >= 0, store[(slot * B**3 + local).clamp(min=0)], torch.nan)
        side = csign[coarse_of[q[:, 0, :, None, None]], coarse_of[q[:, 1, None, :, None]], coarse_of[q[:, 2, None, None, :]]]
        side = torch.where(side < 0, -fill, fill)  # 0 (active) cannot reach an unknown value (module doc)
        value = torch.where(torch.isnan(value), side, value).cpu().numpy()
        for k, st in enumerate(start.tolist()):
            size = [min(B, n - x) + 1 for x in st]
            block = value[k, : size[0], : size[1], : size[2]]
            inside = block < 0
            any_in = inside[:-1, :-1, :-1] | inside[1:, :-1, :-1] | inside[:-1, 1:, :-1] | inside[:-1, :-1, 1:]
            any_in |= inside[1:, 1:, :-1] | inside[1:, :-1, 1:] | inside[:-1, 1:, 1:] | inside[1:, 1:, 1:]
            all_in = inside[:-1, :-1, :-1] & inside[1:, :-1, :-1] & inside[:-1, 1:, :-1] & inside[:-1, :-1, 1:]
            all_in &= inside[1:, 1:, :-1] & inside[1:, :-1, 1:] & inside[:-1, 1:, 1:] & inside[1:, 1:, 1:]
            count = int((any_in & ~all_in).sum())
            if count == 0:
                continue
            surface_cells += count
            meshed += 1
            v, f = _mcubes(np.ascontiguousarray(block))
            base = np.floor(v)
            frac = v - base
            axis = frac.argmax(1)
            # Edge index: lower corner (global) * 3 + axis. A vertex with no fractional part
            # (possible only for fields far steeper than the nudge allows) is not welded.
            corner = base.astype(np.int64) + np.asarray(st, dtype=np.int64)
            key = ((corner[:, 0] * (n + 1) + corner[:, 1]) * (n + 1) + corner[:, 2]) * 3 + axis
            unwelded = frac.max(1) == 0
            if unwelded.any():
                key[unwelded] = -1 - (offset + np.nonzero(unwelded)[0])
            keys.append(key)
            all_verts.append(v + np.asarray(st, dtype=np.float64))
            all_faces.append(f + offset)
            offset += v.shape[0]
    if not keys:
        return Mesh(torch.zeros(0, 3, device=dev), torch.zeros(0, 3, dtype=torch.int64, device=dev)), 0, 0
    uniq, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    verts = np.empty((uniq.shape[0], 3), dtype=np.float64)
    verts[inverse] = np.concatenate(all_verts)
    faces = inverse[np.concatenate(all_faces)]
    world = lo + verts * spacing
    mesh = Mesh(torch.from_numpy(world.astype(np.float32)).to(dev), torch.from_numpy(faces.astype(np.int64)).to(dev))
    return mesh, surface_cells, meshed


__all__ = ["DEFAULT_BBOX", "BBox", "ExtractionStats", "FieldFn", "evaluate_grid", "extract_mesh", "grid_field", "marching_cubes"]
