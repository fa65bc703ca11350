"""LAS-Diffusion data: truncated SDF volumes, occupancy shells and synthetic sketches from meshes.

Grid convention (both stages): a volume of side ``G`` samples the cube [-1, 1]^3 at voxel
*centres* ``-1 + (2 i + 1) / G`` with ``ij`` indexing (array axis 0 is x, 1 is y, 2 is z),
see :func:`voxel_centers` and :func:`grid_bbox` (the box handed to marching cubes).

Per mesh (LAS Sec. 3 and its data scripts): centre it and scale its longest side to
[-0.8, 0.8]; signed distances at the ``G^3`` voxel centres with
:class:`shapegen.geometry.sdf.MeshSDF` (warp BVH and fast winding number when available),
clipped to ``+-truncation_voxels * 2 / G``; the occupancy *shell* is ``|sdf| < shell_voxels * 2 / G``
(LAS: 1/32 = 2 voxels at 128^3) max-pooled 2x to ``G/2``. Sketches of the configured styles
(:mod:`shapegen.data.sketches`) from the five canonical views.

Layout of ``DATA_DIR``::

    shapes/NAME.npz          sdf (G^3 float16, clipped), shell (G/2^3 bool), category, source
    sketches/NAME_STYLE_VIEW.png   black on white
    index.json               shapes, categories, sketch records (file, style, view, azimuth,
                             elevation), settings, and skipped meshes with reasons

Preparation is resumable: a shape whose ``.npz`` and sketches exist with the same settings is
not recomputed; ``index.json`` is rewritten after every mesh. With ``shard`` (``--shard K/N``)
a run prepares one contiguous block of the sorted mesh files (names are still made unique
over the whole folder) and keeps its index in ``index.shard-K-of-N.json``, which
:func:`shapegen.data.shards.merge_shards` joins into ``index.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor

from shapegen.data.shards import Shard, finish_shard, start_shard
from shapegen.data.sketches import LAS_AZIMUTHS, LAS_ELEVATION, SKETCH_STYLES, render_sketch, save_sketch
from shapegen.errors import ShapegenError
from shapegen.geometry.mesh import Mesh
from shapegen.geometry.voxels import grid_bbox, voxel_centers
from shapegen.io import atomic_path, make_output_dir, write_npz

__all__ = ["LASPrepareConfig", "PrepareReport", "grid_bbox", "occupancy_shell", "prepare_dataset", "prepare_mesh", "voxel_centers"]


@dataclass
class LASPrepareConfig:
    """Settings of ``shapegen las prepare``."""

    resolution: int = 128
    """Side G of the SDF volume (the occupancy shell has side G/2)."""
    truncation_voxels: float = 6.4
    """SDF values are clipped to +-truncation_voxels * 2 / G before saving (0.1 at 128^3; LAS trains on 0.05)."""
    shell_voxels: float = 2.0
    """Shell half-width in fine voxels: occupied where |sdf| < shell_voxels * 2 / G (LAS: 1/32 at 128)."""
    padding: float = 0.8
    """The mesh's longest side is scaled to [-padding, padding]."""
    sketch_size: int = 224
    """Side of the synthetic sketches in pixels (0: no sketches)."""
    styles: list[str] = field(default_factory=lambda: ["contour", "canny"])
    """Synthetic sketch styles to render: contour, canny, hand (a person's drawing: wobbly, broken and
    over-drawn strokes, left-out interior lines, hatching, a view off by up to 20 degrees; seeded per
    mesh, view and jitter from ``seed``)."""
    views: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    """Canonical view indices to render (0..4 = azimuth 0..180 in 45 degree steps)."""
    jitter_per_view: int = 0
    """Extra sketches per view and style from a jittered camera (azimuth +-22.5, elevation +-5 degrees,
    LAS's recipe; LAS uses 10). They are recorded with their canonical view, whose camera the model
    is given in training, which teaches it to tolerate a roughly chosen view."""
    seed: int = 0
    """Seed of the camera jitter (per mesh: seed + a hash of its name, so resuming is reproducible)."""
    category: str = ""
    """Category of every mesh; empty: the mesh's sub-folder name, or 'object' for a flat folder."""
    backend: str = "auto"
    """Signed-distance backend: auto (warp if it imports), warp or torch."""


def occupancy_shell(sdf: Float[Tensor, "*B G G G"], threshold: float | Tensor) -> Bool[Tensor, "*B g g g"]:
    """The LAS shell: ``|sdf| < threshold`` max-pooled 2x (``threshold`` may be per voxel)."""
    near = (sdf.abs() < threshold).float()
    lead = near.shape[:-3]
    pooled = F.max_pool3d(near.reshape(-1, 1, *near.shape[-3:]), 2)
    return pooled.reshape(*lead, *pooled.shape[-3:]).bool()


def mesh_to_volumes(mesh: Mesh, cfg: LASPrepareConfig) -> tuple[Float[Tensor, "G G G"], Bool[Tensor, "g g g"]]:
    """Clipped SDF volume and occupancy shell of a mesh already in the LAS frame."""
    from shapegen.geometry.sdf import MeshSDF

    g = cfg.resolution
    if g < 4 or g % 2:
        raise ShapegenError(f"resolution must be an even number >= 4, got {g}")
    sdf_fn = MeshSDF(mesh, backend=cfg.backend)  # type: ignore[arg-type]
    pts = voxel_centers(g).reshape(-1, 3)
    chunk = 1 << 18
    d = torch.cat([sdf_fn(pts[i : i + chunk]) for i in range(0, pts.shape[0], chunk)])
    trunc = cfg.truncation_voxels * 2.0 / g
    sdf = d.reshape(g, g, g).clamp(-trunc, trunc)
    shell = occupancy_shell(sdf, cfg.shell_voxels * 2.0 / g)
    return sdf, shell


@dataclass
class PrepareReport:
    """What :func:`prepare_dataset` did."""

    prepared: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Mesh file -> one-line reason."""


def _category(path: Path, root: Path, cfg: LASPrepareConfig) -> str:
    if cfg.category:
        return cfg.category
    rel = path.relative_to(root)
    return rel.parts[0] if len(rel.parts) > 1 else "object"


def prepare_mesh(path: Path, out: Path, name: str, category: str, cfg: LASPrepareConfig) -> list[dict]:
    """Volumes and sketches of one mesh file; returns its sketch records. Raises ShapegenError to skip."""
    from shapegen.geometry.mesh_io import load_mesh, normalize_mesh

    mesh, _ = normalize_mesh(load_mesh(path), "cube", cfg.padding)
    sdf, shell = mesh_to_volumes(mesh, cfg)
    if not bool(shell.any()):
        raise ShapegenError("no surface inside the grid (empty shell)")
    if not bool((sdf < 0).any()):
        raise ShapegenError("no voxel is inside the surface (open or inverted mesh?)")
    write_npz(out / "shapes" / f"{name}.npz", compressed=True, sdf=sdf.numpy().astype(np.float16), shell=shell.numpy(),
              category=np.asarray(category), source=np.asarray(str(path)))
    records = []
    gen = torch.Generator().manual_seed(cfg.seed + sum(map(ord, name)))
    for style in cfg.styles if cfg.sketch_size > 0 else []:
        for view in cfg.views:
            for j in range(1 + cfg.jitter_per_view):
                az, el = LAS_AZIMUTHS[view], LAS_ELEVATION
                if j:
                    daz, del_ = ((torch.rand(2, generator=gen) * 2 - 1) * torch.tensor([22.5, 5.0])).tolist()
                    az, el = az + daz, el + del_
                file = f"sketches/{name}_{style}_{view}" + (f"_j{j}" if j else "") + ".png"
                ink = render_sketch(mesh, az, style=style, size=cfg.sketch_size, elevation_deg=el,  # type: ignore[arg-type]
                                    seed=cfg.seed * 1_000_003 + sum(map(ord, name)) * 101 + view * 11 + j)
                save_sketch(out / file, ink)
                records.append({"file": file, "shape": name, "style": style, "view": view, "azimuth": az, "elevation": el})
    return records


def _settings(cfg: LASPrepareConfig) -> dict:
    d = asdict(cfg)
    d.pop("backend")
    return d


def _prepare_one(path: Path, out: Path, name: str, category: str, cfg: LASPrepareConfig) -> tuple[list[dict] | None, str]:
    """:func:`prepare_mesh` that reports a mesh to skip: ``(records, "")`` or ``(None, reason)``."""
    try:
        return prepare_mesh(path, out, name, category, cfg), ""
    except ShapegenError as exc:
        if isinstance(exc.__cause__, OSError):  # a full or read-only disk stops the run, it is no bad mesh
            raise
        return None, str(exc)


def _resume_index(out: Path, shard: Shard | None) -> Path:
    """The index a run resumes from: its shard's index, else (a shard of a merged folder) ``index.json``."""
    if shard is not None and shard.path(out / "index.json").is_file():
        return shard.path(out / "index.json")
    return out / "index.json"


def check_resumable(out_dir: str | os.PathLike, cfg: LASPrepareConfig, fresh: bool = False, shard: Shard | None = None) -> None:
    """The command line's resume rule for a data folder: one made with other settings is refused
    (``--fresh`` prepares everything again), so a run never silently discards finished meshes."""
    index_path = _resume_index(Path(out_dir), shard)
    if fresh or not index_path.is_file():
        return
    old = json.loads(index_path.read_text()).get("settings", {})
    now = _settings(cfg)
    diff = sorted(k for k in old.keys() | now.keys() if old.get(k) != now.get(k))
    if diff:
        shown = ", ".join(f"{k}={old.get(k)!r} (now {now.get(k)!r})" for k in diff[:3])
        raise ShapegenError(f"{out_dir} was prepared with other settings: {shown}; "
                            "pass --fresh to prepare every mesh again, or use the settings it was made with")


def prepare_dataset(mesh_dir: str | os.PathLike, out_dir: str | os.PathLike, cfg: LASPrepareConfig, progress: bool = True,
                    workers: int = 1, fresh: bool = False, shard: Shard | None = None) -> PrepareReport:
    """Prepare every mesh under ``mesh_dir`` (recursively) into ``out_dir`` (see the module doc).

    Args:
        mesh_dir: folder of meshes (sub-folder names become categories).
        out_dir: data folder to write (resumable).
        cfg: preparation settings.
        progress: show a progress bar.
        workers: processes preparing meshes at once (one torch thread each); the result is the same
            as with one, ``index.json`` included.
        fresh: prepare every mesh again instead of reusing what ``out_dir`` holds (it is also
            prepared again when ``index.json`` records other settings).
        shard: prepare only this shard's block of the mesh files, keep its index under the
            shard's name and write its manifest at the end (:mod:`shapegen.data.shards`); a
            shard whose every mesh is skipped is no error (the others may have prepared some).

    Raises:
        ShapegenError: if ``mesh_dir`` is missing or holds no mesh files, or ``workers`` < 1.
    """
    from tqdm import tqdm

    from shapegen.geometry.mesh_io import MESH_SUFFIXES

    root, out = Path(mesh_dir), Path(out_dir)
    if not root.is_dir():
        raise ShapegenError(f"mesh folder '{root}' does not exist; give a folder of meshes")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in MESH_SUFFIXES)
    if not files:
        raise ShapegenError(f"no mesh files ({', '.join(MESH_SUFFIXES)}) under '{root}'")
    for s in cfg.styles:
        if s not in SKETCH_STYLES:
            raise ShapegenError(f"unknown sketch style '{s}'; use {', '.join(SKETCH_STYLES)}")
    for v in cfg.views:
        if not 0 <= v < len(LAS_AZIMUTHS):
            raise ShapegenError(f"view index {v} out of range; use 0..{len(LAS_AZIMUTHS) - 1}")
    if workers < 1:
        raise ShapegenError(f"workers must be >= 1, got {workers}")
    make_output_dir(out / "shapes")
    index_path = out / "index.json" if shard is None else shard.path(out / "index.json")
    resume_path = _resume_index(out, shard)
    old = json.loads(resume_path.read_text()) if resume_path.is_file() else {}
    same = not fresh and old.get("settings") == _settings(cfg)
    # Names over the whole folder, so every shard names a mesh as an unsharded run does.
    names: dict[str, int] = {}
    named: list[tuple[Path, str]] = []
    for path in files:
        stem = path.relative_to(root).with_suffix("").as_posix().replace("/", "__")
        names[stem] = names.get(stem, 0) + 1
        named.append((path, stem if names[stem] == 1 else f"{stem}_{names[stem]}"))
    block = range(len(files)) if shard is None else shard.block(len(files))
    if shard is not None:
        start_shard(out, shard)
        mine = {named[i][1] for i in block}
        old["shapes"] = {k: v for k, v in old.get("shapes", {}).items() if k in mine}
    shapes: dict[str, dict] = old.get("shapes", {}) if same else {}
    sketches: list[dict] = [r for r in old.get("sketches", []) if r["shape"] in shapes] if same else []
    report = PrepareReport()
    todo: list[tuple[Path, str, str]] = []
    for path, name in (named[i] for i in block):
        done = name in shapes and (out / "shapes" / f"{name}.npz").is_file() and all(
            (out / r["file"]).is_file() for r in sketches if r["shape"] == name)
        if done:
            report.reused.append(name)
        else:
            todo.append((path, name, _category(path, root, cfg)))

    def finish(path: Path, name: str, category: str, recs: list[dict] | None, why: str, write: bool = True) -> None:
        nonlocal sketches
        if recs is None:
            report.skipped[str(path.relative_to(root))] = why
            return
        sketches = [r for r in sketches if r["shape"] != name] + recs
        shapes[name] = {"file": f"shapes/{name}.npz", "category": category, "source": str(path)}
        report.prepared.append(name)
        if write:  # after every mesh: an interrupted run resumes from here
            _write_index(index_path, cfg, shapes, sketches, report.skipped)

    bar = tqdm(total=len(block), initial=len(report.reused), desc="las prepare", unit="mesh", disable=not progress)
    try:
        if workers == 1 or len(todo) < 2:
            for path, name, category in todo:
                finish(path, name, category, *_prepare_one(path, out, name, category, cfg))
                bar.update()
        else:
            from shapegen.workers import in_processes

            results: dict[str, tuple[list[dict] | None, str]] = {}
            preload = ("torch", "shapegen.data.las_prepare", "shapegen.geometry.sdf")
            for i, result in in_processes(_prepare_one, [(path, out, name, category, cfg) for path, name, category in todo], workers, preload=preload):
                results[todo[i][1]] = result
                finish(*todo[i], *result)
                bar.update()
            # The records again in file order, so the index is the one a single worker writes.
            new = set(results)
            shapes = {k: v for k, v in shapes.items() if k not in new}
            sketches = [r for r in sketches if r["shape"] not in new]
            report.prepared, report.skipped = [], {}
            for path, name, category in todo:
                finish(path, name, category, *results[name], write=False)
    except BaseException:
        bar.leave = False  # erase the bar: the error is the last word
        bar.close()
        raise
    if report.skipped and not report.prepared and not report.reused and shard is None:
        bar.leave = False  # erase the bar: the error is the last word
        bar.close()
        first, why = next(iter(report.skipped.items()))
        raise ShapegenError(f"none of the {len(files)} mesh file(s) under '{root}' could be prepared ({first}: {why}); "
                            "repair or remove them")
    bar.close()
    _write_index(index_path, cfg, shapes, sketches, report.skipped)
    if shard is not None:
        finish_shard(out, shard, command="las prepare", total=len(files), items=block, settings=_settings(cfg),
                     files={"index.json": "las-index"})
    return report


def _write_index(path: Path, cfg: LASPrepareConfig, shapes: dict, sketches: list, skipped: dict) -> None:
    index = {
        "settings": _settings(cfg),
        "categories": sorted({s["category"] for s in shapes.values()}),
        "shapes": shapes,
        "sketches": sketches,
        "skipped": skipped,
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(index, indent=1))
