"""Voxel-grid conventions shared by volume methods (LAS-Diffusion's occupancy and SDF grids).

A grid of side ``G`` samples the cube [-1, 1]^3 at voxel *centres* ``-1 + (2 i + 1) / G``, with
``ij`` indexing: array axis 0 is x, 1 is y, 2 is z (the same axis order as
:func:`shapegen.geometry.extract.evaluate_grid`). Voxel ``i`` at side ``G`` has the children
``2 i`` and ``2 i + 1`` at side ``2 G``, so centres of parents are means of their children's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor

__all__ = ["grid_bbox", "touched_voxels", "voxel_centers"]


def voxel_centers(g: int, device: torch.device | str | None = None) -> Float[Tensor, "G G G 3"]:
    """Centres of a ``G^3`` voxel grid over [-1, 1]^3 (``ij`` indexing: axis 0 is x)."""
    t = -1.0 + (2 * torch.arange(g, device=device, dtype=torch.float32) + 1) / g
    return torch.stack(torch.meshgrid(t, t, t, indexing="ij"), -1)


def grid_bbox(g: int) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Box spanned by the voxel centres of a ``G^3`` grid (the ``bbox`` for marching cubes)."""
    h = 1.0 / g
    return (-1.0 + h,) * 3, (1.0 - h,) * 3


def touched_voxels(sdf: Float[Tensor, "*B G G G"], pool: int = 1) -> Bool[Tensor, "*B g g g"]:
    """Voxels a shape touches, from its signed distances at the voxel centres of a grid over [-1, 1]^3.

    A voxel counts when its centre is inside or within the voxel's half-diagonal of the surface
    (``sdf < sqrt(3) / G``), so a part thinner than a voxel is not dropped or kept by the chance of
    where the centres fall, as it is with ``sdf < 0``. ``pool`` > 1 max-pools the result to side
    ``G / pool`` (a coarse voxel counts when one of its children does), e.g. 2 for LAS's occupancy grid.
    """
    g = sdf.shape[-1]
    occ = sdf < 3**0.5 / g
    if pool == 1:
        return occ
    lead = occ.shape[:-3]
    pooled = F.max_pool3d(occ.reshape(-1, 1, g, g, g).float(), pool)
    return pooled.reshape(*lead, *pooled.shape[-3:]) > 0
