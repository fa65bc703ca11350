"""Packaging and installing the Blender add-on (the ``blender/`` folder of a source checkout).

The add-on is plain files: ``shapegen`` never imports them (they need ``bpy``). This module zips
them for Blender's *Install from Disk* and copies them into a Blender configuration's user
extension repository (``<config>/extensions/user_default/shapegen``).

Zip layout: one top-level folder ``shapegen/`` holding ``blender_manifest.toml`` and the
modules. Blender 4.2+'s extension installer accepts a manifest inside a single top-level folder
(as well as at the root), and the legacy add-on installer (``bl_info``) extracts the folder as the
``shapegen`` add-on package; files at the zip root would scatter into the add-ons folder there.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tomllib
import zipfile
from pathlib import Path

from shapegen.errors import ShapegenError
from shapegen.io import atomic_path

ADDON_SOURCE = Path(__file__).resolve().parent.parent / "blender"
"""The add-on's source folder in a source checkout."""

ADDON_ID = "shapegen"
"""The extension id (``blender_manifest.toml``) and the zip's top-level folder."""

MIN_BLENDER = (4, 2)
"""Oldest Blender whose configuration :func:`find_config_dir` picks (extensions began in 4.2)."""

EXECUTABLE_HINT = "shapegen_executable.txt"
"""Written beside an installed add-on: the ``shapegen`` executable that installed it, which the
add-on runs when none is set in its preferences or found on PATH."""

# The fields Blender's extension installer requires, and their types.
_REQUIRED = {
    "schema_version": str,
    "id": str,
    "version": str,
    "name": str,
    "tagline": str,
    "maintainer": str,
    "type": str,
    "blender_version_min": str,
    "license": list,
}


def _source(source: str | os.PathLike | None) -> Path:
    folder = Path(source) if source is not None else ADDON_SOURCE
    if not (folder / "blender_manifest.toml").is_file():
        raise ShapegenError(
            f"the Blender add-on's source is not at '{folder}' (this shapegen install has no blender/ folder); "
            "run the command from a source checkout of shapegen"
        )
    return folder


def read_manifest(source: str | os.PathLike | None = None) -> dict:
    """The add-on's ``blender_manifest.toml``, checked for the fields Blender requires.

    Raises:
        ShapegenError: the manifest is missing, not TOML, or lacks a required field.
    """
    path = _source(source) / "blender_manifest.toml"
    try:
        manifest = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ShapegenError(f"'{path}' is not valid TOML ({exc})") from exc
    wrong = [k for k, kind in _REQUIRED.items() if not isinstance(manifest.get(k), kind)]
    if wrong:
        raise ShapegenError(f"'{path}' lacks or mistypes {', '.join(wrong)}")
    return manifest


def addon_files(source: str | os.PathLike | None = None) -> list[Path]:
    """The files the add-on ships, relative to its folder, sorted: the manifest and the Python
    modules (no bytecode caches, no hidden files)."""
    folder = _source(source)
    files = [p.relative_to(folder) for p in folder.rglob("*") if p.is_file()]
    keep = [
        p
        for p in files
        if not any(part.startswith(".") or part == "__pycache__" for part in p.parts) and (p.suffix in (".py", ".toml", ".md") or p.name == "LICENSE")
    ]
    return sorted(keep, key=lambda p: p.as_posix())


def package_addon(output: str | os.PathLike, source: str | os.PathLike | None = None) -> Path:
    """Write the add-on zip (layout in the module docstring); atomic, and the same bytes for the
    same files (fixed timestamps and order).

    Raises:
        ShapegenError: the output does not end in ``.zip`` or the add-on source is missing.
    """
    out = Path(output)
    if out.suffix.lower() != ".zip":
        raise ShapegenError(f"cannot write '{out.name}': the add-on package is a .zip")
    folder = _source(source)
    read_manifest(folder)
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in addon_files(folder):
            info = zipfile.ZipInfo(f"{ADDON_ID}/{rel.as_posix()}", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, (folder / rel).read_bytes())
    return out


def _version_dirs(base: Path) -> list[Path]:
    """``base``'s sub-folders named like a Blender version at least :data:`MIN_BLENDER`, newest first."""
    if not base.is_dir():
        return []
    found = []
    for child in base.iterdir():
        m = re.fullmatch(r"(\d+)\.(\d+)", child.name)
        if m and child.is_dir() and (int(m[1]), int(m[2])) >= MIN_BLENDER:
            found.append(((int(m[1]), int(m[2])), child))
    return [p for _, p in sorted(found, reverse=True)]


def config_bases() -> list[Path]:
    """The folders that hold Blender's per-version configurations on this platform."""
    home = Path.home()
    if sys.platform == "win32":
        appdata = os.environ.get("APPDATA")
        return [Path(appdata) / "Blender Foundation" / "Blender"] if appdata else []
    if sys.platform == "darwin":
        return [home / "Library" / "Application Support" / "Blender"]
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return [Path(xdg) / "blender" if xdg else home / ".config" / "blender"]


def find_config_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The Blender configuration folder to install into (``~/.config/blender/5.0`` and alike).

    Args:
        explicit: a version folder (``.../blender/5.0``) or the folder holding the versions
            (``.../blender``: the newest 4.2+ one). None: ``$BLENDER_USER_RESOURCES``, else the
            newest 4.2+ version under the platform's :func:`config_bases`.

    Raises:
        ShapegenError: ``explicit`` does not exist, or no configuration is found.
    """
    if explicit is not None:
        folder = Path(explicit).expanduser()
        if not folder.is_dir():
            raise ShapegenError(f"--blender-config '{folder}' is not a folder; give Blender's configuration folder, e.g. ~/.config/blender/5.0")
        versions = _version_dirs(folder)
        return versions[0] if versions else folder
    env = os.environ.get("BLENDER_USER_RESOURCES")
    if env and Path(env).is_dir():
        return Path(env)
    for base in config_bases():
        versions = _version_dirs(base)
        if versions:
            return versions[0]
    where = ", ".join(str(b) for b in config_bases()) or "the usual places"
    raise ShapegenError(f"no Blender 4.2+ configuration found in {where}; start Blender once, or pass --blender-config DIR (e.g. ~/.config/blender/5.0)")


def install_addon(config_dir: str | os.PathLike | None = None, source: str | os.PathLike | None = None, executable: str | None = None) -> Path:
    """Copy the add-on into ``<config>/extensions/user_default/shapegen`` (replacing an older copy)
    and record the ``shapegen`` executable beside it.

    Args:
        config_dir: see :func:`find_config_dir`.
        executable: the command the add-on should run; None: this process's ``shapegen``
            (``sys.argv[0]`` when it is one, else the first on PATH).

    Returns:
        The installed add-on folder.
    """
    folder = _source(source)
    read_manifest(folder)
    target = find_config_dir(config_dir) / "extensions" / "user_default" / ADDON_ID
    staging = target.with_name(f".{ADDON_ID}.installing")
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for rel in addon_files(folder):
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / rel, staging / rel)
        exe = executable or _this_executable()
        if exe:
            (staging / EXECUTABLE_HINT).write_text(exe + "\n", encoding="utf-8")
        # Swap folders, so Blender never sees a half-copied add-on.
        old = target.with_name(f".{ADDON_ID}.old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ShapegenError(f"cannot install the add-on into '{target.parent}' ({exc.strerror or exc}); check the folder's permissions") from exc
    return target


def _this_executable() -> str | None:
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name.startswith("shapegen") and argv0.is_file():
        return str(argv0.resolve())
    return shutil.which("shapegen")
