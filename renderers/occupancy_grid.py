"""Occupancy-grid estimator: skip empty space, emit samples only in occupied cells.

Follows Instant-NGP (Mueller et al. 2022, arXiv 2201.05989, Sec. 4) as implemented by
nerfacc's ``OccGridEstimator`` (same buffers and layout, so binaries can be handed to
nerfacc's CUDA traversal): ``levels`` cascaded grids of ``G^3`` cells, level ``l`` covering
the box scaled by ``2^l`` about its centre; ``occs`` is an EMA (``max(decay * occ, new)``) of
per-cell opacity estimates; ``binaries = occs > min(mean(occs), threshold)``.

The pure-torch traversal marches constant steps ``t_k = t0 + k * step`` (``t0`` = entry into
the outermost box or ``near``; the same global ``t`` grid as a dense marcher) and keeps a
step when the cell containing its midpoint is occupied in the finest level containing it.
It never enumerates the steps of a ray: the ray's interval is cut analytically at the cell
planes of a max-pooled pyramid of the binaries (``G / f^k``, ``f = coarse_factor``), keeping
only pieces in occupied cells and refining those level by level
(:mod:`renderers.grid_traversal`); then only the steps whose midpoint lies in a kept piece
are emitted, and a per-step lookup in the full grid removes those in empty fine cells. All of
it is packed (``repeat_interleave``/``cumsum``, no Python loops over rays), and the result
equals filtering a dense march of the same step (tested). Early ray termination runs on the
packed samples (a per-ray exclusive scan of optical depth). Differences from nerfacc: no
cone angle (constant steps only); nerfacc aligns steps to cell boundaries it skips to, so
its samples agree "up to step alignment"; density updates also evaluate cell corners, so
partly covered cells are not missed (see :meth:`OccupancyGrid.update`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor, nn

from renderers.backends import Backend, get_backend
from renderers.grid_traversal import expand_ranges, occupied_intervals, step_ranges
from renderers.rays import ray_aabb_intersect
from renderers.samples import RaySamples

__all__ = ["OccupancyGrid"]


class OccupancyGrid(nn.Module):
    """Multi-level binary occupancy grid with EMA updates and empty-space-skipping traversal.

    Args:
        aabb: ``(xmin, ymin, zmin, xmax, ymax, zmax)`` of the finest level (world units).
        resolution: cells per side G.
        levels: number of cascades L (level l covers ``aabb`` scaled by ``2^l``).
        coarse_factor: refinement factor between the levels of the max-pooled pyramid that the
            torch traversal descends (``G, G/f, G/f^2, ...`` down to 4 cells per side).
        fine_dda: whether the torch traversal also cuts rays at the finest grid's planes
            before emitting steps (else it emits every step in occupied cells of the level
            ``G / f`` and drops those in empty fine cells with one lookup each).
    """

    def __init__(
        self,
        aabb: tuple[float, ...] | Tensor = (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0),
        resolution: int = 128,
        levels: int = 1,
        coarse_factor: int = 4,
        fine_dda: bool = False,
    ) -> None:
        super().__init__()
        aabb = torch.as_tensor(aabb, dtype=torch.float32)
        center, half = (aabb[:3] + aabb[3:]) / 2, (aabb[3:] - aabb[:3]) / 2
        aabbs = torch.stack(
            [torch.cat([center - half * 2**i, center + half * 2**i]) for i in range(levels)]
        )
        self.resolution, self.levels = int(resolution), int(levels)
        self.coarse_factor = max(1, min(int(coarse_factor), self.resolution))
        while self.resolution % self.coarse_factor:  # coarse cells must tile the grid exactly
            self.coarse_factor -= 1
        self.register_buffer("aabbs", aabbs)  # (L, 6)
        self.register_buffer("occs", torch.zeros(levels, resolution, resolution, resolution))
        # Everything is occupied until the first update, so an untrained grid skips nothing.
        self.register_buffer(
            "binaries", torch.ones(levels, resolution, resolution, resolution, dtype=torch.bool)
        )
        self.fine_dda = bool(fine_dda)
        self._coarse: list[Tensor] | None = None
        self._coarse_key: tuple | None = None

    # --- geometry -----------------------------------------------------------------------

    def cell_size(self, level: int = 0) -> Tensor:
        """Edge lengths of one cell at ``level`` (3,)."""
        return (self.aabbs[level, 3:] - self.aabbs[level, :3]) / self.resolution

    def _cell_points(self, level: int, jitter: bool) -> Float[Tensor, "M 3"]:
        g = self.resolution
        idx = torch.arange(g, device=self.aabbs.device, dtype=torch.float32)
        coords = torch.stack(torch.meshgrid(idx, idx, idx, indexing="ij"), -1).reshape(-1, 3)
        coords = coords + (torch.rand_like(coords) if jitter else 0.5)
        lo, hi = self.aabbs[level, :3], self.aabbs[level, 3:]
        return lo + coords / g * (hi - lo)

    def _corner_points(self, level: int) -> Float[Tensor, "M 3"]:
        """The ``(G + 1)^3`` cell corners of ``level``, x-major like the cells."""
        g = self.resolution
        idx = torch.arange(g + 1, device=self.aabbs.device, dtype=torch.float32)
        coords = torch.stack(torch.meshgrid(idx, idx, idx, indexing="ij"), -1).reshape(-1, 3)
        lo, hi = self.aabbs[level, :3], self.aabbs[level, 3:]
        return lo + coords / g * (hi - lo)

    def _level_of(self, x: Float[Tensor, "N 3"]) -> Tensor:
        """Finest level whose box contains ``x``; ``levels`` where none does."""
        level = torch.full(x.shape[:1], self.levels, dtype=torch.long, device=x.device)
        for lvl in reversed(range(self.levels)):
            inside = ((x >= self.aabbs[lvl, :3]) & (x <= self.aabbs[lvl, 3:])).all(-1)
            level = torch.where(inside, torch.full_like(level, lvl), level)
        return level

    def query(self, x: Float[Tensor, "N 3"]) -> Bool[Tensor, " N"]:
        """Whether each point lies in an occupied cell of the finest level containing it.

        False outside every level. One pass per level with the level's box as scalars (no
        per-point gathers of box corners), finest level last so it wins.
        """
        g = self.resolution
        flat_bins = self.binaries.reshape(self.levels, -1)
        out = torch.zeros(x.shape[:1], dtype=torch.bool, device=x.device)
        for lvl in reversed(range(self.levels)):
            lo, hi = self.aabbs[lvl, :3], self.aabbs[lvl, 3:]
            inside = ((x >= lo) & (x <= hi)).all(-1)
            ijk = ((x - lo) / (hi - lo) * g).floor_().long().clamp_(0, g - 1)
            occ = flat_bins[lvl][(ijk[:, 0] * g + ijk[:, 1]) * g + ijk[:, 2]]
            out = torch.where(inside, occ, out) if lvl < self.levels - 1 else inside & occ
        return out

    # --- updates ------------------------------------------------------------------------

    @torch.no_grad()
    def update(
        self,
        fn: Callable[[Tensor], Tensor],
        kind: Literal["density", "sdf"] = "density",
        step: int | None = None,
        step_size: float | None = None,
        occ_thre: float = 0.01,
        ema_decay: float = 0.95,
        warmup_steps: int = 256,
        sdf_margin: float = 0.0,
        corners: bool = True,
        dilate: int = 0,
    ) -> None:
        """EMA update from a field callable ``fn: (M, 3) -> (M,)`` or ``(M, 1)``.

        ``kind='density'``: the new value of a cell is ``sigma * step_size`` (nerfacc's
        estimate of its opacity), ``sigma`` taken at a random point in the cell and, with
        ``corners`` (default), the maximum of that and ``sigma`` at the cell's 8 corners. The
        corners make the update conservative: nerfacc's single random point misses cells that
        the field only partly covers, and a renderer then skips samples a dense marcher keeps.
        For a trilinear grid of the same resolution a cell's field is non-zero somewhere
        exactly when it is non-zero at a corner; the ``(G + 1)^3`` corner lattice is shared
        by neighbouring cells, so this costs about one extra evaluation per cell.
        ``step_size`` defaults to the level-0 cell diagonal. ``kind='sdf'`` (SDF positive
        outside): 1 where the SDF at the cell centre is at most the cell's half diagonal plus
        ``sdf_margin`` (the surface may cross the cell, or the cell is inside), else 0 --
        exact for a true SDF. ``dilate`` > 0 grows the binary grid by that many cells (for
        fields with features smaller than a cell). During warm-up (``step is None or step <
        warmup_steps``) every cell is evaluated; later a random quarter of the cells plus up
        to as many occupied ones, as nerfacc (the corner lattice is always evaluated whole).
        """
        if kind not in ("density", "sdf"):
            raise ValueError(f"kind must be 'density' or 'sdf', got {kind!r}")
        n_cells = self.resolution**3
        default_step = float(self.cell_size(0).norm())
        for lvl in range(self.levels):
            occs = self.occs[lvl].reshape(-1)
            if step is None or step < warmup_steps:
                idx = None
            else:
                uni = torch.randint(n_cells, (n_cells // 4,), device=occs.device)
                occupied = torch.nonzero(self.binaries[lvl].reshape(-1))[:, 0]
                if occupied.numel() > n_cells // 4:
                    occupied = occupied[
                        torch.randint(occupied.numel(), (n_cells // 4,), device=occs.device)
                    ]
                idx = torch.cat([uni, occupied])
            x = self._cell_points(lvl, jitter=(kind == "density"))
            x = x if idx is None else x[idx]
            values = _evaluate(fn, x).to(occs.dtype)
            if kind == "density":
                if corners:
                    g = self.resolution
                    at_corners = _evaluate(fn, self._corner_points(lvl)).to(occs.dtype)
                    at_corners = F.max_pool3d(at_corners.view(1, 1, g + 1, g + 1, g + 1), 2, 1)
                    at_corners = at_corners.reshape(-1)
                    values = torch.maximum(values, at_corners if idx is None else at_corners[idx])
                new = values * (step_size if step_size is not None else default_step)
            else:
                radius = float(self.cell_size(lvl).norm()) / 2 + sdf_margin
                new = (values <= radius).to(occs.dtype)
            if idx is None:
                occs.copy_(torch.maximum(occs * ema_decay, new))
            else:
                occs[idx] = torch.maximum(occs[idx] * ema_decay, new)
        thre = torch.clamp(self.occs.mean(), max=occ_thre if kind == "density" else 0.5)
        binaries = self.occs > thre
        if dilate > 0:
            k = 2 * int(dilate) + 1
            binaries = F.max_pool3d(binaries.float()[:, None], k, 1, int(dilate))[:, 0] > 0
        self.binaries.copy_(binaries)

    def set_binaries(self, binaries: Bool[Tensor, "L G G G"]) -> None:
        """Replaces the binary grid directly (e.g. from a known scene)."""
        self.binaries.copy_(binaries.to(self.binaries.device))
        self.occs.copy_(binaries.to(self.occs.dtype))

    # --- traversal ------------------------------------------------------------------------

    def _pyramid(self) -> list[Tensor]:
        """Max-pooled binaries, coarsest first, each ``(L, r, r, r)``; cached per binaries version.

        Resolutions ``G / f^k`` for ``f = coarse_factor`` down to at least 4 cells per side;
        the last entry is the full grid itself when ``fine_dda`` is set, else ``G / f``.
        """
        b = self.binaries
        key = (b._version, b.data_ptr(), b.device, self.fine_dda)
        if self._coarse is None or self._coarse_key != key:
            f, res, grids = self.coarse_factor, self.resolution, []
            pooled = b.float()[:, None]
            while f > 1 and res % f == 0 and res // f >= 4:
                pooled = F.max_pool3d(pooled, kernel_size=f, stride=f)
                res //= f
                grids.append(pooled[:, 0] > 0)
            grids = grids[::-1] + ([b] if self.fine_dda or not grids else [])
            self._coarse, self._coarse_key = grids, key
        return self._coarse

    @torch.no_grad()
    def traverse(
        self,
        origins: Float[Tensor, "R 3"],
        directions: Float[Tensor, "R 3"],
        step_size: float,
        near: Float[Tensor, " R"] | float = 0.0,
        far: Float[Tensor, " R"] | float = 1e10,
        backend: Backend = "auto",
    ) -> RaySamples:
        """Constant-step samples whose midpoints lie in occupied cells (packed, no grad)."""
        r = origins.shape[0]
        near = torch.as_tensor(near, dtype=origins.dtype, device=origins.device).expand(r)
        far = torch.as_tensor(far, dtype=origins.dtype, device=origins.device).expand(r)
        be = get_backend(backend, origins.device)
        if be.NAME == "nerfacc":
            ri, t0, t1 = be.traverse_grid(
                origins, directions, self.binaries, self.aabbs, near, far, step_size
            )
            return RaySamples(t0, t1, ri, r)
        return self._traverse_torch(origins, directions, step_size, near, far)

    def _traverse_torch(self, origins, directions, step_size, near, far) -> RaySamples:
        dev, r = origins.device, origins.shape[0]
        pyramid = self._pyramid()
        factor = self.coarse_factor
        if len(pyramid) > 1:  # consecutive levels differ by coarse_factor
            factor = pyramid[1].shape[-1] // pyramid[0].shape[-1]
        bounds = ray_aabb_intersect(origins, directions, self.aabbs[-1])
        t0 = torch.maximum(near, bounds.near)
        t1 = torch.minimum(far, bounds.far)
        live = bounds.hit & (t1 > t0)
        n_steps = torch.where(live, torch.ceil((t1 - t0) / step_size), torch.zeros_like(t0)).long()
        # inf on axis-parallel rays; their plane distances are dropped
        table = torch.cat([origins, directions, 1.0 / directions], 1)
        rays = torch.arange(r, device=dev)
        parts = []
        prev = None  # the next finer cascade's box, cut out of this one
        for lvl in range(self.levels):
            box = ray_aabb_intersect(origins, directions, self.aabbs[lvl])
            lo_t, hi_t = torch.maximum(t0, box.near), torch.minimum(t1, box.far)
            ok = live & box.hit & (hi_t > lo_t)
            if prev is None:
                pieces = [(lo_t, hi_t, ok)]
            else:  # the part of the box outside the finer one: before it and after it
                phit = prev.hit
                pieces = [
                    (lo_t, torch.where(phit, torch.minimum(hi_t, prev.near), hi_t), ok),
                    (torch.maximum(lo_t, prev.far), hi_t, ok & phit),
                ]
            prev = box
            lo, extent = self.aabbs[lvl, :3], self.aabbs[lvl, 3:] - self.aabbs[lvl, :3]
            for a, b, m in pieces:
                m = m & (b > a)
                parts.append(
                    occupied_intervals(
                        table,
                        rays[m],
                        a[m],
                        b[m],
                        lo,
                        extent,
                        [g[lvl] for g in pyramid],
                        factor,
                    )
                )
        ray = torch.cat([p[0] for p in parts])
        a = torch.cat([p[1] for p in parts])
        b = torch.cat([p[2] for p in parts])
        if self.levels > 1:  # pieces of different cascades interleave along a ray
            order = torch.sort(a, stable=True).indices
            order = order[torch.sort(ray[order], stable=True).indices]
            ray, a, b = ray[order], a[order], b[order]
        # The last step may be cut short by t1, so its midpoint is not t0 + (k + 1/2) step:
        # it is left out of the ranges and tested on its own, after the ranges of its ray.
        has = n_steps > 0
        ray, k_lo, k_hi = step_ranges(ray, a, b, t0, n_steps - 1, step_size, 1e-3 * step_size)
        last = n_steps[has] - 1
        ray = torch.cat([ray, rays[has]])
        k_lo, k_hi = torch.cat([k_lo, last]), torch.cat([k_hi, last + 1])
        order = torch.sort(ray, stable=True).indices
        ray_s, k = expand_ranges(ray[order], k_lo[order], k_hi[order])
        per = torch.cat([origins, directions, t0[:, None], t1[:, None]], 1)[ray_s]
        ts = per[:, 6] + k.to(t0.dtype) * step_size
        te = torch.minimum(ts + step_size, per[:, 7])
        x = per[:, :3] + (0.5 * (ts + te))[:, None] * per[:, 3:6]
        occ = self.query(x)  # exact finest-level test: the candidates are a superset
        return RaySamples(ts[occ], te[occ], ray_s[occ], r)

    @torch.no_grad()
    def sample(
        self,
        origins: Float[Tensor, "R 3"],
        directions: Float[Tensor, "R 3"],
        step_size: float,
        sigma_fn: Callable[[RaySamples], Tensor] | None = None,
        alpha_fn: Callable[[RaySamples], Tensor] | None = None,
        near: Float[Tensor, " R"] | float = 0.0,
        far: Float[Tensor, " R"] | float = 1e10,
        early_stop_eps: float = 1e-4,
        alpha_thre: float = 0.0,
        stratified: bool = False,
        backend: Backend = "auto",
        return_values: bool = False,
    ) -> RaySamples | tuple[RaySamples, Tensor]:
        """Traversal plus visibility culling (early ray termination), like nerfacc's sampling.

        With ``sigma_fn`` (or ``alpha_fn``), called on the traversed samples without gradient,
        samples with transmittance below ``early_stop_eps`` or opacity below
        ``min(alpha_thre, mean(occs))`` are dropped. ``return_values`` also returns the
        densities/opacities of the kept samples (for inference, to skip a second evaluation).
        """
        if sigma_fn is not None and alpha_fn is not None:
            raise ValueError("give at most one of sigma_fn and alpha_fn")
        if stratified:
            r = origins.shape[0]
            near = torch.as_tensor(near, dtype=origins.dtype, device=origins.device).expand(r)
            near = near + torch.rand_like(near) * step_size
        samples = self.traverse(origins, directions, step_size, near, far, backend)
        fn = sigma_fn if sigma_fn is not None else alpha_fn
        if fn is None or len(samples) == 0:
            empty = None if fn is None else samples.t_starts.new_zeros(0)
            return (samples, empty) if return_values else samples
        values = fn(samples).reshape(-1)
        be = get_backend(backend, values.device)
        if sigma_fn is not None:
            _, trans, alphas = be.weights_from_density(
                samples.t_starts, samples.t_ends, values, samples.ray_indices, samples.n_rays
            )
        else:
            alphas = values
            trans = be.transmittance_from_alpha(alphas, samples.ray_indices, samples.n_rays)
        keep = trans >= early_stop_eps
        thre = min(alpha_thre, float(self.occs.mean()))
        if thre > 0:
            keep &= alphas >= thre
        samples = samples.select(keep)
        return (samples, values[keep]) if return_values else samples


def _evaluate(fn: Callable[[Tensor], Tensor], x: Tensor, chunk: int = 1 << 20) -> Tensor:
    """``fn(x).reshape(-1)`` in chunks of points, to bound the field's memory."""
    return torch.cat([fn(x[i : i + chunk]).reshape(-1) for i in range(0, max(len(x), 1), chunk)])
