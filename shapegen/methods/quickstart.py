"""The quickstart pipeline: offline generation and sketch-to-3D with the shipped demo models.

>>> from shapegen.methods.quickstart import run_quickstart
>>> result = run_quickstart("outputs/quickstart")  # doctest: +SKIP

1. :func:`sample_classes`: one shape per class of ``assets/models/msdf_demo/msdf_demo.ckpt`` (the
   class-conditional Mosaic-SDF generator trained on the procedural set; its ``MODEL_CARD.md``
   gives the commands that rebuild it), each sampled with a fixed seed, decoded to a mesh and
   written as ``<class>.glb``.
2. ``assets/models/las_demo/las_demo.ckpt`` (LAS-Diffusion, stages 1 and 2, trained on the
   procedural set's synthetic sketches) turns every sketch listed in
   ``assets/sketches/sketches.json`` (hand-drawn ones among them) into ``sketch_<name>.glb``.
3. One ``preview.png`` sheet: the generated shapes, then the sketches above their results.

Nothing is downloaded. ``shapegen quickstart`` parses its flags, calls :func:`run_quickstart`
and prints what it wrote.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from shapegen.errors import ShapegenError
from shapegen.methods.outputs import MeshOptions

DEMO_MODEL = Path(__file__).resolve().parents[2] / "assets" / "models" / "msdf_demo" / "msdf_demo.ckpt"
"""The shipped class-conditional Mosaic-SDF demo checkpoint."""
LAS_DEMO_MODEL = DEMO_MODEL.parents[1] / "las_demo" / "las_demo.ckpt"
"""The shipped LAS-Diffusion sketch-to-3D demo checkpoint."""
SKETCHES = DEMO_MODEL.parents[2] / "sketches" / "sketches.json"
"""Manifest of the shipped sketches (file, category, view azimuth, source)."""


PROMPTS = (
    "a round table on a single pedestal",
    "an armchair with a slatted back",
    "a floor lamp with a drum shade",
    "a two-seater sofa with rolled arms",
    "a tall vase with two handles",
)
"""The prompts of the quickstart's text row (words the shipped text model knows)."""


@dataclass
class QuickstartConfig(MeshOptions):
    seed: int = 0
    """Noise seed; the same seed gives the same shapes."""
    resolution: int = 64
    """Marching-cubes resolution of the decoded meshes (cost grows with its cube)."""
    sketches: bool = True
    """Also run sketch-to-3D on the shipped sketches with the LAS demo model."""
    prompts: list[str] = field(default_factory=lambda: list(PROMPTS))
    """Text-to-3D with the shipped text model: one shape per prompt (an empty list skips the row)."""
    preview_size: int = 192
    """Side of each preview tile in pixels."""


@dataclass
class QuickstartResult:
    """Files written by :func:`run_quickstart`."""

    out_dir: Path
    meshes: dict[str, Path] = field(default_factory=dict)
    """Class name -> GLB file."""
    text_meshes: dict[str, Path] = field(default_factory=dict)
    """Prompt -> GLB file (``text_<words>.glb``)."""
    empty: list[str] = field(default_factory=list)
    """Classes (or ``sketch_<name>``) whose sample decoded to no surface (no GLB written)."""
    sketch_meshes: dict[str, Path] = field(default_factory=dict)
    """Sketch file stem -> GLB file of its sketch-to-3D result."""
    preview: Path | None = None
    seconds: float = 0.0


def read_sketch_manifest(path: str | Path = SKETCHES) -> list[dict]:
    """Entries ``{"file", "category", "view", "source"}`` of a sketch manifest, files resolved beside it.

    Raises:
        ShapegenError: one line for a missing or malformed manifest or a listed file that is absent.
    """
    import json

    path = Path(path)
    if not path.is_file():
        raise ShapegenError(f"sketch manifest '{path}' is missing; restore it with 'git checkout -- assets/sketches'")
    try:
        entries = json.loads(path.read_text())["sketches"]
        out = [{**e, "file": path.parent / e["file"], "category": str(e["category"]),
                "view": None if e.get("view") is None else float(e["view"])} for e in entries]
    except (ValueError, KeyError, TypeError) as exc:
        raise ShapegenError(f"sketch manifest '{path}' is malformed ({type(exc).__name__}: {exc}); "
                            "it needs {\"sketches\": [{\"file\", \"category\", \"view\"}, ...]}") from exc
    for e in out:
        if not e["file"].is_file():
            raise ShapegenError(f"sketch '{e['file']}' listed in '{path.name}' is missing; restore it with 'git checkout -- assets/sketches'")
    return out


@dataclass
class ClassSamples:
    """What :func:`sample_classes` wrote."""

    files: dict[str, Path] = field(default_factory=dict)
    """Class name -> GLB file."""
    meshes: dict = field(default_factory=dict)
    """Class name -> :class:`~shapegen.geometry.mesh.Mesh` (classes with a surface, in class order)."""
    empty: list[str] = field(default_factory=list)
    """Classes whose sample decoded to no surface (no GLB written)."""


def sample_classes(
    model, out_dir: str | Path, *, seed: int = 0, resolution: int = 64, close_holes: bool = True,
    min_component_fraction: float = 0.05, one_piece: bool = True,
) -> ClassSamples:
    """One sample per class of a class-conditional Mosaic-SDF model, written as ``<class>.glb``.

    Args:
        model: a :class:`~shapegen.methods.msdf.MSDFGenerator` with class conditioning.
        out_dir: output folder.
        seed: class ``i`` is sampled with noise seed ``seed + i``.
        resolution: marching-cubes resolution of the decoded meshes.
        close_holes: close the decoded surfaces where the cubes leave gaps.
        min_component_fraction: drop connected components below this share of a mesh's area.
        one_piece: join the remaining pieces of each mesh with thin struts (one piece).
    """
    import torch

    from shapegen.geometry.export import export_mesh
    from shapegen.methods.msdf import decode_to_mesh

    out = Path(out_dir)
    result = ClassSamples()
    with torch.no_grad():
        for i, cls in enumerate(model.config.classes):
            tensor = model.sample(1, cls=cls, seed=seed + i)[0]
            mesh = decode_to_mesh(tensor, model.config.k, resolution, close_holes=close_holes,
                                  min_component_fraction=min_component_fraction, one_piece=one_piece)
            if mesh.num_faces == 0:
                result.empty.append(cls)
                continue
            result.files[cls] = export_mesh(mesh, out / f"{cls}.glb")
            result.meshes[cls] = mesh
    return result


def run_quickstart(
    out_dir: str | Path,
    cfg: QuickstartConfig | None = None,
    model_path: str | Path | None = None,
    las_model_path: str | Path | None = None,
    sketches: str | Path | None = None,
    text_model_path: str | Path | None = None,
) -> QuickstartResult:
    """Generate one shape per class of the demo model and a shape per shipped sketch; write GLBs and a preview sheet.

    Args:
        out_dir: output folder.
        cfg: settings.
        model_path: Mosaic-SDF checkpoint (default: the shipped demo model).
        las_model_path: LAS checkpoint for the sketches (default: the shipped LAS demo model).
        sketches: sketch manifest (default: ``assets/sketches/sketches.json``).
        text_model_path: text-conditioned Mosaic-SDF checkpoint for ``cfg.prompts`` (default: the
            shipped text model).

    Raises:
        ShapegenError: for a missing or unreadable model file (one line, with the fix).
    """
    import numpy as np
    import torch

    from renderers.preview import save_image
    from shapegen.commands.methods import load_system
    from shapegen.data.procedural import preview_sheet
    from shapegen.data.sketches import load_sketch
    from shapegen.geometry.cleanup import remove_small_components
    from shapegen.geometry.export import export_mesh
    from shapegen.methods.las import sketch_to_3d
    from shapegen.methods.msdf import decode_to_mesh

    cfg = cfg or QuickstartConfig()
    t0 = time.perf_counter()
    path = Path(model_path) if model_path is not None else DEMO_MODEL
    if not path.is_file():
        raise ShapegenError(f"demo model '{path}' is missing; restore it with 'git checkout -- assets/models' "
                            "or rebuild it with the recipe in assets/models/msdf_demo/MODEL_CARD.md")
    model = load_system("msdf", path, "cpu")
    if model.config.conditioning != "class" or not model.config.classes:
        raise ShapegenError(f"'{path}' is not a class-conditional Mosaic-SDF model; quickstart needs the msdf_demo checkpoint")
    las, entries = None, []
    if cfg.sketches:  # check everything before writing anything
        las_path = Path(las_model_path) if las_model_path is not None else LAS_DEMO_MODEL
        if not las_path.is_file():
            raise ShapegenError(f"LAS demo model '{las_path}' is missing; restore it with 'git checkout -- assets/models', "
                                "rebuild it with the commands in assets/models/las_demo/MODEL_CARD.md, or skip sketches with --set sketches=false")
        las = load_system("las", las_path, "cpu")
        if not las.config.use_sketch:
            raise ShapegenError(f"'{las_path}' is not sketch-conditioned; quickstart needs the las_demo checkpoint")
        entries = read_sketch_manifest(sketches if sketches is not None else SKETCHES)
        for e in entries:
            if las.config.use_category:
                las.class_index(e["category"])
            load_sketch(e["file"], las.config.sketch_encoder.image_size)  # a broken sketch fails before any output
    text_model = None
    if cfg.prompts:
        from shapegen.methods.text_msdf import check_prompt, default_text_model, load_text_model

        text_path = Path(text_model_path) if text_model_path is not None else default_text_model()
        if not text_path.is_file():
            raise ShapegenError(f"text model '{text_path}' is missing; restore it with 'git checkout -- assets/models', "
                                "rebuild it with assets/models/msdf_text/MODEL_CARD.md, or skip the text row with --set prompts=[]")
        text_model = load_text_model(text_path, "cpu")
        for prompt in cfg.prompts:
            check_prompt(prompt, text_model.config.vocabulary)
    out = Path(out_dir)
    result = QuickstartResult(out_dir=out)
    with torch.no_grad():
        classes = sample_classes(model, out, seed=cfg.seed, resolution=cfg.resolution, **cfg.mesh_options())
        result.meshes, result.empty = classes.files, list(classes.empty)
        tiles = list(classes.meshes.items())
        sketch_row, result_row = [], []
        for e in entries:
            mesh = sketch_to_3d(e["file"], category=e["category"] if las.config.use_category else None, view=e["view"], model=las,
                                seed=cfg.seed).mesh
            stem = Path(e["file"]).stem
            ink = load_sketch(e["file"], 256).numpy()
            sketch_row.append((f"sketch {stem}", np.repeat(((1 - ink) * 255).astype(np.uint8)[..., None], 3, -1)))
            if mesh.num_faces and cfg.min_component_fraction > 0:
                mesh = remove_small_components(mesh, min_area_fraction=cfg.min_component_fraction)
            if mesh.num_faces == 0:
                result.empty.append(f"sketch_{stem}")
                result_row.append((f"{e['category']}: empty", np.full((8, 8, 3), 255, np.uint8)))
                continue
            result.sketch_meshes[stem] = export_mesh(mesh, out / f"sketch_{stem}.glb")
            result_row.append((f"{e['category']} from {stem}", mesh))
        text_row = []
        for i, prompt in enumerate(cfg.prompts):
            tensor = text_model.sample(1, prompt=prompt, seed=cfg.seed + i)[0]
            mesh = decode_to_mesh(tensor, text_model.config.k, cfg.resolution, **cfg.mesh_options())
            if mesh.num_faces == 0:
                result.empty.append(f"text '{prompt}'")
                text_row.append(("empty", np.full((8, 8, 3), 255, np.uint8)))
                continue
            slug = "_".join(w for w in prompt.lower().split() if w not in ("a", "an", "the"))
            result.text_meshes[prompt] = export_mesh(mesh, out / f"text_{slug}.glb")
            text_row.append((prompt, mesh))
    rows = [r for r in (tiles, text_row, sketch_row, result_row) if r]
    result.preview = save_image(out / "preview.png", preview_sheet(rows, tile=cfg.preview_size)) if rows else None
    result.seconds = time.perf_counter() - t0
    return result


__all__ = ["DEMO_MODEL", "LAS_DEMO_MODEL", "SKETCHES", "ClassSamples", "QuickstartConfig", "QuickstartResult",
           "read_sketch_manifest", "run_quickstart", "sample_classes"]
