"""Mosaic-SDF commands: ``shapegen msdf encode`` and ``shapegen msdf decode``.

``msdf`` is one entry of ``COMMANDS`` with its own sub-commands; each sub-command has its own
``--config``/``--set`` (so they follow the sub-command name, as everywhere else). Heavy imports
happen inside the run functions so that ``shapegen --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from shapegen.commands.base import Command
from shapegen.errors import ShapegenError
from shapegen.geometry.export import EXPORT_SUFFIXES
from shapegen.methods.outputs import MeshOptions

log = logging.getLogger(__name__)


@dataclass
class MsdfDecodeConfig(MeshOptions):
    """``shapegen msdf decode`` settings (the meshing ones: :class:`~shapegen.methods.outputs.MeshOptions`)."""

    resolution: int = 256
    """Marching-cubes samples per axis over the cubes' bounding cube."""
    normalized: bool = False
    """Keep the normalised [-1, 1]^3 frame instead of the source mesh's coordinates."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to decode (auto: CUDA when available)."""
    backend: Literal["auto", "torch", "warp"] = "auto"
    """Decoding backend (auto: the warp kernel when it imports)."""


def _add_config_flags(p: argparse.ArgumentParser, presets: str | None) -> None:
    where = f" (a file, or a name under configs/{presets}/)" if presets else " (a file)"
    p.add_argument("--config", metavar="FILE", help="YAML preset" + where)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value (repeatable), e.g. --set steps=100")


def _args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="msdf_command", metavar="SUBCOMMAND", required=True)
    enc = sub.add_parser("encode", help="convert a mesh, or every mesh under a folder, to .msdf.npz",
                         description="Convert meshes to Mosaic-SDFs (n local k^3 SDF grids). A folder is converted "
                         "recursively in batches; existing outputs are skipped, failures are reported and skipped.")
    enc.add_argument("input", help="mesh file (OBJ, PLY, STL, OFF, GLB/GLTF) or folder of meshes")
    enc.add_argument("-o", "--output", required=True, help="output .msdf.npz for a mesh, or output folder for a folder")
    enc.add_argument("--n", type=int, help="number of grids (same as --set n=N)")
    enc.add_argument("--k", type=int, help="grid side (same as --set k=K)")
    enc.add_argument("--steps", type=int, help="fine-tuning steps (same as --set steps=S)")
    enc.add_argument("--fresh", action="store_true", help="convert every mesh again instead of skipping existing outputs")
    enc.add_argument("--shard", metavar="K/N", help="folder only: convert block K of N of the sorted meshes, in whole batches of "
                     "batch_shapes so each file is the one an unsharded run writes (cluster array jobs sharing OUTPUT); once all N "
                     "have finished, 'shapegen data merge-shards OUTPUT' checks that none is missing")
    _add_config_flags(enc, "msdf_convert")
    enc.set_defaults(_msdf_run=_encode)
    dec = sub.add_parser("decode", help="extract a mesh from a .msdf.npz file",
                         description="Extract the zero level set of a Mosaic-SDF as a mesh, closed where its cubes leave gaps.")
    dec.add_argument("input", help=".msdf.npz file")
    dec.add_argument("-o", "--output", required=True, help="output mesh (.glb, .gltf, .obj or .ply)")
    dec.add_argument("--resolution", type=int, help="marching-cubes resolution (default 256)")
    dec.add_argument("--normalized", action="store_true", help="keep the normalised frame (same as --set normalized=true)")
    _add_config_flags(dec, None)
    dec.set_defaults(_msdf_run=_decode)


def _run(args: argparse.Namespace, _config: None) -> None:
    args._msdf_run(args)


# ------------------------------------------------------------------------------------ encode
def _check_existing(out_dir: Path, n: int, k: int, only: Path | None = None) -> None:
    """Resuming keeps existing outputs: refuse when they were made with another ``n`` or ``k``
    (the one setting a file records), so a folder never mixes two kinds of M-SDF."""
    from shapegen.data.msdf_dataset import read_msdf_file
    from shapegen.fields.mosaic_sdf_fit import MSDF_SUFFIX

    if only is not None:
        candidates = [only] if only.is_file() else []
    else:
        candidates = sorted(p for p in out_dir.rglob(f"*{MSDF_SUFFIX}") if not p.name.startswith(".")) if out_dir.is_dir() else []
    for path in candidates[:1]:
        tensor, old_k = read_msdf_file(path)
        if (tensor.shape[0], old_k) != (n, k):
            raise ShapegenError(f"{path} was made with n={tensor.shape[0]}, k={old_k}, not n={n}, k={k}; "
                                "pass --fresh to convert every mesh again, or use the settings it was made with")


def _encode(args: argparse.Namespace) -> None:
    from dataclasses import asdict

    from shapegen.config import load_config, resolve_preset
    from shapegen.data.shards import finish_shard, parse_shard, start_shard
    from shapegen.fields.mosaic_sdf_fit import (
        MSDF_SUFFIX,
        MosaicSDFConvertConfig,
        convert_folder,
        find_meshes,
    )

    shard = parse_shard(args.shard) if args.shard is not None else None
    path = resolve_preset(args.config, "msdf_convert") if args.config else None
    cfg = load_config(MosaicSDFConvertConfig, path, args.overrides)
    for flag in ("n", "k", "steps"):
        if getattr(args, flag) is not None:
            setattr(cfg, flag, getattr(args, flag))
    src, out = Path(args.input), Path(args.output)
    if not src.exists():
        raise ShapegenError(f"input '{src}' does not exist; give a mesh file or a folder of meshes")
    if src.is_dir():
        inputs, root, out_dir = find_meshes(src), src, out
        if not inputs:
            raise ShapegenError(f"no mesh files under '{src}'; expected .obj, .ply, .stl, .off, .glb or .gltf")
        if out.exists() and not out.is_dir():
            raise ShapegenError(f"output '{out}' is a file; give a folder for a folder of meshes")
    else:
        if shard is not None:
            raise ShapegenError(f"--shard splits a folder of meshes, and '{src}' is one file; give a folder or leave out --shard")
        if not out.name.endswith(MSDF_SUFFIX):
            raise ShapegenError(f"output '{out.name}' must end in {MSDF_SUFFIX}")
        from shapegen.geometry.mesh_io import load_mesh
        from shapegen.io import check_output_path

        # One file: its errors are the command's, so check it before the batch converter, which
        # logs and skips a bad mesh of a folder (and starts a progress bar).
        check_output_path(out)
        load_mesh(src)
        inputs, root, out_dir = [src], None, out.parent
    outputs = None if src.is_dir() else [out]
    if not args.fresh:
        _check_existing(out if src.is_dir() else out.parent, cfg.n, cfg.k, None if src.is_dir() else out)
    if shard is not None:
        # Whole batches: the meshes of a batch share one optimiser, so the same batches as an
        # unsharded run give the same files.
        total, block = len(inputs), shard.block(len(inputs), unit=max(cfg.batch_shapes, 1))
        inputs = inputs[block.start : block.stop]
        start_shard(out_dir, shard)
    report = convert_folder(inputs, out_dir, cfg, root=root, progress=True, outputs=outputs, overwrite=args.fresh)
    for result, written in zip(report.results, report.written):
        st = result.stats
        print(f"wrote {written} (n={cfg.n}, k={cfg.k}; {st.total_seconds:.1f} s: signed distance {st.sdf_seconds:.1f} s, "
              f"fine-tuning {st.finetune_seconds:.1f} s)")
    if report.skipped:
        print(f"skipped {len(report.skipped)} existing output(s); delete them to convert again")
    for failed, reason in report.failed:
        print(f"failed {failed}: {reason}")
    if not src.is_dir() and report.failed:
        raise ShapegenError(f"could not convert '{src}': {report.failed[0][1]}")
    if src.is_dir() and report.failed and not report.written and not report.skipped and shard is None:
        raise ShapegenError(f"every mesh under '{src}' failed to convert; see the reasons above")
    if shard is not None:
        # No index to merge: the manifest lets merge-shards check that every shard finished.
        settings = {k: v for k, v in asdict(cfg).items() if k != "device"}
        finish_shard(out_dir, shard, command="msdf encode", total=total, items=block, settings=settings, files={})
        made = f"meshes {block.start + 1}..{block.stop} of {total}" if block else f"none of the {total} meshes (fewer batches than shards)"
        print(f"shard {shard}: {made}; once every shard has finished, run 'shapegen data merge-shards {out_dir}'")


# ------------------------------------------------------------------------------------ decode
def _decode(args: argparse.Namespace) -> None:
    from shapegen.config import load_config
    from shapegen.devices import choose_device
    from shapegen.fields.mosaic_sdf import MosaicSDF
    from shapegen.geometry.export import export_mesh
    from shapegen.io import check_output_path

    cfg = load_config(MsdfDecodeConfig, args.config, args.overrides)
    if args.resolution is not None:
        cfg.resolution = args.resolution
    if args.normalized:
        cfg.normalized = True
    out = Path(args.output)
    if out.suffix.lower() not in EXPORT_SUFFIXES:
        raise ShapegenError(f"cannot write '{out.name}': unknown mesh suffix '{out.suffix}'; use one of {', '.join(EXPORT_SUFFIXES)}")
    if cfg.resolution < 2:
        raise ShapegenError(f"resolution must be at least 2, got {cfg.resolution}")
    check_output_path(out)  # before decoding, whose progress bar would come first
    device = choose_device(cfg.device, option="device=")
    msdf = MosaicSDF.load(args.input, device=device)
    msdf.backend = cfg.backend
    mesh = msdf.to_mesh(cfg.resolution, normalized=cfg.normalized, progress=True, **cfg.mesh_options())
    if mesh.num_faces == 0:
        raise ShapegenError(f"'{args.input}' has no zero level set inside its cubes; the M-SDF encodes no surface")
    export_mesh(mesh, out)
    frame = "normalised frame" if cfg.normalized else "source mesh frame"
    print(f"wrote {out} ({mesh.num_vertices} vertices, {mesh.num_faces} faces, {frame})")


COMMANDS = [
    Command("msdf", "Mosaic-SDF: 'msdf encode' meshes to .msdf.npz, 'msdf decode' them back to meshes", _args, _run),
]
