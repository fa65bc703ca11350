"""Outputs shared by the generative methods: the record of written files, how decoded Mosaic-SDFs
are meshed, and a preview sheet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


@dataclass
class MeshOptions:
    """How a decoded Mosaic-SDF becomes a mesh (:meth:`shapegen.fields.mosaic_sdf.MosaicSDF.to_mesh`):
    the settings every command that decodes one shares (``--set KEY=VALUE``)."""

    close_holes: bool = True
    """Decide inside/outside where no cube reaches, so the mesh closes over gaps in the cube coverage
    (false: keep only the surface inside the cubes, open where they leave gaps)."""
    min_component_fraction: float = 0.05
    """Drop connected components below this share of a mesh's area (0 keeps every piece)."""
    one_piece: bool = True
    """Join the pieces that remain after dropping debris with thin struts where they come closest,
    so every mesh is one piece (needs close_holes; false: keep the pieces apart)."""

    def mesh_options(self) -> dict[str, Any]:
        """The keyword arguments of ``MosaicSDF.to_mesh`` / ``decode_to_mesh`` these settings give."""
        return {"close_holes": self.close_holes, "min_component_fraction": self.min_component_fraction, "one_piece": self.one_piece}


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


__all__ = ["GenerationResult", "MeshOptions", "write_preview_sheet"]
