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

Every long-running command resumes by one rule, :func:`resume_from`: a compatible checkpoint
in the output folder is continued, ``--fresh`` starts over, a checkpoint made with other
settings is a one-line error. :class:`RNGCheckpoint` (a Lightning callback) carries the global
random generators across a resume, and :func:`fit` turns Lightning's own Ctrl-C handling back
into ``KeyboardInterrupt`` for the command line.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import os
import pickle
import signal
from collections.abc import Callable, Iterable
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
    if name == "RNGCheckpoint":
        return _rng_callback()
    raise AttributeError(name)


# ------------------------------------------------------------------------------------ resuming
_MISSING = object()


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: tree}


def config_differences(saved: dict[str, Any], current: dict[str, Any], may_differ: Iterable[str] = ()) -> list[str]:
    """Dotted keys whose values differ between two config dicts, except those matching a
    ``fnmatch`` pattern in ``may_differ`` (e.g. ``"train.max_steps"``, ``"*.render_every"``)."""
    a, b = _flatten(saved), _flatten(current)
    patterns = tuple(may_differ)
    return [key for key in sorted(a.keys() | b.keys())
            if a.get(key, _MISSING) != b.get(key, _MISSING) and not any(fnmatch.fnmatchcase(key, p) for p in patterns)]


def resume_from(
    checkpoint: str | os.PathLike,
    config: dict[str, Any],
    *,
    fresh: bool = False,
    saved_config: Callable[[dict[str, Any]], dict[str, Any] | None] = lambda ckpt: ckpt.get("hyper_parameters"),
    may_differ: Iterable[str] = (),
    announce: bool = True,
) -> Path | None:
    """The resume rule of every long-running command, in one place.

    A command resumes when its output folder holds a checkpoint made with the same settings;
    ``--fresh`` starts over (the old checkpoint is overwritten as the new run goes); a
    checkpoint made with other settings is a one-line error naming ``--fresh``, so a run is
    never silently continued with weights, schedules or step counts it was not made for.

    Args:
        checkpoint: where the command keeps its last checkpoint (``.../last.ckpt``).
        config: the resolved config of this run, as a plain dict (``shapegen.config.to_dict``).
        fresh: the command's ``--fresh`` flag.
        saved_config: picks the saved config dict out of a loaded checkpoint (default: its
            Lightning ``hyper_parameters``); returning None means "not this command's checkpoint".
        may_differ: ``fnmatch`` patterns of dotted config keys a resumed run may change (run
            length, logging and preview cadence, device).
        announce: print ``resuming from PATH (step N; --fresh starts over)``.

    Returns:
        ``checkpoint`` as a Path when the run resumes from it, else None.

    Raises:
        ShapegenError: unreadable checkpoint, or one written with another config.
    """
    path = Path(checkpoint)
    if fresh or not path.is_file():
        return None
    ckpt = load_checkpoint(path)
    saved = saved_config(ckpt)
    if saved is None:
        raise ShapegenError(f"{path} was not written by this command; pass --fresh to start over or choose another -o folder")
    diff = config_differences(saved, config, may_differ)
    if diff:
        a, b = _flatten(saved), _flatten(config)
        shown = ", ".join(f"{k}={a.get(k, '(unset)')!s:.40} (now {b.get(k, '(unset)')!s:.40})" for k in diff[:3])
        more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
        raise ShapegenError(f"{path} was written with other settings: {shown}{more}; "
                            "pass --fresh to start over, or use the settings it was made with")
    if announce:
        print(f"resuming from {path} (step {int(ckpt.get('global_step', 0))}; --fresh starts over)")
    return path


def rng_state() -> dict[str, Any]:
    """Every global random generator's state (torch CPU and CUDA, numpy, Python) as plain values
    that :func:`load_checkpoint` reads back."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators saved by :func:`rng_state`."""
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_step(seed: int, step: int) -> None:
    """Seed torch (CPU and CUDA), numpy and Python's generators from ``(seed, step)``."""
    import random

    import numpy as np

    value = (int(seed) * 1_000_003 + int(step)) % 2**32
    torch.manual_seed(value)
    np.random.seed(value)
    random.seed(value)


@functools.cache
def _rng_callback():
    import pytorch_lightning as pl

    class RNGCheckpoint(pl.Callback):
        """Makes a resumed run draw the same random numbers as an uninterrupted one.

        Lightning restores weights, optimiser, schedulers and step counters, but not the global
        generators (torch seeds itself randomly at start-up), and on resume it builds a new
        loader iterator, which draws from them. Two measures close the gap:

        * with ``seed``, every training step starts from generators seeded with
          ``(seed, step)``: the noise, timesteps and dropout of step ``s`` are the same however
          the run got there (the way Occ-SDF already seeds its ray batches);
        * every checkpoint holds the generators' states, restored on resume: a shuffled loader
          whose epoch starts after the checkpoint draws the same order as in the uninterrupted
          run. Exact for checkpoints at epoch ends; one in the middle of a shuffled epoch
          restarts that epoch's loader (Lightning cannot rewind a plain ``DataLoader``), so the
          rest of that epoch would see other batches.

        Args:
            seed: the run's seed (None: no per-step seeding, states only).
        """

        def __init__(self, seed: int | None = None) -> None:
            self.seed = seed

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if self.seed is not None:
                seed_step(self.seed, trainer.global_step)

        def state_dict(self) -> dict[str, Any]:
            return rng_state()

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            set_rng_state(state_dict)

    return RNGCheckpoint


class _DropInterruptNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "KeyboardInterrupt" not in record.getMessage()


def fit(trainer, model, *, datamodule=None, ckpt_path: str | os.PathLike | None = None) -> None:
    """``trainer.fit`` that lets Ctrl-C reach the command line as :class:`KeyboardInterrupt`.

    Lightning catches ``KeyboardInterrupt`` inside ``fit``, logs a notice, ignores further
    SIGINTs and calls ``sys.exit(1)``; the ``shapegen`` command instead prints one line on how
    to resume and exits with 130, like any program stopped by Ctrl-C.
    """
    notice = _DropInterruptNotice()
    loggers = [logging.getLogger(n) for n in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero")]
    for lg in loggers:
        lg.addFilter(notice)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=None if ckpt_path is None else str(ckpt_path))
    except SystemExit:
        if not trainer.interrupted:
            raise
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise KeyboardInterrupt from None
    finally:
        for lg in loggers:
            lg.removeFilter(notice)
