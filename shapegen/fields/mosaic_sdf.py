"""Mosaic-SDF: a shape's signed distance as a set of small local SDF grids.

Paper: Lior Yariv, Omri Puny, Oran Gafni, Yaron Lipman, "Mosaic-SDF for 3D Generative Models",
CVPR 2024, arXiv 2312.09222.

Representation. ``X = {(p_i, s_i, V_i)}_{i=1..n}``: centre ``p_i`` (3), half side ``s_i > 0`` and
values ``V_i`` on the ``k^3`` nodes ``p_i + s_i G`` with ``G = {-1, -1 + 2/(k-1), ..., 1}^3``. Stored
as one ``n x (3 + 1 + k^3)`` float32 tensor whose rows are ``[cx, cy, cz, s, V]`` (the paper's
order) and whose ``V`` part is C-ordered with the first index along x: node ``(a, b, c)`` sits at
``p + s * (-1 + 2 a / (k-1), -1 + 2 b / (k-1), -1 + 2 c / (k-1))`` and is column
``4 + (a k + b) k + c``. Rows are unordered: permuting them changes nothing.

Decoding (the partition of unity of the paper, Sec. 3):

    F(x; X) = sum_i w_i(x) Trilerp((x - p_i) / s_i; V_i),
    w^_i(x) = max(0, 1 - ||(x - p_i) / s_i||_inf),   w_i(x) = w^_i(x) / sum_j w^_j(x).

Only the grids whose open cube contains ``x`` have ``w^_i > 0``; they are found through a
uniform spatial hash over the cubes (:class:`CubeIndex`), so a query touches a handful of
candidates instead of all ``n`` grids. Everything is differentiable w.r.t. the points and the
tensor (the hash itself is built from detached values and rebuilt when the tensor changes).

Deviations and choices the paper leaves open:
    * Outside the union of cubes ``Omega`` the paper defines nothing. We return
      ``delta + g(x)``: a small offset ``delta`` (5% of the mean scale) plus ``g``, the L-inf
      distance to the nearest cube found through a distance transform of the hash cells
      (within about two hash cells of the exact L-inf distance to ``Omega``, and exact near
      ``Omega``). It is strictly positive and grows with distance; being an L-inf distance it
      stays below the Euclidean distance to a surface inside ``Omega`` wherever it is exact,
      which keeps sparse extraction's pruning safe near the cubes.
    * Meshing: ``Omega`` usually covers only a band around the surface, so the jump from a
      negative band value to the positive outside value deep inside a solid is a sign change
      that marching cubes would triangulate. :meth:`MosaicSDF.to_mesh` therefore decides
      inside and outside where no cube reaches from a coarse occupancy grid over the cubes'
      bounding cube (:meth:`MosaicSDF.occupancy`): a covered node takes the sign of its value;
      the outside is flooded from the border through uncovered or non-negative nodes, and an
      uncovered node the flood does not reach is inside. The uncovered part of the field is the
      trilinear interpolation of that grid's signed chessboard distance transform (1-Lipschitz,
      never above the Euclidean distance, so sparse extraction prunes safely), and the level set
      is extracted everywhere: a surface that leaves the cubes is capped along the cubes'
      boundary, and a surface covered with margin is exactly the one the cubes give. Giving
      uncovered nodes the sign of the nearest covered node instead (``method="nearest"``) also
      closes gaps, but extrudes a part whose surface leaves the cubes (a truncated leg)
      straight to the border of the box, and adds more area on the demo model's samples;
      flooding leaks through a gap in a thin band into a solid's interior and then closes the
      gap with an inner wall (still watertight). With ``close_holes=False``
      :meth:`MosaicSDF.to_mesh` keeps the earlier extraction: the outside value everywhere off
      ``Omega`` and only triangles of grid cells whose eight corners all lie in ``Omega``
      ("extract only where cubes exist"), which leaves holes where the coverage has gaps.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from shapegen.errors import ShapegenError
from shapegen.geometry.mesh import Mesh

Backend = Literal["auto", "torch", "warp"]

#: File format version written by :meth:`MosaicSDF.save`.
FORMAT_VERSION = 1
#: Keys every ``.msdf.npz`` file holds.
FILE_KEYS = ("tensor", "k", "normalization", "source_hash", "version")
#: Outside value offset, as a fraction of the mean scale (see the module doc).
OUTSIDE_OFFSET = 0.05
#: Rounds of strut planning and extraction ``to_mesh(one_piece=True)`` tries before it stops.
BRIDGE_ROUNDS = 3
#: Hash cell side as a fraction of the largest half side: smaller cells list fewer cubes that do
#: not contain the query (about 2x the true candidates at 0.5), at the cost of a larger table.
HASH_CELL_FRACTION = 0.5
#: Largest number of hash cells per axis (the cell grows if the cubes are tiny).
MAX_HASH_CELLS = 160
#: Largest number of samples per axis of the occupancy grid that decides inside and outside
#: where no cube reaches (:meth:`MosaicSDF.occupancy`); smaller extractions use their own resolution.
OCCUPANCY_RESOLUTION = 128

_CORNERS = torch.tensor([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=torch.int64)


def row_width(k: int) -> int:
    """Columns of an M-SDF tensor with ``k^3`` grids: ``3 + 1 + k^3``."""
    return 4 + k**3


def grid_offsets(k: int, *, device=None, dtype=torch.float32) -> Float[Tensor, "K 3"]:
    """The ``k^3`` local node positions ``G`` in [-1, 1]^3, C order with the first index along x."""
    axis = torch.linspace(-1.0, 1.0, k, dtype=torch.float64)
    g = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    return g.to(device=device, dtype=dtype)


# ===================================================================================== hashing
@dataclass
class CubeIndex:
    """Uniform spatial hash of axis-aligned cubes, possibly from several shapes (a batch).

    A cube is listed in every hash cell it overlaps; a query point looks up its own cell only.
    Cells are keyed ``batch * D^3 + linear cell index`` and only occupied cells are stored
    (sorted keys plus CSR offsets), so memory follows the cubes, not the box.

    Attributes:
        origin: ``3`` lower corner of the hashed box.
        cell: cell side.
        dims: cells per axis ``D``.
        keys: ``C`` sorted keys of occupied cells.
        starts: ``C + 1`` offsets into ``cubes``.
        cubes: cube ids (rows of the flattened centre/scale arrays) per occupied cell.
    """

    origin: Tensor
    cell: float
    dims: int
    keys: Tensor
    starts: Tensor
    cubes: Tensor

    @classmethod
    def build(
        cls, centers: Float[Tensor, "M 3"], scales: Float[Tensor, " M"], batch: Int[Tensor, " M"] | None = None,
        cell: float | None = None,
    ) -> CubeIndex:
        """Hash cubes ``[c - s, c + s]``; ``batch`` tags cubes of different shapes (default 0).

        The default cell side is :data:`HASH_CELL_FRACTION` times the largest half side.
        """
        c, s = centers.detach(), scales.detach()
        dev = c.device
        b = torch.zeros(c.shape[0], dtype=torch.int64, device=dev) if batch is None else batch.to(dev).long()
        lo, hi = (c - s[:, None]).amin(0), (c + s[:, None]).amax(0)
        extent = float((hi - lo).max())
        h = float(cell) if cell is not None else HASH_CELL_FRACTION * float(s.max())
        h = max(h, extent / (MAX_HASH_CELLS - 1), 1e-12)
        d = math.floor(extent / h) + 1
        first = ((c - s[:, None] - lo) / h).floor().long().clamp(0, d - 1)
        last = ((c + s[:, None] - lo) / h).floor().long().clamp(0, d - 1)
        span = int((last - first).max()) + 1
        r = torch.arange(span, device=dev)
        ix, iy, iz = (first[:, a, None] + r for a in range(3))  # M span
        ok = (ix <= last[:, 0, None])[:, :, None, None] & (iy <= last[:, 1, None])[:, None, :, None] & (iz <= last[:, 2, None])[:, None, None, :]
        lin = (ix[:, :, None, None] * d + iy[:, None, :, None]) * d + iz[:, None, None, :]
        key = (b[:, None, None, None] * d**3 + lin)[ok]
        cube = torch.arange(c.shape[0], device=dev)[:, None, None, None].expand_as(ok)[ok]
        key, order = key.sort()
        keys, counts = torch.unique_consecutive(key, return_counts=True)
        starts = torch.zeros(keys.shape[0] + 1, dtype=torch.int64, device=dev)
        starts[1:] = counts.cumsum(0)
        return cls(lo, h, d, keys, starts, cube[order])

    def _cell_keys(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """Linear cell index of each point (clamped into the grid) and whether it lay inside."""
        cell = ((points.detach() - self.origin.to(points.dtype)) / self.cell).floor()
        inside = ((cell >= 0) & (cell < self.dims)).all(-1)
        cell = cell.clamp(0, self.dims - 1).long()
        return (cell[:, 0] * self.dims + cell[:, 1]) * self.dims + cell[:, 2], inside

    def _lookup(self, key: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
        """``(point id, cube id)`` pairs listing every cube of each point's cell ``key``."""
        dev = key.device
        pos = torch.searchsorted(self.keys, key).clamp(max=max(self.keys.shape[0] - 1, 0))
        found = valid & (self.keys[pos] == key)
        count = torch.where(found, self.starts[pos + 1] - self.starts[pos], 0)
        pid = torch.repeat_interleave(torch.arange(key.shape[0], device=dev), count)
        first = torch.repeat_interleave(self.starts[pos] - (count.cumsum(0) - count), count)
        return pid, self.cubes[first + torch.arange(pid.shape[0], device=dev)]

    def candidates(self, points: Float[Tensor, "N 3"], batch: Int[Tensor, " N"] | None = None) -> tuple[Tensor, Tensor]:
        """``(point id, cube id)`` pairs for every cube listed in each point's cell."""
        key, inside = self._cell_keys(points)
        if batch is not None:
            key = key + batch.to(key.device).long() * self.dims**3
        return self._lookup(key, inside)

    def nearest_cell_candidates(self, points: Float[Tensor, "N 3"]) -> tuple[Tensor, Tensor]:
        """Pairs with the cubes of the occupied cell nearest to each point (one shape only).

        The nearest occupied cell (chessboard metric on cell indices) comes from a distance
        transform of the cell grid, built once. Every point gets at least one pair.
        """
        key, _ = self._cell_keys(points)
        return self._lookup(self.nearest_cells()[key], torch.ones_like(key, dtype=torch.bool))

    def nearest_cells(self) -> Int[Tensor, " C"]:
        """For every cell of the ``D^3`` grid, the linear index of the nearest occupied cell (cached)."""
        if getattr(self, "_nearest", None) is None:
            from scipy.ndimage import distance_transform_cdt

            d = self.dims
            lin = self.keys.cpu().numpy()
            if lin.size and lin.max() >= d**3:
                raise ShapegenError("nearest cells are defined on the index of one shape; build one index per shape")
            empty = np.ones(d**3, dtype=bool)
            empty[lin] = False
            _, idx = distance_transform_cdt(empty.reshape(d, d, d), metric="chessboard", return_indices=True)
            near = (idx[0] * d + idx[1]) * d + idx[2]
            self._nearest = torch.from_numpy(near.reshape(-1).astype(np.int64)).to(self.keys.device)
        return self._nearest


# ==================================================================================== decoding
@dataclass
class BlendResult:
    """Raw partition-of-unity blend at query points.

    Attributes:
        value: ``N`` blended values (0 where uncovered).
        weight: ``N`` sum of the hat weights ``sum_i w^_i(x)`` (0 exactly where uncovered).
        pairs: number of (point, grid) pairs that contributed.
    """

    value: Float[Tensor, " N"]
    weight: Float[Tensor, " N"]
    pairs: int

    @property
    def covered(self) -> Tensor:
        """``N`` bool, True where some cube contains the point."""
        return self.weight > 0


def trilerp_local(u: Float[Tensor, "P 3"], values: Float[Tensor, "P K"] | Float[Tensor, "M K"], k: int,
                  rows: Int[Tensor, " P"] | None = None) -> Float[Tensor, " P"]:
    """Trilinear interpolation of ``k^3`` grids at local coordinates ``u`` in [-1, 1]^3.

    Args:
        u: local coordinates ``(x - p) / s``.
        values: grid values, C order with the first index along x; one row per pair, or one
            row per grid selected through ``rows``.
        k: grid side.
        rows: optional row of ``values`` for each pair.
    """
    g = (u.clamp(-1, 1) + 1) * (0.5 * (k - 1))
    i0 = g.detach().floor().long().clamp(0, k - 2)
    t = g - i0.to(g.dtype)
    base = (i0[:, 0] * k + i0[:, 1]) * k + i0[:, 2]
    if rows is not None:
        base = base + rows * k**3
    else:
        base = base + torch.arange(u.shape[0], device=u.device) * k**3
    offsets = ((_CORNERS[:, 0] * k + _CORNERS[:, 1]) * k + _CORNERS[:, 2]).to(u.device)
    # index_select is several times faster than advanced indexing on CPU; corners in _CORNERS order.
    cv = values.reshape(-1).index_select(0, (base[:, None] + offsets).reshape(-1)).reshape(-1, 2, 2, 2)
    # Three nested lerps (x, then y, then z): 7 lerps instead of 8 weight products.
    cv = torch.lerp(cv[:, 0], cv[:, 1], t[:, 0, None, None])
    cv = torch.lerp(cv[:, 0], cv[:, 1], t[:, 1, None])
    return torch.lerp(cv[:, 0], cv[:, 1], t[:, 2])


def blend(
    points: Float[Tensor, "N 3"], centers: Float[Tensor, "M 3"], scales: Float[Tensor, " M"], values: Float[Tensor, "M K"],
    k: int, index: CubeIndex, point_batch: Int[Tensor, " N"] | None = None,
) -> BlendResult:
    """Partition-of-unity blend (module doc) of the grids whose open cube contains each point.

    Differentiable w.r.t. ``points``, ``centers``, ``scales`` and ``values``. Several shapes
    can be decoded at once: concatenate their grids, build ``index`` with their batch ids and
    pass each point's batch id in ``point_batch``.
    """
    pid, cid = index.candidates(points, point_batch)
    with torch.no_grad():  # select the containing cubes first, then differentiate only those pairs
        u = (points.index_select(0, pid) - centers.index_select(0, cid)) / scales.index_select(0, cid)[:, None]
        keep = (u.abs().amax(-1) < 1).nonzero().squeeze(1)
    pid, cid = pid.index_select(0, keep), cid.index_select(0, keep)
    u = (points.index_select(0, pid) - centers.index_select(0, cid)) / scales.index_select(0, cid)[:, None]
    inf_norm = u.abs().amax(-1)
    hat = 1 - inf_norm  # w^_i(x) > 0 on the open cube
    tri = trilerp_local(u, values, k, cid)
    n = points.shape[0]
    dtype = torch.promote_types(points.dtype, values.dtype)
    den = torch.zeros(n, dtype=dtype, device=points.device).index_add(0, pid, hat.to(dtype))
    num = torch.zeros(n, dtype=dtype, device=points.device).index_add(0, pid, (hat * tri).to(dtype))
    value = num / torch.where(den > 0, den, torch.ones_like(den))
    return BlendResult(value, den, int(pid.shape[0]))


# ================================================================================ warp backend
_WARP_KERNELS: dict = {}
#: Smallest slice of points worth its own CPU thread in the warp backend.
_MIN_POINTS_PER_THREAD = 4096


def _warp_blend_kernel():
    if _WARP_KERNELS:
        return _WARP_KERNELS["blend"]
    from shapegen.geometry.sdf import _warp

    wp = _warp()

    @wp.kernel(module="unique")
    def blend_kernel(
        points: wp.array(dtype=wp.vec3), centers: wp.array(dtype=wp.vec3), scales: wp.array(dtype=float),
        values: wp.array(dtype=float), cell_start: wp.array(dtype=wp.int32), cubes: wp.array(dtype=wp.int32),
        nearest: wp.array(dtype=wp.int32), use_nearest: int, origin: wp.vec3, h: float, d: int, k: int,
        out_value: wp.array(dtype=float), out_weight: wp.array(dtype=float), out_gap: wp.array(dtype=float),
    ):
        tid = wp.tid()
        p = points[tid]
        q = (p - origin) / h
        ix = int(wp.floor(q[0]))
        iy = int(wp.floor(q[1]))
        iz = int(wp.floor(q[2]))
        # float(...) makes a dynamic Warp variable (a bare literal is a constant Warp cannot reassign).
        num = float(0.0)  # noqa: UP018
        den = float(0.0)  # noqa: UP018
        if ix >= 0 and iy >= 0 and iz >= 0 and ix < d and iy < d and iz < d:
            cell = (ix * d + iy) * d + iz
            kk = k * k * k
            half = 0.5 * float(k - 1)
            for j in range(int(cell_start[cell]), int(cell_start[cell + 1])):
                c = int(cubes[j])
                u = (p - centers[c]) / scales[c]
                m = wp.max(wp.max(wp.abs(u[0]), wp.abs(u[1])), wp.abs(u[2]))
                if m < 1.0:
                    hat = 1.0 - m
                    gx = (u[0] + 1.0) * half
                    gy = (u[1] + 1.0) * half
                    gz = (u[2] + 1.0) * half
                    ax = wp.clamp(int(wp.floor(gx)), 0, k - 2)
                    ay = wp.clamp(int(wp.floor(gy)), 0, k - 2)
                    az = wp.clamp(int(wp.floor(gz)), 0, k - 2)
                    tx = gx - float(ax)
                    ty = gy - float(ay)
                    tz = gz - float(az)
                    b = c * kk + (ax * k + ay) * k + az
                    v000 = values[b]
                    v001 = values[b + 1]
                    v010 = values[b + k]
                    v011 = values[b + k + 1]
                    v100 = values[b + k * k]
                    v101 = values[b + k * k + 1]
                    v110 = values[b + k * k + k]
                    v111 = values[b + k * k + k + 1]
                    v00 = v000 + (v100 - v000) * tx
                    v01 = v001 + (v101 - v001) * tx
                    v10 = v010 + (v110 - v010) * tx
                    v11 = v011 + (v111 - v011) * tx
                    v0 = v00 + (v10 - v00) * ty
                    v1 = v01 + (v11 - v01) * ty
                    num += hat * (v0 + (v1 - v0) * tz)
                    den += hat
        gap = float(0.0)  # noqa: UP018 (a dynamic Warp variable)
        if den == 0.0 and use_nearest != 0:
            # Outside value: L-inf gap to the cubes of the nearest occupied cell (CubeIndex).
            cx = wp.clamp(ix, 0, d - 1)
            cy = wp.clamp(iy, 0, d - 1)
            cz = wp.clamp(iz, 0, d - 1)
            near = int(nearest[(cx * d + cy) * d + cz])
            gap = float(1.0e30)  # noqa: UP018 (a dynamic Warp variable)
            for j in range(int(cell_start[near]), int(cell_start[near + 1])):
                c = int(cubes[j])
                r = p - centers[c]
                m = wp.max(wp.max(wp.abs(r[0]), wp.abs(r[1])), wp.abs(r[2])) - scales[c]
                gap = wp.min(gap, wp.max(m, 0.0))
        out_value[tid] = num
        out_weight[tid] = den
        out_gap[tid] = gap

    _WARP_KERNELS["blend"] = blend_kernel
    return blend_kernel


def _warp_blend(
    index: CubeIndex, centers: Tensor, scales: Tensor, values: Tensor, k: int, points: Tensor, with_gap: bool = False,
) -> tuple[BlendResult, Tensor | None]:
    """The blend of :func:`blend` (forward only, float32) in one warp kernel per point slice.

    With ``with_gap`` also the outside gap of :meth:`MosaicSDF.outside_value` (0 where covered).
    """
    from concurrent.futures import ThreadPoolExecutor

    from shapegen.geometry.sdf import _warp, _warp_device

    wp = _warp()
    kernel = _warp_blend_kernel()
    dev = points.device
    key = _warp_device(dev)
    if getattr(index, "_dense_start", None) is None:
        counts = torch.zeros(index.dims**3, dtype=torch.int64, device=dev)
        counts[index.keys.to(dev)] = index.starts[1:].to(dev) - index.starts[:-1].to(dev)
        start = torch.zeros(index.dims**3 + 1, dtype=torch.int32, device=dev)
        start[1:] = counts.cumsum(0).to(torch.int32)
        index._dense_start = start  # the CSR over every cell (cubes keep their sorted-key order)
        index._cubes32 = index.cubes.to(device=dev, dtype=torch.int32).contiguous()
    p = points.detach().to(torch.float32).contiguous()
    c = centers.detach().to(torch.float32).contiguous()
    s = scales.detach().to(torch.float32).contiguous()
    v = values.detach().to(torch.float32).contiguous().reshape(-1)
    n = p.shape[0]
    value = torch.empty(n, dtype=torch.float32, device=dev)
    weight = torch.empty(n, dtype=torch.float32, device=dev)
    gap = torch.empty(n, dtype=torch.float32, device=dev)
    nearest = index.nearest_cells().to(device=dev, dtype=torch.int32) if with_gap else index._dense_start[:1]
    origin = wp.vec3(*[float(x) for x in index.origin.tolist()])
    stream = wp.stream_from_torch(torch.cuda.current_stream(dev)) if dev.type == "cuda" else None
    fixed = [wp.from_torch(c, dtype=wp.vec3), wp.from_torch(s), wp.from_torch(v), wp.from_torch(index._dense_start),
             wp.from_torch(index._cubes32), wp.from_torch(nearest.contiguous()), int(with_gap), origin, float(index.cell),
             int(index.dims), int(k)]

    def launch(lo: int, hi: int) -> None:
        wp.launch(kernel, dim=hi - lo, inputs=[wp.from_torch(p[lo:hi], dtype=wp.vec3), *fixed],
                  outputs=[wp.from_torch(value[lo:hi]), wp.from_torch(weight[lo:hi]), wp.from_torch(gap[lo:hi])],
                  device=key, stream=stream)

    threads = torch.get_num_threads()
    if n == 0:
        pass
    elif dev.type != "cpu" or threads <= 1 or n < 2 * _MIN_POINTS_PER_THREAD:
        launch(0, n)
    else:  # warp runs a CPU launch on one thread and releases the GIL (see geometry.sdf)
        launch(0, 1)
        bounds = torch.linspace(1, n, min(threads, n // _MIN_POINTS_PER_THREAD) + 1).long().tolist()
        with ThreadPoolExecutor(len(bounds) - 1) as pool:
            list(pool.map(lambda i: launch(bounds[i], bounds[i + 1]), range(len(bounds) - 1)))
    value = value / torch.where(weight > 0, weight, torch.ones_like(weight))
    return BlendResult(value, weight, -1), (gap if with_gap else None)


# ============================================================================== representation
def _hash_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def validate_tensor(tensor: Tensor | np.ndarray, k: int, *, source: str = "the M-SDF tensor") -> None:
    """Raise a one-line :class:`ShapegenError` unless ``tensor`` is a valid ``n x (4 + k^3)`` M-SDF."""
    if not isinstance(k, (int, np.integer)) or k < 2:
        raise ShapegenError(f"{source}: grid side k must be an integer >= 2, got {k!r}")
    shape = tuple(tensor.shape)
    if len(shape) != 2 or shape[1] != row_width(int(k)) or shape[0] < 1:
        raise ShapegenError(f"{source} must be n x {row_width(int(k))} (3 centre + 1 scale + {k}^3 values) for k={k}, got shape {shape}")
    t = torch.as_tensor(tensor)
    bad = int((~torch.isfinite(t)).sum())
    if bad:
        raise ShapegenError(f"{source} contains {bad} NaN or infinite entries; re-run the conversion")
    if not bool((t[:, 3] > 0).all()):
        raise ShapegenError(f"{source} has {int((t[:, 3] <= 0).sum())} grids with a non-positive scale; scales must be > 0")


class MosaicSDF:
    """An M-SDF: ``n`` local ``k^3`` SDF grids, callable as a field (``N 3 -> N``).

    Args:
        tensor: ``n x (4 + k^3)`` rows ``[cx, cy, cz, s, V]`` (module doc), in the normalised
            frame. Keep ``requires_grad`` to differentiate through decoding.
        k: grid side.
        normalization: ``4 x 4`` matrix mapping source-mesh coordinates to the normalised frame
            (``x_unit = A x_source``); identity by default.
        source_hash: SHA-256 of the source mesh file ("" if unknown).
        backend: decoding backend. ``torch`` is the differentiable reference; ``warp`` is one
            native kernel per point (forward only, float32); ``auto`` takes warp when it imports
            and no gradient is needed (grad mode off, or neither the points nor the tensor
            require grad), else torch.

    Example:
        >>> m = MosaicSDF.load("bunny.msdf.npz")  # doctest: +SKIP
        >>> d = m(points)                           # signed distance, negative inside
        >>> mesh = m.to_mesh(256)                   # in the source mesh's frame
    """

    def __init__(
        self, tensor: Float[Tensor, "n d"], k: int, normalization: np.ndarray | None = None, source_hash: str = "",
        backend: Backend = "auto",
    ) -> None:
        if backend not in ("auto", "torch", "warp"):
            raise ShapegenError(f"unknown M-SDF decoding backend '{backend}'; use 'auto', 'torch' or 'warp'")
        self.backend = backend
        validate_tensor(tensor.detach() if isinstance(tensor, Tensor) else tensor, k)
        self.tensor = torch.as_tensor(tensor)
        self.k = int(k)
        self.normalization = np.eye(4) if normalization is None else np.asarray(normalization, dtype=np.float64)
        if self.normalization.shape != (4, 4) or not np.isfinite(self.normalization).all():
            raise ShapegenError(f"the normalisation must be a finite 4 x 4 matrix, got shape {self.normalization.shape}")
        self.source_hash = str(source_hash)
        self._cache_key: tuple | None = None
        self._index: CubeIndex | None = None

    # ---------------------------------------------------------------------------- accessors
    @classmethod
    def from_parts(cls, centers: Float[Tensor, "n 3"], scales: Float[Tensor, " n"] | float, values: Float[Tensor, "n K"], **kw) -> MosaicSDF:
        """Assemble the tensor from centres, scales (one shared float or ``n``) and ``n x k^3`` values."""
        n = centers.shape[0]
        k = round(values.shape[-1] ** (1 / 3))
        s = torch.as_tensor(scales, dtype=centers.dtype, device=centers.device).expand(n)
        return cls(torch.cat([centers, s[:, None], values.reshape(n, -1)], dim=1), k, **kw)

    @property
    def n(self) -> int:
        """Number of grids."""
        return int(self.tensor.shape[0])

    @property
    def centers(self) -> Float[Tensor, "n 3"]:
        return self.tensor[:, :3]

    @property
    def scales(self) -> Float[Tensor, " n"]:
        return self.tensor[:, 3]

    @property
    def values(self) -> Float[Tensor, "n K"]:
        return self.tensor[:, 4:]

    def node_points(self) -> Float[Tensor, "n K 3"]:
        """World (normalised-frame) positions of every grid node ``p_i + s_i G``."""
        g = grid_offsets(self.k, device=self.tensor.device, dtype=self.tensor.dtype)
        return self.centers[:, None, :] + self.scales[:, None, None] * g[None]

    def permute(self, perm: Int[Tensor, " n"]) -> MosaicSDF:
        """The same M-SDF with its rows reordered."""
        return MosaicSDF(self.tensor[perm], self.k, self.normalization, self.source_hash, self.backend)

    def bbox(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Smallest cube (equal sides, for isotropic voxels) holding every grid, normalised frame."""
        c, s = self.centers.detach().double(), self.scales.detach().double()
        lo, hi = (c - s[:, None]).amin(0), (c + s[:, None]).amax(0)
        mid, half = (lo + hi) / 2, float((hi - lo).max()) / 2 * (1 + 1e-4)
        return tuple((mid - half).tolist()), tuple((mid + half).tolist())

    # ------------------------------------------------------------------------------ decoding
    def index(self) -> CubeIndex:
        """The spatial hash of the cubes (rebuilt when the tensor changed)."""
        t = self.tensor
        key = (t.data_ptr(), t._version, t.device, t.shape)
        if self._cache_key != key or self._index is None:
            self._index = CubeIndex.build(self.centers, self.scales)
            self._cache_key = key
        return self._index

    def _use_warp(self, points: Tensor) -> bool:
        if self.backend == "torch":
            return False
        needs_grad = torch.is_grad_enabled() and (points.requires_grad or self.tensor.requires_grad)
        if self.backend == "warp":
            if needs_grad:
                raise ShapegenError("the warp M-SDF backend is forward only; use backend='torch' to differentiate")
            from shapegen.geometry.sdf import resolve_backend

            resolve_backend("warp")  # raises with the reason if warp cannot run
            return True
        if needs_grad or self.tensor.dtype != torch.float32 or points.device.type not in ("cpu", "cuda"):
            return False
        from shapegen.geometry.sdf import warp_available

        return warp_available()[0]

    def blend(self, points: Float[Tensor, "N 3"]) -> BlendResult:
        """Raw blend (value and total hat weight) at points in the normalised frame."""
        if self._use_warp(points):
            return _warp_blend(self.index(), self.centers, self.scales, self.values, self.k, points)[0]
        return blend(points, self.centers, self.scales, self.values, self.k, self.index())

    def coverage(self, points: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        """``sum_i w^_i(x)``: 0 exactly outside every cube."""
        with torch.no_grad():
            return self.blend(points.to(self.tensor.dtype)).weight

    def outside_value(self, points: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        """``delta + g(x)``, the positive value used outside every cube (module doc).

        ``g`` is the L-inf distance to the nearest of the cubes listed in the occupied hash
        cell nearest to ``x`` (:meth:`CubeIndex.nearest_cell_candidates`): 0 on the cubes,
        growing with distance, within about two hash cells of the exact L-inf distance to
        ``Omega``. Differentiable w.r.t. the points and the tensor.
        """
        pid, cid = self.index().nearest_cell_candidates(points)
        gap = ((points.index_select(0, pid) - self.centers.index_select(0, cid)).abs().amax(-1) - self.scales.index_select(0, cid)).clamp_min(0)
        g = torch.full((points.shape[0],), torch.inf, dtype=gap.dtype, device=points.device)
        g = g.scatter_reduce(0, pid, gap, reduce="amin")
        delta = OUTSIDE_OFFSET * self.scales.detach().mean()
        return delta + g

    def __call__(self, points: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        """Signed distance at points in the normalised frame (negative inside, positive outside ``Omega``)."""
        points = points.to(self.tensor.dtype)
        if self._use_warp(points):
            res, gap = _warp_blend(self.index(), self.centers, self.scales, self.values, self.k, points, with_gap=True)
            delta = OUTSIDE_OFFSET * float(self.scales.mean())
            return torch.where(res.covered, res.value, delta + gap)
        res = self.blend(points)
        covered = res.covered
        if bool(covered.all()):
            return res.value
        out = res.value.clone()
        miss = (~covered).nonzero().squeeze(1)
        return out.index_put((miss,), self.outside_value(points[miss]).to(out.dtype))

    # ------------------------------------------------------------------------------- meshing
    def occupancy(
        self, resolution: int, box=None, *, method: Literal["nearest", "flood"] = "flood", chunk_size: int = 1 << 16,
    ) -> np.ndarray:
        """Inside (True) / outside of the nodes of a ``resolution^3`` grid over ``box`` (module doc).

        A node inside some cube takes the sign of the decoded value there (negative: inside).
        Elsewhere ``method`` decides: ``nearest`` gives a node the side of the nearest covered
        node; ``flood`` floods the outside from the grid's border through uncovered or
        non-negative nodes and calls inside what it does not reach. Nodes on the border are
        outside with either method.

        Args:
            resolution: samples per axis (both corners of the box included).
            box: ``(lo, hi)`` corners, default :meth:`bbox`.
            method: how uncovered nodes are decided.
            chunk_size: points per decoding call.

        Returns:
            A C-ordered ``resolution^3`` bool array, first index along x.
        """
        from scipy import ndimage

        from shapegen.geometry.extract import _axes, _points

        if method not in ("nearest", "flood"):
            raise ShapegenError(f"unknown occupancy method '{method}'; use 'nearest' or 'flood'")
        r = int(resolution)
        box = self.bbox() if box is None else box
        lo, hi = (np.asarray(c, dtype=np.float64) for c in box)
        dev = self.tensor.device
        ijk = torch.stack(torch.meshgrid(*[torch.arange(r, device=dev)] * 3, indexing="ij"), dim=-1).reshape(-1, 3)
        axes = _axes(lo, hi, r, dev)
        value, covered = [], []
        with torch.no_grad():
            for i in range(0, ijk.shape[0], chunk_size):
                res = self.blend(_points(ijk[i : i + chunk_size], axes).to(self.tensor.dtype))
                value.append(res.value.cpu())
                covered.append(res.covered.cpu())
        value = torch.cat(value).numpy().reshape(r, r, r)
        covered = torch.cat(covered).numpy().reshape(r, r, r)
        border = np.ones((r, r, r), dtype=bool)
        border[1:-1, 1:-1, 1:-1] = False
        covered &= ~border
        negative = covered & (value < 0)
        if not negative.any():
            return negative
        if method == "nearest":
            _, idx = ndimage.distance_transform_edt(~covered, return_indices=True)
            inside = negative[idx[0], idx[1], idx[2]]
        else:
            labels, _ = ndimage.label(~negative)
            reached = np.isin(labels, np.unique(labels[border])) & (labels > 0)
            inside = np.where(covered, negative, ~reached)
        inside &= ~border
        return inside

    def _closed_field(self, box, resolution: int, chunk_size: int):
        """The field :meth:`to_mesh` extracts with ``close_holes``: decoded values inside ``Omega``,
        elsewhere the interpolated signed distance to the :meth:`occupancy` boundary."""
        from scipy.ndimage import distance_transform_cdt

        from shapegen.geometry.extract import grid_field

        r = min(int(resolution), OCCUPANCY_RESOLUTION)
        inside = self.occupancy(r, box, chunk_size=chunk_size)
        h = float(np.max((np.asarray(box[1]) - np.asarray(box[0])) / (r - 1)))
        if inside.any():
            # Chessboard distance from a node to the nearest node of the other side, less half a
            # cell so that the zero level falls between the two. It is 1-Lipschitz and never
            # above the Euclidean distance, which is all sparse extraction's pruning needs, and
            # several times faster than the exact transform.
            far = lambda mask: distance_transform_cdt(mask, metric="chessboard").astype(np.float32)
            signed = np.where(inside, -far(inside), far(~inside)) * h
            signed -= np.sign(signed) * 0.5 * h
        else:
            signed = np.full(inside.shape, r * h)
        fill = grid_field(torch.from_numpy(signed.astype(np.float32)), box)
        dev = self.tensor.device

        def field(p: Tensor) -> Tensor:
            with torch.no_grad():
                p = p.to(dev, self.tensor.dtype)
                res = self.blend(p)
                if bool(res.covered.all()):
                    return res.value
                return torch.where(res.covered, res.value, fill(p.float()).to(res.value.dtype))

        return field

    def to_mesh(
        self, resolution: int = 256, *, normalized: bool = False, chunk_size: int = 1 << 16, progress: bool = False,
        return_stats: bool = False, close_holes: bool = True, min_component_fraction: float = 0.0, one_piece: bool = False,
    ):
        """Triangulate the zero level set with the shared sparse extraction.

        Args:
            resolution: samples per axis of the marching-cubes grid over :meth:`bbox`.
            normalized: keep the normalised frame instead of mapping back to the source mesh's.
            chunk_size: points per decoding call.
            progress: show tqdm bars.
            return_stats: also return the :class:`~shapegen.geometry.extract.ExtractionStats`.
            close_holes: decide inside and outside where no cube reaches (module doc), so the
                mesh closes over gaps in the coverage; False: keep only the triangles of grid
                cells whose corners all lie inside cubes (open where the coverage has gaps).
            min_component_fraction: drop connected components whose area is below this share
                of the mesh's area (:func:`~shapegen.geometry.cleanup.remove_small_components`);
                0 keeps every piece.
            one_piece: with ``close_holes``, join the pieces that remain after dropping the small
                ones with thin struts where they come closest, and extract again
                (:mod:`shapegen.geometry.bridges`), so the mesh is one piece.

        Returns:
            The mesh (faces counter-clockwise seen from outside), or ``(mesh, stats)``; with
            ``one_piece`` the stats are those of the last extraction.
        """
        from shapegen.geometry.extract import extract_mesh

        if not 0 <= min_component_fraction <= 1:
            raise ShapegenError(f"min_component_fraction must be in [0, 1], got {min_component_fraction}")
        box = self.bbox()
        if close_holes:
            field = self._closed_field(box, int(resolution), chunk_size)
        else:
            def field(p: Tensor) -> Tensor:
                with torch.no_grad():
                    return self(p.to(self.tensor.device))

        from shapegen.geometry.cleanup import face_components, remove_small_components

        def extract(fn, fraction: float):
            m, st = extract_mesh(fn, resolution, box, chunk_size=chunk_size, device=self.tensor.device,
                                 progress=progress, return_stats=True)
            if not close_holes:
                m = self._drop_uncovered(m, box, int(resolution), chunk_size)
            if fraction > 0 and m.num_faces:
                m = remove_small_components(m, min_area_fraction=fraction)
            return m, st

        bridge = one_piece and close_holes
        # Pieces of a broken leg are each small: join everything but specks (a tenth of the
        # threshold) first, then drop what is still too small on its own.
        mesh, stats = extract(field, min_component_fraction / 10 if bridge else min_component_fraction)
        if bridge and mesh.num_faces and face_components(mesh)[0] > 1:
            from shapegen.geometry.bridges import bridged_field, plan_bridges

            spacing = float(np.max((np.asarray(box[1]) - np.asarray(box[0])) / (int(resolution) - 1)))
            joined = field
            # A strut can meet a part the first extraction showed in one piece and the new one
            # splits: plan again on the new mesh (a round adds only struts; two are almost always enough).
            for _ in range(BRIDGE_ROUNDS):
                joined = bridged_field(joined, plan_bridges(mesh, joined, spacing, box=box))
                mesh, stats = extract(joined, min_component_fraction / 10)
                if face_components(mesh)[0] <= 1:
                    break
        if bridge and min_component_fraction > 0 and mesh.num_faces:
            mesh = remove_small_components(mesh, min_area_fraction=min_component_fraction)
        if not normalized and mesh.num_vertices:
            a = np.linalg.inv(self.normalization)
            v = mesh.vertices.double().cpu().numpy() @ a[:3, :3].T + a[:3, 3]
            mesh = Mesh(torch.from_numpy(v.astype(np.float32)).to(mesh.device), mesh.faces)
        return (mesh, stats) if return_stats else mesh

    def _drop_uncovered(self, mesh: Mesh, box, g: int, chunk_size: int) -> Mesh:
        """Keep the triangles of grid cells whose 8 corners all lie inside some cube."""
        if mesh.num_faces == 0:
            return mesh
        lo = torch.tensor(box[0], dtype=torch.float64)
        spacing = (torch.tensor(box[1], dtype=torch.float64) - lo) / (g - 1)
        centroid = mesh.vertices[mesh.faces].double().mean(1).cpu()
        cell = ((centroid - lo) / spacing).floor().long().clamp(0, g - 2)
        lin, inverse = torch.unique((cell[:, 0] * g + cell[:, 1]) * g + cell[:, 2], return_inverse=True)
        cells = torch.stack([lin // (g * g), (lin // g) % g, lin % g], dim=-1)
        # Neighbouring cells share corners: evaluate each grid point once.
        corner = cells[:, None, :] + _CORNERS
        corner_lin, corner_inv = torch.unique((corner[..., 0] * g + corner[..., 1]) * g + corner[..., 2], return_inverse=True)
        ijk = torch.stack([corner_lin // (g * g), (corner_lin // g) % g, corner_lin % g], dim=-1)
        pts = (lo + ijk * spacing).to(self.tensor.device, self.tensor.dtype)
        cov = torch.cat([self.coverage(pts[i : i + chunk_size]) for i in range(0, pts.shape[0], chunk_size)]).cpu()
        ok = (cov[corner_inv] > 0).all(1)
        keep = ok[inverse]
        faces = mesh.faces[keep.to(mesh.device)]
        used, remap = torch.unique(faces, return_inverse=True)
        return Mesh(mesh.vertices[used], remap.reshape(-1, 3))

    # ------------------------------------------------------------------------------- file I/O
    def save(self, path: str | os.PathLike) -> Path:
        """Write a ``.msdf.npz`` file atomically (keys: :data:`FILE_KEYS`)."""
        from shapegen.io import write_npz

        path = Path(path)
        if not path.name.endswith(".npz"):
            raise ShapegenError(f"an M-SDF file must end in .msdf.npz, got '{path.name}'")
        return write_npz(
            path,
            tensor=self.tensor.detach().cpu().numpy().astype(np.float32),
            k=np.int64(self.k),
            normalization=self.normalization.astype(np.float64),
            source_hash=np.str_(self.source_hash),
            version=np.int64(FORMAT_VERSION),
        )

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> MosaicSDF:
        """Read and validate a ``.msdf.npz`` file.

        Raises:
            ShapegenError: missing or unreadable file, missing keys, unknown version, wrong
                shape, NaNs or non-positive scales (one line each).
        """
        path = Path(path)
        if not path.is_file():
            raise ShapegenError(f"M-SDF file '{path}' not found; create it with 'shapegen msdf encode'")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except Exception as exc:
            raise ShapegenError(f"cannot read '{path}' as an .msdf.npz file ({type(exc).__name__}); is it corrupt?") from exc
        missing = [key for key in FILE_KEYS if key not in arrays]
        if missing:
            raise ShapegenError(f"'{path}' is missing the keys {missing} (found {sorted(arrays)}); it is not an M-SDF file")
        version = int(arrays["version"])
        if version != FORMAT_VERSION:
            raise ShapegenError(f"'{path}' has M-SDF format version {version}; this shapegen reads version {FORMAT_VERSION}")
        k = int(arrays["k"])
        validate_tensor(arrays["tensor"], k, source=f"the tensor in '{path}'")
        norm = np.asarray(arrays["normalization"], dtype=np.float64)
        if norm.shape != (4, 4) or not np.isfinite(norm).all() or abs(np.linalg.det(norm)) < 1e-30:
            raise ShapegenError(f"'normalization' in '{path}' must be an invertible 4 x 4 matrix, got shape {norm.shape}")
        tensor = torch.from_numpy(np.ascontiguousarray(arrays["tensor"], dtype=np.float32)).to(device)
        return cls(tensor, k, norm, str(arrays["source_hash"]))


__all__ = [
    "FILE_KEYS", "FORMAT_VERSION", "BlendResult", "CubeIndex", "MosaicSDF", "blend", "grid_offsets", "row_width",
    "trilerp_local", "validate_tensor",
]
