"""Worker processes for the data writers and training scripts (one torch thread each).

:func:`in_processes` runs independent calls in a process pool and yields each result as it
finishes; the first failure, or Ctrl-C, cancels the calls not yet started and is raised, so the
caller's finished outputs stay for a resume and nothing waits on work that will be thrown away.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Literal


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def in_processes(fn: Callable[..., Any], calls: Sequence[tuple], workers: int, *,
                 start: Literal["forkserver", "spawn"] = "forkserver", preload: Sequence[str] = ("torch",)) -> Iterator[tuple[int, Any]]:
    """Yield ``(i, fn(*calls[i]))`` in the order the calls finish, from ``min(workers, len(calls))`` processes.

    Args:
        fn: a module-level function (pickled by reference).
        calls: the argument tuples.
        workers: most processes at once.
        start: ``forkserver`` (never ``fork``: forking a process whose torch thread pool has run can
            hang; the server imports ``preload`` once and workers fork from it) or ``spawn`` (each
            worker imports afresh; needed when ``fn`` lives in a script run as ``__main__``).
        preload: modules the forkserver imports before forking workers.
    """
    ctx = multiprocessing.get_context(start)
    if start == "forkserver":
        ctx.set_forkserver_preload(list(preload))
    with ProcessPoolExecutor(max(1, min(workers, len(calls))), mp_context=ctx, initializer=_one_thread) as pool:
        futures = {pool.submit(fn, *call): i for i, call in enumerate(calls)}
        try:
            for f in as_completed(futures):
                yield futures[f], f.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


__all__ = ["in_processes"]
