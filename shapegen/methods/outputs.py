"""Outputs shared by the generative methods: the record of written files and a preview sheet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jaxtyping import Float
    from torch import Tensor

    from shapegen.geometry.mesh import Mesh


@dataclass
class GenerationResult:
    """Files written by a method's ``write_samples`` (``shapegen generate`` reports every method alike)."""

    out_dir: Path
    msdf_files: list[Path] = field(default_factory=list)
    mesh_files: list[Path] = field(default_factory=list)
    empty: list[int] = field(default_factory=list)
    """Indices of samples whose decoded surface was empty (no GLB written)."""
    preview: Path | None = None


def write_preview_sheet(
    meshes: Sequence[Mesh | None],
    path: str | Path,
    size: int = 256,
    *,
    columns: int = 4,
    views: Sequence[Float[Tensor, "4 4"]] | None = None,
    fov_deg: float = 40.0,
) -> Path:
    """Render every mesh (``None`` or an empty mesh as a blank tile) into one PNG sheet.

    Args:
        meshes: the samples, in sheet order.
        path: the PNG to write (atomically).
        size: side of one tile in pixels.
        columns: meshes per row of the sheet.
        views: camera-to-world matrices, each mesh rendered once per view side by side (a
            method's own fixed camera); ``None`` fits each mesh in its tile.
        fov_deg: vertical field of view of the renders.
    """
    from renderers.preview import render_sheet, save_image

    rows = [list(meshes[i : i + columns]) for i in range(0, len(meshes), max(columns, 1))]
    return save_image(path, render_sheet(rows, size, views=views, fov_deg=fov_deg))


__all__ = ["GenerationResult", "write_preview_sheet"]
