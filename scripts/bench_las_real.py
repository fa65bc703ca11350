"""LAS-Diffusion on real furniture: sketch-to-3D voxel IoU on real chairs, tables and cups.

Protocol (measured against a LAS checkpoint, by default the shipped demo model):

1. The benchmark meshes (:mod:`shapegen.testing.las_real`: real chairs, tables and cups, turned to
   face +Z) are written into a scratch folder by class and prepared with ``las prepare``
   (the model's SDF resolution, its sketch size, the five LAS views, styles contour, canny and hand).
   They are measured only, never trained on.
2. For every shape (``--per-class`` limits the count) the sketches of each style from its view
   ``k % 5`` (``k``: its position in its class; ``--all-views`` takes all five) go to the model with
   the true view and the category (seed 0); ``iou16`` (:func:`shapegen.methods.las_eval.voxel_ious`:
   the 16^3 touched-cell occupancy at a 32^3 model) against the true shape. Rows per style, and the
   hand sketches with the view the classifier estimates instead of the true one.
3. Baselines: the model with the category and no sketch; the nearest-procedural oracle (the
   best ``iou16`` of the true shape with ``--oracle-n`` procedural shapes of its class, analytic SDFs
   on the same grid, for the classic and the rich generators: what a model that had memorised the
   procedural set perfectly and picked the right shape would score).
4. Held-out procedural shapes (shapes 60.. of chair, table and mug, true shapes, ``--procedural``
   per class) prepared and sketched alike (contour and canny): the number the model card reports
   (0.648 over its five classes).
5. View estimation: share of every prepared real sketch (all views, all styles) whose view the
   shipped classifier (``assets/models/las_view``, given the category) picks right, per style and
   class; beside it the share that is right or picks a view from which the true shape gives the
   same drawing (:func:`shapegen.testing.las_real.equivalent_views`; symmetric tables).
6. With ``--baseline CKPT`` (the model it replaces) the sketch rows (true view) and the no-sketch row
   for that model too, and with ``--held-out DIR`` (held-out procedural true shapes of all five
   classes, prepared by ``las prepare``: the model card's headline) ``las eval``'s iou16 for both:
   one table of the two models side by side.
7. A sheet ``docs/las_real_sketches.png``: real sketches (the three styles of the first shape of
   each class) and the shared hand drawings (``sketches_unpaired``: the LAS paper's demo inputs and a
   Sketch2Model doodle) beside the shapes the model made from them (view estimated).

    python scripts/bench_las_real.py --per-class 4
    python scripts/bench_las_real.py --checkpoint NEW.ckpt --baseline OLD.ckpt --held-out data/las_demo/true/held_out
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from shapegen.testing.bench import REPO, shared_data_root, table, write_section

STYLES = ("contour", "canny", "hand")
#: Category of each shared hand drawing (the LAS demo inputs are two chairs then two tables).
HAND_DRAWN = {"sketches_unpaired/lasdiff_00.png": "chair", "sketches_unpaired/lasdiff_01.png": "chair",
              "sketches_unpaired/lasdiff_02.png": "table", "sketches_unpaired/lasdiff_03.png": "table",
              "sketches_unpaired/sketch2model_table.png": "table"}


def write_real_meshes(root: Path, out: Path) -> dict[str, list[str]]:
    """The benchmark meshes in the LAS frame as ``out/<class>/<name>.obj``; returns the names by class."""
    from shapegen.geometry.export import export_mesh
    from shapegen.testing.las_real import load_real, real_meshes

    names: dict[str, list[str]] = {}
    for r in real_meshes(root):
        path = out / r.cls / f"{r.name}.obj"
        if not path.is_file():
            export_mesh(load_real(r), path)
        names.setdefault(r.cls, []).append(r.name)
    return names


def procedural_grid(cls: str, index: int, variant: str, res: int) -> torch.Tensor:
    """The analytic SDF of a procedural shape on the LAS grid (longest side in [-0.8, 0.8])."""
    from shapegen.data.procedural import DEFAULT_EXTENT, generate
    from shapegen.geometry.voxels import voxel_centers

    shape = generate(cls, index, 0, variant=variant)
    k = DEFAULT_EXTENT / 0.8  # las prepare scales the longest side to 0.8, the generator to 0.9
    pts = voxel_centers(res).reshape(-1, 3)
    return (shape.fast_sdf(pts * k) / k).reshape(res, res, res)


def mean_rows(results: dict[str, dict[str, list[float]]]) -> list[list[object]]:
    rows = []
    for row, by_cls in results.items():
        vals = [v for vs in by_cls.values() for v in vs]
        cells = [f"{np.mean(by_cls[c]):.3f} ({len(by_cls[c])})" if by_cls.get(c) else "-" for c in ("chair", "table", "mug")]
        rows.append([row, *cells, f"{np.mean(vals):.3f} ({len(vals)})" if vals else "-"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="LAS checkpoint (default: the shipped demo model)")
    ap.add_argument("--view-model", help="view classifier (default: the shipped one)")
    ap.add_argument("--per-class", type=int, default=0, help="real shapes per class (0: all)")
    ap.add_argument("--all-views", action="store_true", help="sketches from all five views, not one per shape")
    ap.add_argument("--oracle-n", type=int, default=64, help="procedural shapes per class and variant for the oracle")
    ap.add_argument("--procedural", type=int, default=2, help="held-out procedural shapes per class (from index 60)")
    ap.add_argument("--baseline", help="a second LAS checkpoint (the model this one replaces) scored alike, side by side")
    ap.add_argument("--held-out", help="prepared held-out procedural true shapes: las eval's iou16 of each model")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "shapegen_bench_las_real"), help="scratch folder")
    ap.add_argument("--sheet", default=str(REPO / "docs" / "las_real_sketches.png"), help="PNG of sketches and results")
    ap.add_argument("--no-write", action="store_true", help="print instead of writing docs/benchmarks.md (the sheet is still written)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from shapegen.commands.methods import load_system
    from shapegen.data.las_prepare import LASPrepareConfig, prepare_dataset
    from shapegen.data.procedural import generate, to_mesh
    from shapegen.data.sketches import LAS_AZIMUTHS, load_sketch
    from shapegen.geometry.export import export_mesh
    from shapegen.methods.las_eval import load_volumes, voxel_ious
    from shapegen.methods.las_view import estimate_view, load_view_classifier
    from shapegen.testing.las_real import SAME_DRAWING_PX, equivalent_views

    t0 = time.perf_counter()
    shared = shared_data_root()
    work = Path(args.work)
    model = load_system("las", args.checkpoint, "cpu")
    res, size = model.config.resolution, model.config.sketch_encoder.image_size
    classifier = load_view_classifier(args.view_model)
    cfg = LASPrepareConfig(resolution=res, sketch_size=size, styles=list(STYLES))
    all_names = write_real_meshes(shared, work / "real_meshes")
    report = prepare_dataset(work / "real_meshes", work / "real", cfg, progress=False)
    skipped = {Path(k).stem: why for k, why in report.skipped.items()}  # meshes las prepare refuses (no inside)
    all_names = {c: [n for n in v if n not in skipped] for c, v in all_names.items()}
    names = {c: v[: args.per_class] if args.per_class else v for c, v in all_names.items()}
    # Held-out procedural shapes (never trained on by the demo model), true shapes, the same preparation.
    for cls in ("chair", "table", "mug"):
        for i in range(60, 60 + args.procedural):
            path = work / "procedural_meshes" / cls / f"{cls}_{i:05d}.obj"
            if not path.is_file():
                export_mesh(to_mesh(generate(cls, i, 0), 64), path)
    if args.procedural:
        prepare_dataset(work / "procedural_meshes", work / "procedural", LASPrepareConfig(resolution=res, sketch_size=size), progress=False)
    t_prep = time.perf_counter() - t0

    def sample(category: str, ink: torch.Tensor | None, azimuth: float | None, system=None) -> torch.Tensor:
        system = system or model
        out = system.sample(1, category=category, sketch=ink, azimuth=azimuth, seed=0)
        return out.sdf[0].cpu() * system.tau

    import json

    results: dict[str, dict[str, list[float]]] = {}
    view_hits: dict[str, list[bool]] = {s: [] for s in STYLES}
    view_hits_sym: dict[str, list[bool]] = {s: [] for s in STYLES}  # right or a view that draws the same
    view_hits_one: dict[str, list[bool]] = {s: [] for s in STYLES}  # right with one pass (no shifted copies)
    sym_hits: dict[str, list[bool]] = {}  # the same by class
    confusion: dict[str, np.ndarray] = {}  # class -> 5x5 (true view, estimated view)

    def add(row: str, cls: str, v: float) -> None:
        results.setdefault(row, {}).setdefault(cls, []).append(v)

    index = json.loads((work / "real" / "index.json").read_text())
    volumes = load_volumes(work / "real")
    vsize = classifier.config.image_size
    # Views of a shape that give the same drawing (a table from 0 and 180 degrees, a round table
    # from anywhere), from its contour sketches: picking either is as good as the true one.
    contours: dict[str, dict[int, torch.Tensor]] = {}
    for rec in index["sketches"]:
        if rec["style"] == "contour":
            contours.setdefault(rec["shape"], {})[rec["view"]] = load_sketch(work / "real" / rec["file"], size)
    same = {k: equivalent_views([v[i] for i in sorted(v)]) for k, v in contours.items()}
    for rec in index["sketches"]:  # view estimation: every prepared real sketch, cheap
        cls = rec["shape"].split("__")[0]
        ink = load_sketch(work / "real" / rec["file"], vsize)
        guess, _ = estimate_view(ink, classifier, cls)
        alike = bool(same[rec["shape"]][rec["view"], guess])
        view_hits[rec["style"]].append(guess == rec["view"])
        view_hits_one[rec["style"]].append(estimate_view(ink, classifier, cls, shift=0)[0] == rec["view"])
        view_hits_sym[rec["style"]].append(alike)
        sym_hits.setdefault(cls, []).append(alike)
        cm = confusion.setdefault(cls, np.zeros((len(LAS_AZIMUTHS),) * 2, dtype=int))
        cm[rec["view"], guess] += 1
    by_shape: dict[str, list[dict]] = {}
    for rec in index["sketches"]:
        by_shape.setdefault(rec["shape"], []).append(rec)

    def shown(key: str, k: int) -> list[dict]:
        """The sketches the model rows use of shape ``key``, the ``k``-th of its class."""
        return [r for r in by_shape.get(key, []) if args.all_views or r["view"] == k % len(LAS_AZIMUTHS)]

    samples = 0
    t1 = time.perf_counter()
    for cls, shape_names in names.items():
        for k, name in enumerate(shape_names):
            key = f"{cls}__{name}"
            _, true_sdf = volumes[key]
            for rec in shown(key, k):
                ink = load_sketch(work / "real" / rec["file"], size)
                add(f"sketch {rec['style']} (true view)", cls, voxel_ious(sample(cls, ink, rec["azimuth"]), true_sdf)["iou16"])
                samples += 1
                if rec["style"] == "hand":
                    guess, _ = estimate_view(load_sketch(work / "real" / rec["file"], vsize), classifier, cls)
                    add("sketch hand (estimated view)", cls, voxel_ious(sample(cls, ink, LAS_AZIMUTHS[guess]), true_sdf)["iou16"])
                    samples += 1
            add("baseline: model without the sketch", cls, voxel_ious(sample(cls, None, None), true_sdf)["iou16"])
            samples += 1
            for variant in ("classic", "rich"):
                best = max(voxel_ious(procedural_grid(cls, i, variant, res), true_sdf)["iou16"] for i in range(args.oracle_n))
                add(f"oracle: nearest of {args.oracle_n} {variant} procedural shapes", cls, best)
    t_real = time.perf_counter() - t1
    compare_rows = []
    if args.baseline or args.held_out:
        from shapegen.methods.las_eval import evaluate

        models = [(args.checkpoint or "assets/models/las_demo/las_demo.ckpt", model)]
        if args.baseline:
            models.append((args.baseline, load_system("las", args.baseline, "cpu")))
        for label, system in models:
            got: dict[str, list[float]] = {}
            if system is model:
                for row, by_cls in results.items():
                    if row.endswith("(true view)") or row.startswith("baseline"):
                        got[row] = [v for vs in by_cls.values() for v in vs]
            else:
                for cls, shape_names in names.items():
                    for k, name in enumerate(shape_names):
                        _, true_sdf = volumes[f"{cls}__{name}"]
                        for rec in shown(f"{cls}__{name}", k):
                            ink = load_sketch(work / "real" / rec["file"], size)
                            iou = voxel_ious(sample(cls, ink, rec["azimuth"], system), true_sdf)["iou16"]
                            got.setdefault(f"sketch {rec['style']} (true view)", []).append(iou)
                            samples += 1
                        got.setdefault("baseline: model without the sketch", []).append(
                            voxel_ious(sample(cls, None, None, system), true_sdf)["iou16"])
                        samples += 1
            sketch = [np.mean(got[f"sketch {st} (true view)"]) for st in STYLES]
            none = float(np.mean(got["baseline: model without the sketch"]))
            held = f"{evaluate(system, args.held_out).headline:.3f}" if args.held_out else "-"
            compare_rows.append([f"`{label}`", *(f"{v:.3f}" for v in sketch), f"{none:.3f}",
                                 f"{np.mean(sketch) - none:+.3f}", held])
    if args.procedural:
        pindex = json.loads((work / "procedural" / "index.json").read_text())
        pvol = load_volumes(work / "procedural")
        for k, (key, (cls, true_sdf)) in enumerate(pvol.items()):
            for rec in (r for r in pindex["sketches"] if r["shape"] == key and r["view"] == k % len(LAS_AZIMUTHS)):
                ink = load_sketch(work / "procedural" / rec["file"], size)
                add("held-out procedural shapes, contour and canny sketches", cls, voxel_ious(sample(cls, ink, rec["azimuth"]), true_sdf)["iou16"])
                samples += 1

    # The sheet: real sketches of the first shape of each class, then the shared hand drawings.
    from renderers.preview import save_image
    from shapegen.data.procedural import preview_sheet
    from shapegen.geometry.mesh_io import load_mesh
    from shapegen.methods.las import sketch_to_3d

    def tile(ink: torch.Tensor) -> np.ndarray:
        grey = (255 - ink.clamp(0, 1).numpy() * 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, -1)

    rows = []
    for cls, shape_names in names.items():
        key = f"{cls}__{shape_names[0]}"
        row = [(f"{cls} {shape_names[0]}", load_mesh(work / "real_meshes" / cls / f"{shape_names[0]}.obj"))]
        for rec in (r for r in index["sketches"] if r["shape"] == key and r["view"] == 1):
            r = sketch_to_3d(work / "real" / rec["file"], category=cls, model=model, estimate_view=args.view_model or True)
            row += [(rec["style"], tile(r.sketch)), (f"view {r.view:g}", r.mesh)]
        rows.append(row)
    row = []
    for rel, cls in HAND_DRAWN.items():
        r = sketch_to_3d(shared / rel, category=cls, model=model, estimate_view=args.view_model or True)
        row += [(Path(rel).stem[:14], tile(r.sketch)), (f"{cls} view {r.view:g}", r.mesh)]
    rows.append(row)
    sheet = save_image(args.sheet, preview_sheet(rows, 128, azimuth_deg=45.0))
    wall = time.perf_counter() - t0
    load = os.getloadavg()[0]

    view_rows = [[s, f"{np.mean(v):.3f}", f"{np.mean(view_hits_sym[s]):.3f}", f"{np.mean(view_hits_one[s]):.3f}", len(v)]
                 for s, v in view_hits.items() if v]
    flat = lambda hits: [h for v in hits.values() for h in v]
    all_hits, all_sym, all_one = flat(view_hits), flat(view_hits_sym), flat(view_hits_one)
    view_rows.append(["all", f"{np.mean(all_hits):.3f}", f"{np.mean(all_sym):.3f}", f"{np.mean(all_one):.3f}", len(all_hits)])
    n_same = {c: sum(int(m.sum() - len(m)) // 2 for k, m in same.items() if k.startswith(c + "__")) for c in confusion}
    n_views = len(LAS_AZIMUTHS)
    mirror = lambda i, j: i + j == n_views - 1 and i != j  # azimuth a against 180 - a: front/back of a left-right symmetric shape
    conf_rows = [[c, f"{np.trace(m) / m.sum():.3f}", f"{np.mean(sym_hits[c]):.3f}", n_same[c],
                  f"{sum(m[i, j] for i in range(n_views) for j in range(n_views) if mirror(i, j)) / max(1, m.sum() - np.trace(m)):.3f}",
                  " / ".join(" ".join(str(x) for x in row) for row in m)] for c, m in confusion.items()]
    count = {c: len(v) for c, v in names.items()}
    body = (
        f"Real meshes ({', '.join(f'{len(v)} {c}s' for c, v in all_names.items())}; `meshes_chairs_tables` and ShapeNet chairs and "
        f"cups, measured only; the model rows use the first {', '.join(f'{n} {c}s' for c, n in count.items())}) "
        f"prepared with `las prepare` at {res}^3 / {size} px, styles {', '.join(STYLES)}; "
        f"{'all five views' if args.all_views else 'one view per shape (k % 5)'}; checkpoint "
        f"`{args.checkpoint or 'assets/models/las_demo/las_demo.ckpt'}`; seed 0. Cells: mean iou16 (n). "
        f"{samples} model samples; wall time {wall:.0f} s (preparation {t_prep:.0f} s, real-shape rows {t_real:.0f} s) on one "
        f"thread, 1-minute load average {load:.2f}.\n\n"
        + table(["row", "chair", "table", "mug", "all"], mean_rows(results))
        + f"\n\nView estimation (classifier `{args.view_model or 'assets/models/las_view/las_view.ckpt'}`, given the category) on every "
        "prepared real sketch (all meshes, 5 views). \"Right view\": the true one of the five. \"Right or alike\": the true one "
        "or a view from which the true shape gives the same drawing (the contour sketches of the two views within "
        f"{SAME_DRAWING_PX} px on average, `shapegen.testing.las_real.equivalent_views`: a table from 0 and 180 degrees, a round "
        "table from anywhere), where no classifier can tell and either view draws the same shape. `estimate_view` averages "
        "the classifier over the sketch moved by 2 pixels (nine passes); \"one pass\" reads it once:\n\n"
        + table(["style", "right view", "right or alike", "right view, one pass", "sketches"], view_rows)
        + "\n\nBy class: the share of misses that pick the mirror view (azimuth a for 180 - a: the front/back pairs "
        "0/180 and 45/135, which give nearly the same outline for a left-right symmetric shape), and the confusion matrix "
        "(rows: true view 0, 45, 90, 135, 180; columns: estimated):\n\n"
        + table(["class", "right view", "right or alike", "view pairs alike", "misses that are the mirror view", "confusion"], conf_rows)
        + ("\n\nThe model against the one it replaces (real shapes: iou16 from each style's sketches with the true view, "
           "the model without the sketch, and the gain of the sketch: the mean of the three styles minus the no-sketch row; "
           f"held-out procedural: `las eval {args.held_out}`, iou16 against the true shapes from their contour and canny "
           "sketches, all five classes):\n\n"
           + table(["model", "contour", "canny", "hand", "no sketch", "sketch gain", "held-out procedural"], compare_rows)
           if compare_rows else "")
        + (f"\n\nSkipped by `las prepare`: {', '.join(f'{k} ({v})' for k, v in skipped.items())}." if skipped else "")
        + f"\n\nSheet of real sketches and the shared hand drawings beside the model's shapes: `{os.path.relpath(sheet, REPO)}`.\n"
    )
    write_section("las-real", "LAS: sketch-to-3D on real furniture", body, dry_run=args.no_write)


if __name__ == "__main__":
    main()
