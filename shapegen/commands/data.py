"""Data commands: ``data procedural`` writes the procedural shape set.

``data`` takes its action as a positional argument (``shapegen data procedural -o DIR``), so
the action's flags and the shared ``--config`` / ``--set`` flags live on one parser. Each
action has its own section of :class:`DataConfig` (``--set procedural.per_class=500``).
Heavy imports happen inside ``run`` so that ``shapegen --help`` stays fast.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from shapegen.commands.base import Command
from shapegen.data.procedural_set import ProceduralConfig
from shapegen.errors import ShapegenError

ACTIONS = ("procedural",)


@dataclass
class DataConfig:
    procedural: ProceduralConfig = field(default_factory=ProceduralConfig)
    """Settings of ``data procedural`` (the procedural furniture and tableware set)."""


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=ACTIONS, help="procedural: write the procedural shape set (meshes, index.csv, captions.csv, attributes.csv)")
    p.add_argument("-o", "--output", required=True, help="output folder (re-running resumes: existing meshes are kept)")
    p.add_argument("--classes", help="comma-separated classes (default: all eleven: chair,table,shelf,lamp,mug,sofa,bed,bench,vase,bowl,desk)")
    p.add_argument("--per-class", type=int, metavar="N", help="shapes per class (same as --set procedural.per_class=N)")
    p.add_argument("--seed", type=int, metavar="S", help="seed of the set (same as --set procedural.seed=S)")
    p.add_argument("--resolution", type=int, metavar="R", help="marching-cubes resolution (same as --set procedural.resolution=R)")
    p.add_argument("--split", metavar="SPEC", help="splits and fractions, e.g. train=0.8,val=0.1,test=0.1")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes (0: one per CPU core)")
    p.add_argument("--preview", metavar="PNG", help="also write a preview sheet (a few shapes per class) to this PNG")
    p.add_argument("--fresh", action="store_true", help="write every mesh again instead of keeping those already in the folder")


def _procedural(args: argparse.Namespace, cfg: ProceduralConfig) -> None:
    from shapegen.data.procedural_set import write_preview, write_procedural_set

    if args.classes is not None:
        cfg.classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    for name in ("per_class", "seed", "resolution", "split", "workers"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    if args.preview is not None and not args.preview.lower().endswith(".png"):
        raise ShapegenError(f"the preview sheet is a PNG: give --preview a path ending in .png instead of '{args.preview}'")
    summary = write_procedural_set(cfg, args.output, fresh=args.fresh)
    splits = ", ".join(f"{k} {v}" for k, v in summary.per_split.items())
    print(
        f"wrote {summary.written} meshes ({summary.skipped} already there) of {len(cfg.classes)} classes "
        f"to {args.output} in {summary.seconds:.1f} s; splits: {splits}; index: {summary.index}"
    )
    if args.preview is not None:
        print(f"wrote {write_preview(cfg, args.output, args.preview)}")


def _data(args: argparse.Namespace, cfg: DataConfig) -> None:
    if args.action == "procedural":
        _procedural(args, cfg.procedural)


COMMANDS = [
    Command("data", "make data sets: 'data procedural -o DIR' writes captioned procedural furniture and tableware", _data_args, _data, DataConfig, "data"),
]
