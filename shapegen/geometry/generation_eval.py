"""Evaluation of generated shape sets: point clouds by farthest point sampling, then COV/MMD/1-NNA.

Protocol of PointFlow (arXiv 1906.12320), LION and 3DShape2VecSet (arXiv 2301.11445), as used by
Mosaic-SDF (arXiv 2312.09222, supplement A.1): each mesh is sampled densely and uniformly by area,
``num_points`` of those samples are kept by farthest point sampling (FPS), and the sets of clouds
are compared with the Chamfer-L2 distance (:func:`shapegen.geometry.metrics.generation_metrics`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from shapegen.errors import ShapegenError
from shapegen.geometry.mesh_io import MESH_SUFFIXES
from shapegen.geometry.metrics import GenerationMetrics, generation_metrics


def farthest_point_sampling(points: Float[Tensor, "N 3"], num: int, start: int = 0) -> Int[Tensor, " num"]:
    """Indices of ``num`` points chosen greedily, each the farthest from those already chosen.

    Args:
        points: the candidate points.
        num: how many to keep (at most ``N``).
        start: index of the first point (deterministic by default).
    """
    n = points.shape[0]
    num = min(num, n)
    idx = torch.empty(num, dtype=torch.long, device=points.device)
    dist = torch.full((n,), float("inf"), dtype=points.dtype, device=points.device)
    cur = start
    for i in range(num):
        idx[i] = cur
        dist = torch.minimum(dist, (points - points[cur]).square().sum(-1))
        cur = int(dist.argmax())
    return idx


def find_shapes(folder: str | Path) -> list[Path]:
    """Mesh and ``.msdf.npz`` files under ``folder`` (recursively), sorted, one file per shape.

    A shape stored twice under one name (``shapegen generate`` writes ``sample_00.msdf.npz`` and
    its mesh ``sample_00.glb``) counts once, as its ``.msdf.npz`` (decoded like the reference).

    Raises:
        ShapegenError: for a missing folder or one without shapes.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ShapegenError(f"'{folder}' is not a folder; pass a folder of meshes (.glb/.obj/.ply) or .msdf.npz files")
    files = sorted(p for p in root.rglob("*") if p.is_file() and (p.suffix.lower() in MESH_SUFFIXES or p.name.endswith(".msdf.npz")))
    msdf_stems = {p.with_name(p.name[: -len(".msdf.npz")]) for p in files if p.name.endswith(".msdf.npz")}
    files = [p for p in files if p.name.endswith(".msdf.npz") or p.with_suffix("") not in msdf_stems]
    if not files:
        raise ShapegenError(f"no meshes or .msdf.npz files under '{folder}'")
    return files


def point_clouds(
    files: list[Path], num_points: int = 2048, dense_factor: int = 4, normalize: Literal["none", "cube"] = "none",
    seed: int = 0, loader: Callable[[Path], object] | None = None,
) -> Float[Tensor, "B num_points 3"]:
    """One FPS point cloud per shape file (``dense_factor * num_points`` area samples -> FPS).

    ``loader`` maps a file to a :class:`~shapegen.geometry.mesh.Mesh` (default: ``load_mesh``;
    the ``eval-generation`` command passes one that also decodes ``.msdf.npz`` files).

    Raises:
        ShapegenError: for a shape without a surface.
    """
    from shapegen.geometry.mesh_io import load_mesh
    from shapegen.geometry.sampling import sample_surface

    clouds = []
    for i, path in enumerate(files):
        mesh = (loader or load_mesh)(path)
        if mesh.num_faces == 0:
            raise ShapegenError(f"'{path}' has no surface to sample; remove it or regenerate it")
        gen = torch.Generator(device=mesh.vertices.device).manual_seed(seed + i)
        dense = sample_surface(mesh, dense_factor * num_points, generator=gen).points.float()
        pts = dense[farthest_point_sampling(dense, num_points)]
        if normalize == "cube":  # centre the bounding box, longest side 2
            lo, hi = pts.min(0).values, pts.max(0).values
            pts = (pts - (lo + hi) / 2) * (2.0 / (hi - lo).max().clamp_min(1e-12))
        clouds.append(pts.cpu())
    return torch.stack(clouds)


@dataclass
class GenerationReport:
    """COV / MMD / 1-NNA of a generated set and, optionally, of a training-set baseline."""

    generated: GenerationMetrics
    num_generated: int
    num_reference: int
    baseline: GenerationMetrics | None = None
    num_baseline: int = 0

    def to_dict(self) -> dict:
        out = {"generated": asdict(self.generated), "num_generated": self.num_generated, "num_reference": self.num_reference}
        if self.baseline is not None:
            out["baseline"] = asdict(self.baseline)
            out["num_baseline"] = self.num_baseline
        return out

    def lines(self) -> list[str]:
        rows = [("generated", self.generated, self.num_generated)]
        if self.baseline is not None:
            rows.append(("baseline (training vs reference)", self.baseline, self.num_baseline))
        out = [f"{'set':34s} {'shapes':>6s} {'COV':>7s} {'MMD-CD':>10s} {'1-NNA':>7s}"]
        out += [f"{name:34s} {n:6d} {m.cov * 100:6.1f}% {m.mmd:10.3e} {m.nna * 100:6.1f}%" for name, m, n in rows]
        out.append(f"reference shapes: {self.num_reference}; 1-NNA near 50% is best, COV higher and MMD lower are better")
        return out


def evaluate_generation(
    generated: str | Path, reference: str | Path, baseline: str | Path | None = None, **cloud_kw
) -> GenerationReport:
    """Compare the shapes in ``generated`` (and ``baseline``, e.g. training shapes) against ``reference``."""
    ref = point_clouds(find_shapes(reference), **cloud_kw)
    gen_files = find_shapes(generated)
    report = GenerationReport(generation_metrics(point_clouds(gen_files, **cloud_kw), ref), len(gen_files), ref.shape[0])
    if baseline is not None:
        base_files = find_shapes(baseline)
        report.baseline = generation_metrics(point_clouds(base_files, **cloud_kw), ref)
        report.num_baseline = len(base_files)
    return report


__all__ = ["GenerationReport", "evaluate_generation", "farthest_point_sampling", "find_shapes", "point_clouds"]
