"""Packaging: imports stay cheap and optional dependencies stay optional."""

from __future__ import annotations

import subprocess
import sys

OPTIONAL = ["diffusers", "transformers", "peft", "nerfacc", "ocnn", "bpy", "warp", "igl", "xatlas"]


def test_import_without_optional_packages():
    # Make every optional package unimportable, then import the packages and the CLI table.
    code = (
        "import sys\n"
        f"for name in {OPTIONAL!r}: sys.modules[name] = None\n"
        "import shapegen, renderers, shapegen.cli, shapegen.commands, shapegen.geometry\n"
        "loaded = [m for m in " + repr(OPTIONAL) + " if sys.modules.get(m) is not None]\n"
        "assert not loaded, loaded\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_cli_help_does_not_import_torch_heavy_modules():
    code = "import sys, shapegen.cli\nshapegen.cli.build_parser()\nprint('pytorch_lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
