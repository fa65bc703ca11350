"""``shapegen quickstart``: offline generation and sketch-to-3D with the shipped demo models.

The pipeline is :func:`shapegen.methods.quickstart.run_quickstart`; this command parses the
flags, calls it and prints what it wrote. Nothing is downloaded.
"""

from __future__ import annotations

import argparse

from shapegen.commands.base import Command
from shapegen.methods.quickstart import (  # noqa: F401  (re-exported: the names users and tests import from here)
    DEMO_MODEL,
    LAS_DEMO_MODEL,
    SKETCHES,
    QuickstartConfig,
    QuickstartResult,
    read_sketch_manifest,
    run_quickstart,
)


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
    for prompt, path in result.text_meshes.items():
        print(f"text '{prompt}': {path}")
    for stem, path in result.sketch_meshes.items():
        print(f"sketch {stem}: {path}")
    print(f"wrote {len(result.meshes) + len(result.text_meshes) + len(result.sketch_meshes)} meshes and {result.preview} in {result.seconds:.0f} s")
    if result.empty:
        print(f"note: {', '.join(result.empty)} decoded to no surface; try another --set seed=N")


COMMANDS = [
    Command("quickstart", "offline demo: one shape per class and sketch-to-3D of the shipped sketches: GLBs + a preview sheet",
            _quickstart_args, _quickstart, QuickstartConfig),
]
