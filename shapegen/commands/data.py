"""Data commands: ``data procedural`` writes the procedural shape set; ``data renders`` writes
captioned renders of it (the render prior's images, :mod:`shapegen.data.render_set`);
``data merge-shards DIR`` joins the index files of a run split with ``--shard K/N`` (``data
procedural``, ``data renders``, ``las prepare``, ``msdf encode``; :mod:`shapegen.data.shards`).

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
from shapegen.data.render_set import RenderSetConfig
from shapegen.errors import ShapegenError

ACTIONS = ("procedural", "renders", "merge-shards")


@dataclass
class DataConfig:
    procedural: ProceduralConfig = field(default_factory=ProceduralConfig)
    """Settings of ``data procedural`` (the procedural furniture and tableware set)."""
    renders: RenderSetConfig = field(default_factory=RenderSetConfig)
    """Settings of ``data renders`` (captioned renders of the procedural shapes)."""


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=ACTIONS, help="procedural: write the procedural shape set (meshes, index.csv, captions.csv, "
                   "attributes.csv; with --set procedural.msdf=true also each shape's Mosaic-SDF with analytic values); "
                   "renders: captioned random-view renders of the procedural shapes (renders.csv and one .npz per shape; "
                   "--set renders.KEY=VALUE, preset --config render_prior); "
                   "merge-shards: join the index files of the N finished --shard runs in DIR (data procedural, "
                   "las prepare, msdf encode) into those of one run, then remove the shard files")
    p.add_argument("folder", nargs="?", metavar="DIR", help="merge-shards: the output folder the shards wrote into")
    p.add_argument("-o", "--output", help="procedural: output folder (re-running resumes: existing meshes are kept)")
    p.add_argument("--classes", help="comma-separated classes (default: all eleven: chair,table,shelf,lamp,mug,sofa,bed,bench,vase,bowl,desk)")
    p.add_argument("--per-class", type=int, metavar="N", help="shapes per class (same as --set procedural.per_class=N)")
    p.add_argument("--seed", type=int, metavar="S", help="seed of the set (same as --set procedural.seed=S)")
    p.add_argument("--resolution", type=int, metavar="R", help="marching-cubes resolution (same as --set procedural.resolution=R)")
    p.add_argument("--split", metavar="SPEC", help="splits and fractions, e.g. train=0.8,val=0.1,test=0.1")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes (0: one per CPU core)")
    p.add_argument("--preview", metavar="PNG", help="also write a preview sheet (a few shapes per class) to this PNG")
    p.add_argument("--fresh", action="store_true", help="write every mesh again instead of keeping those already in the folder")
    p.add_argument("--shard", metavar="K/N", help="write only block K of N of the shapes (classes in order, then indices; cluster "
                   "array jobs sharing -o DIR) and their rows to index.shard-K-of-N.csv etc.; once all N have finished, "
                   "'shapegen data merge-shards DIR' writes the CSVs of one run")


def _procedural(args: argparse.Namespace, cfg: ProceduralConfig) -> None:
    from shapegen.data.procedural_set import write_preview, write_procedural_set
    from shapegen.data.shards import parse_shard

    shard = parse_shard(args.shard) if args.shard is not None else None
    if args.output is None:
        raise ShapegenError("data procedural needs an output folder: shapegen data procedural -o DIR")
    if args.folder is not None:
        raise ShapegenError(f"data procedural takes its output folder as -o {args.folder}, not as a positional argument")
    if shard is not None and args.preview is not None:
        raise ShapegenError("--preview needs the whole set: leave it out of the --shard runs and run the same command "
                            "without --shard after merge-shards (it keeps the meshes)")
    if args.classes is not None:
        cfg.classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    for name in ("per_class", "seed", "resolution", "split", "workers"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    if args.preview is not None and not args.preview.lower().endswith(".png"):
        raise ShapegenError(f"the preview sheet is a PNG: give --preview a path ending in .png instead of '{args.preview}'")
    summary = write_procedural_set(cfg, args.output, fresh=args.fresh, shard=shard)
    splits = ", ".join(f"{k} {v}" for k, v in summary.per_split.items())
    what = "shapes (meshes and M-SDFs)" if cfg.msdf else "meshes"
    print(
        f"wrote {summary.written} {what} ({summary.skipped} already there) of {len(cfg.classes)} classes "
        f"to {args.output} in {summary.seconds:.1f} s; splits: {splits}; index: {summary.index}"
    )
    if shard is not None:
        print(f"shard {shard} done; once every shard has finished, run 'shapegen data merge-shards {args.output}'")
    if args.preview is not None:
        print(f"wrote {write_preview(cfg, args.output, args.preview)}")


def _renders(args: argparse.Namespace, cfg: RenderSetConfig) -> None:
    from shapegen.data.render_set import write_render_set
    from shapegen.data.shards import parse_shard

    shard = parse_shard(args.shard) if args.shard is not None else None
    if args.output is None:
        raise ShapegenError("data renders needs an output folder: shapegen data renders -o DIR")
    if args.folder is not None:
        raise ShapegenError(f"data renders takes its output folder as -o {args.folder}, not as a positional argument")
    if args.preview is not None or args.resolution is not None:
        raise ShapegenError("data renders takes no --preview or --resolution; set renders.image_size or renders.mesh_resolution with --set")
    if args.classes is not None:
        cfg.classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    for name in ("per_class", "seed", "split", "workers"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    summary = write_render_set(cfg, args.output, fresh=args.fresh, shard=shard)
    print(f"rendered {summary.written} shapes ({summary.skipped} already there), {summary.images} captioned images, "
          f"to {args.output} in {summary.seconds:.1f} s; index: {summary.index}")
    if shard is not None:
        print(f"shard {shard} done; once every shard has finished, run 'shapegen data merge-shards {args.output}'")


def _merge_shards(args: argparse.Namespace) -> None:
    from shapegen.data.shards import merge_shards

    folder = args.folder if args.folder is not None else args.output
    if folder is None:
        raise ShapegenError("merge-shards needs the folder the shards wrote into: shapegen data merge-shards DIR")
    report = merge_shards(folder)
    made = ", ".join(p.name for p in report.written) or "no index files (the command writes none)"
    print(f"merged {report.count} shards of '{report.command}' ({report.total} items) in {folder}: {made}; "
          f"removed {len(report.removed)} shard files")


def _data(args: argparse.Namespace, cfg: DataConfig) -> None:
    if args.action == "procedural":
        _procedural(args, cfg.procedural)
    elif args.action == "renders":
        _renders(args, cfg.renders)
    elif args.action == "merge-shards":
        _merge_shards(args)


COMMANDS = [
    Command("data", "make data sets: 'data procedural -o DIR' writes captioned procedural furniture and tableware; "
            "'data renders -o DIR' captioned renders of them; "
            "'data merge-shards DIR' joins the index files of runs split with --shard K/N", _data_args, _data, DataConfig, "data"),
]
