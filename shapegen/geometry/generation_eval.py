"""Evaluation of generated shape sets: point clouds by farthest point sampling, then COV/MMD/1-NNA.

Protocol of PointFlow (arXiv 1906.12320), LION and 3DShape2VecSet (arXiv 2301.11445), as used by
Mosaic-SDF (arXiv 2312.09222, supplement A.1): each mesh is sampled densely and uniformly by area,
``num_points`` of those samples are kept by farthest point sampling (FPS), and the sets of clouds
are compared with the Chamfer-L2 distance (:func:`shapegen.geometry.metrics.generation_metrics`).

With ``by_class`` (``shapegen eval-generation --by-class``) the shapes of each folder are grouped
by their first sub-folder (``GENERATED/chair/sample_00.msdf.npz`` is a chair) and the report adds,
per class, the *class fidelity*: the share of the class's generated shapes whose nearest reference
shape (Chamfer-L2, over the references of every class) belongs to that class, an empty decode
counting as a miss; beside it the class's COV / MMD / 1-NNA against its own references (and the
same for a baseline set, e.g. training shapes). A generated shape that decodes to no surface is
left out of COV / MMD / 1-NNA and counted as ``empty``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from shapegen.errors import ShapegenError
from shapegen.geometry.mesh_io import MESH_SUFFIXES
from shapegen.geometry.metrics import GenerationMetrics, chamfer_distance_matrix, generation_metrics


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


def find_shapes(folder: str | Path, prefer: Literal["msdf", "mesh"] = "msdf") -> list[Path]:
    """Mesh and ``.msdf.npz`` files under ``folder`` (recursively), sorted, one file per shape.

    A shape stored twice under one name (``shapegen generate`` writes ``sample_00.msdf.npz`` and
    its mesh ``sample_00.glb``; ``shapegen data procedural --set procedural.msdf=true`` writes
    ``chair_00000.ply`` and ``chair_00000.msdf.npz``) counts once: as its ``.msdf.npz`` (decoded
    by the caller's loader) with ``prefer="msdf"``, as its mesh with ``prefer="mesh"``. A file
    without a twin always counts (a generated sample that decoded to no surface has no mesh).

    Raises:
        ShapegenError: for a missing folder or one without shapes.
    """
    if prefer not in ("msdf", "mesh"):
        raise ShapegenError(f"prefer must be 'msdf' or 'mesh', got '{prefer}'")
    root = Path(folder)
    if not root.is_dir():
        raise ShapegenError(f"'{folder}' is not a folder; pass a folder of meshes (.glb/.obj/.ply) or .msdf.npz files")
    files = sorted(p for p in root.rglob("*") if p.is_file() and (p.suffix.lower() in MESH_SUFFIXES or p.name.endswith(".msdf.npz")))
    msdf_stems = {p.with_name(p.name[: -len(".msdf.npz")]) for p in files if p.name.endswith(".msdf.npz")}
    mesh_stems = {p.with_suffix("") for p in files if not p.name.endswith(".msdf.npz")}
    if prefer == "msdf":
        files = [p for p in files if p.name.endswith(".msdf.npz") or p.with_suffix("") not in msdf_stems]
    else:
        files = [p for p in files if not p.name.endswith(".msdf.npz") or p.with_name(p.name[: -len(".msdf.npz")]) not in mesh_stems]
    if not files:
        raise ShapegenError(f"no meshes or .msdf.npz files under '{folder}'")
    return files


def find_class_shapes(folder: str | Path, prefer: Literal["msdf", "mesh"] = "msdf") -> dict[str, list[Path]]:
    """:func:`find_shapes` grouped by class: the first sub-folder under ``folder``, classes sorted.

    Raises:
        ShapegenError: for a shape directly in ``folder`` (it has no class).
    """
    root = Path(folder)
    out: dict[str, list[Path]] = {}
    for path in find_shapes(root, prefer):
        rel = path.relative_to(root)
        if len(rel.parts) < 2:
            raise ShapegenError(f"'{path}' lies directly in '{folder}', so it has no class; with --by-class put each "
                                "class's shapes in a sub-folder named after the class")
        out.setdefault(rel.parts[0], []).append(path)
    return dict(sorted(out.items()))


def _clouds(
    files: list[Path], num_points: int = 2048, dense_factor: int = 4, normalize: Literal["none", "cube"] = "none",
    seed: int = 0, loader: Callable[[Path], object] | None = None, allow_empty: bool = False,
) -> tuple[Float[Tensor, "B num_points 3"], list[int]]:
    """FPS clouds of the files with a surface, and the indices of those without (``allow_empty``)."""
    from shapegen.geometry.mesh_io import load_mesh
    from shapegen.geometry.sampling import sample_surface

    clouds, empty = [], []
    for i, path in enumerate(files):
        mesh = (loader or load_mesh)(path)
        if mesh.num_faces == 0:
            if not allow_empty:
                raise ShapegenError(f"'{path}' has no surface to sample; remove it or regenerate it")
            empty.append(i)
            continue
        gen = torch.Generator(device=mesh.vertices.device).manual_seed(seed + i)
        dense = sample_surface(mesh, dense_factor * num_points, generator=gen).points.float()
        pts = dense[farthest_point_sampling(dense, num_points)]
        if normalize == "cube":  # centre the bounding box, longest side 2
            lo, hi = pts.min(0).values, pts.max(0).values
            pts = (pts - (lo + hi) / 2) * (2.0 / (hi - lo).max().clamp_min(1e-12))
        clouds.append(pts.cpu())
    return (torch.stack(clouds) if clouds else torch.zeros(0, num_points, 3)), empty


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
    return _clouds(files, num_points, dense_factor, normalize, seed, loader)[0]


@dataclass
class ClassReport:
    """Class fidelity and COV / MMD / 1-NNA of one class's generated shapes (and baseline)."""

    name: str
    num_generated: int
    """Generated files of the class (empty decodes included)."""
    empty: int
    """Generated files without a surface (misses for the fidelity, left out of the metrics)."""
    fidelity: float
    """Share of the class's generated files whose nearest reference shape is of this class."""
    predicted: dict[str, int]
    """How many generated shapes have their nearest reference in each class."""
    num_reference: int
    """Reference shapes of the class."""
    generated: GenerationMetrics | None = None
    """The class's generated shapes against its references (None: no surface among them)."""
    baseline: GenerationMetrics | None = None
    """The class's baseline shapes against its references (None: no baseline)."""
    baseline_fidelity: float | None = None
    """Class fidelity of the baseline shapes: how well nearest-reference classification separates the classes."""
    num_baseline: int = 0


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.0f}%"


def _trio(m: GenerationMetrics | None) -> tuple[str, str, str]:
    return ("-", "-", "-") if m is None else (f"{m.cov * 100:.0f}%", f"{m.mmd:.2e}", f"{m.nna * 100:.0f}%")


@dataclass
class GenerationReport:
    """COV / MMD / 1-NNA of a generated set and, optionally, of a training-set baseline."""

    generated: GenerationMetrics
    num_generated: int
    num_reference: int
    baseline: GenerationMetrics | None = None
    num_baseline: int = 0
    empty: int = 0
    """Generated files without a surface (left out of the metrics)."""
    classes: list[ClassReport] = field(default_factory=list)
    """Per-class results (``by_class``), in sorted class order."""
    fidelity: float | None = None
    """Class fidelity over every generated file (``by_class``); None without classes."""

    def to_dict(self) -> dict:
        out = {"generated": asdict(self.generated), "num_generated": self.num_generated, "num_reference": self.num_reference,
               "empty": self.empty}
        if self.baseline is not None:
            out["baseline"] = asdict(self.baseline)
            out["num_baseline"] = self.num_baseline
        if self.classes:
            out["fidelity"] = self.fidelity
            out["classes"] = {c.name: {k: v for k, v in asdict(c).items() if k != "name"} for c in self.classes}
        return out

    def lines(self) -> list[str]:
        rows = [("generated", self.generated, self.num_generated)]
        if self.baseline is not None:
            rows.append(("baseline (training vs reference)", self.baseline, self.num_baseline))
        out = [f"{'set':34s} {'shapes':>6s} {'COV':>7s} {'MMD-CD':>10s} {'1-NNA':>7s}"]
        out += [f"{name:34s} {n:6d} {m.cov * 100:6.1f}% {m.mmd:10.3e} {m.nna * 100:6.1f}%" for name, m, n in rows]
        out.append(f"reference shapes: {self.num_reference}; 1-NNA near 50% is best, COV higher and MMD lower are better")
        if self.empty:
            out.append(f"{self.empty} generated shapes decoded to no surface and are left out of the metrics")
        if self.classes:
            out.append("")
            out.append(f"{'class':10s} {'shapes':>6s} {'empty':>5s} {'fidelity':>8s} {'COV':>5s} {'MMD-CD':>9s} {'1-NNA':>5s}"
                       + (f" {'fid.base':>8s} {'COV':>5s} {'MMD-CD':>9s} {'1-NNA':>5s}" if self.baseline is not None else ""))
            for c in self.classes:
                line = f"{c.name:10s} {c.num_generated:6d} {c.empty:5d} {_pct(c.fidelity):>8s} " + " ".join(
                    f"{v:>{w}s}" for v, w in zip(_trio(c.generated), (5, 9, 5)))
                if self.baseline is not None:
                    line += f" {_pct(c.baseline_fidelity):>8s} " + " ".join(f"{v:>{w}s}" for v, w in zip(_trio(c.baseline), (5, 9, 5)))
                out.append(line)
            out.append(f"class fidelity: {_pct(self.fidelity)} of {self.num_generated} generated shapes have their nearest "
                       "reference shape in their own class")
        return out


def evaluate_generation(
    generated: str | Path, reference: str | Path, baseline: str | Path | None = None, *, by_class: bool = False,
    baseline_limit: int = 0, prefer: Literal["msdf", "mesh"] = "msdf", **cloud_kw
) -> GenerationReport:
    """Compare the shapes in ``generated`` (and ``baseline``, e.g. training shapes) against ``reference``.

    Args:
        generated: folder of generated shapes (one sub-folder per class with ``by_class``).
        reference: folder of reference (held-out) shapes, laid out the same way.
        baseline: optional folder of training shapes, laid out the same way.
        by_class: group shapes by their first sub-folder and add class fidelity and per-class
            metrics (module doc).
        baseline_limit: use only the first ``N`` baseline shapes (sorted by path; per class with
            ``by_class``) so that the baseline set has the generated set's size; 0: all.
        prefer: which file of a shape stored both as ``.msdf.npz`` and as a mesh counts (:func:`find_shapes`).
        **cloud_kw: :func:`point_clouds` settings (``num_points``, ``dense_factor``, ``normalize``,
            ``seed``, ``loader``).

    Raises:
        ShapegenError: for a missing folder or one without shapes, a reference or baseline shape
            without a surface, no generated shape with a surface, or (``by_class``) a shape outside
            a class folder or a generated class without references.
    """
    if baseline_limit < 0:
        raise ShapegenError(f"baseline_limit must be >= 0 (0: every baseline shape), got {baseline_limit}")
    if not by_class:
        groups_gen, groups_ref = {"": find_shapes(generated, prefer)}, {"": find_shapes(reference, prefer)}
        groups_base = {"": find_shapes(baseline, prefer)} if baseline is not None else {}
    else:
        groups_gen, groups_ref = find_class_shapes(generated, prefer), find_class_shapes(reference, prefer)
        groups_base = find_class_shapes(baseline, prefer) if baseline is not None else {}
        missing = [c for c in groups_gen if c not in groups_ref]
        if missing:
            raise ShapegenError(f"generated classes {', '.join(missing)} have no folder in the reference '{reference}' "
                                f"(its classes: {', '.join(groups_ref)})")
    if baseline_limit:
        groups_base = {c: files[:baseline_limit] for c, files in groups_base.items()}

    def flat(groups: dict[str, list[Path]]) -> tuple[list[Path], list[str]]:
        return [f for fs in groups.values() for f in fs], [c for c, fs in groups.items() for _ in fs]

    ref_files, ref_cls = flat(groups_ref)
    gen_files, gen_cls = flat(groups_gen)
    ref, _ = _clouds(ref_files, **cloud_kw)
    gen, empty = _clouds(gen_files, allow_empty=True, **cloud_kw)
    if gen.shape[0] == 0:
        raise ShapegenError(f"none of the {len(gen_files)} generated shapes in '{generated}' has a surface to compare")
    empty_set = set(empty)
    kept = [i for i in range(len(gen_files)) if i not in empty_set]
    gen_cls_kept = [gen_cls[i] for i in kept]
    report = GenerationReport(generation_metrics(gen, ref), len(gen_files), ref.shape[0], empty=len(empty))
    base, base_cls = None, []
    if baseline is not None:
        base_files, base_cls = flat(groups_base)
        base, _ = _clouds(base_files, **cloud_kw)
        report.baseline = generation_metrics(base, ref)
        report.num_baseline = len(base_files)
    if not by_class:
        return report

    def nearest_classes(clouds: Tensor) -> list[str]:
        return [ref_cls[j] for j in chamfer_distance_matrix(clouds, ref).argmin(1).tolist()]

    gen_pred = nearest_classes(gen)
    base_pred = nearest_classes(base) if base is not None else []
    hits = 0
    for name, files in groups_gen.items():
        rows = [i for i, c in enumerate(gen_cls_kept) if c == name]
        own = ref[torch.tensor([j for j, c in enumerate(ref_cls) if c == name])]
        predicted: dict[str, int] = {}
        for i in rows:
            predicted[gen_pred[i]] = predicted.get(gen_pred[i], 0) + 1
        row = ClassReport(name, len(files), len(files) - len(rows), predicted.get(name, 0) / len(files), dict(sorted(predicted.items())),
                          own.shape[0], generation_metrics(gen[rows], own) if rows else None)
        hits += predicted.get(name, 0)
        brows = [i for i, c in enumerate(base_cls) if c == name]
        if brows:
            row.baseline = generation_metrics(base[brows], own)
            row.baseline_fidelity = sum(base_pred[i] == name for i in brows) / len(brows)
            row.num_baseline = len(brows)
        report.classes.append(row)
    report.fidelity = hits / len(gen_files)
    return report


__all__ = ["ClassReport", "GenerationReport", "evaluate_generation", "farthest_point_sampling", "find_class_shapes", "find_shapes",
           "point_clouds"]
