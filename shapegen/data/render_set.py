"""Captioned renders of the procedural shapes: the training images of the render prior.

``shapegen data renders -o DIR --config render_prior`` writes, for every procedural shape
(:mod:`shapegen.data.procedural`, made from ``(seed, class, index)`` as ``data procedural`` makes
it), ``views`` small square renders from random cameras drawn as the VSD pipeline draws its
training cameras (:class:`~shapegen.data.cameras.CameraSamplerConfig`: elevation, azimuth,
distance and field of view uniform in ranges), each with a caption:

* the object is scaled so its largest half-extent is ``object_extent`` (0.5, the framing of
  ``texture.mesh_extent`` that the VSD cameras expect) and rasterised with
  :func:`renderers.rasterize.render_gbuffers` (anti-aliased silhouettes);
* each view is one of three looks, drawn with ``look_probs``: ``shaded`` (a muted random colour
  per shape times ``a + (1 - a) max(0, n . l)`` over a white background, the look of a NeRF
  stage render with ``background.kind: constant``), ``textureless`` (the same with a white albedo,
  DreamFusion's textureless shading) and ``normal`` (the world-space normal map ``(n + 1) / 2``
  on black that the VSD geometry stage renders, :func:`shapegen.methods.vsd_mesh.render_normal_map`);
  the light is the camera's direction perturbed by Gaussian noise (``light_jitter``), as
  :mod:`shapegen.fields.shading` places it;
* the caption is one of the shape's captions (:func:`shapegen.data.captions.captions`) with the
  view suffix that :class:`shapegen.guidance.vsd.ScoreDistillation` appends for that camera
  (:data:`~shapegen.guidance.vsd.VIEW_SUFFIXES` picked by :func:`~shapegen.guidance.vsd.view_index`
  with the default thresholds: ", front view", ", side view", ", back view", ", overhead view"),
  or none with probability ``plain_prob`` (the prompt the VSD LoRA model and sampling use).

Every random choice of a shape comes from a generator seeded by its shape seed, so a set is the
same byte for byte whatever the order, the shard or a resume. Layout of ``DIR``::

    DIR/<split>/<class>/<class>_<index>.npz   images (V, H, W, 3) uint8, azimuth, elevation (V,)
    DIR/renders.csv                           file, view, class, split, look, azimuth, elevation, caption
    DIR/renders.yaml                          the settings

With ``--shard K/N`` a run renders one contiguous block of the shapes and writes its rows to
``renders.shard-K-of-N.csv``; ``shapegen data merge-shards DIR`` joins them (:mod:`shapegen.data.shards`).
"""

from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shapegen.data.procedural_set import CLASSES, DEFAULT_EXTENT
from shapegen.errors import ShapegenError

if TYPE_CHECKING:
    import numpy as np

    from shapegen.data.shards import Shard

LOOKS = ("shaded", "textureless", "normal")
"""The three looks of a render (see the module doc)."""

COLUMNS = ("file", "view", "class", "split", "look", "azimuth", "elevation", "caption")
"""Columns of ``renders.csv``."""

#: Keys of renders.yaml that must match for a folder to be resumed (they change the images).
_FIXED_KEYS = ("seed", "split", "mesh_resolution", "extent", "object_extent", "views", "image_size", "elevation_range_deg",
               "azimuth_range_deg", "distance_range", "fov_range_deg", "look_probs", "ambient", "light_jitter",
               "background", "captions_per_shape", "plain_prob")


@dataclass
class RenderSetConfig:
    """Settings of ``shapegen data renders`` (preset: ``configs/data/render_prior.yaml``)."""

    classes: list[str] = field(default_factory=lambda: list(CLASSES))
    """Procedural classes to render."""
    per_class: int = 80
    """Shapes per class (indices 0 .. per_class - 1), as ``data procedural``."""
    seed: int = 0
    """Seed of the procedural set (the same shapes as ``data procedural --seed``) and of the renders."""
    split: str = "train=0.85,test=0.15"
    """Splits of the shapes, as ``data procedural``'s ``split`` (the default matches ``configs/data/msdf_text.yaml``,
    so the ``test`` shapes are the held-out shapes of the text-to-3D benchmarks)."""
    mesh_resolution: int = 48
    """Marching-cubes samples per axis of each shape's mesh."""
    extent: float = DEFAULT_EXTENT
    """Half side of the cube the procedural generator fits each shape into."""
    object_extent: float = 0.5
    """Largest half-extent of the object in the rendered scene (the VSD cameras' framing)."""
    views: int = 24
    """Renders per shape."""
    image_size: int = 32
    """Side of the square renders (pixels)."""
    elevation_range_deg: list[float] = field(default_factory=lambda: [-10.0, 60.0])
    """Camera elevation range (degrees); above ``overhead`` (60) gets the overhead caption, so the
    default reaches it only at the border: raise the top to teach "overhead view"."""
    azimuth_range_deg: list[float] = field(default_factory=lambda: [-180.0, 180.0])
    """Camera azimuth range (degrees; 0 = +Z, the front)."""
    distance_range: list[float] = field(default_factory=lambda: [1.0, 1.5])
    """Camera distance range (world units; the VSD default)."""
    fov_range_deg: list[float] = field(default_factory=lambda: [40.0, 70.0])
    """Vertical field of view range (degrees; the VSD default)."""
    look_probs: list[float] = field(default_factory=lambda: [0.5, 0.25, 0.25])
    """Probabilities of the looks shaded, textureless, normal (summing to 1)."""
    ambient: float = 0.2
    """Ambient ratio ``a`` of the shaded and textureless looks."""
    light_jitter: float = 0.5
    """Std of the Gaussian perturbation of the light direction around the camera's."""
    background: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    """Background of the shaded and textureless looks (RGB in [0, 1]; the normal look is on black)."""
    captions_per_shape: int = 5
    """Captions per shape to draw from (the last is the class word alone)."""
    plain_prob: float = 0.2
    """Probability that a view's caption has no view suffix."""
    workers: int = 0
    """Worker processes (0: one per CPU core)."""


@dataclass
class RenderSetSummary:
    """What :func:`write_render_set` did.

    Attributes:
        written: shapes rendered by this run.
        skipped: shapes whose file was there already (resumed).
        images: renders in the index rows written.
        seconds: wall time.
        index: path of ``renders.csv`` (or the shard's).
    """

    written: int
    skipped: int
    images: int
    seconds: float
    index: Path


def _check(cfg: RenderSetConfig) -> None:
    from shapegen.data.procedural import check_class

    if not cfg.classes:
        raise ShapegenError("no classes given; choose from " + ", ".join(CLASSES))
    for c in cfg.classes:
        check_class(c)
    if cfg.per_class < 1 or cfg.views < 1:
        raise ShapegenError(f"per_class and views must be at least 1, got {cfg.per_class} and {cfg.views}")
    if cfg.image_size < 8:
        raise ShapegenError(f"image_size must be at least 8, got {cfg.image_size}")
    if len(cfg.look_probs) != len(LOOKS) or min(cfg.look_probs) < 0 or abs(sum(cfg.look_probs) - 1) > 1e-6:
        raise ShapegenError(f"look_probs must be {len(LOOKS)} probabilities ({', '.join(LOOKS)}) summing to 1, got {cfg.look_probs}")
    if not 0 < cfg.object_extent < 1:
        raise ShapegenError(f"object_extent must lie in (0, 1), got {cfg.object_extent}")
    if cfg.captions_per_shape < 1 or not 0 <= cfg.plain_prob <= 1:
        raise ShapegenError(f"captions_per_shape must be >= 1 and plain_prob in [0, 1], got {cfg.captions_per_shape} and {cfg.plain_prob}")
    if len(cfg.background) != 3:
        raise ShapegenError(f"background must be three numbers (RGB in [0, 1]), got {cfg.background}")


def render_views(mesh, cfg: RenderSetConfig, seed: int) -> tuple[np.ndarray, list[dict]]:
    """The ``cfg.views`` renders of one mesh (already in the scene's frame) and one record per view.

    Args:
        mesh: a :class:`~shapegen.geometry.mesh.Mesh` scaled to ``object_extent``.
        cfg: the settings.
        seed: seeds every random choice (cameras, looks, light, colour).

    Returns:
        ``(V, H, W, 3)`` uint8 images and per view ``{"look", "azimuth", "elevation"}``.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    from renderers.cameras import sample_cameras_on_sphere
    from renderers.rasterize import render_gbuffers

    gen = torch.Generator().manual_seed(seed)
    side = cfg.image_size
    cams = sample_cameras_on_sphere(
        cfg.views, side, side, elevation_range_deg=tuple(cfg.elevation_range_deg), azimuth_range_deg=tuple(cfg.azimuth_range_deg),
        distance_range=tuple(cfg.distance_range), fov_range_deg=tuple(cfg.fov_range_deg), generator=gen,
    )
    looks = torch.multinomial(torch.tensor(cfg.look_probs, dtype=torch.float64), cfg.views, replacement=True, generator=gen)
    albedo = 0.35 + 0.55 * torch.rand(3, generator=gen)  # muted colours: the captions name none
    eye = cams.c2w[:, :3, 3]
    light = F.normalize(eye + cfg.light_jitter * eye.norm(dim=-1, keepdim=True) * torch.randn(eye.shape, generator=gen), dim=-1)
    v, f = mesh.vertices.float(), mesh.faces.long()
    out = render_gbuffers(v, f, cams.c2w, cams.intrinsics, attributes=torch.ones(v.shape[0], 1), antialias_edges=True)
    alpha = out.attributes.clamp(0, 1)  # anti-aliased coverage (B, H, W, 1)
    n = out.normals
    lit = cfg.ambient + (1 - cfg.ambient) * (n * light[:, None, None, :]).sum(-1, keepdim=True).clamp_min(0)
    bg = torch.tensor(cfg.background, dtype=torch.float32)
    shaded = alpha * (albedo * lit) + (1 - alpha) * bg
    textureless = alpha * lit.expand(-1, -1, -1, 3) + (1 - alpha) * bg
    normal = alpha * (0.5 * n + 0.5)  # on black, as the geometry stage's normal map
    stack = torch.stack([shaded, textureless, normal])  # (3, B, H, W, 3)
    images = stack[looks, torch.arange(cfg.views)].clamp(0, 1)
    records = [{"look": LOOKS[int(k)], "azimuth": float(a), "elevation": float(e)}
               for k, a, e in zip(looks, cams.azimuth_deg, cams.elevation_deg)]
    return (images * 255).round().to(torch.uint8).numpy().astype(np.uint8), records


def view_caption(caption: str, azimuth: float, elevation: float, plain: bool) -> str:
    """``caption`` with the view suffix the VSD guidance asks its prior for at this camera (none if ``plain``)."""
    import torch

    from shapegen.guidance.vsd import VIEW_SUFFIXES, GuidanceConfig, view_index

    if plain:
        return caption
    idx = view_index(torch.tensor([azimuth]), torch.tensor([elevation]), GuidanceConfig())
    return caption + VIEW_SUFFIXES[int(idx[0])]


def _render_one(cls: str, index: int, cfg: RenderSetConfig, path: str, render: bool) -> list[dict]:
    """Render one shape into ``path`` (or, without ``render``, read the views a previous run wrote
    there) and caption its views; returns its rows."""
    import numpy as np

    from shapegen.data.captions import captions
    from shapegen.data.procedural import generate, to_mesh
    from shapegen.geometry.mesh import Mesh

    shape = generate(cls, index, cfg.seed, extent=cfg.extent)
    texts = captions(cls, shape.params, cfg.captions_per_shape, shape.seed)
    rng = np.random.default_rng(shape.seed)
    if render:
        import torch

        torch.set_num_threads(1)
        mesh = to_mesh(shape, cfg.mesh_resolution)
        v = mesh.vertices.float()
        lo, hi = v.amin(0), v.amax(0)
        v = (v - (lo + hi) / 2) * (cfg.object_extent / float((hi - lo).max() / 2))
        images, records = render_views(Mesh(v, mesh.faces), cfg, shape.seed)
        from shapegen.io import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, images=images, azimuth=np.array([r["azimuth"] for r in records], np.float32),
                                elevation=np.array([r["elevation"] for r in records], np.float32),
                                looks=np.array([LOOKS.index(r["look"]) for r in records], np.int8))
    else:
        with np.load(path) as data:
            records = [{"look": LOOKS[int(k)], "azimuth": float(a), "elevation": float(e)}
                       for k, a, e in zip(data["looks"], data["azimuth"], data["elevation"])]
    rows = []
    for view, r in enumerate(records):
        text = texts[int(rng.integers(len(texts)))]
        plain = bool(rng.random() < cfg.plain_prob)
        rows.append({"view": view, "look": r["look"], "azimuth": f"{r['azimuth']:.3f}", "elevation": f"{r['elevation']:.3f}",
                     "caption": view_caption(text, r["azimuth"], r["elevation"], plain)})
    return rows


def _check_resume(out: Path, cfg: RenderSetConfig) -> None:
    from omegaconf import OmegaConf

    record = out / "renders.yaml"
    if not record.is_file():
        return
    try:
        old = OmegaConf.to_container(OmegaConf.load(record))
    except Exception as exc:
        raise ShapegenError(f"cannot read {record} ({type(exc).__name__}); delete it or choose another output folder") from exc
    for key in _FIXED_KEYS:
        if isinstance(old, dict) and key in old and old[key] != getattr(cfg, key):
            raise ShapegenError(f"{out} holds renders made with {key}={old[key]!r}, not {getattr(cfg, key)!r}; "
                                "use the same settings to resume, pass --fresh to start over, or choose another output folder")


def write_render_set(cfg: RenderSetConfig, out: str | os.PathLike, *, progress: bool = True, fresh: bool = False,
                     shard: Shard | None = None) -> RenderSetSummary:
    """Render and caption the procedural shapes of ``cfg`` into folder ``out`` (resuming what exists).

    Args:
        cfg: the settings.
        out: output folder (created if needed).
        progress: show a progress bar.
        fresh: render every shape again.
        shard: render only this shard's block of the shapes (class by class, index by index) and
            write its rows under the shard's name, then its manifest; None: every shape.

    Raises:
        ShapegenError: bad settings (before anything is written) or a folder made with other settings.
    """
    from tqdm.auto import tqdm

    from shapegen.config import save_config
    from shapegen.data.procedural_set import parse_splits, split_of
    from shapegen.data.shards import finish_shard, start_shard
    from shapegen.io import atomic_path, check_output_path

    t0 = time.perf_counter()
    _check(cfg)
    splits = parse_splits(cfg.split)
    out = Path(out)
    check_output_path(out / "renders.csv")
    if not fresh:
        _check_resume(out, cfg)
    save_config(cfg, out / "renders.yaml")
    items = [(c, i) for c in cfg.classes for i in range(cfg.per_class) if split_of(splits, cfg.seed, c, i) is not None]
    block = range(len(items)) if shard is None else shard.block(len(items))
    if shard is not None:
        start_shard(out, shard)
    jobs = []
    for cls, i in (items[j] for j in block):
        split = split_of(splits, cfg.seed, cls, i)
        rel = Path(split) / cls / f"{cls}_{i:05d}.npz"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        exists = (out / rel).is_file() and not fresh
        jobs.append((cls, i, split, rel, exists))
    todo = sum(not e for *_, e in jobs)
    workers = cfg.workers or os.cpu_count() or 1
    args = [(cls, i, cfg, str(out / rel), not exists) for cls, i, _, rel, exists in jobs]
    bar = tqdm(total=len(jobs), desc="procedural renders", unit="shape", disable=not progress)
    results: list[list[dict]] = []
    try:
        if workers == 1 or len(jobs) <= 2:
            import torch

            threads = torch.get_num_threads()
            try:
                for a in args:
                    results.append(_render_one(*a))
                    bar.update(1)
            finally:
                torch.set_num_threads(threads)
        else:
            from shapegen.workers import in_processes

            preload = ("torch", "mcubes", "shapegen.data.procedural", "renderers.rasterize")
            results = [None] * len(args)  # type: ignore[list-item]
            for k, rows in in_processes(_render_one, args, workers, preload=preload):
                results[k] = rows
                bar.update(1)
    finally:
        bar.close()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    images = 0
    for (cls, _, split, rel, _), rows in zip(jobs, results):
        for r in rows:
            writer.writerow([rel.as_posix(), r["view"], cls, split, r["look"], r["azimuth"], r["elevation"], r["caption"]])
            images += 1
    index = out / "renders.csv" if shard is None else shard.path(out / "renders.csv")
    with atomic_path(index) as tmp:
        tmp.write_text(buf.getvalue())
    if shard is not None:
        settings = {k: v for k, v in asdict(cfg).items() if k != "workers"}
        finish_shard(out, shard, command="data renders", total=len(items), items=block, settings=settings,
                     files={"renders.csv": "csv"})
    return RenderSetSummary(todo, len(jobs) - todo, images, time.perf_counter() - t0, index)


def read_render_set(root: str | os.PathLike, split: str = "train", looks: list[str] | None = None):
    """The renders of one split as tensors.

    Args:
        root: a folder written by :func:`write_render_set`.
        split: keep the rows of this split ("" or "all": every row).
        looks: keep only these looks (None: all).

    Returns:
        ``(images, captions, classes)``: ``(N, 3, H, W)`` uint8, N captions and N class names.

    Raises:
        ShapegenError: no ``renders.csv``, or no rows left.
    """
    import numpy as np
    import torch

    root = Path(root)
    index = root / "renders.csv"
    if not index.is_file():
        raise ShapegenError(f"'{root}' has no renders.csv; write the renders with 'shapegen data renders -o {root} --config render_prior'")
    with open(index, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if split in ("", "all", r["split"]) and (looks is None or r["look"] in looks)]
    if not rows:
        raise ShapegenError(f"no renders of split '{split}' in {index}; check data.split")
    cache: dict[str, np.ndarray] = {}
    images = []
    for r in rows:
        if r["file"] not in cache:
            try:
                with np.load(root / r["file"]) as data:
                    cache[r["file"]] = data["images"]
            except (OSError, KeyError, ValueError) as exc:
                raise ShapegenError(f"cannot read {root / r['file']} ({type(exc).__name__}); render the set again") from exc
        images.append(cache[r["file"]][int(r["view"])])
    tensor = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return tensor, [r["caption"] for r in rows], [r["class"] for r in rows]


def read_render_cameras(root: str | os.PathLike, split: str = "train", looks: list[str] | None = None):
    """``(N, 2)`` float32 azimuth and elevation (degrees) of the rows :func:`read_render_set` reads
    with the same arguments, in its order."""
    import torch

    index = Path(root) / "renders.csv"
    if not index.is_file():
        raise ShapegenError(f"'{root}' has no renders.csv; write the renders with 'shapegen data renders -o {root} --config render_prior'")
    with open(index, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if split in ("", "all", r["split"]) and (looks is None or r["look"] in looks)]
    return torch.tensor([[float(r["azimuth"]), float(r["elevation"])] for r in rows], dtype=torch.float32).reshape(-1, 2)


def caption_vocabulary(captions: list[str]) -> list[str]:
    """Sorted distinct lower-case tokens (words and punctuation) of ``captions``, split as the
    render prior's tokenizer splits them (``\\w+`` and runs of other non-space characters)."""
    import re

    return sorted({t for c in captions for t in re.findall(r"\w+|[^\w\s]+", c.lower())})


__all__ = ["COLUMNS", "LOOKS", "RenderSetConfig", "RenderSetSummary", "caption_vocabulary", "read_render_cameras", "read_render_set",
           "render_views",
           "view_caption", "write_render_set"]
