"""``shapegen blender package|install``: the Blender add-on as a zip, or installed for the user's Blender.

The work is :mod:`shapegen.blender_package`; the add-on itself lives in ``blender/`` and runs this
``shapegen`` command in background processes.
"""

from __future__ import annotations

import argparse

from shapegen.commands.base import Command
from shapegen.errors import ShapegenError


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action",
        choices=["package", "install"],
        help="package: write the add-on zip (-o) for Blender's Install from Disk; "
        "install: copy the add-on into the user extensions of a Blender 4.2+ configuration",
    )
    p.add_argument("-o", "--output", help="package: the zip to write, e.g. shapegen_blender.zip")
    p.add_argument(
        "--blender-config",
        metavar="DIR",
        help="install: Blender's configuration folder (e.g. ~/.config/blender/5.0); default: the newest 4.2+ one of this user",
    )


def _run(args: argparse.Namespace, _config=None) -> None:
    from shapegen.blender_package import install_addon, package_addon, read_manifest

    if args.action == "package":
        if args.blender_config is not None:
            raise ShapegenError("--blender-config applies to 'shapegen blender install' only")
        if args.output is None:
            raise ShapegenError("blender package needs the zip to write: shapegen blender package -o shapegen_blender.zip")
        out = package_addon(args.output)
        print(
            f"wrote {out} (shapegen {read_manifest()['version']}); in Blender: Edit > Preferences > Get Extensions > "
            "Install from Disk, or drag the zip into Blender"
        )
        return
    if args.output is not None:
        raise ShapegenError("-o applies to 'shapegen blender package' only; install writes into Blender's configuration")
    target = install_addon(args.blender_config)
    print(f"installed the add-on in {target}; enable 'shapegen' in Blender's Edit > Preferences > Add-ons, then open the 3D view's side panel (N) > shapegen")


COMMANDS = [
    Command(
        "blender",
        "the Blender add-on: 'blender package -o ZIP' writes it for Install from Disk; 'blender install' installs it for your Blender 4.2+",
        _args,
        _run,
    ),
]
