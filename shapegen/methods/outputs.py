"""Outputs shared by the generative methods: the record of written files and a preview sheet."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class GenerationResult:
    """Files written by a method's ``write_samples`` (``shapegen generate`` reports every method alike)."""

    out_dir: Path
    msdf_files: list[Path] = field(default_factory=list)
    mesh_files: list[Path] = field(default_factory=list)
    empty: list[int] = field(default_factory=list)
    """Indices of samples whose decoded surface was empty (no GLB written)."""
    preview: Path | None = None


def write_preview_sheet(meshes: list, path: str | Path, size: int = 256) -> Path:
    """Render every mesh (empty ones as blank tiles) and tile the images into one PNG sheet."""
    import math

    import numpy as np

    from renderers.preview import render_mesh, save_image

    tiles = []
    for mesh in meshes:
        if mesh is None or mesh.num_faces == 0:
            tiles.append(np.full((size, size, 3), 255, dtype=np.uint8))
        else:
            tiles.append(np.asarray(render_mesh(mesh.vertices, mesh.faces, width=size, height=size))[..., :3])
    cols = min(4, max(1, len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    sheet = np.full((rows * size, cols * size, 3), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * size : (r + 1) * size, c * size : (c + 1) * size] = tile
    return save_image(path, sheet)


__all__ = ["GenerationResult", "write_preview_sheet"]
