"""``shapegen.workers.in_processes``: every call's result, one torch thread per worker, failures raised."""

from __future__ import annotations

import os
import time

import pytest

from shapegen.workers import in_processes


def _square_with_threads(x: int) -> tuple[int, int, int]:
    import torch

    return x * x, torch.get_num_threads(), os.getpid()


def _fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"bad input {x}")
    time.sleep(0.05)
    return x


@pytest.mark.parametrize("start", ["forkserver", "spawn"])
def test_results_of_every_call_from_worker_processes(start) -> None:
    got = dict(in_processes(_square_with_threads, [(x,) for x in range(6)], 2, start=start))
    assert sorted(got) == list(range(6)) and all(got[i][0] == i * i for i in got)
    assert {t for _, t, _ in got.values()} == {1} and os.getpid() not in {p for *_, p in got.values()}


def test_the_first_failure_is_raised() -> None:
    with pytest.raises(ValueError, match="bad input 0"):
        list(in_processes(_fail_on, [(x, 0) for x in range(8)], 2))
