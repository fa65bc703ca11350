"""``shapegen blender package|install`` without Blender: zip contents and manifest, installing into a
configuration folder, and the one-line errors."""

from __future__ import annotations

import tomllib
import zipfile
from pathlib import Path

import pytest
from _cli import one_error_line, run

from shapegen.blender_package import ADDON_SOURCE, EXECUTABLE_HINT, addon_files, find_config_dir

SOURCE_FILES = sorted(p.relative_to(ADDON_SOURCE).as_posix() for p in ADDON_SOURCE.glob("*") if p.suffix in (".py", ".toml"))


@pytest.fixture
def no_blender_config(tmp_path, monkeypatch):
    """A user with no Blender configuration anywhere."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("APPDATA", str(tmp_path / "home" / "AppData"))
    monkeypatch.delenv("BLENDER_USER_RESOURCES", raising=False)


def test_package_writes_one_folder_with_manifest_and_modules(capsys, tmp_path):
    out = tmp_path / "shapegen_blender.zip"
    code, text, err = run(capsys, "blender", "package", "-o", out)
    assert code == 0, err
    assert str(out) in text and "Install from Disk" in text
    with zipfile.ZipFile(out) as zf:
        names = sorted(zf.namelist())
        manifest = tomllib.loads(zf.read("shapegen/blender_manifest.toml").decode())
        init = zf.read("shapegen/__init__.py").decode()
    assert names == [f"shapegen/{n}" for n in SOURCE_FILES]
    assert {"__init__.py", "jobs.py", "operators.py", "panels.py", "preferences.py", "scene.py", "sketch.py"} <= {Path(n).name for n in names}
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert manifest["id"] == "shapegen" and manifest["type"] == "add-on" and manifest["schema_version"] == "1.0.0"
    assert manifest["blender_version_min"] == "4.2.0" and manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert all(isinstance(manifest[k], str) and manifest[k] for k in ("version", "name", "tagline", "maintainer"))
    assert "bl_info" in init and '"blender": (4, 2, 0)' in init  # also a legacy add-on
    # The same files give the same bytes (fixed timestamps and order).
    again = tmp_path / "again.zip"
    assert run(capsys, "blender", "package", "-o", again)[0] == 0
    assert again.read_bytes() == out.read_bytes()


def test_addon_files_skip_caches_and_hidden_files(tmp_path):
    src = tmp_path / "addon"
    (src / "__pycache__").mkdir(parents=True)
    for name in ("blender_manifest.toml", "__init__.py", "jobs.py", ".hidden.py", "__pycache__/jobs.cpython-311.pyc", "notes.txt"):
        (src / name).write_text("x")
    assert [p.as_posix() for p in addon_files(src)] == ["__init__.py", "blender_manifest.toml", "jobs.py"]


def test_package_errors_are_one_line(capsys, tmp_path):
    one_error_line(*run(capsys, "blender", "package", "-o", tmp_path / "addon.tar")[::2])
    one_error_line(*run(capsys, "blender", "package")[::2])
    code, _, err = run(capsys, "blender", "package", "-o", tmp_path / "a.zip", "--blender-config", tmp_path)
    one_error_line(code, err)
    assert not (tmp_path / "a.zip").exists()


def test_install_into_a_config_folder_replaces_an_older_copy(capsys, tmp_path, monkeypatch):
    exe = tmp_path / "venv" / "bin" / "shapegen"  # as the console script runs: sys.argv[0] is the executable
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    monkeypatch.setattr("sys.argv", [str(exe), "blender", "install"])
    config = tmp_path / "blender"
    for version in ("3.6", "4.2", "5.0"):
        (config / version / "config").mkdir(parents=True)
    stale = config / "5.0" / "extensions" / "user_default" / "shapegen"
    stale.mkdir(parents=True)
    (stale / "old_module.py").write_text("x")
    code, text, err = run(capsys, "blender", "install", "--blender-config", config)
    assert code == 0, err
    assert str(stale) in text and "Add-ons" in text
    installed = sorted(p.name for p in stale.iterdir())
    assert installed == sorted([*SOURCE_FILES, EXECUTABLE_HINT])  # the newest 4.2+ version; the stale file is gone
    assert (stale / EXECUTABLE_HINT).read_text().strip() == str(exe.resolve())
    assert (stale / "blender_manifest.toml").read_bytes() == (ADDON_SOURCE / "blender_manifest.toml").read_bytes()
    assert not any(p.name.startswith(".") for p in stale.parent.iterdir())  # no staging folder left
    assert not (config / "3.6" / "extensions").exists() and not (config / "4.2" / "extensions").exists()


@pytest.mark.usefixtures("no_blender_config")
def test_install_without_a_blender_config_says_to_pass_one(capsys, tmp_path):
    code, _, err = run(capsys, "blender", "install")
    one_error_line(code, err)
    assert "no Blender 4.2+ configuration found" in err and "--blender-config" in err
    code, _, err = run(capsys, "blender", "install", "--blender-config", tmp_path / "missing")
    one_error_line(code, err)
    assert "is not a folder" in err
    one_error_line(*run(capsys, "blender", "install", "-o", tmp_path / "x.zip")[::2])


@pytest.mark.usefixtures("no_blender_config")
def test_default_config_dir_is_the_newest_supported_version(tmp_path, monkeypatch):
    base = tmp_path / "home" / ".config" / "blender"
    for version in ("4.1", "4.2", "4.10", "not-a-version"):
        (base / version).mkdir(parents=True)
    monkeypatch.setattr("sys.platform", "linux")
    assert find_config_dir() == base / "4.10"
    monkeypatch.setenv("BLENDER_USER_RESOURCES", str(tmp_path))  # Blender's own override wins
    assert find_config_dir() == tmp_path
