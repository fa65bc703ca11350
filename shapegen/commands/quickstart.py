"""``shapegen quickstart``: offline class-conditional generation with the shipped demo model.

Loads ``assets/models/msdf_demo/msdf_demo.ckpt`` (the class-conditional Mosaic-SDF generator
trained on the procedural set by ``scripts/train_demo_models.py``; see its ``MODEL_CARD.md``),
samples one shape per class with a fixed seed, decodes each to a mesh, and writes
``<class>.glb`` per class plus one ``preview.png`` sheet. Nothing is downloaded.
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


@dataclass
class QuickstartConfig:
    seed: int = 0
    """Noise seed; the same seed gives the same shapes."""
    resolution: int = 64
    """Marching-cubes resolution of the decoded meshes (cost grows with its cube)."""
    min_component_fraction: float = 0.02
    """Drop decoded debris: connected components below this share of the mesh's area."""
    preview_size: int = 192
    """Side of each preview tile in pixels."""


@dataclass
class QuickstartResult:
    """Files written by :func:`run_quickstart`."""

    out_dir: Path
    meshes: dict[str, Path] = field(default_factory=dict)
    """Class name -> GLB file."""
    empty: list[str] = field(default_factory=list)
    """Classes whose sample decoded to no surface (no GLB written)."""
    preview: Path | None = None
    seconds: float = 0.0


def run_quickstart(out_dir: str | Path, cfg: QuickstartConfig | None = None, model_path: str | Path | None = None) -> QuickstartResult:
    """Generate one shape per class of the demo model; write GLBs and a preview sheet.

    Raises:
        ShapegenError: for a missing or unreadable model file (one line, with the fix).
    """
    import torch

    from renderers.preview import save_image
    from shapegen.commands.methods import load_system
    from shapegen.data.procedural import preview_sheet
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
    out = Path(out_dir)
    result = QuickstartResult(out_dir=out)
    tiles = []
    with torch.no_grad():
        for i, cls in enumerate(model.config.classes):
            tensor = model.sample(1, cls=cls, seed=cfg.seed + i)[0]
            mesh = decode_to_mesh(tensor, model.config.k, cfg.resolution)
            if mesh.num_faces and cfg.min_component_fraction > 0:
                mesh = remove_small_components(mesh, min_area_fraction=cfg.min_component_fraction)
            if mesh.num_faces == 0:
                result.empty.append(cls)
                continue
            result.meshes[cls] = export_mesh(mesh, out / f"{cls}.glb")
            tiles.append((cls, mesh))
    result.preview = save_image(out / "preview.png", preview_sheet([tiles], tile=cfg.preview_size)) if tiles else None
    result.seconds = time.perf_counter() - t0
    return result


def _quickstart_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default="outputs/quickstart", help="output folder (default: outputs/quickstart)")
    p.add_argument("--model", help=f"checkpoint to use instead of the shipped demo model ({DEMO_MODEL.name})")


def _quickstart(args: argparse.Namespace, cfg: QuickstartConfig) -> None:
    import torch

    torch.set_num_threads(min(torch.get_num_threads(), 2))
    result = run_quickstart(args.output, cfg, args.model)
    for cls, path in result.meshes.items():
        print(f"{cls:8s} {path}")
    print(f"wrote {len(result.meshes)} meshes and {result.preview} in {result.seconds:.0f} s")
    if result.empty:
        print(f"note: {', '.join(result.empty)} decoded to no surface; try another --set seed=N")


COMMANDS = [
    Command("quickstart", "generate one shape per class with the shipped demo model (offline): GLBs + a preview sheet",
            _quickstart_args, _quickstart, QuickstartConfig),
]
