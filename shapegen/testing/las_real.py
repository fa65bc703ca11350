"""The real-furniture benchmark set of LAS-Diffusion: which shared meshes count, and in which frame.

Used by ``scripts/bench_las_coverage.py`` and ``scripts/bench_las_real.py``. These meshes are for
measuring only; nothing here writes them where training reads.

Classes and files (under the shared data root, see :func:`shapegen.testing.bench.shared_data_root`):

* ``chair``: ``meshes_chairs_tables/Chair*.obj`` (+Y up, facing +Z) and ``meshes_shapenet/chair_*.obj``
  (ShapeNetCore v2: +Y up, facing -Z, so turned 180 degrees about +Y);
* ``table``: ``meshes_chairs_tables/Table*.obj`` (+Y up);
* ``mug``: ``meshes_shapenet/cup_*.obj`` (+Y up; a handle, if any, points anywhere).

Each mesh is brought into the LAS frame the way ``shapegen las prepare`` does it (bounding-box
centre to the origin, longest side to ``[-0.8, 0.8]``) after the turn above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from shapegen.geometry.mesh import Mesh

#: Half side the longest side is scaled to (``LASPrepareConfig.padding``).
LAS_PADDING = 0.8


@dataclass(frozen=True)
class RealMesh:
    """One benchmark mesh.

    Attributes:
        name: short name (file stem, ShapeNet ids cut to 8 characters).
        cls: the procedural class it is compared with (chair, table, mug).
        path: the mesh file.
        yaw_deg: turn about +Y (degrees) that makes it face +Z.
    """

    name: str
    cls: str
    path: Path
    yaw_deg: float = 0.0


def real_meshes(root: str | Path, classes: tuple[str, ...] = ("chair", "table", "mug")) -> list[RealMesh]:
    """The benchmark meshes under the shared data root, class by class, in name order."""
    root = Path(root)
    out: list[RealMesh] = []
    if "chair" in classes:
        out += [RealMesh(p.stem, "chair", p) for p in sorted((root / "meshes_chairs_tables").glob("Chair*.obj"))]
        out += [RealMesh(p.stem[:14], "chair", p, 180.0) for p in sorted((root / "meshes_shapenet").glob("chair_*.obj"))]
    if "table" in classes:
        out += [RealMesh(p.stem, "table", p) for p in sorted((root / "meshes_chairs_tables").glob("Table*.obj"))]
    if "mug" in classes:
        out += [RealMesh(p.stem[:12], "mug", p) for p in sorted((root / "meshes_shapenet").glob("cup_*.obj"))]
    return out


def yaw(mesh: Mesh, deg: float) -> Mesh:
    """``mesh`` turned by ``deg`` degrees about +Y (positive turns +Z towards +X)."""
    if deg % 360 == 0:
        return mesh
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    rot = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=mesh.vertices.dtype)
    return Mesh(mesh.vertices @ rot.T, mesh.faces)


def las_frame(mesh: Mesh, yaw_deg: float = 0.0) -> Mesh:
    """``mesh`` turned by ``yaw_deg`` and normalised as ``las prepare`` normalises."""
    from shapegen.geometry.mesh_io import normalize_mesh

    return normalize_mesh(yaw(mesh, yaw_deg), "cube", LAS_PADDING)[0]


def load_real(real: RealMesh) -> Mesh:
    """A benchmark mesh in the LAS frame (faces de-duplicated by the loader)."""
    from shapegen.geometry.mesh_io import load_mesh

    return las_frame(load_mesh(real.path), real.yaw_deg)
