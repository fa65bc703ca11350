"""The :class:`Command` record shared by every command module."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shapegen.config import load_config, resolve_preset


@dataclass(frozen=True)
class Command:
    """One ``shapegen`` subcommand."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Any], None]
    config: type | None = None
    preset_folder: str | None = None
    """Folder under ``configs/`` in which ``--config NAME`` looks for ``NAME.yaml``."""

    def load_config(self, args: argparse.Namespace) -> Any:
        path = resolve_preset(args.config, self.preset_folder) if getattr(args, "config", None) else None
        return load_config(self.config, path, getattr(args, "overrides", ()))
