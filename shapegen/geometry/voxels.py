"""Voxel-grid conventions shared by volume methods (LAS-Diffusion's occupancy and SDF grids).

A grid of side ``G`` samples the cube [-1, 1]^3 at voxel *centres* ``-1 + (2 i + 1) / G``, with
``ij`` indexing: array axis 0 is x, 1 is y, 2 is z (the same axis order as
:func:`shapegen.geometry.extract.evaluate_grid`). Voxel ``i`` at side ``G`` has the children
``2 i`` and ``2 i + 1`` at side ``2 G``, so centres of parents are means of their children's.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["grid_bbox", "voxel_centers"]


def voxel_centers(g: int, device: torch.device | str | None = None) -> Float[Tensor, "G G G 3"]:
    """Centres of a ``G^3`` voxel grid over [-1, 1]^3 (``ij`` indexing: axis 0 is x)."""
    t = -1.0 + (2 * torch.arange(g, device=device, dtype=torch.float32) + 1) / g
    return torch.stack(torch.meshgrid(t, t, t, indexing="ij"), -1)


def grid_bbox(g: int) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Box spanned by the voxel centres of a ``G^3`` grid (the ``bbox`` for marching cubes)."""
    h = 1.0 / g
    return (-1.0 + h,) * 3, (1.0 - h,) * 3
