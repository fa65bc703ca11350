"""Safe, atomic checkpoint files.

Every checkpoint shapegen reads goes through :func:`load_checkpoint`, which uses torch's
weights-only unpickler (``torch.load(..., weights_only=True)``): tensors, numbers, strings,
lists, dicts and the few plain types listed in :data:`SAFE_GLOBALS` load; anything else (a
pickled function call such as ``os.system``) is refused with one line and never runs. A
checkpoint made by someone else is therefore as safe to open as an image.

Every checkpoint shapegen writes goes through :func:`save_checkpoint`: the bytes go to a
temporary file beside the target, are flushed to disk and renamed over it, so a kill during a
save leaves the previous checkpoint whole. :class:`SafeCheckpointIO` gives Lightning's
``Trainer`` the same two rules (pass it as ``plugins=[SafeCheckpointIO()]``).
"""

from __future__ import annotations

import functools
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from shapegen.errors import ShapegenError

SAFE_GLOBALS: list[Any] = []
"""Plain types besides tensors and builtins that shapegen checkpoints may hold (none so far:
configs are stored as plain dicts, paths as strings)."""


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:limit]


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint without running any code it may carry.

    Args:
        path: a ``.ckpt``/``.pt`` file written by ``torch.save``.
        map_location: where tensors go (as in ``torch.load``).

    Returns:
        The checkpoint's top-level dict.

    Raises:
        ShapegenError: if the file is missing, unreadable, not a checkpoint, or holds Python
            objects other than tensors and plain values (a possibly malicious file).
    """
    path = Path(path)
    if not path.is_file():
        raise ShapegenError(f"checkpoint '{path}' not found (or not a file); check the path")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _unpickling_error(path, exc) from exc
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, ImportError) as exc:
        raise ShapegenError(f"cannot read checkpoint '{path}' ({type(exc).__name__}: {_first_line(exc)}); "
                            "is it a complete .ckpt file?") from exc
    if not isinstance(ckpt, dict):
        raise ShapegenError(f"'{path}' is not a shapegen checkpoint (it holds a {type(ckpt).__name__}, not a dict)")
    return ckpt


def _refused_global(exc: pickle.UnpicklingError) -> str | None:
    """The line of torch's (paragraph-long) message naming the object it refused, if any."""
    lines = [line.strip() for line in str(exc).splitlines() if "unsupported global" in line.lower()]
    return lines[-1][:120] if lines else None


def _unpickling_error(path: Path, exc: pickle.UnpicklingError) -> ShapegenError:
    """The one-line error for a file torch's weights-only unpickler stopped (nothing in it ran)."""
    refused = _refused_global(exc)
    if refused:
        return ShapegenError(f"refusing to load '{path}': it holds Python objects other than tensors and plain values "
                             f"({refused}); only load checkpoints written by shapegen")
    # Not a refused object but bytes the unpickler does not understand: garbage, or a pickle
    # written by something other than torch.save.
    what = [line.strip() for line in str(exc).splitlines() if line.strip().lower().startswith("unsupported")]
    return ShapegenError(f"cannot read checkpoint '{path}' ({(what[-1] if what else _first_line(exc))[:120]}); "
                         "is it a complete .ckpt file written by shapegen?")


def load_module(cls: Any, path: str | os.PathLike, map_location: Any = "cpu", **kwargs: Any) -> Any:
    """``cls.load_from_checkpoint`` (a LightningModule class) with the same rules as :func:`load_checkpoint`.

    Lightning reads the file weights-only, so a checkpoint carrying a pickled function call is
    refused with one line before anything runs.

    Args:
        cls: the LightningModule class whose ``load_from_checkpoint`` builds the system.
        path: the ``.ckpt`` file.
        map_location: where tensors go (as in ``torch.load``).
        **kwargs: passed to ``load_from_checkpoint`` (e.g. ``strict``).

    Raises:
        ShapegenError: for a missing file or a checkpoint holding objects other than tensors and
            plain values; other failures (a file that is no checkpoint, a checkpoint of another
            method) are left to the caller, which knows what it expected.
    """
    path = Path(path)
    if not path.is_file():
        raise ShapegenError(f"checkpoint '{path}' not found (or not a file); check the path")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return cls.load_from_checkpoint(str(path), map_location=map_location, weights_only=True, **kwargs)
    except pickle.UnpicklingError as exc:
        if _refused_global(exc):
            raise _unpickling_error(path, exc) from exc
        raise  # not a checkpoint at all: the caller says what it expected


def save_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``checkpoint`` with ``torch.save`` atomically: temporary file, fsync, rename.

    A kill at any moment leaves either the old file or the new one, never a truncated file.
    """
    from shapegen.io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            torch.save(checkpoint, fh)
            fh.flush()
            os.fsync(fh.fileno())
    return path


@functools.cache
def _lightning_checkpoint_io():
    from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

    class SafeCheckpointIO(TorchCheckpointIO):
        """Lightning checkpoint I/O that writes atomically and loads weights-only."""

        def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
            if storage_options is not None:
                raise TypeError("SafeCheckpointIO takes no storage_options")
            save_checkpoint(checkpoint, path)

        def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
            # weights_only is ignored on purpose: shapegen never unpickles arbitrary objects.
            return load_checkpoint(path, map_location=map_location if map_location is not None else "cpu")

    return SafeCheckpointIO


def __getattr__(name: str):
    # Lightning is imported only when the plugin is asked for, so this module stays cheap.
    if name == "SafeCheckpointIO":
        return _lightning_checkpoint_io()
    raise AttributeError(name)
