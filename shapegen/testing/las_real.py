"""The real-furniture benchmark set of LAS-Diffusion: which shared meshes count, and in which frame.

Used by ``scripts/bench_las_coverage.py`` and ``scripts/bench_las_real.py``. These meshes are for
measuring only; nothing here writes them where training reads.

Classes and files (under the shared data root, see :func:`shapegen.testing.bench.shared_data_root`):

* ``chair``: ``meshes_chairs_tables/Chair*.obj`` (+Y up, facing +X) and ``meshes_shapenet/chair_*.obj``
  (ShapeNetCore v2: +Y up, facing -Z, so turned 180 degrees about +Y);
* ``table``: ``meshes_chairs_tables/Table*.obj`` (+Y up; the longer side of the top along X or Z);
* ``mug``: ``meshes_shapenet/cup_*.obj`` (+Y up; a handle, if any, points anywhere).

Each mesh is turned about +Y into the orientation of the procedural shapes, measured on the mesh
(:func:`canonical_yaw`: a chair's back at -Z, a table's longer side along X, a mug's handle
towards +X), then brought into the LAS frame the way ``shapegen las prepare`` does it
(bounding-box centre to the origin, longest side to ``[-0.8, 0.8]``). The LAS views (azimuths
0-180 degrees from +Z) then see the real shapes from the sides the model learnt them from.
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


def canonical_yaw(mesh: Mesh, cls: str, samples: int = 20000) -> float:
    """The turn about +Y (degrees, :func:`yaw`'s sign) that puts ``mesh`` (+Y up, centred) in the
    procedural shapes' orientation, measured on surface samples:

    * chair: the back (the mean of the points in the top quarter of the height, against the mean
      of all) towards -Z, in steps of 90 degrees (the sets are axis-aligned);
    * table: the longer horizontal side along X (0 or 90);
    * mug: the handle (the farthest 3% of points from the body's vertical axis) towards +X;

    0 where the cue is too weak to read (a chair without a back, a cup without a handle)."""
    import trimesh

    tm = trimesh.Trimesh(mesh.vertices.double().numpy(), mesh.faces.numpy(), process=False)
    p = torch.as_tensor(trimesh.sample.sample_surface(tm, samples, seed=0)[0], dtype=torch.float32)
    xz = p[:, [0, 2]]
    size = float((p.amax(0) - p.amin(0)).max())
    if cls == "chair":
        y = p[:, 1]
        back = xz[y > y.min() + 0.75 * (y.max() - y.min())].mean(0) - xz.mean(0)
        if float(back.norm()) < 0.03 * size:
            return 0.0
        a = math.degrees(math.atan2(float(back[0]), float(back[1])))
        return float(round((180.0 - a) / 90.0) * 90 % 360)
    if cls == "table":
        ext = xz.amax(0) - xz.amin(0)
        return 90.0 if float(ext[1]) > 1.05 * float(ext[0]) else 0.0
    if cls == "mug":
        centre = xz.median(0).values
        r = (xz - centre).norm(dim=-1)
        handle = xz[r > torch.quantile(r, 0.97)].mean(0) - centre
        if float(handle.norm()) < 0.3 * float(r.max()):
            return 0.0
        return (90.0 - math.degrees(math.atan2(float(handle[0]), float(handle[1])))) % 360
    return 0.0


def load_real(real: RealMesh) -> Mesh:
    """A benchmark mesh in the LAS frame, turned into the procedural orientation
    (:func:`canonical_yaw`; faces de-duplicated by the loader)."""
    from shapegen.geometry.mesh_io import load_mesh

    mesh = load_mesh(real.path)
    turn = real.yaw_deg + canonical_yaw(las_frame(mesh, real.yaw_deg), real.cls)
    return las_frame(mesh, turn)


#: Mean ink distance (pixels) under which two drawings of one shape count as the same picture.
SAME_DRAWING_PX = 0.2


def ink_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean symmetric distance in pixels between the strokes of two ink maps (``> 0.5`` is ink).

    Returns ``inf`` when exactly one of them is blank and 0 when both are.
    """
    from shapegen.geometry.metrics import chamfer_l1

    pa, pb = (a > 0.5).nonzero().float(), (b > 0.5).nonzero().float()
    if len(pa) == 0 or len(pb) == 0:
        return 0.0 if len(pa) == len(pb) else math.inf
    return float(chamfer_l1(pa, pb))  # the pixel coordinates as 2-D points


def equivalent_views(inks: list[torch.Tensor], tol_px: float = SAME_DRAWING_PX) -> torch.Tensor:
    """Which views of one shape give the same drawing: ``V x V`` booleans from its sketches, one per view.

    A round table looks the same from every azimuth and a rectangular one from 0 and 180 degrees
    (from 45 and 135 it is drawn mirrored, which a classifier can tell);
    a view classifier cannot tell such views apart, and picking any of them draws the same shape.
    Views count as equivalent when their sketches (one style, same size) are within ``tol_px``
    (:func:`ink_distance`), i.e. the pictures differ by well under a pixel.
    """
    n = len(inks)
    same = torch.eye(n, dtype=torch.bool)
    for i in range(n):
        for j in range(i + 1, n):
            same[i, j] = same[j, i] = ink_distance(inks[i], inks[j]) < tol_px
    return same
