"""Bad-input cases for every ``shapegen`` command (``tests/commands/test_fuzz_cli.py`` and ``scripts/fuzz_cli.py``).

Every command must answer bad input with exactly one ``error: ...`` line on stderr and exit
status 2, without a traceback, and leave its output location as it found it (no partial file,
no stray temporary file, no new folder). This module holds the one copy of the case matrix:

* :data:`VERBS` says, for each command of :data:`shapegen.commands.COMMANDS` (and each
  sub-command of a command that has them), what its input is, how to pass an input and an
  output path on the command line, and which ``--set`` values are wrongly typed.
  :func:`check_table` fails when a command is missing, so a new command must be added here.
* :func:`plan` crosses every verb with the bad inputs of its input kind (empty, truncated,
  random bytes, non-finite or out-of-range meshes, tiny and huge sketches, a folder where a
  file is expected, a missing path, ...), the config cases (a wrongly typed value, an unknown
  key) and the output cases (a read-only folder, a full disk). ``large=True`` adds more
  variants: every suffix the loaders accept, several truncation points, bad files inside folders.
* :class:`Workspace` writes each case's files under one folder and mounts the tmpfs file
  systems of the output cases (``mount -t tmpfs``; needs root, otherwise those cases raise
  :class:`Unsupported`), and :func:`problems` checks one run against the contract.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shapegen.geometry.mesh_io import MESH_SUFFIXES

OUTPUT_CASES = ("read-only output folder", "full disk")
CONFIG_CASES = ("wrong-typed config value", "unknown config key")
#: Words one of which an output case's error must contain (it must be about the output).
OUTPUT_WORDS = ("writable", "read-only", "space", "disk", "permission", "cannot write", "cannot create")
HUGE_SIDE = 10_000


class Unsupported(Exception):
    """A case this machine cannot set up (e.g. mounting a tmpfs without root); the message says why."""


# ------------------------------------------------------------------------------------ verbs
@dataclass(frozen=True)
class Verb:
    """How to call one command (or sub-command) with an input file and an output path.

    Attributes:
        command: key in ``COMMANDS``.
        name: display name (``msdf encode`` for a sub-command).
        input: input kind (see :data:`INPUT_KINDS`), or None for a command without an input file.
        output: output suffix (``.glb``), ``"/"`` for an output folder, or None (prints only).
        argv: ``argv(input, output, samples)``: the arguments after ``shapegen``.
        bad_value: arguments setting a config value of the wrong type.
        unknown_key: arguments setting an unknown config key (or an unknown flag without ``--set``).
    """

    command: str
    name: str
    input: str | None
    output: str | None
    argv: Callable[[str, str, Samples], list[str]]
    bad_value: tuple[str, ...]
    unknown_key: tuple[str, ...] = ("--set", "no_such_key=1")


def _verbs() -> list[Verb]:
    V = Verb
    return [
        V("demo", "demo", None, "/", lambda i, o, s: ["demo", "-o", o, "--config", "tiny"], ("--set", "resolution=notanumber")),
        V("info", "info", "mesh", None, lambda i, o, s: ["info", i], ("--set", "dedupe=notabool")),
        V("convert", "convert", "mesh", ".glb", lambda i, o, s: ["convert", i, "-o", o], ("--set", "min_component_faces=notanumber")),
        V("render", "render", "mesh", ".png", lambda i, o, s: ["render", i, "-o", o, "--set", "width=16", "--set", "height=16"],
          ("--set", "width=notanumber")),
        V("extract", "extract", "grid", ".glb", lambda i, o, s: ["extract", i, "-o", o], ("--set", "resolution=notanumber")),
        V("train", "train", "msdf-dir", "/",
          lambda i, o, s: ["train", "--method", "msdf", "-o", o, "--config", "tiny", "--set", f"data.root={i}",
                           "--set", "train.max_steps=1", "--set", "train.preview_every=-1"],
          ("--set", "train.max_steps=notanumber")),
        V("generate", "generate", "msdf-ckpt", "/",
          lambda i, o, s: ["generate", "--method", "msdf", "--checkpoint", i, "-o", o, "--num", "1", "--class", "chair",
                           "--resolution", "16", "--steps", "2", "--device", "cpu"],
          ("--num", "notanumber"), ("--no-such-flag", "1")),
        V("export-model", "export-model", "msdf-ckpt", ".ckpt",
          lambda i, o, s: ["export-model", "--method", "msdf", i, "-o", o], ("--method", "notamethod"), ("--no-such-flag", "1")),
        V("eval-generation", "eval-generation", "mesh-dir", None,
          lambda i, o, s: ["eval-generation", i, str(s.mesh_dir()), "--set", "num_points=16", "--set", "dense_factor=1"],
          ("--set", "num_points=notanumber")),
        V("data", "data procedural", None, "/",
          lambda i, o, s: ["data", "procedural", "-o", o, "--classes", "mug", "--per-class", "1", "--resolution", "16",
                           "--workers", "1"], ("--set", "procedural.per_class=notanumber")),
        V("text-to-3d", "text-to-3d", "mesh", "/",
          lambda i, o, s: ["text-to-3d", "a chair", "-o", o, "--preset", "tiny", "--tiny-random-prior", "--stages", "geometry",
                           "--init-mesh", i], ("--set", "steps=notanumber")),
        V("text-to-3d", "text-to-3d msdf", "msdf-text-ckpt", "/",
          lambda i, o, s: ["text-to-3d", "a chair", "-o", o, "--checkpoint", i, "--set", "resolution=16", "--set", "turntable_frames=1",
                           "--set", "turntable_size=16", "--set", "preview_size=16", "--set", "device=cpu"],
          ("--set", "resolution=notanumber"), ("--num", "notanumber")),
        V("texture", "texture", "mesh", ".glb",
          lambda i, o, s: ["texture", i, "--prompt", "a chair", "-o", o, "--preset", "tiny", "--tiny-random-prior"],
          ("--set", "texture.steps=notanumber")),
        V("avatar", "avatar", None, "/", lambda i, o, s: ["avatar", "a knight", "-o", o, "--preset", "tiny", "--no-progress"],
          ("--set", "vsd.geometry.steps=notanumber")),
        V("rig", "rig", "humanoid", ".glb", lambda i, o, s: ["rig", i, "-o", o, "--config", "tiny"], ("--set", "arm_angle=notanumber")),
        V("msdf", "msdf encode", "mesh", ".msdf.npz", lambda i, o, s: ["msdf", "encode", i, "-o", o, "--config", "tiny"],
          ("--set", "n=notanumber")),
        V("msdf", "msdf decode", "msdf", ".glb", lambda i, o, s: ["msdf", "decode", i, "-o", o, "--resolution", "16"],
          ("--set", "resolution=notanumber")),
        V("room", "room synth", None, "/",
          lambda i, o, s: ["room", "synth", "-o", o, "--set", "num_views=1", "--set", "width=8", "--set", "height=8"],
          ("--set", "num_views=notanumber")),
        V("reconstruct", "reconstruct", "scene", ".ply",
          lambda i, o, s: ["reconstruct", i, "-o", o, "--preset", "tiny", "--no-progress"],
          ("--set", "train.max_steps=notanumber")),
        V("eval-recon", "eval-recon", "mesh", None, lambda i, o, s: ["eval-recon", i, str(s.mesh(".ply")), "--set", "num_points=64"],
          ("--set", "num_points=notanumber")),
        V("fuse", "fuse", "rgbd", ".ply", lambda i, o, s: ["fuse", i, "-o", o, "--voxel", "0.05", "--no-progress"],
          ("--voxel", "notanumber"), ("--no-such-flag", "1")),
        V("las", "las prepare", "mesh-dir", "/",
          lambda i, o, s: ["las", "prepare", i, "-o", o, "--set", "resolution=16", "--set", "sketch_size=0"],
          ("--set", "resolution=notanumber")),
        V("sketch-to-3d", "sketch-to-3d", "sketch", ".glb",
          lambda i, o, s: ["sketch-to-3d", i, "--checkpoint", str(s.checkpoint("las")), "-o", o, "--view", "0", "--category", "chair",
                           "--device", "cpu", "--set", "occupancy_steps=2", "--set", "sdf_steps=2", "--set", "preview_size=16"],
          ("--set", "occupancy_steps=notanumber")),
        V("las-view", "las-view", None, "/",
          lambda i, o, s: ["las-view", "-o", o, "--config", "tiny", "--no-progress", "--set", "steps=1", "--set", "per_class=2",
                           "--set", "styles=[contour]"],
          ("--set", "steps=notanumber")),
        V("blender", "blender package", None, ".zip", lambda i, o, s: ["blender", "package", "-o", o], ("--blender-config", "notafolder")),
        V("quickstart", "quickstart", "manifest", "/",
          lambda i, o, s: ["quickstart", "-o", o, "--sketches", i, "--set", "resolution=16", "--set", "preview_size=16"],
          ("--set", "seed=notanumber")),
    ]


VERBS: list[Verb] = _verbs()
"""Every command (sub-commands as separate entries) with how to pass its input and output."""


def check_table(commands: Sequence[str] | None = None) -> None:
    """Raise AssertionError unless :data:`VERBS` covers exactly the commands of ``COMMANDS``."""
    if commands is None:
        from shapegen.commands import COMMANDS

        commands = list(COMMANDS)
    have = {v.command for v in VERBS}
    missing, extra = sorted(set(commands) - have), sorted(have - set(commands))
    assert not missing, f"commands without a row in shapegen.testing.fuzz.VERBS: {missing}; add how to pass their input and output"
    assert not extra, f"rows of shapegen.testing.fuzz.VERBS for commands that no longer exist: {extra}"


# --------------------------------------------------------------------------- valid samples
class Samples:
    """Small valid inputs of every kind, written once under ``root`` and reused."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._cache: dict[str, Path] = {}

    def _once(self, key: str, make: Callable[[Path], None], name: str) -> Path:
        if key not in self._cache:
            path = self.root / name
            if not path.exists():
                make(path)
            self._cache[key] = path
        return self._cache[key]

    def mesh(self, suffix: str = ".obj") -> Path:
        """An 80-face icosphere of radius 0.8 in the format of ``suffix``."""

        def make(path: Path) -> None:
            import trimesh

            from shapegen.geometry.export import EXPORT_SUFFIXES, export_mesh
            from shapegen.geometry.mesh import Mesh

            tm = trimesh.creation.icosphere(subdivisions=1, radius=0.8)
            if suffix in EXPORT_SUFFIXES:
                export_mesh(Mesh.from_trimesh(tm), path)
            else:
                tm.export(path)

        return self._once(f"mesh{suffix}", make, f"sphere{suffix}")

    def humanoid(self, suffix: str = ".obj") -> Path:
        """The analytic humanoid template (1.7 m, +Y up, facing +Z), coarse."""

        def make(path: Path) -> None:
            from shapegen.fields.body_prior import BodyPriorConfig, HumanoidPrior
            from shapegen.geometry.export import export_mesh

            export_mesh(HumanoidPrior(BodyPriorConfig()).template_mesh(32), path)

        return self._once(f"humanoid{suffix}", make, f"humanoid{suffix}")

    def mesh_dir(self) -> Path:
        """A folder of two valid meshes."""

        def make(path: Path) -> None:
            path.mkdir()
            for name, suffix in (("a", ".ply"), ("b", ".obj")):
                shutil.copy(self.mesh(suffix), path / f"{name}{suffix}")

        return self._once("mesh-dir", make, "meshes")

    def sketch(self, suffix: str = ".png") -> Path:
        """A hand-drawn chair sketch (the shipped one) as PNG or JPEG."""
        from shapegen.commands.quickstart import SKETCHES

        def make(path: Path) -> None:
            from PIL import Image

            with Image.open(SKETCHES.parent / "hand_chair.png") as im:
                im.convert("RGB").save(path)

        return self._once(f"sketch{suffix}", make, f"sketch{suffix}")

    def grid(self, suffix: str = ".npy") -> Path:
        """An 8^3 SDF grid of a sphere (``.npy``, or ``.npz`` with ``sdf`` and ``bbox``)."""

        def make(path: Path) -> None:
            x = np.linspace(-1, 1, 8)
            g = np.sqrt(sum(a**2 for a in np.meshgrid(x, x, x, indexing="ij"))) - 0.6
            if suffix == ".npz":
                np.savez(path, sdf=g, bbox=np.array([[-1.0] * 3, [1.0] * 3]))
            else:
                np.save(path, g)

        return self._once(f"grid{suffix}", make, f"grid{suffix}")

    def msdf(self) -> Path:
        """A Mosaic-SDF of a sphere: 8 cubes of 3^3 values."""

        def make(path: Path) -> None:
            import torch

            from shapegen.fields.mosaic_sdf import MosaicSDF, grid_offsets

            k = 3
            centers = torch.tensor([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
            scale = torch.full((8, 1), 0.5)
            nodes = centers[:, None] + scale[:, None] * grid_offsets(k)[None]
            values = nodes.norm(dim=-1) - 0.6
            MosaicSDF(torch.cat([centers, scale, values], 1), k).save(path)

        return self._once("msdf", make, "sphere.msdf.npz")

    def msdf_dir(self) -> Path:
        """A training folder of one class holding two copies of :meth:`msdf`."""

        def make(path: Path) -> None:
            (path / "chair").mkdir(parents=True)
            for i in range(2):
                shutil.copy(self.msdf(), path / "chair" / f"s{i}.msdf.npz")

        return self._once("msdf-dir", make, "msdf_data")

    @staticmethod
    def checkpoint(method: str) -> Path:
        """The shipped demo checkpoint of ``method`` (``msdf``, ``msdf-text`` or ``las``); read, never written."""
        from shapegen.commands.quickstart import DEMO_MODEL, LAS_DEMO_MODEL

        if method == "msdf-text":
            from shapegen.methods.text_msdf import default_text_model

            return default_text_model()
        return DEMO_MODEL if method == "msdf" else LAS_DEMO_MODEL

    @staticmethod
    def manifest() -> Path:
        """The shipped sketch manifest."""
        from shapegen.commands.quickstart import SKETCHES

        return SKETCHES

    def scene(self) -> Path:
        """A MonoSDF-layout room: 2 views of 16 x 16 pixels."""

        def make(path: Path) -> None:
            from shapegen.data.room_synth import RoomSynthConfig, write_room

            write_room(path, RoomSynthConfig(num_views=2, width=16, height=16))

        return self._once("scene", make, "room")

    def rgbd(self) -> Path:
        """A 7-Scenes-layout RGB-D sequence: 2 frames of 32 x 24 looking at a plane 1 m away."""

        def make(path: Path) -> None:
            from PIL import Image

            (path / "frames").mkdir(parents=True)
            w, h, f = 32, 24, 30.0
            np.savetxt(path / "camera-intrinsics.txt", np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]]))
            for i in range(2):
                stem = path / "frames" / f"frame-{i:06d}"
                Image.fromarray(np.full((h, w), 1000, np.uint16)).save(f"{stem}.depth.png")
                Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(f"{stem}.color.jpg")
                pose = np.eye(4)
                pose[0, 3] = 0.05 * i
                np.savetxt(f"{stem}.pose.txt", pose)

        return self._once("rgbd", make, "rgbd")

    def huge_image(self) -> Path:
        """A white 10000 x 10000 PNG with one black stroke (written once; about 100 KB)."""

        def make(path: Path) -> None:
            from PIL import Image, ImageDraw

            im = Image.new("1", (HUGE_SIDE, HUGE_SIDE), 1)
            ImageDraw.Draw(im).line([(1000, 1000), (9000, 9000)], fill=0, width=40)
            im.save(path, optimize=False)

        return self._once("huge", make, "huge.png")


# ---------------------------------------------------------------------------- bad inputs
FILE_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (suffixes in the default matrix, suffixes in the large one)
    "mesh": ((".glb", ".ply", ".obj"), MESH_SUFFIXES),
    "humanoid": ((".glb", ".ply", ".obj"), (".obj", ".ply", ".glb")),
    "sketch": ((".png",), (".png", ".jpg")),
    "grid": ((".npy",), (".npy", ".npz")),
    "msdf": ((".msdf.npz",), (".msdf.npz",)),
    "msdf-ckpt": ((".ckpt",), (".ckpt",)),
    "msdf-text-ckpt": ((".ckpt",), (".ckpt",)),
    "manifest": ((".json",), (".json",)),
}
FOLDER_KINDS = ("mesh-dir", "msdf-dir", "scene", "rgbd")
INPUT_KINDS = (*FILE_KINDS, *FOLDER_KINDS)


def _valid(samples: Samples, kind: str, suffix: str) -> Path:
    if kind == "mesh":
        return samples.mesh(suffix)
    if kind == "humanoid":
        return samples.humanoid(suffix)
    if kind == "sketch":
        return samples.sketch(suffix)
    if kind == "grid":
        return samples.grid(suffix)
    if kind == "msdf":
        return samples.msdf()
    if kind == "msdf-ckpt":
        return samples.checkpoint("msdf")
    if kind == "msdf-text-ckpt":
        return samples.checkpoint("msdf-text")
    if kind == "manifest":
        return samples.manifest()
    return {"mesh-dir": samples.mesh_dir, "msdf-dir": samples.msdf_dir, "scene": samples.scene, "rgbd": samples.rgbd}[kind]()


def _truncate(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: max(1, int(len(data) * fraction))])
    return dst


def _random_bytes(dst: Path, n: int = 4096, seed: int = 0) -> Path:
    dst.write_bytes(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes())
    return dst


def _obj(dst: Path, vertices: str, faces: str) -> Path:
    dst.write_text(vertices + faces)
    return dst


_TRI = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\n"
_TRI_FACES = "f 1 2 3\nf 1 3 4\nf 1 4 2\nf 2 4 3\n"


def _ply_ascii(dst: Path, vertices: list[str], faces: list[str]) -> Path:
    head = ["ply", "format ascii 1.0", f"element vertex {len(vertices)}", "property float x", "property float y",
            "property float z", f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    dst.write_text("\n".join(head + vertices + faces) + "\n")
    return dst


def _mesh_content_cases(large: bool) -> list[tuple[str, Callable[[Path], Path]]]:
    """Meshes that parse but are not usable: non-finite vertices, no faces, face indices out of range."""
    cases = [
        ("NaN vertex", lambda d: _obj(d / "nan.obj", _TRI.replace("v 0 0 1", "v 0 nan 1"), _TRI_FACES)),
        ("inf vertex", lambda d: _obj(d / "inf.obj", _TRI.replace("v 0 0 1", "v 0 inf 1"), _TRI_FACES)),
        ("0 faces", lambda d: _obj(d / "nofaces.obj", _TRI, "")),
        ("face index out of range", lambda d: _obj(d / "range.obj", _TRI, _TRI_FACES + "f 1 2 99\n")),
    ]
    if large:
        pts = ["0 0 0", "1 0 0", "0 1 0", "0 0 1"]
        tris = ["3 0 1 2", "3 0 2 3", "3 0 3 1", "3 1 3 2"]
        cases += [
            ("NaN vertex (PLY)", lambda d: _ply_ascii(d / "nan.ply", [*pts[:3], "0 nan 1"], tris)),
            ("inf vertex (PLY)", lambda d: _ply_ascii(d / "inf.ply", [*pts[:3], "0 -inf 1"], tris)),
            ("0 faces (PLY)", lambda d: _ply_ascii(d / "nofaces.ply", pts, [])),
            ("face index out of range (PLY)", lambda d: _ply_ascii(d / "range.ply", pts, [*tris, "3 0 1 99"])),
            ("negative face index (PLY)", lambda d: _ply_ascii(d / "neg.ply", pts, [*tris, "3 0 1 -7"])),
            ("face index out of range (OFF)",
             lambda d: (d / "range.off").write_text("OFF\n4 2 0\n" + "\n".join(pts) + "\n3 0 1 2\n3 0 1 99\n") and d / "range.off"),
            ("only vertices (OBJ point cloud)", lambda d: _obj(d / "points.obj", _TRI * 3, "")),
            ("huge coordinates", lambda d: _obj(d / "huge.obj", _TRI.replace("v 1 0 0", "v 1e308 0 0").replace("v 0 1 0", "v -1e308 0 0"),
                                                 _TRI_FACES)),
        ]
    return cases


def _sketch_cases(large: bool) -> list[tuple[str, Callable[[Samples, Path], Path]]]:
    def image(dst: Path, w: int, h: int, stroke: bool = False) -> Path:
        from PIL import Image, ImageDraw

        im = Image.new("L", (w, h), 255)
        if stroke:
            ImageDraw.Draw(im).line([(0, 0), (w - 1, h - 1)], fill=0, width=1)
        im.save(dst)
        return dst

    cases = [
        ("1x1-pixel image", lambda s, d: image(d / "dot.png", 1, 1)),
        (f"{HUGE_SIDE}x{HUGE_SIDE} image", lambda s, d: s.huge_image()),
    ]
    if large:
        cases += [
            ("blank image", lambda s, d: image(d / "blank.png", 128, 128)),
            ("2000x20 image", lambda s, d: image(d / "strip.png", 2000, 20, stroke=True)),
            ("animated GIF", lambda s, d: _gif(d / "anim.gif")),
        ]
    return cases


def _gif(dst: Path) -> Path:
    from PIL import Image

    frames = [Image.new("L", (64, 64), 255), Image.new("L", (64, 64), 0)]
    frames[0].save(dst, save_all=True, append_images=frames[1:])
    return dst


@dataclass(frozen=True)
class Case:
    """One command run with one bad input (or bad config, or bad output location)."""

    verb: Verb
    bad: str
    make: Callable[[Samples, Path], Path] | None = field(default=None, compare=False, repr=False)
    """``make(samples, folder)``: writes the bad input under ``folder`` and returns its path."""

    @property
    def id(self) -> str:
        return f"{self.verb.name} / {self.bad}"


def _file_cases(kind: str, large: bool) -> list[tuple[str, Callable[[Samples, Path], Path]]]:
    small, big = FILE_KINDS[kind]
    suffixes = big if large else small
    main = suffixes[0]
    cases: list[tuple[str, Callable[[Samples, Path], Path]]] = []
    for sfx in suffixes:
        fractions = (0.5,) if not large else (0.5, 0.05, 0.95)
        for frac in fractions:
            label = f"truncated {sfx}" + ("" if frac == 0.5 else f" at {frac:.0%}")
            cases.append((label, lambda s, d, sfx=sfx, frac=frac: _truncate(_valid(s, kind, sfx), d / f"cut{sfx}", frac)))
        if large or sfx == main:
            label = "random bytes" + (f" {sfx}" if large else f" with a {sfx} suffix")
            cases.append((label, lambda s, d, sfx=sfx: _random_bytes(d / f"noise{sfx}")))
        if large:
            cases.append((f"empty {sfx}", lambda s, d, sfx=sfx: (d / f"empty{sfx}").write_bytes(b"") or d / f"empty{sfx}"))
            cases.append((f"text file named {sfx}", lambda s, d, sfx=sfx: (d / f"text{sfx}").write_text("hello\n") or d / f"text{sfx}"))
    if not large:
        cases.append(("empty file", lambda s, d: (d / f"empty{main}").write_bytes(b"") or d / f"empty{main}"))
    cases += [
        ("non-UTF-8 file name", lambda s, d: _truncate(_valid(s, kind, main), d / os.fsdecode(b"\xff\xfe" + main.encode()), 0.5)),
        ("directory instead of a file", lambda s, d: _mkdir(d / f"folder{main}")),
        ("missing file", lambda s, d: d / f"missing{main}"),
    ]
    if kind in ("mesh", "humanoid"):
        cases += [(name, lambda s, d, mk=mk: mk(d)) for name, mk in _mesh_content_cases(large)]
    elif kind == "sketch":
        cases += _sketch_cases(large)
    elif kind == "grid":
        cases.append(("NaN grid", lambda s, d: _nan_grid(d / "nan.npy")))
        if large:
            cases.append(("2-D grid", lambda s, d: np.save(d / "flat.npy", np.zeros((4, 4))) or d / "flat.npy"))
            cases.append(("object array (pickle)", lambda s, d: np.save(d / "obj.npy", np.array([{}], dtype=object)) or d / "obj.npy"))
    elif kind == "msdf":
        cases.append(("NaN tensor", lambda s, d: _nan_msdf(s, d / "nan.msdf.npz")))
        if large:
            cases.append(("npz without the M-SDF keys", lambda s, d: np.savez(d / "other.msdf.npz", a=np.zeros(3)) or d / "other.msdf.npz"))
    elif kind == "manifest" and large:
        cases.append(("manifest listing a missing sketch", lambda s, d: _manifest(d, "nope.png")))
        cases.append(("manifest listing a truncated sketch", lambda s, d: _manifest(d, _truncate(s.sketch(), d / "cut.png", 0.5).name)))
    return cases


def _folder_cases(kind: str, large: bool) -> list[tuple[str, Callable[[Samples, Path], Path]]]:
    cases: list[tuple[str, Callable[[Samples, Path], Path]]] = [
        ("missing folder", lambda s, d: d / "missing"),
        ("file instead of a folder", lambda s, d: _random_bytes(d / "notafolder")),
        ("empty folder", lambda s, d: _mkdir(d / "empty")),
    ]
    if kind == "mesh-dir":
        cases.append(("folder with a truncated .glb", lambda s, d: _in_folder(d, lambda f: _truncate(s.mesh(".glb"), f / "cut.glb", 0.5))))
        if large:
            for name, mk in _mesh_content_cases(large):
                cases.append((f"folder with a mesh with {name}", lambda s, d, mk=mk: _in_folder(d, mk)))
            cases.append(("folder with random bytes .ply", lambda s, d: _in_folder(d, lambda f: _random_bytes(f / "noise.ply"))))
    elif kind == "msdf-dir":
        cases.append(("folder with a truncated .msdf.npz",
                      lambda s, d: _in_folder(d, lambda f: _truncate(s.msdf(), _mkdir(f / "chair") / "cut.msdf.npz", 0.5))))
        if large:
            cases.append(("folder with a NaN .msdf.npz", lambda s, d: _in_folder(d, lambda f: _nan_msdf(s, _mkdir(f / "chair") / "nan.msdf.npz"))))
    elif kind == "scene":
        cases.append(("scene with a truncated cameras.npz", lambda s, d: _copy_scene(s.scene(), d, "cameras.npz")))
        if large:
            cases.append(("scene with random bytes cameras.npz", lambda s, d: _copy_scene(s.scene(), d, "cameras.npz", noise=True)))
            cases.append(("scene with a truncated image", lambda s, d: _copy_scene(s.scene(), d, "000000_rgb.png")))
    elif kind == "rgbd":
        cases.append(("sequence with garbage intrinsics", lambda s, d: _copy_scene(s.rgbd(), d, "camera-intrinsics.txt", noise=True)))
        if large:
            cases.append(("sequence with a truncated depth PNG", lambda s, d: _copy_scene(s.rgbd(), d, "frames/frame-000000.depth.png")))
            cases.append(("sequence with a garbage pose", lambda s, d: _copy_scene(s.rgbd(), d, "frames/frame-000001.pose.txt", noise=True)))
            cases.append(("sequence without frames", lambda s, d: _copy_scene(s.rgbd(), d, "frames", remove=True)))
    return cases


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _in_folder(d: Path, make: Callable[[Path], Path]) -> Path:
    folder = _mkdir(d / "shapes")
    make(folder)
    return folder


def _copy_scene(src: Path, d: Path, damaged: str, *, noise: bool = False, remove: bool = False) -> Path:
    dst = d / "scene"
    shutil.copytree(src, dst)
    target = dst / damaged
    if remove:
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    elif noise:
        _random_bytes(target, 512)
    else:
        _truncate(target, target, 0.5)
    return dst


def _nan_grid(dst: Path) -> Path:
    g = np.ones((4, 4, 4))
    g[1, 2, 3] = np.nan
    np.save(dst, g)
    return dst


def _nan_msdf(samples: Samples, dst: Path) -> Path:
    with np.load(samples.msdf()) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["tensor"] = arrays["tensor"].copy()
    arrays["tensor"][0, 5] = np.nan
    np.savez(dst, **arrays)
    return dst


def _manifest(d: Path, file: str) -> Path:
    import json

    path = d / "sketches.json"
    path.write_text(json.dumps({"sketches": [{"file": file, "category": "chair", "view": 0}]}))
    return path


def plan(large: bool = False, verbs: Sequence[Verb] | None = None) -> list[Case]:
    """Every (verb, bad input) case; ``large`` adds variants. Touches no file."""
    out: list[Case] = []
    for verb in verbs if verbs is not None else VERBS:
        if verb.input is not None:
            makers = _file_cases(verb.input, large) if verb.input in FILE_KINDS else _folder_cases(verb.input, large)
            out += [Case(verb, name, mk) for name, mk in makers]
        out += [Case(verb, name) for name in CONFIG_CASES]
        if verb.output is not None:
            out += [Case(verb, name) for name in OUTPUT_CASES]
    return out


# ------------------------------------------------------------------------------- workspace
@dataclass
class Prepared:
    """A case ready to run: the arguments and the folder whose listing must not change."""

    argv: list[str]
    watch: Path


class Workspace:
    """Writes cases' files under ``root``; owns the tmpfs mounts of the output cases.

    Use as a context manager (or call :meth:`close`) so that the mounts are removed.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.samples = Samples(self.root / "valid")
        self._mounts: dict[str, Path] = {}
        self._count = 0

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Unmount every tmpfs this workspace mounted."""
        for path in self._mounts.values():
            subprocess.run(["umount", str(path)], check=False, capture_output=True)
        self._mounts.clear()

    def _mount(self, name: str) -> Path:
        """A read-only tmpfs (``ro``), or a 64 KiB tmpfs filled to the last byte (``full``)."""
        if name in self._mounts:
            return self._mounts[name]
        if os.geteuid() != 0:
            raise Unsupported("mounting a tmpfs needs root (chmod does not stop root from writing)")
        path = _mkdir(self.root / f"mnt_{name}")
        options = "ro,size=64k" if name == "ro" else "size=64k"
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
        if res.returncode != 0:
            raise Unsupported(f"cannot mount a tmpfs here ({res.stderr.strip() or res.returncode})")
        self._mounts[name] = path
        if name == "full":
            with contextlib.suppress(OSError), open(path / "filler", "wb") as fh:
                while True:
                    fh.write(b"\0" * 4096)
                    fh.flush()
        return path

    def prepare(self, case: Case) -> Prepared:
        """Write the case's input, choose its output path; raises :class:`Unsupported`."""
        self._count += 1
        folder = _mkdir(self.root / f"case{self._count:04d}")
        verb = case.verb
        inp = ""
        if case.make is not None:
            inp = str(case.make(self.samples, _mkdir(folder / "in")))
        elif verb.input is not None:
            inp = str(_valid(self.samples, verb.input, FILE_KINDS.get(verb.input, ((None,),))[0][0]))
        if case.bad in OUTPUT_CASES:
            watch = self._mount("ro" if case.bad == OUTPUT_CASES[0] else "full")
            for leftover in watch.iterdir():  # what an earlier failing case left behind
                if leftover.name != "filler":
                    shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        else:
            watch = _mkdir(folder / "out")
        out = watch / ("result" if verb.output in (None, "/") else f"result{verb.output}")
        argv = verb.argv(inp, str(out), self.samples)
        if case.bad == CONFIG_CASES[0]:
            argv += list(verb.bad_value)
        elif case.bad == CONFIG_CASES[1]:
            argv += list(verb.unknown_key)
        return Prepared(argv, watch)


def listing(folder: Path) -> list[str]:
    """Relative paths (folders end in ``/``) and sizes under ``folder``, sorted."""
    if not folder.exists():
        return ["(missing)"]
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        rel = os.path.relpath(dirpath, folder)
        out += [os.path.join(rel, d) + "/" for d in dirnames]
        out += [f"{os.path.join(rel, f)} {os.path.getsize(os.path.join(dirpath, f))}" for f in filenames]
    return sorted(out)


def visible_lines(text: str) -> list[str]:
    """The non-blank lines a terminal shows for ``text``: a carriage return moves back to the
    start of the line, so a progress bar that erased itself (tqdm ``leave=False``) leaves nothing."""
    out = []
    for raw in text.split("\n"):
        line: list[str] = []
        col = 0
        for i, part in enumerate(raw.split("\r")):
            if i:
                col = 0
            line[col:col + len(part)] = part
            col += len(part)
        shown = "".join(line).rstrip()
        if shown:
            out.append(shown)
    return out


def problems(case: Case, code: int | None, stderr: str, before: list[str], after: list[str], error: str | None = None) -> list[str]:
    """What is wrong with one run of ``case`` (empty when it met the contract).

    Args:
        code: the exit status (None if the run raised).
        stderr: everything written to stderr (judged as a terminal shows it, see :func:`visible_lines`).
        before, after: :func:`listing` of the watched folder around the run.
        error: the traceback of an exception that escaped ``main``, if any.
    """
    found = []
    if error is not None:
        last = error.strip().splitlines()[-1] if error.strip() else "exception"
        found.append(f"uncaught exception: {last}")
    elif code != 2:
        found.append(f"exit status {code}, expected 2")
    if "Traceback" in stderr:
        found.append("traceback on stderr")
    lines = visible_lines(stderr)
    if len(lines) != 1 or not lines[0].startswith("error: "):
        shown = " | ".join(line[:160] for line in lines[:4]) + (" | ..." if len(lines) > 4 else "")
        found.append(f"stderr has {len(lines)} lines, expected one 'error: ...' line: {shown!r}")
    elif case.bad in OUTPUT_CASES and code == 2 and not any(w in lines[0].lower() for w in OUTPUT_WORDS):
        found.append(f"the error is not about the output location: {lines[0][:200]!r}")
    if before != after:
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        found.append(f"output folder changed: added {added[:5]}, removed {removed[:5]}")
    return found


def run_in_process(argv: list[str]) -> tuple[int | None, str, str, str | None]:
    """``shapegen.cli.main(argv)`` with stdout and stderr captured as the console would see them.

    Returns:
        ``(exit status or None, stdout, stderr, traceback of an escaped exception or None)``.
    """
    import warnings

    from shapegen.cli import main

    out, err = io.StringIO(), io.StringIO()
    # The CLI configures logging once, on the stderr of the moment: drop earlier handlers so
    # that this run's log lines land in this run's stderr, as in a fresh process.
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    code, error = None, None
    try:
        # catch_warnings keeps the process's filters but forgets which warnings were shown
        # already, so each run shows what a fresh process would.
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if not isinstance(exc.code, int) and exc.code is not None:
                    err.write(f"{exc.code}\n")
            except BaseException:
                error = traceback.format_exc()
    finally:
        root.handlers[:] = saved
    return code, out.getvalue(), err.getvalue(), error


def run_subprocess(argv: list[str], timeout: float = 300) -> tuple[int, str, str]:
    """``python -m shapegen.cli argv`` in a fresh process: the real console behaviour."""
    res = subprocess.run([sys.executable, "-m", "shapegen.cli", *argv], capture_output=True, timeout=timeout)
    return res.returncode, res.stdout.decode("utf-8", "replace"), res.stderr.decode("utf-8", "replace")
