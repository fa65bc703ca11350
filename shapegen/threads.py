"""How many torch threads a ``shapegen`` process uses: the machine's cores shared by the
``shapegen`` jobs running on it.

torch's OpenMP threads spin on a core while they wait for work. Alone, that makes a run fast;
with two runs on a small machine each run's spinning threads take the cores the other needs,
and both run 2.5x slower than the same two runs with one thread each (docs/benchmarks.md,
"occsdf-threads"). Each ``shapegen`` command therefore registers itself in a per-user folder of
running jobs (:func:`register_job`) and uses ``cores // jobs`` threads (:func:`share_cores`), and
training re-checks every few seconds (:class:`ThreadShareCallback`), so a run that started alone
gives a core back when a second one starts and takes it again when that one ends.

Nothing changes when the user chose a thread count: ``OMP_NUM_THREADS`` or ``SHAPEGEN_THREADS``
set, or ``torch.set_num_threads`` called by a program that imports shapegen as a library (only
the ``shapegen`` command registers). ``SHAPEGEN_THREADS=auto`` is the default.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
import time
from pathlib import Path

__all__ = ["ThreadShareCallback", "apply_thread_policy", "jobs_folder", "register_job", "running_jobs", "share_cores",
           "user_chose_threads"]

_REGISTERED: Path | None = None


def jobs_folder() -> Path:
    """The per-user folder of running ``shapegen`` jobs (one empty file per process id)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"shapegen-{uid}" / "jobs"


def user_chose_threads() -> bool:
    """True when ``OMP_NUM_THREADS`` or a ``SHAPEGEN_THREADS`` other than ``auto`` is set."""
    return bool(os.environ.get("OMP_NUM_THREADS")) or os.environ.get("SHAPEGEN_THREADS", "auto") not in ("", "auto")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process with a recycled id: still running
        return True
    return True


def running_jobs(folder: Path | None = None) -> int:
    """Registered ``shapegen`` processes still running (files of ended ones are removed)."""
    folder = folder or jobs_folder()
    n = 0
    with contextlib.suppress(OSError):
        for f in folder.iterdir():
            if not f.name.isdigit():
                continue
            if _alive(int(f.name)):
                n += 1
            else:
                with contextlib.suppress(OSError):
                    f.unlink()
    return n


def register_job(folder: Path | None = None) -> None:
    """Add this process to the running jobs (removed at exit) unless the user chose a thread count."""
    global _REGISTERED
    if _REGISTERED is not None or user_chose_threads():
        return
    folder = folder or jobs_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / str(os.getpid())
        path.touch()
    except OSError:  # an unwritable temp folder only costs the sharing
        return
    _REGISTERED = path
    atexit.register(_unregister)


def _unregister() -> None:
    global _REGISTERED
    if _REGISTERED is not None:
        with contextlib.suppress(OSError):
            _REGISTERED.unlink()
        _REGISTERED = None


def share_cores(folder: Path | None = None) -> int | None:
    """Set torch's threads to ``max(1, cores // running jobs)`` for a registered process and return
    the count; None (nothing changed) when this process is not registered."""
    if _REGISTERED is None:
        return None
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // max(1, running_jobs(folder)))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def apply_thread_policy() -> None:
    """The ``shapegen`` program's policy: ``SHAPEGEN_THREADS=N`` uses N threads; a set
    ``OMP_NUM_THREADS`` is left to torch; otherwise register and share the cores."""
    value = os.environ.get("SHAPEGEN_THREADS", "auto")
    if value.isdigit() and int(value) > 0:
        import torch

        torch.set_num_threads(int(value))
        return
    register_job()
    share_cores()


def _callback_base():
    import pytorch_lightning as pl

    return pl.Callback


class ThreadShareCallback(_callback_base()):
    """Re-share the cores every ``every_s`` seconds of training (see the module doc)."""

    def __init__(self, every_s: float = 2.0) -> None:
        self.every_s = every_s
        self._last = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            share_cores()
