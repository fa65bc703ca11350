"""TSDF fusion of posed depth maps (Curless & Levoy 1996), in pure torch.

A truncated signed distance volume is a grid of voxels, each holding a running weighted average
of projective signed distances ``sdf = D(pi(x)) - z(x)``: the depth ``D`` measured at the pixel
``pi(x)`` the voxel centre ``x`` projects to, minus the voxel's own z-depth in that camera.
Positive values lie in front of the observed surface (free space), negative values behind it.
Per frame and voxel (Curless-Levoy Eq. 6-7, with the truncation of KinectFusion /
``andyzeng/tsdf-fusion-python``):

- update only where the pixel has a valid depth (``D > 0``) and ``sdf >= -trunc`` (a voxel more
  than ``trunc`` behind the surface is occluded, not observed);
- ``d = min(1, sdf / trunc)`` (normalised to ``[-1, 1]``);
- ``F <- (W F + w d) / (W + w)``, ``W <- W + w`` with the frame weight ``w`` (1 by default);
  colours are averaged with the same weights.

The mesh is the 0 level set by the shared marching cubes (:func:`shapegen.geometry.extract.marching_cubes`),
keeping only triangles whose vertices lie on grid edges with both end voxels observed
(``W > 0``): unobserved voxels hold ``F = 1`` and would otherwise close every surface with a
spurious sheet ``trunc`` behind it. Vertex colours are interpolated along the same edges.

Units and frames: depths are z-depths (not ray lengths) in world units (metres for sensors),
``0`` marks invalid pixels; poses are camera-to-world with OpenCV axes (x right, y down,
z forward); pixel ``(v, u)`` covers ``[u, u + 1) x [v, v + 1)`` with its centre at
``u + 0.5``, so a voxel takes the depth of the pixel it falls in (nearest neighbour).

Cost: a frame visits only the voxels in the axis-aligned box of its viewing frustum (camera
centre to the frame's largest depth plus ``trunc``), which no update can leave. Memory: the
volume costs 8 bytes per voxel (float32 TSDF and weight), 20 with colour; each integration step
handles about ``chunk`` voxels (whole x-slabs, about 100 bytes per voxel of scratch), so a frame
never needs a full-volume temporary. All per-voxel arithmetic is element-wise in a fixed order
(no matrix products), which makes the result independent of the chunk size bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from shapegen.errors import ShapegenError
from shapegen.geometry.mesh import Mesh

__all__ = ["TSDFVolume", "depth_bounds", "fuse_depth_maps"]


def _as_batch_K(K: Tensor, n: int) -> Tensor:
    K = torch.as_tensor(K)
    if K.shape == (3, 3):
        return K.expand(n, 3, 3)
    if K.shape != (n, 3, 3):
        raise ShapegenError(f"intrinsics must be 3x3 or {n}x3x3, got {tuple(K.shape)}")
    return K


def depth_bounds(
    depths: Float[Tensor, "N H W"],
    K: Float[Tensor, "N 3 3"] | Float[Tensor, "3 3"],
    c2w: Float[Tensor, "N 4 4"],
    *,
    mode: Literal["frusta", "points"] = "frusta",
    margin: float = 0.0,
) -> tuple[Float[Tensor, 3], Float[Tensor, 3]]:
    """Axis-aligned box containing what the depth maps observe.

    Args:
        depths: z-depths (world units), 0 where invalid.
        K: pinhole intrinsics in pixels, one for all frames or one per frame.
        c2w: camera-to-world poses, OpenCV axes.
        mode: ``"frusta"``: the box of each frame's viewing frustum between its smallest and
            largest valid depth (the eight corners; as tsdf-fusion-python, which uses the
            whole image rectangle at the largest depth); ``"points"``: the box of all
            back-projected valid depths (tighter: only where a surface was seen).
        margin: added on every side (use the truncation distance, so voxels just behind the
            farthest surface exist).

    Returns:
        ``(lo, hi)`` float32 corners.

    Raises:
        ShapegenError: when no frame has a valid depth.
    """
    n, h, w = depths.shape
    K = _as_batch_K(K, n).double()
    c2w = c2w.double()
    pts = []
    for i in range(n):
        d = depths[i].double()
        valid = d > 0
        if not bool(valid.any()):
            continue
        if mode == "frusta":
            dmin, dmax = float(d[valid].min()), float(d[valid].max())
            u = torch.tensor([0.0, w, 0.0, w], dtype=torch.float64).repeat(2)
            v = torch.tensor([0.0, 0.0, h, h], dtype=torch.float64).repeat(2)
            z = torch.tensor([dmin] * 4 + [dmax] * 4, dtype=torch.float64)
        elif mode == "points":
            v, u = torch.nonzero(valid, as_tuple=True)
            z = d[v, u]
            u, v = u.double() + 0.5, v.double() + 0.5
        else:
            raise ShapegenError(f"bounds mode must be 'frusta' or 'points', got {mode!r}")
        cam = torch.stack([(u - K[i, 0, 2]) / K[i, 0, 0] * z, (v - K[i, 1, 2]) / K[i, 1, 1] * z, z], -1)
        world = cam @ c2w[i, :3, :3].T + c2w[i, :3, 3]
        pts.append(torch.stack([world.amin(0), world.amax(0)]))
    if not pts:
        raise ShapegenError("no depth map has a valid (non-zero) pixel; nothing to fuse")
    allp = torch.cat(pts)
    return (allp.amin(0) - margin).float(), (allp.amax(0) + margin).float()


@dataclass
class TSDFVolume:
    """A dense TSDF volume on an axis-aligned voxel grid.

    Voxel ``(i, j, k)`` (``ij`` indexing: array axis 0 is x) has its centre at
    ``origin + voxel_size * (i, j, k)``.
    """

    origin: Float[Tensor, 3]
    """World position of the centre of voxel ``(0, 0, 0)``."""
    voxel_size: float
    """Edge of a voxel (world units)."""
    trunc: float
    """Truncation distance (world units); stored values are ``sdf / trunc`` clipped to ``[-1, 1]``."""
    tsdf: Float[Tensor, "X Y Z"]
    """Normalised truncated signed distance, positive in free space; 1 where unobserved."""
    weight: Float[Tensor, "X Y Z"]
    """Accumulated weight; 0 where unobserved."""
    color: Float[Tensor, "X Y Z 3"] | None = None
    """Weighted mean colour in [0, 1], if colours are fused."""

    @classmethod
    def empty(
        cls,
        lo: Float[Tensor, 3],
        hi: Float[Tensor, 3],
        voxel_size: float,
        trunc: float,
        *,
        color: bool = False,
        device: torch.device | str | None = None,
        max_voxels: int = 1 << 30,
    ) -> TSDFVolume:
        """An unobserved volume whose voxel centres cover the box ``[lo, hi]``.

        Raises:
            ShapegenError: non-positive voxel size or truncation, an empty box, or more than
                ``max_voxels`` voxels (a guard against a wrong unit, e.g. millimetres).
        """
        if not (voxel_size > 0 and math.isfinite(voxel_size)):
            raise ShapegenError(f"voxel size must be positive, got {voxel_size}")
        if not (trunc > 0 and math.isfinite(trunc)):
            raise ShapegenError(f"truncation distance must be positive, got {trunc}")
        lo = torch.as_tensor(lo, dtype=torch.float64).reshape(3)
        hi = torch.as_tensor(hi, dtype=torch.float64).reshape(3)
        if not bool(torch.isfinite(lo).all() and torch.isfinite(hi).all() and (hi >= lo).all()):
            raise ShapegenError(f"bad TSDF bounds {lo.tolist()} .. {hi.tolist()}")
        dims = [math.ceil(float(e) / voxel_size) + 1 for e in (hi - lo)]
        total = dims[0] * dims[1] * dims[2]
        if total > max_voxels:
            raise ShapegenError(
                f"the TSDF volume would have {dims[0]}x{dims[1]}x{dims[2]} = {total:,} voxels (limit {max_voxels:,}); "
                "use a larger voxel size, fewer frames or a smaller max depth (are the depths in metres?)"
            )
        dev = torch.device(device) if device is not None else torch.device("cpu")
        return cls(
            lo.float().to(dev), float(voxel_size), float(trunc),
            torch.ones(dims, dtype=torch.float32, device=dev),
            torch.zeros(dims, dtype=torch.float32, device=dev),
            torch.zeros((*dims, 3), dtype=torch.float32, device=dev) if color else None,
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.tsdf.shape)  # type: ignore[return-value]

    @property
    def num_voxels(self) -> int:
        return self.tsdf.numel()

    @property
    def bbox(self) -> tuple[list[float], list[float]]:
        """``(lo, hi)``: the centres of the first and last voxels."""
        lo = self.origin.double()
        hi = lo + self.voxel_size * (torch.tensor(self.shape, dtype=torch.float64) - 1)
        return lo.tolist(), hi.tolist()

    def integrate(
        self,
        depth: Float[Tensor, "H W"],
        K: Float[Tensor, "3 3"],
        c2w: Float[Tensor, "4 4"],
        color: Float[Tensor, "H W 3"] | None = None,
        *,
        weight: float = 1.0,
        chunk: int = 1 << 20,
    ) -> int:
        """Fuse one depth map (Curless-Levoy running average, module doc).

        Args:
            depth: z-depths in world units, 0 where invalid.
            K: pinhole intrinsics of the depth map (pixels).
            c2w: camera-to-world pose, OpenCV axes.
            color: colours in [0, 1] registered to the depth map (ignored without a colour grid).
            weight: weight of this frame's observations.
            chunk: voxels processed at a time, rounded down to whole x-slabs of the frame's
                frustum box (at least one); bounds the scratch memory, results do not depend on it.

        Returns:
            Number of voxels updated.
        """
        h, w = depth.shape
        if color is not None and self.color is not None and tuple(color.shape) != (h, w, 3):
            raise ShapegenError(f"colour image {tuple(color.shape)} does not match the depth map {h}x{w}x3")
        dev = self.tsdf.device
        depth = depth.to(dev, torch.float32)
        valid = depth > 0
        if not bool(valid.any()):
            return 0
        flat_depth = depth.reshape(-1)
        flat_color = None if self.color is None or color is None else color.to(dev, torch.float32).reshape(-1, 3)
        # Projection P = K [R | t] (world -> homogeneous pixels): pixel coordinates and z-depth of a
        # voxel are separable sums over its three axes, so each needs two additions per voxel.
        P = K.double().cpu() @ torch.linalg.inv(c2w.double().cpu())[:3]
        trunc = self.trunc
        # Only voxels inside the frustum from the camera centre to (max depth + trunc) can be
        # updated; visit the voxel-index box around it (one voxel of slack for rounding).
        ranges = self._frustum_index_box(K, c2w, w, h, float(depth[valid].max()) + trunc)
        if ranges is None:
            return 0
        (i0, i1), (j0, j1), (k0, k1) = ranges
        o = self.origin.double().cpu()
        axes = [torch.arange(a, b, dtype=torch.float64) * self.voxel_size + o[ax] for ax, (a, b) in enumerate(ranges)]
        # terms[row][axis]: P[row, axis] * coordinate (+ P[row, 3] on the z axis), cast to float32 once.
        terms = [[(P[row, ax] * axes[ax] + (P[row, 3] if ax == 2 else 0.0)).float().to(dev) for ax in range(3)] for row in range(3)]
        slab = max(1, int(chunk) // ((j1 - j0) * (k1 - k0)))
        _, ny, nz = self.shape
        tsdf_flat, wgt_flat = self.tsdf.view(-1), self.weight.view(-1)
        col_flat = None if self.color is None else self.color.view(-1, 3)
        updated = 0
        for s in range(i0, i1, slab):
            e = min(s + slab, i1)
            # Element-wise, in a fixed order per voxel: identical results for any block split.
            pu, pv, zc = (
                (tx[s - i0 : e - i0, None, None] + ty[None, :, None]) + tz[None, None, :] for tx, ty, tz in terms
            )
            inv_z = 1.0 / zc.clamp_min(1e-6)
            u = torch.floor(pu * inv_z)
            v = torch.floor(pv * inv_z)
            ok = (zc > 1e-6) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
            pix = (v.clamp(0, h - 1) * w + u.clamp(0, w - 1)).long()
            d = torch.where(ok, flat_depth[pix], torch.zeros_like(zc))
            sdf = d - zc
            ok &= (d > 0) & (sdf >= -trunc)
            loc = ok.reshape(-1).nonzero().squeeze(1)  # one nonzero per block; flat indices from here on
            if loc.numel() == 0:
                continue
            nj, nk = j1 - j0, k1 - k0
            g = (((loc // (nj * nk) + s) * ny + (loc // nk) % nj + j0) * nz + loc % nk + k0)
            val = (sdf.reshape(-1)[loc] / trunc).clamp(max=1.0)
            w_old = wgt_flat[g]
            w_new = w_old + weight
            tsdf_flat[g] = (tsdf_flat[g] * w_old + val * weight) / w_new
            if flat_color is not None:
                col_flat[g] = (col_flat[g] * w_old[:, None] + flat_color[pix.reshape(-1)[loc]] * weight) / w_new[:, None]
            wgt_flat[g] = w_new
            updated += int(loc.numel())
        return updated

    def _frustum_index_box(self, K: Tensor, c2w: Tensor, w: int, h: int, far: float) -> list[tuple[int, int]] | None:
        """Per axis, the half-open voxel-index range covering the frustum ``0 < z <= far``; None if empty."""
        Kd, c2w = K.double().cpu(), c2w.double().cpu()
        u = torch.tensor([0.0, w, 0.0, w], dtype=torch.float64)
        v = torch.tensor([0.0, 0.0, h, h], dtype=torch.float64)
        cam = torch.stack([(u - Kd[0, 2]) / Kd[0, 0] * far, (v - Kd[1, 2]) / Kd[1, 1] * far, torch.full_like(u, far)], -1)
        pts = torch.cat([cam @ c2w[:3, :3].T + c2w[:3, 3], c2w[None, :3, 3]])
        g = (pts - self.origin.double().cpu()) / self.voxel_size
        lo = torch.floor(g.amin(0)).long() - 1
        hi = torch.ceil(g.amax(0)).long() + 2
        out = []
        for ax in range(3):
            a, b = max(0, int(lo[ax])), min(self.shape[ax], int(hi[ax]))
            if a >= b:
                return None
            out.append((a, b))
        return out

    def extract_mesh(self) -> Mesh:
        """The fused surface (level 0) by marching cubes, restricted to observed voxels.

        Returns:
            A mesh in world coordinates, faces counter-clockwise seen from free space (normals
            point toward the cameras), with vertex colours when colours were fused. Empty
            (0 faces) when nothing crosses the level.
        """
        from shapegen.geometry.cleanup import _compact
        from shapegen.geometry.extract import marching_cubes

        if min(self.shape) < 2:
            return Mesh(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long))
        mesh = marching_cubes(self.tsdf, self.bbox, 0.0).to("cpu")
        if mesh.num_faces == 0:
            return mesh
        # Each vertex lies on one grid edge; find its two end voxels (integral coordinates on two axes).
        g = (mesh.vertices.double() - self.origin.double().cpu()) / self.voxel_size
        dims = torch.tensor(self.shape, dtype=torch.long)
        a = torch.floor(g + 1e-4).long().clamp(min=torch.zeros(3, dtype=torch.long), max=dims - 1)
        b = torch.ceil(g - 1e-4).long().clamp(min=torch.zeros(3, dtype=torch.long), max=dims - 1)
        lin = lambda ijk: (ijk[:, 0] * dims[1] + ijk[:, 1]) * dims[2] + ijk[:, 2]
        wflat = self.weight.reshape(-1).cpu()
        observed = (wflat[lin(a)] > 0) & (wflat[lin(b)] > 0)
        colors = None
        if self.color is not None:
            cflat = self.color.reshape(-1, 3).cpu()
            frac = ((g - a.double()) * (b != a).double()).amax(-1, keepdim=True).float()
            colors = (cflat[lin(a)] * (1 - frac) + cflat[lin(b)] * frac).clamp(0, 1)
        mesh = Mesh(mesh.vertices, mesh.faces, colors)
        return _compact(mesh, observed[mesh.faces].all(-1))


def fuse_depth_maps(
    depths: Float[Tensor, "N H W"],
    K: Float[Tensor, "N 3 3"] | Float[Tensor, "3 3"],
    c2w: Float[Tensor, "N 4 4"],
    *,
    voxel_size: float,
    trunc: float | None = None,
    colors: Float[Tensor, "N H W 3"] | None = None,
    bounds: tuple[Tensor, Tensor] | Literal["frusta", "points"] = "frusta",
    chunk: int = 1 << 20,
    max_voxels: int = 1 << 30,
    progress: bool = False,
) -> TSDFVolume:
    """Fuse posed depth maps into a new :class:`TSDFVolume`.

    Args:
        depths: z-depths in world units (metres for sensors), 0 where invalid.
        K: intrinsics (pixels), shared or per frame.
        c2w: camera-to-world poses, OpenCV axes.
        voxel_size: voxel edge (world units).
        trunc: truncation distance; default ``4 * voxel_size``.
        colors: optional colours in [0, 1] registered to the depth maps.
        bounds: an explicit ``(lo, hi)`` box, or how to derive it from the depths
            (:func:`depth_bounds`, with ``trunc`` as margin).
        chunk: voxels per integration step (memory bound; results do not depend on it).
        max_voxels: refuse larger volumes (see :meth:`TSDFVolume.empty`).
        progress: show a progress bar over frames.

    Returns:
        The fused volume (on the depths' device).

    Raises:
        ShapegenError: inconsistent shapes, bad sizes, no valid depth, or a too-large volume.
    """
    if depths.ndim != 3:
        raise ShapegenError(f"depths must be N x H x W, got {tuple(depths.shape)}")
    n = depths.shape[0]
    if tuple(c2w.shape) != (n, 4, 4):
        raise ShapegenError(f"{n} depth maps but poses of shape {tuple(c2w.shape)}")
    if colors is not None and tuple(colors.shape) != (*depths.shape, 3):
        raise ShapegenError(f"colours of shape {tuple(colors.shape)} do not match depths {tuple(depths.shape)}")
    if not bool(torch.isfinite(c2w).all()):
        raise ShapegenError("a camera pose is not finite")
    Kb = _as_batch_K(K, n)
    trunc = 4.0 * voxel_size if trunc is None else float(trunc)
    depths = torch.where(torch.isfinite(depths), depths, torch.zeros_like(depths))
    if isinstance(bounds, str):
        lo, hi = depth_bounds(depths, Kb, c2w, mode=bounds, margin=trunc)  # type: ignore[arg-type]
    else:
        lo, hi = bounds
    vol = TSDFVolume.empty(lo, hi, voxel_size, trunc, color=colors is not None, device=depths.device, max_voxels=max_voxels)
    frames = range(n)
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, desc=f"TSDF fusion {'x'.join(map(str, vol.shape))}", unit="frame")
    for i in frames:
        vol.integrate(depths[i], Kb[i], c2w[i], None if colors is None else colors[i], chunk=chunk)
    return vol
