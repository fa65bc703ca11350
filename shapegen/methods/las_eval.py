"""Held-out evaluation of a LAS-Diffusion sketch-to-3D model: the library behind ``shapegen las eval``.

Protocol (the shipped demo model's card reports it): for every shape of a prepared folder
(``shapegen las prepare``), its sketches of every style from one view, view ``k % V`` of its ``V``
rendered views (``k``: the number that ends the shape's name, else its position), are given to
the model with their true view and category (seed 0), and the result's SDF is compared with the
shape's. Two voxel IoUs (:func:`shapegen.geometry.voxels.touched_voxels`):

* ``iou16`` (the headline): the ``G/2`` occupancy grid of stage 1; a cell counts when one of its
  ``G^3`` children touches the shape (``sdf`` below the child's half-diagonal);
* ``iou32``: ``sdf < 0`` on the ``G^3`` SDF grid (thin parts show or vanish by where the voxel
  centres fall).

Rows, each per category and overall: the sketch by style and both styles together; the model given
the category but no sketch (once per shape, seed = the shape's number); with training data, the
class's most typical training shape (highest summed iou16 to the other training shapes of its
class) and, as an oracle that looks at the truth, the training shape of the class with the best
iou16; with ``scale``, each true shape against itself moved by a quarter and by half a voxel along
each axis (no model: what a sub-voxel misplacement alone costs).

The guidance weight can be chosen on a validation folder first (:func:`choose_guidance`: the best
mean iou16 of the sketch rows, the smallest weight on a tie), never on the evaluated shapes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from shapegen.errors import ShapegenError

METRICS = ("iou16", "iou32")
"""The two IoU definitions (see the module doc)."""

SKETCH_ROW = "sketch (both styles)"
"""The headline row."""
NO_SKETCH_ROW = "baseline: model without the sketch"
TYPICAL_ROW = "baseline: most typical training shape of the class"
ORACLE_ROW = "oracle: nearest training shape (looks at the truth)"


@dataclass
class LASEvalResult:
    """What :func:`evaluate` measured.

    ``results[row]`` is ``{"classes": {category: {"iou16", "iou32", "n"}}, "overall": {...}}``
    with ``n`` the number of cases averaged (sketches for the sketch rows, shapes for the others).
    """

    results: dict[str, dict]
    """Row name -> per-category and overall mean IoUs."""
    examples: list[dict] = field(default_factory=list)
    """One record per evaluated sketch: shape, category, file, style, azimuth, iou16, iou32."""
    guidance: float = 1.0
    """The guidance weight the sketches were sampled with."""
    validation: dict | None = None
    """The guidance choice (:func:`choose_guidance`), when one was made."""
    shapes: int = 0
    """Evaluated shapes."""
    train_shapes: int = 0
    """Training shapes of the baselines (0: none given)."""
    seconds: float = 0.0
    """Wall time of the evaluation (and the guidance choice)."""

    @property
    def headline(self) -> float:
        """Overall iou16 from the sketches (both styles)."""
        return float(self.results[SKETCH_ROW]["overall"]["iou16"])

    def to_dict(self) -> dict:
        return asdict(self) | {"headline": self.headline}


def voxel_ious(pred_sdf: Float[Tensor, "G G G"], true_sdf: Float[Tensor, "G G G"]) -> dict[str, float]:
    """``iou16`` and ``iou32`` of two SDF grids in world units (see the module doc)."""
    from shapegen.geometry.metrics import iou
    from shapegen.geometry.voxels import touched_voxels

    return {"iou16": iou(touched_voxels(pred_sdf, pool=2), touched_voxels(true_sdf, pool=2)), "iou32": iou(pred_sdf < 0, true_sdf < 0)}


def load_volumes(root: str | Path) -> dict[str, tuple[str, Tensor]]:
    """``name -> (category, SDF grid)`` of a prepared folder, sorted by name."""
    from shapegen.data.las_dataset import read_index

    out = {}
    for name, rec in sorted(read_index(root)["shapes"].items()):
        with np.load(Path(root) / rec["file"], allow_pickle=False) as z:
            out[name] = (rec["category"], torch.from_numpy(z["sdf"].astype(np.float32)))
    return out


def _shape_number(name: str, position: int) -> int:
    m = re.search(r"(\d+)$", name)
    return int(m[1]) if m else position


@dataclass
class SketchCase:
    """One evaluation sketch of a prepared folder."""

    shape: str
    category: str
    number: int
    """The number that ends the shape's name (its position when none)."""
    true_sdf: Tensor
    record: dict
    """Its ``index.json`` sketch record (file, style, view, azimuth, ...)."""
    sketch: Tensor
    """Ink map at the model's sketch size."""


def sketch_cases(root: str | Path, size: int) -> Iterator[SketchCase]:
    """The evaluation sketches of a prepared folder: each shape's sketches of every style from view ``k % V``."""
    from shapegen.data.las_dataset import read_index
    from shapegen.data.sketches import load_sketch

    root = Path(root)
    index = read_index(root)
    by_shape: dict[str, list[dict]] = {}
    for rec in index.get("sketches", []):
        by_shape.setdefault(rec["shape"], []).append(rec)
    for pos, (name, (cat, true_sdf)) in enumerate(load_volumes(root).items()):
        recs = by_shape.get(name, [])
        if not recs:
            continue
        views = sorted({r["view"] for r in recs})
        k = _shape_number(name, pos)
        view = views[k % len(views)]
        for rec in (r for r in recs if r["view"] == view):
            yield SketchCase(name, cat, k, true_sdf, rec, load_sketch(root / rec["file"], size))


def _predict(model, case: SketchCase, sketch: bool, guidance: float | None, seed: int) -> Tensor:
    out = model.sample(1, category=case.category if model.config.use_category else None, sketch=case.sketch if sketch else None,
                       azimuth=case.record["azimuth"] if sketch else None, seed=seed, guidance=guidance)
    return out.sdf[0].cpu() * model.tau  # sample() returns the SDF over tau


def _check_model(model, root: Path) -> None:
    if not model.config.use_sketch:
        raise ShapegenError("this LAS model is not sketch-conditioned; 'las eval' scores sketch-to-3D")
    from shapegen.data.las_dataset import read_index

    index = read_index(root)
    g = int(index.get("settings", {}).get("resolution", model.config.resolution))
    if g != model.config.resolution:
        raise ShapegenError(f"'{root}' was prepared at {g}^3 but the model samples {model.config.resolution}^3; "
                            f"prepare it with --set resolution={model.config.resolution}")
    if model.config.use_category:
        unknown = sorted({r["category"] for r in index["shapes"].values()} - set(model.config.categories))
        if unknown:
            raise ShapegenError(f"'{root}' holds categories the model does not know: {', '.join(unknown)}")
    if not index.get("sketches"):
        raise ShapegenError(f"'{root}' has no sketches; prepare it with sketch_size > 0")


def choose_guidance(model, val_dir: str | Path, weights: Sequence[float], *, seed: int = 0) -> dict:
    """Mean iou16 of the sketch rows on ``val_dir`` for each guidance weight.

    Returns:
        ``{"iou16_by_guidance": {"1": ..., ...}, "guidance": best, "sketches": n, "shapes": m, "seconds": s}``;
        the best weight is the smallest one on a tie (scores rounded to 6 digits).
    """
    if not weights:
        raise ShapegenError("give at least one guidance weight, e.g. 1,2")
    t0 = time.perf_counter()
    _check_model(model, Path(val_dir))
    cases = list(sketch_cases(val_dir, model.config.sketch_encoder.image_size))
    scores = {}
    for w in weights:
        scores[float(w)] = float(np.mean([voxel_ious(_predict(model, c, True, float(w), seed), c.true_sdf)["iou16"] for c in cases]))
    best = max(scores, key=lambda w: (round(scores[w], 6), -w))
    return {"iou16_by_guidance": {f"{w:g}": v for w, v in scores.items()}, "guidance": best, "sketches": len(cases),
            "shapes": len({c.shape for c in cases}), "seconds": time.perf_counter() - t0}


def _shifted_self_ious(source: Path, true_sdf: Tensor, shift: float) -> dict[str, float]:
    """The shape's mesh (in ``las prepare``'s frame) sampled at voxel centres moved by ``shift`` voxels along each axis."""
    from shapegen.data.las_prepare import LASPrepareConfig
    from shapegen.geometry.mesh_io import load_mesh, normalize_mesh
    from shapegen.geometry.sdf import MeshSDF
    from shapegen.geometry.voxels import voxel_centers

    if not source.is_file():
        raise ShapegenError(f"the scale rows need the shape's mesh '{source}', which is gone; drop --scale")
    g = true_sdf.shape[-1]
    mesh, _ = normalize_mesh(load_mesh(source), "cube", LASPrepareConfig().padding)
    pts = voxel_centers(g).reshape(-1, 3) + shift * 2.0 / g
    with torch.no_grad():
        sdf = MeshSDF(mesh)(pts).reshape(g, g, g).float()
    return voxel_ious(sdf, true_sdf)


def evaluate(
    model,
    data_dir: str | Path,
    *,
    train_dir: str | Path | None = None,
    guidance: float | None = None,
    val_dir: str | Path | None = None,
    guidance_weights: Sequence[float] = (),
    scale: bool = False,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> LASEvalResult:
    """Score a sketch-conditioned :class:`~shapegen.methods.las.LASDiffusion` on a prepared folder.

    Args:
        model: the model (eval mode; its device is used).
        data_dir: held-out shapes prepared by ``las prepare`` (never trained on).
        train_dir: the training shapes, prepared alike: adds the typical-shape and nearest-shape rows.
        guidance: guidance weight of the sketches (None: the model's ``sample.guidance``).
        val_dir: validation shapes on which :func:`choose_guidance` picks one of ``guidance_weights``
            (which then sets the model's ``sample.guidance``).
        guidance_weights: the weights to try on ``val_dir``.
        scale: add the rows of each true shape against itself moved by a quarter and half a voxel.
        seed: noise seed of the sketch samples.
        log: called with a progress line now and then.

    Raises:
        ShapegenError: a folder that does not fit the model, or guidance weights without a validation folder.
    """
    t0 = time.perf_counter()
    data_dir = Path(data_dir)
    _check_model(model, data_dir)
    validation = None
    if guidance_weights and val_dir is None:
        raise ShapegenError("guidance weights to choose from need a validation folder (--val DIR)")
    if val_dir is not None:
        if guidance is not None:
            raise ShapegenError("give either one guidance weight or weights to choose on the validation folder, not both")
        validation = choose_guidance(model, val_dir, guidance_weights or (model.config.sample.guidance,), seed=seed)
        model.config.sample.guidance = validation["guidance"]
        if log:
            log(f"guidance {validation['guidance']:g} chosen on {validation['shapes']} validation shapes: {validation['iou16_by_guidance']}")
    w = model.config.sample.guidance if guidance is None else float(guidance)

    from shapegen.data.las_dataset import read_index
    from shapegen.geometry.voxels import touched_voxels

    typical: dict[str, Tensor] = {}
    train_by_cat: dict[str, list[Tensor]] = {}
    if train_dir is not None:
        for cat, sdf in load_volumes(train_dir).values():
            train_by_cat.setdefault(cat, []).append(sdf)
        from shapegen.geometry.metrics import iou

        for cat, sdfs in train_by_cat.items():
            occ = [touched_voxels(s, 2) for s in sdfs]
            typical[cat] = sdfs[int(np.argmax([sum(iou(o, p) for p in occ) for o in occ]))]
    sources = {n: Path(r["source"]) for n, r in read_index(data_dir)["shapes"].items()}
    rows: dict[str, dict[str, list[dict[str, float]]]] = {}

    def add(row: str, cat: str, vals: dict[str, float]) -> None:
        rows.setdefault(row, {}).setdefault(cat, []).append(vals)

    examples, done = [], set()
    for case in sketch_cases(data_dir, model.config.sketch_encoder.image_size):
        vals = voxel_ious(_predict(model, case, True, w, seed), case.true_sdf)
        add(f"sketch ({case.record['style']})", case.category, vals)
        add(SKETCH_ROW, case.category, vals)
        examples.append({"shape": case.shape, "category": case.category, "file": case.record["file"], "style": case.record["style"],
                         "azimuth": case.record["azimuth"], **vals})
        if case.shape in done:  # the baselines once per shape
            continue
        done.add(case.shape)
        add(NO_SKETCH_ROW, case.category, voxel_ious(_predict(model, case, False, w, case.number), case.true_sdf))
        if case.category in typical:
            add(TYPICAL_ROW, case.category, voxel_ious(typical[case.category], case.true_sdf))
            add(ORACLE_ROW, case.category, max((voxel_ious(s, case.true_sdf) for s in train_by_cat[case.category]), key=lambda v: v["iou16"]))
        if scale:
            for shift, label in ((0.25, "a quarter"), (0.5, "half a")):
                add(f"scale: the true shape moved by {label} voxel", case.category, _shifted_self_ious(sources[case.shape], case.true_sdf, shift))
        if log and len(done) % 10 == 0:
            log(f"evaluated {len(done)} shapes ({time.perf_counter() - t0:.0f} s)")
    if not done:
        raise ShapegenError(f"'{data_dir}' has no shape with sketches to evaluate")
    table = {}
    for row, per_cat in rows.items():
        flat = [v for vals in per_cat.values() for v in vals]
        table[row] = {
            "classes": {cat: {k: float(np.mean([v[k] for v in vals])) for k in METRICS} | {"n": len(vals)} for cat, vals in sorted(per_cat.items())},
            "overall": {k: float(np.mean([v[k] for v in flat])) for k in METRICS} | {"n": len(flat)},
        }
    return LASEvalResult(table, examples, w, validation, len(done), sum(map(len, train_by_cat.values())), time.perf_counter() - t0)


def result_table(result: LASEvalResult, metric: str = "iou16") -> str:
    """A Markdown table of one metric: a row per result row, a column per category, then overall and n."""
    cats = sorted({c for r in result.results.values() for c in r["classes"]})
    lines = ["|  | " + " | ".join([*cats, "overall", "n"]) + " |", "|---" * (len(cats) + 3) + "|"]
    for row, r in result.results.items():
        cells = [f"{r['classes'][c][metric]:.3f}" if c in r["classes"] else "" for c in cats]
        lines.append(f"| {row} | " + " | ".join([*cells, f"**{r['overall'][metric]:.3f}**", str(r["overall"]["n"])]) + " |")
    return "\n".join(lines)


__all__ = ["METRICS", "LASEvalResult", "SketchCase", "choose_guidance", "evaluate", "load_volumes", "result_table", "sketch_cases",
           "voxel_ious"]
