"""The table of ``shapegen`` subcommands.

A command is a name, a one-line help, a config schema (a dataclass), a function adding its
positional arguments and flags, and a ``run(args, config)`` function. New commands are listed
here explicitly; nothing registers itself on import.
"""

from __future__ import annotations

from shapegen.commands import avatar, blender, data, fuse, geometry, las, methods, msdf, quickstart, recon, text_to_3d, texture
from shapegen.commands.base import Command

COMMANDS: dict[str, Command] = {
    c.name: c
    for c in [
        *geometry.COMMANDS,
        *methods.COMMANDS,
        *data.COMMANDS,
        *text_to_3d.COMMANDS,
        *texture.COMMANDS,
        *avatar.COMMANDS,
        *msdf.COMMANDS,
        *recon.COMMANDS,
        *fuse.COMMANDS,
        *las.COMMANDS,
        *quickstart.COMMANDS,
        *blender.COMMANDS,
    ]
}
"""Command name -> :class:`Command`, in the order ``shapegen --help`` lists them."""

__all__ = ["COMMANDS", "Command"]
