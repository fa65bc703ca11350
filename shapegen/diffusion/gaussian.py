"""Continuous-time Gaussian diffusion with x0 prediction (VDM-style, as used by LAS-Diffusion).

Equations (Kingma et al. 2021, arXiv 2107.00630; LAS-Diffusion, arXiv 2305.04461):

- Noise schedule: ``logSNR(t) = -log(expm1(1e-4 + 10 t^2))`` for ``t ~ U(0, 1)``;
  ``alpha^2 = sigmoid(logSNR)``, ``sigma^2 = sigmoid(-logSNR)``; ``x_t = alpha x0 + sigma eps``.
- Ancestral step from ``t`` to ``s < t`` given an estimate ``x0_hat`` (the Gaussian posterior
  ``q(x_s | x_t, x0)``): with ``c = -expm1(logSNR(t) - logSNR(s))``,
  ``mean = alpha_s ((1 - c) x_t / alpha_t + c x0_hat)``, ``var = sigma_s^2 c``.
- Classifier-free guidance on ``x0``: ``x0 = x0(null) + w (x0(c) - x0(null))``.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["alpha_sigma", "ancestral_step", "cfg_combine", "log_snr", "noise", "time_grid"]


def log_snr(t: Float[Tensor, "*B"]) -> Float[Tensor, "*B"]:
    """``-log(expm1(1e-4 + 10 t^2))`` (the schedule of LAS and Imagen's continuous models)."""
    return -torch.log(torch.expm1(1e-4 + 10.0 * t.double() ** 2)).to(t.dtype)


def alpha_sigma(t: Float[Tensor, "*B"]) -> tuple[Float[Tensor, "*B"], Float[Tensor, "*B"]]:
    """Signal and noise scales ``alpha, sigma`` at time ``t`` (``alpha^2 + sigma^2 = 1``)."""
    ls = log_snr(t)
    return torch.sigmoid(ls).sqrt(), torch.sigmoid(-ls).sqrt()


def _bcast(v: Tensor, x: Tensor) -> Tensor:
    return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def noise(x0: Tensor, t: Float[Tensor, " B"], eps: Tensor) -> Tensor:
    """``x_t = alpha_t x0 + sigma_t eps`` (``t`` per leading batch element)."""
    a, s = alpha_sigma(t)
    return _bcast(a, x0) * x0 + _bcast(s, x0) * eps


def time_grid(steps: int, device: torch.device | str | None = None) -> Float[Tensor, " S+1"]:
    """Uniform grid from 1 down to 0 with ``steps`` intervals."""
    return torch.linspace(1.0, 0.0, steps + 1, device=device)


def ancestral_step(
    x_t: Tensor, x0_hat: Tensor, t: float, s: float, generator: torch.Generator | None = None
) -> Tensor:
    """One ancestral sample of ``x_s ~ q(x_s | x_t, x0_hat)`` for ``s < t``; ``s = 0`` returns ``x0_hat``."""
    if s <= 0:
        return x0_hat
    tt = torch.tensor([t, s], dtype=torch.float64)
    ls = log_snr(tt)
    c = -torch.expm1(ls[0] - ls[1])
    (a_t, a_s), (_, s_s) = alpha_sigma(tt)
    mean = a_s * ((1 - c) * x_t / a_t + c * x0_hat)
    std = float((s_s**2 * c).sqrt())
    eps = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype) if generator is not None else torch.randn_like(x_t)
    return (mean.to(x_t.dtype) + std * eps).to(x_t.dtype)


def cfg_combine(x0_cond: Tensor, x0_null: Tensor, w: float) -> Tensor:
    """Classifier-free guidance in x0 space; ``w = 1`` is the conditional model alone."""
    return x0_null + w * (x0_cond - x0_null)
