"""Geometry commands: ``info``, ``convert``, ``render``, ``extract`` and ``demo``.

Heavy imports happen inside ``run`` functions so that ``shapegen --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from shapegen.commands.base import Command
from shapegen.errors import ShapegenError
from shapegen.geometry.export import EXPORT_SUFFIXES

if TYPE_CHECKING:  # torch is imported inside the commands, so `shapegen --help` starts fast
    import torch



def _check_mesh_output(path: str) -> Path:
    out = Path(path)
    if out.suffix.lower() not in EXPORT_SUFFIXES:
        raise ShapegenError(f"cannot write '{out.name}': unknown mesh suffix '{out.suffix}'; use one of {', '.join(EXPORT_SUFFIXES)}")
    return out


# --------------------------------------------------------------------------------------- info
@dataclass
class InfoConfig:
    dedupe: bool = True
    """Drop double-sided duplicate faces (as in ShapeNet) before checking watertightness."""
    format: Literal["text", "json"] = "text"
    """Print a human-readable table or one JSON object."""


def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("mesh", help="mesh file (OBJ, PLY, STL, OFF, GLB/GLTF)")
    p.add_argument("--json", action="store_true", help="same as --set format=json")


def _info(args: argparse.Namespace, cfg: InfoConfig) -> None:
    from shapegen.geometry.mesh_io import inspect_mesh, load_mesh

    report = inspect_mesh(load_mesh(args.mesh, dedupe=cfg.dedupe))
    if args.json or cfg.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"{args.mesh}")
        for line in report.lines():
            print(f"  {line}")


# ------------------------------------------------------------------------------------ convert
@dataclass
class ConvertConfig:
    normalize: Literal["none", "cube", "sphere"] = "none"
    """Map the mesh into [-1, 1]^3 (cube) or the unit ball (sphere); the transform is saved beside the output."""
    dedupe: bool = True
    """Drop double-sided duplicate faces on load."""
    min_component_faces: int = 0
    """Drop connected components with fewer faces than this (0 keeps everything)."""
    simplify_faces: int = 0
    """Simplify to at most this many faces (0 keeps the mesh as it is)."""


def _convert_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="input mesh file")
    p.add_argument("-o", "--output", required=True, help="output mesh (.glb, .gltf, .obj or .ply)")
    p.add_argument("--normalize", action="store_true", help="same as --set normalize=cube")


def _postprocess(mesh, min_component_faces: int, simplify_faces: int):
    if min_component_faces > 0:
        from shapegen.geometry.cleanup import remove_small_components

        mesh = remove_small_components(mesh, min_faces=min_component_faces)
    if simplify_faces > 0 and mesh.num_faces > simplify_faces:
        from shapegen.geometry.cleanup import simplify

        mesh = simplify(mesh, target_faces=simplify_faces)
    return mesh


def _convert(args: argparse.Namespace, cfg: ConvertConfig) -> None:
    from shapegen.geometry.export import export_mesh
    from shapegen.geometry.mesh_io import load_mesh, normalize_mesh
    from shapegen.io import atomic_path

    out = _check_mesh_output(args.output)
    mesh = load_mesh(args.input, dedupe=cfg.dedupe)
    mode = "cube" if args.normalize and cfg.normalize == "none" else cfg.normalize
    transform = None
    if mode != "none":
        mesh, transform = normalize_mesh(mesh, mode=mode)
    mesh = _postprocess(mesh, cfg.min_component_faces, cfg.simplify_faces)
    export_mesh(mesh, out)
    msg = f"wrote {out} ({mesh.num_vertices} vertices, {mesh.num_faces} faces)"
    if transform is not None:
        sidecar = out.with_name(out.name + ".normalization.json")
        record = {"mode": transform.mode, "center": list(transform.center), "scale": transform.scale,
                  "matrix": transform.matrix().tolist(), "note": "x_unit = (x_source - center) * scale"}
        with atomic_path(sidecar) as tmp:
            tmp.write_text(json.dumps(record, indent=2))
        msg += f"; normalisation transform in {sidecar}"
    print(msg)


# ------------------------------------------------------------------------------------- render
@dataclass
class RenderConfig:
    width: int = 512
    """Image width in pixels."""
    height: int = 512
    """Image height in pixels."""
    azimuth: float = 30.0
    """Camera azimuth in degrees around the up (+Y) axis; 0 looks from +Z."""
    elevation: float = 20.0
    """Camera elevation in degrees above the horizon."""
    fov: float = 40.0
    """Vertical field of view in degrees; the distance is chosen so the mesh fits."""
    turntable: int = 0
    """Number of frames of a 360-degree turntable (0 renders one still image)."""
    fps: int = 24
    """Frames per second of a turntable animation."""


def _render_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("mesh", help="mesh file to render")
    p.add_argument("-o", "--output", required=True, help="output image (.png), or .gif/.mp4 with --turntable")
    p.add_argument("--turntable", type=int, metavar="N", help="render an N-frame turntable (same as --set turntable=N)")


def _render(args: argparse.Namespace, cfg: RenderConfig) -> None:
    from renderers.preview import render_mesh, render_turntable, save_animation, save_image
    from shapegen.geometry.mesh_io import load_mesh
    from shapegen.io import check_output_path

    frames = args.turntable if args.turntable is not None else cfg.turntable
    out = Path(args.output)
    suffix = out.suffix.lower()
    if frames < 0 or cfg.width <= 0 or cfg.height <= 0:
        raise ShapegenError("turntable frames, width and height must be positive")
    if frames and suffix not in (".gif", ".mp4"):
        raise ShapegenError(f"a turntable is an animation: use a .gif or .mp4 output instead of '{out.name}'")
    if not frames and suffix != ".png":
        raise ShapegenError(f"a still preview is written as PNG: use an output ending in .png instead of '{out.name}'")
    check_output_path(out)
    mesh = load_mesh(args.mesh)
    view = dict(vertex_colors=mesh.vertex_colors, width=cfg.width, height=cfg.height, elevation_deg=cfg.elevation, fov_deg=cfg.fov)
    if frames:
        images = render_turntable(mesh.vertices, mesh.faces, num_frames=frames, **view)
        try:
            save_animation(out, images, fps=cfg.fps)
        except ValueError as exc:  # renderers cannot raise ShapegenError (one-way imports)
            raise ShapegenError(str(exc)) from exc
    else:
        save_image(out, render_mesh(mesh.vertices, mesh.faces, azimuth_deg=cfg.azimuth, **view))
    print(f"wrote {out}")


# ------------------------------------------------------------------------------------ extract
@dataclass
class ExtractConfig:
    resolution: int | None = None
    """Marching-cubes resolution per axis; default: a grid file's own resolution, or 256 for a field."""
    method: Literal["sparse", "dense"] = "sparse"
    """Sparse coarse-to-fine extraction (same mesh, far fewer field evaluations) or dense."""
    level: float = 0.0
    """Iso-level of the surface."""
    bbox_min: list[float] | None = None
    """Lower corner of the box to extract in; default: the grid file's box, or -1 for a field."""
    bbox_max: list[float] | None = None
    """Upper corner of the box to extract in; default: the grid file's box, or +1 for a field."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Device on which a saved field is evaluated (auto: CUDA if available)."""
    min_component_faces: int = 0
    """Drop connected components with fewer faces than this (0 keeps everything)."""
    simplify_faces: int = 0
    """Simplify to at most this many faces (0 keeps the mesh as it is)."""


def _extract_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "input",
        help="an SDF grid (.npy holding a G x G x G array, or .npz with 'sdf' and optional 'bbox' 2x3) "
        "or a saved field mapping N x 3 points to N values (.pt2 from torch.export, or a TorchScript .pt)",
    )
    p.add_argument("-o", "--output", required=True, help="output mesh (.glb, .gltf, .obj or .ply)")
    p.add_argument("--resolution", type=int, help="same as --set resolution=N")
    p.add_argument("--trust-field", action="store_true",
                   help="load a saved field (.pt2/.pt): it is a program, and loading one can run any code it carries, "
                   "so only pass files you made or trust (SDF grids need no flag)")


def load_field(path: str | Path, device: torch.device | str = "cpu", trust: bool = False):
    """Load a saved SDF grid or exported field as ``(field_fn, bbox or None, grid or None)``.

    Args:
        path: an ``.npy``/``.npz`` SDF grid, or a saved field (``.pt2`` torch.export program,
            ``.pt``/``.ts``/``.pth`` TorchScript).
        device: where the field runs.
        trust: allow a saved field. torch.export and TorchScript archives are programs, and
            torch's loader evaluates expressions stored in them (a crafted ``.pt2`` runs code
            while it loads), so they are loaded only when the user vouches for the file.

    Raises:
        ShapegenError: for a missing, unreadable or malformed file, NaN values, or a saved field
            without ``trust``.
    """
    import numpy as np
    import torch

    path = Path(path)
    if not path.is_file():
        raise ShapegenError(f"input '{path}' not found; pass an SDF grid (.npy/.npz) or a saved field (.pt2)")
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        try:
            data = np.load(path, allow_pickle=False)
            if suffix == ".npz":  # read every array now: an .npz reads (and refuses object arrays) lazily
                with data:
                    data = {key: data[key] for key in data.files}
        except Exception as exc:
            raise ShapegenError(f"cannot read '{path}' as a NumPy file ({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
        bbox = None
        if suffix == ".npz":
            if "sdf" not in data:
                raise ShapegenError(f"'{path}' has no array named 'sdf' (found {sorted(data)}); save the grid as sdf=...")
            grid = data["sdf"]
            if "bbox" in data:
                bbox = np.asarray(data["bbox"], dtype=np.float64)
                if bbox.shape != (2, 3):
                    raise ShapegenError(f"'bbox' in '{path}' must be 2 x 3 (min and max corners), got {bbox.shape}")
        else:
            grid = data
        if grid.ndim != 3 or min(grid.shape) < 2:
            raise ShapegenError(f"the SDF grid in '{path}' must be a 3-D array of side >= 2, got shape {grid.shape}")
        if not np.isfinite(grid).all():
            raise ShapegenError(f"the SDF grid in '{path}' contains NaN or infinite values; fix the values before extracting")
        return None, bbox, torch.from_numpy(np.ascontiguousarray(grid, dtype=np.float32))
    if suffix in (".pt2", ".pt", ".ts", ".pth"):
        if not trust:
            raise ShapegenError(f"'{path.name}' is a saved program and loading it can run code it carries; pass --trust-field "
                                "if you made it or trust its source, or save the field as an SDF grid (.npz with sdf=...)")
        try:
            if suffix == ".pt2":  # torch.export program (the current PyTorch format)
                module = torch.export.load(str(path)).module().to(device)
            else:  # legacy TorchScript
                module = torch.jit.load(str(path), map_location=device)
                module.eval()
        except Exception as exc:
            raise ShapegenError(
                f"cannot load '{path}' as a saved field ({type(exc).__name__}); save it with "
                "torch.export.save(torch.export.export(model, (points,), dynamic_shapes=({0: torch.export.Dim('N')},)), 'field.pt2')"
            ) from exc

        def field(points):
            with torch.no_grad():
                return module(points.to(device)).reshape(-1)

        return field, None, None
    raise ShapegenError(f"unknown field file '{path.name}'; use .npy/.npz for an SDF grid or .pt2 (torch.export) for a field")


def _extract(args: argparse.Namespace, cfg: ExtractConfig) -> None:
    import numpy as np

    from shapegen.devices import choose_device
    from shapegen.geometry.export import export_mesh
    from shapegen.geometry.extract import extract_mesh, grid_field, marching_cubes

    out = _check_mesh_output(args.output)
    resolution = args.resolution if args.resolution is not None else cfg.resolution
    if resolution is not None and resolution < 2:
        raise ShapegenError(f"resolution must be at least 2, got {resolution}")
    device = choose_device(cfg.device, option="device=")
    field, bbox, grid = load_field(args.input, device, trust=args.trust_field)
    if bbox is None:
        bbox = np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    if cfg.bbox_min is not None:
        bbox[0] = cfg.bbox_min
    if cfg.bbox_max is not None:
        bbox[1] = cfg.bbox_max
    box = (tuple(bbox[0].tolist()), tuple(bbox[1].tolist()))
    if grid is not None and resolution is None:
        # A saved grid at its own resolution: marching cubes on the stored values, nothing resampled.
        mesh = marching_cubes(grid, box, level=cfg.level)
    else:
        fn = field if field is not None else grid_field(grid, box)
        mesh = extract_mesh(fn, resolution or 256, box, method=cfg.method, level=cfg.level, device=device, progress=True)
    if mesh.num_faces == 0:
        raise ShapegenError(f"the field has no surface at level {cfg.level} inside the box {box}; check the level or the box")
    mesh = _postprocess(mesh, cfg.min_component_faces, cfg.simplify_faces)
    export_mesh(mesh, out)
    print(f"wrote {out} ({mesh.num_vertices} vertices, {mesh.num_faces} faces)")


# --------------------------------------------------------------------------------------- demo
@dataclass
class DemoConfig:
    shape: Literal["chair", "torus", "sphere"] = "chair"
    """Embedded analytic shape to extract (until trained demo models ship)."""
    resolution: int = 128
    """Extraction resolution per axis."""
    format: Literal["glb", "obj", "ply"] = "glb"
    """Mesh file format."""
    turntable: int = 0
    """Also write an N-frame turntable GIF (0: none)."""
    preview_size: int = 512
    """Side of the preview PNG in pixels."""


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default="outputs/demo", help="output folder (default: outputs/demo)")


def _demo(args: argparse.Namespace, cfg: DemoConfig) -> None:
    """Embedded default: analytic SDF -> sparse extraction -> coloured mesh -> export -> preview."""
    import torch

    from renderers.preview import render_mesh, render_turntable, save_animation, save_image
    from shapegen.geometry import primitives
    from shapegen.geometry.export import export_mesh
    from shapegen.geometry.extract import extract_mesh
    from shapegen.io import check_output_folder

    check_output_folder(args.output)  # before the extraction, whose progress bar would come first
    shapes = {
        "chair": (primitives.demo_chair(), ((-0.6, -0.9, -0.6), (0.6, 0.9, 0.6))),
        "torus": (primitives.torus(major=0.6, minor=0.25), ((-1.0, -0.5, -1.0), (1.0, 0.5, 1.0))),
        "sphere": (primitives.sphere(radius=0.8), ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))),
    }
    sdf, box = shapes[cfg.shape]
    mesh = extract_mesh(sdf, cfg.resolution, box, method="sparse", progress=True)
    # Colour by height: warm wood at the bottom to a lighter top, so the preview reads as a solid.
    lo, hi = box[0][1], box[1][1]
    t = ((mesh.vertices[:, 1] - lo) / (hi - lo)).clamp(0, 1)[:, None]
    mesh.vertex_colors = torch.lerp(torch.tensor([0.45, 0.25, 0.12]), torch.tensor([0.85, 0.65, 0.4]), t)
    out_dir = Path(args.output)
    mesh_path = out_dir / f"demo_{cfg.shape}.{cfg.format}"
    export_mesh(mesh, mesh_path)
    png = out_dir / f"demo_{cfg.shape}.png"
    save_image(png, render_mesh(mesh.vertices, mesh.faces, vertex_colors=mesh.vertex_colors, width=cfg.preview_size, height=cfg.preview_size))
    print(f"wrote {mesh_path} ({mesh.num_vertices} vertices, {mesh.num_faces} faces) and {png}")
    if cfg.turntable:
        gif = out_dir / f"demo_{cfg.shape}.gif"
        frames = render_turntable(mesh.vertices, mesh.faces, vertex_colors=mesh.vertex_colors, num_frames=cfg.turntable, width=256, height=256)
        save_animation(gif, frames, fps=12)
        print(f"wrote {gif}")


COMMANDS = [
    Command("demo", "run the embedded default end to end: analytic shape -> mesh -> GLB + preview PNG", _demo_args, _demo, DemoConfig, "demo"),
    Command("info", "print counts, bounds, watertightness and components of a mesh", _info_args, _info, InfoConfig),
    Command("convert", "convert a mesh between formats (GLB, OBJ, PLY), optionally normalised", _convert_args, _convert, ConvertConfig),
    Command("render", "render a headless CPU preview PNG, or a turntable GIF/MP4", _render_args, _render, RenderConfig),
    Command("extract", "extract a mesh from a saved SDF grid (.npy/.npz) or exported torch field (.pt2)", _extract_args, _extract, ExtractConfig),
]
