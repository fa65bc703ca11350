"""``shapegen quickstart``: offline generation and sketch-to-3D with the shipped demo models.

1. Loads ``assets/models/msdf_demo/msdf_demo.ckpt`` (the class-conditional Mosaic-SDF generator
   trained on the procedural set by ``scripts/train_demo_models.py``; see its ``MODEL_CARD.md``),
   samples one shape per class with a fixed seed, decodes each to a mesh and writes ``<class>.glb``.
2. Loads ``assets/models/las_demo/las_demo.ckpt`` (LAS-Diffusion, stages 1 and 2, trained on the
   procedural set's synthetic sketches) and turns every sketch listed in
   ``assets/sketches/sketches.json`` (hand-drawn ones among them) into ``sketch_<name>.glb``.
3. Writes one ``preview.png`` sheet: the generated shapes, then the sketches above their results.

Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

from shapegen.commands.base import Command
from shapegen.errors import ShapegenError

DEMO_MODEL = Path(__file__).resolve().parents[2] / "assets" / "models" / "msdf_demo" / "msdf_demo.ckpt"
"""The shipped class-conditional Mosaic-SDF demo checkpoint."""
LAS_DEMO_MODEL = DEMO_MODEL.parents[1] / "las_demo" / "las_demo.ckpt"
"""The shipped LAS-Diffusion sketch-to-3D demo checkpoint."""
SKETCHES = DEMO_MODEL.parents[2] / "sketches" / "sketches.json"
"""Manifest of the shipped sketches (file, category, view azimuth, source)."""


@dataclass
class QuickstartConfig:
    seed: int = 0
    """Noise seed; the same seed gives the same shapes."""
    resolution: int = 64
    """Marching-cubes resolution of the decoded meshes (cost grows with its cube)."""
    close_holes: bool = True
    """Close the generated surfaces where the decoded cubes leave gaps (false: open there)."""
    min_component_fraction: float = 0.05
    """Drop decoded debris: connected components below this share of the mesh's area (0 keeps every piece)."""
    sketches: bool = True
    """Also run sketch-to-3D on the shipped sketches with the LAS demo model."""
    preview_size: int = 192
    """Side of each preview tile in pixels."""


@dataclass
class QuickstartResult:
    """Files written by :func:`run_quickstart`."""

    out_dir: Path
    meshes: dict[str, Path] = field(default_factory=dict)
    """Class name -> GLB file."""
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


def run_quickstart(
    out_dir: str | Path,
    cfg: QuickstartConfig | None = None,
    model_path: str | Path | None = None,
    las_model_path: str | Path | None = None,
    sketches: str | Path | None = None,
) -> QuickstartResult:
    """Generate one shape per class of the demo model and a shape per shipped sketch; write GLBs and a preview sheet.

    Args:
        out_dir: output folder.
        cfg: settings.
        model_path: Mosaic-SDF checkpoint (default: the shipped demo model).
        las_model_path: LAS checkpoint for the sketches (default: the shipped LAS demo model).
        sketches: sketch manifest (default: ``assets/sketches/sketches.json``).

    Raises:
        ShapegenError: for a missing or unreadable model file (one line, with the fix).
    """
    import numpy as np
    import torch

    from renderers.preview import save_image
    from shapegen.commands.las import sketch_to_mesh
    from shapegen.commands.methods import load_system
    from shapegen.data.procedural import preview_sheet
    from shapegen.data.sketches import load_sketch
    from shapegen.geometry.cleanup import remove_small_components
    from shapegen.geometry.export import export_mesh
    from shapegen.methods.msdf import decode_to_mesh

    cfg = cfg or QuickstartConfig()
    t0 = time.perf_counter()
    path = Path(model_path) if model_path is not None else DEMO_MODEL
    if not path.is_file():
        raise ShapegenError(f"demo model '{path}' is missing; restore it with 'git checkout -- assets/models' "
                            "or rebuild it with 'python scripts/train_demo_models.py'")
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
    out = Path(out_dir)
    result = QuickstartResult(out_dir=out)
    tiles = []
    with torch.no_grad():
        for i, cls in enumerate(model.config.classes):
            tensor = model.sample(1, cls=cls, seed=cfg.seed + i)[0]
            mesh = decode_to_mesh(tensor, model.config.k, cfg.resolution, close_holes=cfg.close_holes,
                                  min_component_fraction=cfg.min_component_fraction)
            if mesh.num_faces == 0:
                result.empty.append(cls)
                continue
            result.meshes[cls] = export_mesh(mesh, out / f"{cls}.glb")
            tiles.append((cls, mesh))
        sketch_row, result_row = [], []
        for e in entries:
            _, mesh = sketch_to_mesh(las, e["file"], e["category"] if las.config.use_category else None, e["view"], cfg.seed)
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
    rows = [r for r in (tiles, sketch_row, result_row) if r]
    result.preview = save_image(out / "preview.png", preview_sheet(rows, tile=cfg.preview_size)) if rows else None
    result.seconds = time.perf_counter() - t0
    return result


def _quickstart_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default="outputs/quickstart", help="output folder (default: outputs/quickstart)")
    p.add_argument("--model", help=f"checkpoint to use instead of the shipped demo model ({DEMO_MODEL.name})")
    p.add_argument("--las-model", help=f"LAS checkpoint to use instead of the shipped sketch model ({LAS_DEMO_MODEL.name})")
    p.add_argument("--sketches", help="sketch manifest JSON to use instead of assets/sketches/sketches.json")


def _quickstart(args: argparse.Namespace, cfg: QuickstartConfig) -> None:
    import torch

    torch.set_num_threads(min(torch.get_num_threads(), 2))
    result = run_quickstart(args.output, cfg, args.model, args.las_model, args.sketches)
    for cls, path in result.meshes.items():
        print(f"{cls:8s} {path}")
    for stem, path in result.sketch_meshes.items():
        print(f"sketch {stem}: {path}")
    print(f"wrote {len(result.meshes) + len(result.sketch_meshes)} meshes and {result.preview} in {result.seconds:.0f} s")
    if result.empty:
        print(f"note: {', '.join(result.empty)} decoded to no surface; try another --set seed=N")


COMMANDS = [
    Command("quickstart", "offline demo: one shape per class and sketch-to-3D of the shipped sketches: GLBs + a preview sheet",
            _quickstart_args, _quickstart, QuickstartConfig),
]
