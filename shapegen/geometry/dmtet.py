"""A deformable tetrahedral grid (DMTet): per-vertex SDF values and bounded vertex offsets.

Shen et al. 2021, "Deep Marching Tetrahedra: a Hybrid Representation for High-Resolution 3D
Shape Synthesis", arXiv:2111.04276, Sec. 3.1: a tetrahedral grid whose vertices carry a signed
distance ``s_i`` and an offset ``dv_i``; the surface is the zero level set extracted by
differentiable marching tetrahedra (:func:`shapegen.geometry.marching_tets.marching_tetrahedra`,
Eq. 2) at the deformed positions ``v_i + dv_i``. Both ``s`` and ``dv`` are optimised directly
(Magic3D / ProlificDreamer's geometry stage, as threestudio's ``tetrahedra-sdf-grid``).

Offsets are bounded as ``dv = (scale * cell / 2) * tanh(delta)`` with the raw parameter
``delta`` (threestudio bounds them the same way), so with ``scale <= 1`` no vertex crosses
half a cell and tetrahedra keep their orientation in practice.

Initialisation (:meth:`DMTetGrid.init_from_sdf`) samples any SDF-like callable (negative
inside): an analytic SDF, a Mosaic-SDF or LAS decoder, or ``iso - density`` of a NeRF. As
threestudio's conversion from an implicit volume, the grid box can first be shrunk to the
object (so all of the tet resolution lands on it) and values are clamped to ``[-c, c]``
(threestudio: c = 1), which bounds how far a single optimiser step can move the surface.
Deviation: threestudio loads a precomputed tet grid (Kaolin's 128^3 quartet file); ours is a
Kuhn split of a cube grid (:func:`shapegen.geometry.marching_tets.tet_grid`), ``G`` vertices per
axis (G = 128 is a 127^3 cube grid, 6 tets per cube).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from shapegen.errors import ShapegenError
from shapegen.geometry.marching_tets import marching_tetrahedra, tet_grid
from shapegen.geometry.mesh import Mesh

__all__ = ["DMTetGrid"]

SDFFn = Callable[[Float[Tensor, "N 3"]], Float[Tensor, " N"]]


class DMTetGrid(nn.Module):
    """Tet grid (buffers) with learnable per-vertex SDF values and offsets.

    Args:
        resolution: vertices per axis ``G`` of the underlying cube grid.
        bbox: ``(min corner, max corner)`` of the grid (world units); refitted by
            :meth:`init_from_sdf` when asked.
        deformation_scale: bound of the offsets as a fraction of half a cell (0 disables them).
    """

    def __init__(
        self,
        resolution: int,
        bbox: tuple[Sequence[float], Sequence[float]] = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)),
        deformation_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.resolution = int(resolution)
        self.deformation_scale = float(deformation_scale)
        verts, tets = tet_grid(self.resolution, bbox)
        self.register_buffer("grid_vertices", verts)
        self.register_buffer("tets", tets, persistent=False)  # rebuilt from the resolution
        self.register_buffer("bbox", torch.tensor([list(bbox[0]), list(bbox[1])], dtype=torch.float32))
        self.sdf = nn.Parameter(torch.zeros(verts.shape[0]))
        self.deformation = nn.Parameter(torch.zeros(verts.shape[0], 3))

    @property
    def cell_size(self) -> Float[Tensor, " 3"]:
        """Cube side per axis (world units)."""
        return (self.bbox[1] - self.bbox[0]) / (self.resolution - 1)

    def vertices(self) -> Float[Tensor, "V 3"]:
        """Deformed tet-grid positions ``v + dv`` (differentiable in :attr:`deformation`)."""
        bound = 0.5 * self.deformation_scale * self.cell_size
        return self.grid_vertices + bound * torch.tanh(self.deformation)

    def extract(self) -> tuple[Float[Tensor, "V2 3"], Int[Tensor, "F 3"]]:
        """The zero level set as ``(vertices, faces)``, differentiable in SDF and offsets."""
        return marching_tetrahedra(self.vertices(), self.tets, self.sdf)

    @torch.no_grad()
    def to_mesh(self) -> Mesh:
        """The current surface as a detached :class:`Mesh` on the CPU."""
        v, f = self.extract()
        return Mesh(v.detach().cpu(), f.cpu())

    @torch.no_grad()
    def _evaluate(self, fn: SDFFn, points: Tensor, chunk: int) -> Tensor:
        return torch.cat([fn(p).reshape(-1).float() for p in points.split(chunk)])

    @torch.no_grad()
    def init_from_sdf(
        self,
        fn: SDFFn,
        *,
        fit_bbox: bool = True,
        margin: float = 0.1,
        clamp: float | None = 1.0,
        chunk: int = 1 << 16,
    ) -> None:
        """Set the SDF values from ``fn`` (negative inside) and reset the offsets to zero.

        Args:
            fn: ``N 3`` world points -> ``N`` SDF-like values, negative inside.
            fit_bbox: shrink the grid box to the inside region found at this resolution plus
                ``margin`` (fraction of its size) and two cells on every side, then resample.
            margin: see ``fit_bbox``.
            clamp: clamp values to ``[-clamp, clamp]`` (None: keep them as they are).
            chunk: points per call of ``fn``.

        Raises:
            ShapegenError: ``fn`` is negative nowhere (or everywhere) on the grid.
        """
        device = self.grid_vertices.device
        values = self._evaluate(fn, self.grid_vertices, chunk)
        inside = values < 0
        if not bool(inside.any()) or bool(inside.all()):
            what = "nowhere" if not bool(inside.any()) else "everywhere"
            raise ShapegenError(
                f"cannot initialise the tet grid: the field is negative {what} in the box "
                f"{self.bbox.tolist()}; check the input field or its iso level"
            )
        if fit_bbox:
            pts = self.grid_vertices[inside]
            lo, hi = pts.amin(0), pts.amax(0)
            pad = margin * (hi - lo).max() + 2 * self.cell_size
            lo, hi = torch.maximum(lo - pad, self.bbox[0]), torch.minimum(hi + pad, self.bbox[1])
            # Keep every axis longer than a cell (a flat inside region would collapse the box).
            hi = torch.maximum(hi, lo + 2 * self.cell_size)
            verts, _ = tet_grid(self.resolution, (lo.tolist(), hi.tolist()), device=device)
            self.grid_vertices.copy_(verts)
            self.bbox.copy_(torch.stack([lo, hi]))
            values = self._evaluate(fn, self.grid_vertices, chunk)
        if clamp is not None:
            values = values.clamp(-clamp, clamp)
        self.sdf.copy_(values)
        self.deformation.zero_()
