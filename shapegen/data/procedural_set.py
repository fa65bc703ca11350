"""Write the procedural shape set to disk: meshes per split and class, an index, a preview sheet.

Layout of ``DIR`` (what ``shapegen data procedural -o DIR`` writes):

    DIR/<split>/<class>/<class>_<index>.ply   watertight meshes, +Y up, in [-1, 1]^3
    DIR/<split>/<class>/<class>_<index>.msdf.npz   with ``procedural.msdf=true``: the shape's Mosaic-SDF
    DIR/index.csv                             path, class, split, index, seed, params (JSON)
    DIR/captions.csv                          path, caption: several rows (captions) per shape
    DIR/attributes.csv                        path, class, split, then one column per attribute
    DIR/procedural.yaml                       the settings the meshes were made with

Splits are fractions (``train=0.8,val=0.1,test=0.1``: a shape's split is drawn from
``(seed, class, index)``) or index ranges (``train=0-59+80-219,held_out=60-69,val=70-79``: the
same indices of every class, for a fixed held-out set; indices in no range are not made).
With ``dilate`` the meshes are the level set ``sdf = dilate`` of each shape, i.e. the shape grown
by that distance, so thin parts survive a coarse voxel grid downstream (``las prepare`` at 32^3).

Captions and attributes come from the parameters (:mod:`shapegen.data.captions`);
``captions.csv`` is what ``shapegen train --method msdf`` reads with ``data.labels=captions``
(one caption drawn per shape and epoch). The three CSVs are rewritten on every run from the
parameters alone, so a resumed or grown set gets the same rows as one made in one go.
With ``shard`` (``--shard K/N``) a run makes one contiguous block of the shapes (class by class,
index by index) and writes its rows to ``index.shard-K-of-N.csv`` and so on;
:func:`shapegen.data.shards.merge_shards` joins them into the three CSVs (:mod:`shapegen.data.shards`).

With ``msdf: true`` each shape also gets a Mosaic-SDF (:func:`procedural_msdf`) whose grid values
are the procedural shape's *analytic* SDF at the nodes: exact, no mesh SDF queries and no
refinement. ``shapegen train --method msdf --set data.root=DIR --set data.split=train`` reads the
``train`` ones (:mod:`shapegen.data.msdf_dataset`), so shapes of the other splits stay held out.

PLY files are written +Y up (``ply_up="y"``), the frame :func:`shapegen.geometry.mesh_io.load_mesh`
returns them in; OBJ is +Y up anyway. A shape's split depends only on ``(seed, class, index)``
(:func:`split_of`), so growing ``per_class`` later keeps every existing shape where it was,
and re-running the command skips the files that already exist.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from shapegen.errors import ShapegenError

if TYPE_CHECKING:
    from shapegen.data.shards import Shard

# Literal copies of shapegen.data.procedural's constants (a test keeps them equal): importing
# that module pulls in torch, and this config is imported by ``shapegen --help``.
CLASSES = ("chair", "table", "shelf", "lamp", "mug", "sofa", "bed", "bench", "vase", "bowl", "desk")
DEFAULT_RESOLUTION = 64
DEFAULT_EXTENT = 0.9
MAX_DILATE = 0.08


@dataclass
class ProceduralConfig:
    """Settings of ``shapegen data procedural`` (preset: ``configs/data/procedural.yaml``)."""

    classes: list[str] = field(default_factory=lambda: list(CLASSES))
    """Object classes to generate (chair, table, shelf, lamp, mug, sofa, bed, bench, vase, bowl, desk)."""
    per_class: int = 200
    """Shapes per class (indices 0 .. per_class - 1)."""
    seed: int = 0
    """Seed of the set; each shape's own seed is a hash of (seed, class, index)."""
    resolution: int = DEFAULT_RESOLUTION
    """Marching-cubes samples per axis on [-1, 1]^3 (parts are >= 0.07 thick: 2.2 cells at 64)."""
    split: str = "train=0.8,val=0.1,test=0.1"
    """Split names and fractions (summing to 1), as ``name=fraction`` pairs separated by commas; or
    index ranges, as ``name=a-b`` pairs (inclusive, several joined by ``+``), e.g.
    ``train=0-59+80-219,held_out=60-69,val=70-79``: every class gets the same indices per split,
    and indices below ``per_class`` that no range holds are not made."""
    format: Literal["ply", "obj"] = "ply"
    """Mesh file format: binary PLY (compact, +Y up) or OBJ."""
    normals: bool = False
    """Write smooth vertex normals into the mesh files (larger files; recomputable on load)."""
    extent: float = DEFAULT_EXTENT
    """Half side of the cube the longest side of each shape is scaled to (< 1)."""
    dilate: float = 0.0
    """Grow each shape by this distance before meshing (the level set ``sdf = dilate``; 0: the shape itself).
    Parts 0.07 thick grown by 0.06 span several voxels of a 32^3 grid instead of falling between voxel centres."""
    workers: int = 0
    """Worker processes (0: one per CPU core). Each uses one torch thread."""
    preview_per_class: int = 5
    """Shapes per class (row) on the preview sheet written with ``--preview``."""
    preview_tile: int = 128
    """Side of one preview tile in pixels."""
    captions_per_shape: int = 4
    """Captions written per shape to captions.csv (the last one is the class name alone)."""
    variant: Literal["classic", "rich"] = "classic"
    """Generators: ``classic`` (what the shipped demo models saw) or ``rich`` (chairs, tables and mugs
    drawn from many more families: office chairs, armchairs, stools, cantilever and shell chairs;
    pedestal, trestle and glass tables with stretchers and drawers; tumblers, teacups, tankards)."""
    msdf: bool = False
    """Also write ``<class>_<index>.msdf.npz`` beside each mesh: its Mosaic-SDF with analytic grid values
    (:func:`procedural_msdf`), the training data of ``shapegen train --method msdf``."""
    msdf_n: int = 96
    """Local grids per M-SDF (the paper uses 1024)."""
    msdf_k: int = 5
    """Grid side of each local grid (the paper uses 7)."""
    msdf_dilate: float = 0.0
    """Store the SDF of the shape grown by this distance (``sdf - dilate``, normalised units): with a
    small ``n`` and ``k`` the node spacing exceeds the thinnest parts, which would fall between nodes."""
    msdf_margin: float = 1.25
    """Covering margin ``c`` of the one shared scale ``s = c max_y min_i ||y - p_i||_inf`` (> 1)."""
    msdf_samples: int = 4000
    """Area-uniform surface samples the centres are picked from (farthest point sampling)."""


#: Keys of procedural.yaml that must match for a folder to be resumed.
_FIXED_KEYS = ("seed", "resolution", "split", "format", "extent", "dilate", "variant")
#: Keys that must match too when both the folder and this run write M-SDFs.
_MSDF_KEYS = ("msdf_n", "msdf_k", "msdf_dilate", "msdf_margin", "msdf_samples")


Split = tuple[str, float | tuple[tuple[int, int], ...]]
"""One split: its name and either its fraction or its inclusive index ranges."""


def parse_splits(spec: str) -> list[Split]:
    """Parse ``"train=0.8,val=0.1,test=0.1"`` into ``[(name, fraction), ...]``, or index ranges
    ``"train=0-59+80-219,held_out=60-69"`` into ``[(name, ((0, 59), (80, 219))), ...]``.

    The spec is read as ranges when a value holds a ``-`` (``name=a-b``; a single index is ``a-a``).

    Raises:
        ShapegenError: for a malformed pair, a bad name, a duplicate, a fraction outside
            (0, 1], fractions not summing to 1, or overlapping ranges.
    """
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if any("-" in item.partition("=")[2] for item in items):
        return _parse_ranges(spec, items)
    out: list[Split] = []
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            frac = float(value) if sep else math.nan
        except ValueError:
            frac = math.nan
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name) or not 0 < frac <= 1:
            raise ShapegenError(f"bad split '{item}' in '{spec}'; write name=fraction pairs such as train=0.8,val=0.1,test=0.1")
        if name in dict(out):
            raise ShapegenError(f"split '{name}' appears twice in '{spec}'")
        out.append((name, frac))
    if not out:
        raise ShapegenError(f"no splits in '{spec}'; write name=fraction pairs such as train=0.8,val=0.1,test=0.1")
    total = sum(f for _, f in out)
    if abs(total - 1) > 1e-6:
        raise ShapegenError(f"split fractions in '{spec}' sum to {total:g}; they must sum to 1")
    return out


def _parse_ranges(spec: str, items: list[str]) -> list[Split]:
    out: list[Split] = []
    taken: list[tuple[int, int, str]] = []
    for item in items:
        name, _, value = (x.strip() for x in item.partition("="))
        ranges = []
        for part in value.split("+"):
            m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", part)
            if not re.fullmatch(r"[A-Za-z0-9_-]+", name) or m is None or int(m[1]) > int(m[2]):
                raise ShapegenError(f"bad split '{item}' in '{spec}'; write name=first-last index ranges joined by +, "
                                    "such as train=0-59+80-219,held_out=60-69")
            ranges.append((int(m[1]), int(m[2])))
        if name in dict(out):
            raise ShapegenError(f"split '{name}' appears twice in '{spec}'")
        for lo, hi in ranges:
            clash = next((other for a, b, other in taken if lo <= b and a <= hi), None)
            if clash is not None:
                raise ShapegenError(f"split '{name}' shares indices {lo}-{hi} with split '{clash}' in '{spec}'; ranges must not overlap")
            taken.append((lo, hi, name))
        out.append((name, tuple(ranges)))
    return out


def split_of(splits: Sequence[Split], seed: int, cls: str, index: int) -> str | None:
    """The split of one shape. Fractions: a low-discrepancy sequence per class, so any prefix of
    indices is split in close to the requested proportions, and a shape's split never depends on
    how many shapes the set has. Ranges: the split whose ranges hold ``index`` (None: no split,
    the shape is not made)."""
    from shapegen.data.procedural import shape_seed

    if splits and not isinstance(splits[0][1], float):
        return next((name for name, ranges in splits for lo, hi in ranges if lo <= index <= hi), None)  # type: ignore[union-attr]
    offset = shape_seed(seed, cls, 0) / 2**63
    u = (offset + index * 0.6180339887498949) % 1.0  # golden-ratio (Weyl) sequence
    acc = 0.0
    for name, frac in splits:
        acc += frac  # type: ignore[operator]
        if u < acc:
            return name
    return splits[-1][0]


@dataclass
class SetSummary:
    """What :func:`write_procedural_set` did.

    Attributes:
        written: shapes generated by this run (their mesh, or only their missing M-SDF).
        skipped: shapes whose files were all present (resumed).
        seconds: wall time of the whole run.
        per_split: shapes per split in the index.
        index: path of index.csv.
        captions: path of captions.csv.
        attributes: path of attributes.csv.
    """

    written: int
    skipped: int
    seconds: float
    per_split: dict[str, int]
    index: Path
    captions: Path
    attributes: Path


def procedural_msdf(shape, mesh, n: int = 96, k: int = 5, *, dilate: float = 0.0, margin: float = 1.25,
                    samples: int = 4000, seed: int | None = None):
    """The Mosaic-SDF of a procedural shape, with grid values from its analytic SDF.

    The paper's initialisation (Algorithm 1, steps 2-4; :mod:`shapegen.fields.mosaic_sdf_fit`)
    with exact values and no refinement: centres ``p_i`` by farthest point sampling over
    ``samples`` area-uniform points ``y`` of ``mesh`` (moved out along their normals by
    ``dilate``), one shared scale ``s = margin * max_y min_i ||y - p_i||_inf`` so that the cubes
    cover every sample, and values ``V_i = sdf(p_i + s G) - dilate``.

    Args:
        shape: a :class:`~shapegen.data.procedural.ProceduralShape` (its ``sdf`` gives the values).
        mesh: the shape's surface (``to_mesh(shape, resolution)``), where the centres are picked.
        n: local grids.
        k: grid side.
        dilate: grow the shape by this distance (normalised units) so parts thinner than the node
            spacing (about ``s / 2``) still hold nodes inside them.
        margin: covering margin ``c`` (> 1).
        samples: surface samples the centres are picked from (>= n).
        seed: seed of the surface samples (default: the shape's own seed).

    Returns:
        A :class:`~shapegen.fields.mosaic_sdf.MosaicSDF` in the shape's normalised frame, its
        ``source_hash`` naming the shape (``procedural/<seed>/<class>_<index>``).
    """
    import torch

    from shapegen.fields.mosaic_sdf import MosaicSDF, grid_offsets
    from shapegen.fields.mosaic_sdf_fit import covering_scales, farthest_point_sampling
    from shapegen.geometry.sampling import sample_surface

    if samples < n:
        raise ShapegenError(f"msdf_samples ({samples}) must be at least msdf_n ({n})")
    gen = torch.Generator().manual_seed(shape.seed if seed is None else seed)
    surf = sample_surface(mesh, samples, generator=gen)
    dense = (surf.points + dilate * surf.normals).float()  # the grown surface, which the cubes must cover
    centers = dense[farthest_point_sampling(dense[None], n)[0]]
    scales = covering_scales(dense, centers, margin, "shared")
    nodes = centers[:, None, :] + scales[:, None, None] * grid_offsets(k).to(centers)[None]
    with torch.no_grad():
        values = shape.sdf(nodes.reshape(-1, 3)).reshape(n, -1).float() - dilate
    return MosaicSDF.from_parts(centers, scales, values, source_hash=f"procedural/{shape.seed}/{shape.name}")


def msdf_path(mesh_path: str | os.PathLike) -> Path:
    """Where the M-SDF of a procedural mesh goes: beside it, ``<stem>.msdf.npz``."""
    path = Path(mesh_path)
    return path.with_name(path.stem + ".msdf.npz")


def _msdf_settings(cfg: ProceduralConfig) -> dict | None:
    if not cfg.msdf:
        return None
    return {"n": cfg.msdf_n, "k": cfg.msdf_k, "dilate": cfg.msdf_dilate, "margin": cfg.msdf_margin, "samples": cfg.msdf_samples}


def _make_one(cls: str, index: int, seed: int, resolution: int, extent: float, path: str, normals: bool,
              write_mesh: bool = True, msdf: dict | None = None, dilate: float = 0.0, variant: str = "classic") -> int:
    """Generate and mesh one shape, write the mesh (``write_mesh``) and its M-SDF (``msdf``:
    :func:`procedural_msdf` keyword arguments); runs in a worker; returns the face count."""
    import torch

    from shapegen.data.procedural import generate, to_mesh
    from shapegen.geometry.export import export_mesh

    torch.set_num_threads(1)
    shape = generate(cls, index, seed, extent=extent, variant=variant)
    mesh = to_mesh(shape, resolution, dilate=dilate)
    if mesh.num_faces == 0:  # cannot happen for valid parameters; guard the data set anyway
        raise ShapegenError(f"{cls} {index} produced an empty mesh at resolution {resolution}")
    if write_mesh:
        export_mesh(mesh, path, normals=normals, ply_up="y", name=Path(path).stem)
    if msdf is not None:
        procedural_msdf(shape, mesh, **msdf).save(msdf_path(path))
    return mesh.num_faces


def _check_config(cfg: ProceduralConfig) -> list[Split]:
    from shapegen.data.procedural import check_class

    for c in cfg.classes:
        check_class(c)
    if not cfg.classes:
        raise ShapegenError("no classes given; choose from " + ", ".join(CLASSES))
    if cfg.per_class < 1:
        raise ShapegenError(f"per_class must be at least 1, got {cfg.per_class}")
    if cfg.resolution < 16:
        raise ShapegenError(f"resolution must be at least 16 (thin parts vanish below), got {cfg.resolution}")
    if not 0 < cfg.extent < 1:
        raise ShapegenError(f"extent must lie in (0, 1), got {cfg.extent}")
    if cfg.workers < 0:
        raise ShapegenError(f"workers must be >= 0 (0: one per core), got {cfg.workers}")
    if cfg.captions_per_shape < 1:
        raise ShapegenError(f"captions_per_shape must be at least 1, got {cfg.captions_per_shape}")
    if cfg.msdf:
        if cfg.msdf_n < 1 or cfg.msdf_k < 2:
            raise ShapegenError(f"msdf_n must be at least 1 and msdf_k at least 2, got {cfg.msdf_n} and {cfg.msdf_k}")
        if not cfg.msdf_margin > 1:
            raise ShapegenError(f"msdf_margin must exceed 1 for the cubes to cover the surface, got {cfg.msdf_margin}")
        if cfg.msdf_dilate < 0:
            raise ShapegenError(f"msdf_dilate must be >= 0, got {cfg.msdf_dilate}")
        if cfg.msdf_samples < cfg.msdf_n:
            raise ShapegenError(f"msdf_samples ({cfg.msdf_samples}) must be at least msdf_n ({cfg.msdf_n})")
    if not 0 <= cfg.dilate <= MAX_DILATE:
        raise ShapegenError(f"dilate must lie in [0, {MAX_DILATE}], got {cfg.dilate}")
    if cfg.dilate and cfg.msdf:
        raise ShapegenError("dilate grows the meshes; the M-SDFs grow with msdf_dilate: set one of them, not both")
    splits = parse_splits(cfg.split)
    if not isinstance(splits[0][1], float):
        last = max(hi for _, ranges in splits for _, hi in ranges)  # type: ignore[union-attr]
        if last >= cfg.per_class:
            raise ShapegenError(f"split '{cfg.split}' names index {last}, beyond per_class={cfg.per_class}; raise per_class to {last + 1}")
    return splits


def _check_resume(out: Path, cfg: ProceduralConfig) -> None:
    """Refuse to add shapes made with other settings to an existing set."""
    from omegaconf import OmegaConf

    record = out / "procedural.yaml"
    if not record.is_file():
        return
    try:  # OmegaConf's YAML loader builds no Python objects: a python/... tag is an error here
        old = OmegaConf.to_container(OmegaConf.load(record))
    except Exception as exc:
        raise ShapegenError(f"cannot read {record} ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                            "delete it or choose another output folder") from exc
    if not isinstance(old, dict):
        raise ShapegenError(f"{record} does not hold the settings of a procedural set; delete it or choose another output folder")
    keys = _FIXED_KEYS + (_MSDF_KEYS if old.get("msdf") and cfg.msdf else ())
    for key in keys:
        if key in old and old[key] != getattr(cfg, key):
            raise ShapegenError(
                f"{out} holds a set made with {key}={old[key]!r}, not {getattr(cfg, key)!r}; "
                "use the same settings to resume it, pass --fresh to start over, or choose another output folder"
            )


def write_procedural_set(cfg: ProceduralConfig, out: str | os.PathLike, *, progress: bool = True,
                         fresh: bool = False, shard: Shard | None = None) -> SetSummary:
    """Generate the set described by ``cfg`` into folder ``out`` (resuming what exists).

    Args:
        cfg: the settings.
        out: output folder (created if needed).
        progress: show a tqdm progress bar.
        fresh: write every mesh again (overwriting) instead of keeping those already there.
        shard: make only this shard's block of the shapes and write its CSVs under shard names,
            then its manifest (:mod:`shapegen.data.shards`); None: every shape.

    Returns:
        A :class:`SetSummary`.

    Raises:
        ShapegenError: for bad settings (before anything is written), a folder made with
            other settings, or a failed write.
    """
    from tqdm.auto import tqdm

    from shapegen.config import save_config
    from shapegen.data.captions import ATTRIBUTES, attributes, captions
    from shapegen.data.procedural import generate
    from shapegen.data.shards import finish_shard, start_shard
    from shapegen.io import atomic_path, check_output_path

    t0 = time.perf_counter()
    splits = _check_config(cfg)
    out = Path(out)
    check_output_path(out / "index.csv")
    if not fresh:
        _check_resume(out, cfg)
    save_config(cfg, out / "procedural.yaml")
    items = [(cls, i) for cls in cfg.classes for i in range(cfg.per_class) if split_of(splits, cfg.seed, cls, i) is not None]
    block = range(len(items)) if shard is None else shard.block(len(items))
    if shard is not None:
        start_shard(out, shard)

    rows, todo, caption_rows, attr_rows = [], [], [], []
    for cls, i in (items[j] for j in block):
        split = split_of(splits, cfg.seed, cls, i)
        rel = Path(split) / cls / f"{cls}_{i:05d}.{cfg.format}"
        shape = generate(cls, i, cfg.seed, extent=cfg.extent, variant=cfg.variant)  # parameters only: cheap
        rows.append((rel.as_posix(), cls, split, i, shape.seed, json.dumps(shape.params, sort_keys=True)))
        caption_rows += [(rel.as_posix(), text) for text in captions(cls, shape.params, cfg.captions_per_shape, shape.seed)]
        attr_rows.append((rel.as_posix(), cls, split, attributes(cls, shape.params)))
        need_mesh = fresh or not (out / rel).is_file()
        if need_mesh or (cfg.msdf and not msdf_path(out / rel).is_file()):
            todo.append((cls, i, rel, need_mesh))
    skipped = len(rows) - len(todo)
    workers = cfg.workers or os.cpu_count() or 1
    bar = tqdm(total=len(todo), desc="procedural shapes", unit="shape", disable=not progress or not todo)
    msdf = _msdf_settings(cfg)
    args = [(cls, i, cfg.seed, cfg.resolution, cfg.extent, str(out / rel), cfg.normals, need_mesh, msdf, cfg.dilate, cfg.variant)
            for cls, i, rel, need_mesh in todo]
    try:
        if workers == 1 or len(todo) <= 2:
            import torch

            threads = torch.get_num_threads()
            try:
                for a in args:
                    _make_one(*a)
                    bar.update(1)
            finally:
                torch.set_num_threads(threads)
        elif todo:
            from shapegen.workers import in_processes

            # The forkserver imports torch, pymcubes and the generators once; workers fork from it.
            # The first failure or Ctrl-C stops the rest; finished meshes stay for a resume.
            preload = ("torch", "mcubes", "shapegen.data.procedural", "shapegen.geometry.export", "shapegen.fields.mosaic_sdf_fit")
            for _ in in_processes(_make_one, args, workers, preload=preload):
                bar.update(1)
    finally:
        bar.close()

    columns = list(dict.fromkeys(a for c in cfg.classes for a in ATTRIBUTES[c]))
    tables = {
        "index.csv": [["path", "class", "split", "index", "seed", "params"], *rows],
        "captions.csv": [["path", "caption"], *caption_rows],
        "attributes.csv": [["path", "class", "split", *columns], *([p, c, s, *(a.get(k, "") for k in columns)] for p, c, s, a in attr_rows)],
    }
    paths = {name: out / name if shard is None else shard.path(out / name) for name in tables}
    for name, table in tables.items():
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(table)
        with atomic_path(paths[name]) as tmp:
            tmp.write_text(buf.getvalue())
    if shard is not None:
        settings = {k: v for k, v in asdict(cfg).items() if k not in ("workers", "preview_per_class", "preview_tile")}
        finish_shard(out, shard, command="data procedural", total=len(items), items=block, settings=settings,
                     files=dict.fromkeys(tables, "csv"))
    per_split = {name: sum(r[2] == name for r in rows) for name, _ in splits}
    return SetSummary(len(todo), skipped, time.perf_counter() - t0, per_split, paths["index.csv"], paths["captions.csv"],
                      paths["attributes.csv"])


def write_preview(cfg: ProceduralConfig, out: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Render the first ``cfg.preview_per_class`` shapes of each class from ``out`` into one PNG.

    Rows are classes, columns shape indices; meshes are read back from the files written, so
    the sheet shows exactly what is on disk. Each tile has its shape's first caption from
    ``captions.csv`` under it (when the folder has one).
    """
    from renderers.preview import save_image
    from shapegen.data.procedural import preview_sheet
    from shapegen.geometry.mesh_io import load_mesh

    if Path(path).suffix.lower() != ".png":
        raise ShapegenError(f"the preview sheet is a PNG: give a path ending in .png instead of '{Path(path).name}'")
    splits = parse_splits(cfg.split)
    first: dict[str, str] = {}
    if (Path(out) / "captions.csv").is_file():
        with open(Path(out) / "captions.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                first.setdefault(row["path"], row["caption"])
    rows, texts = [], []
    for cls in cfg.classes:
        row, text = [], []
        made = [i for i in range(cfg.per_class) if split_of(splits, cfg.seed, cls, i) is not None]
        for i in made[: cfg.preview_per_class]:
            rel = Path(split_of(splits, cfg.seed, cls, i)) / cls / f"{cls}_{i:05d}.{cfg.format}"
            row.append((f"{cls}_{i:05d}", load_mesh(Path(out) / rel)))
            text.append(first.get(rel.as_posix(), ""))
        rows.append(row)
        texts.append(text)
    return save_image(path, preview_sheet(rows, cfg.preview_tile, captions=texts if first else None))


__all__ = ["ProceduralConfig", "SetSummary", "msdf_path", "parse_splits", "procedural_msdf", "split_of", "write_preview",
           "write_procedural_set"]
