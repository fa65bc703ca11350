"""Exponential moving averages of weights, shared by the generators (M-SDF, LAS)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


def ramped_decay(decay: float, step: int) -> float:
    """EMA decay at optimiser step ``step``: ``min(decay, (1 + step) / (10 + step))``.

    The ramp (as in the LAS and DiT code bases) lets the average follow the weights closely early
    on, so short runs are not dominated by the random initialisation.
    """
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(averages: Iterable[Tensor], params: Iterable[Tensor], decay: float, step: int) -> None:
    """``e <- d e + (1 - d) p`` in place for each pair, with ``d = ramped_decay(decay, step)``."""
    d = ramped_decay(decay, step)
    for e, p in zip(averages, params):
        e.lerp_(p.detach(), 1.0 - d)


__all__ = ["ema_update", "ramped_decay"]
