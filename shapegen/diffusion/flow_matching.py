"""Conditional optimal-transport flow matching and ODE samplers.

Flow Matching for Generative Modeling, Lipman, Chen, Ben-Hamu, Nickel, Le (arXiv 2210.02747),
as used by Mosaic-SDF (arXiv 2312.09222, Algorithms 2 and 3) and shared by every
flow-matching method in shapegen.

Equations implemented (noise ``x0 ~ N(0, I)`` at ``t = 0``, data ``x1`` at ``t = 1``):

- Conditional OT path (Eq. 22 of Lipman et al.):
  ``x_t = (1 - (1 - s_min) t) x0 + t x1``.
- Its velocity, the regression target (Eq. 23):
  ``u_t = x1 - (1 - s_min) x0``.
- Loss (Eq. 9, CFM objective): ``E_{t, x0, x1} || v_theta(x_t, t, c) - u_t ||^2`` with
  ``t ~ U[0, 1]``.
- Classifier-free guidance in the Guided Flows form (Zheng et al., arXiv 2312.13330):
  ``v = (1 - w) v(x, t | null) + w v(x, t | c)``; ``w = 1`` is the conditional model.
- Sampling integrates ``dx/dt = v(x, t)`` from ``t = 0`` to ``1`` with fixed-step Euler,
  midpoint or classical RK4, or the adaptive Dormand-Prince 5(4) pair (``dopri5``, our own
  implementation: no extra dependency), which serves as the accuracy reference.

Deviations: none in the equations. The loss is the mean over all elements (the paper's squared
norm divided by the dimension), which only rescales the learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from shapegen.errors import ShapegenError
from shapegen.progress import report

VelocityFn = Callable[[Tensor, Tensor], Tensor]
"""``v(x, t)``: ``x`` of shape ``B ...``, ``t`` of shape ``B`` in [0, 1] -> velocity like ``x``."""

Solver = Literal["euler", "midpoint", "rk4", "dopri5"]
SOLVERS: tuple[str, ...] = ("euler", "midpoint", "rk4", "dopri5")
"""Names accepted by :func:`solve_ode` (``dopri5`` is adaptive, the others fixed-step)."""


# ------------------------------------------------------------------------------ path and loss
def ot_path(x0: Float[Tensor, "B ..."], x1: Float[Tensor, "B ..."], t: Float[Tensor, " B"], sigma_min: float = 0.0) -> Float[Tensor, "B ..."]:
    """Point on the conditional OT path: ``x_t = (1 - (1 - s_min) t) x0 + t x1``."""
    tb = t.reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    return (1.0 - (1.0 - sigma_min) * tb) * x0 + tb * x1


def ot_target(x0: Float[Tensor, "B ..."], x1: Float[Tensor, "B ..."], sigma_min: float = 0.0) -> Float[Tensor, "B ..."]:
    """Velocity of the conditional OT path, ``u_t = x1 - (1 - s_min) x0`` (independent of t)."""
    return x1 - (1.0 - sigma_min) * x0


@dataclass
class FlowMatchingBatch:
    """One training draw: noise, times, the noisy point on the path and the regression target."""

    x0: Tensor
    """Gaussian noise, same shape as the data."""
    t: Tensor
    """Times in [0, 1], shape ``B``."""
    xt: Tensor
    """``x_t`` on the OT path."""
    target: Tensor
    """``u_t = x1 - (1 - s_min) x0``."""


def draw_training_batch(
    x1: Float[Tensor, "B ..."],
    sigma_min: float = 0.0,
    generator: torch.Generator | None = None,
    x0: Float[Tensor, "B ..."] | None = None,
    t: Float[Tensor, " B"] | None = None,
) -> FlowMatchingBatch:
    """Draw ``x0 ~ N(0, I)``, ``t ~ U[0, 1]`` (unless given) and build ``x_t`` and ``u_t`` for data ``x1``."""
    if x0 is None:
        x0 = torch.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)
    if t is None:
        t = torch.rand(x1.shape[0], generator=generator, device=x1.device, dtype=x1.dtype)
    return FlowMatchingBatch(x0=x0, t=t, xt=ot_path(x0, x1, t, sigma_min), target=ot_target(x0, x1, sigma_min))


def flow_matching_loss(prediction: Float[Tensor, "B ..."], target: Float[Tensor, "B ..."]) -> Float[Tensor, ""]:
    """CFM loss: mean squared error between predicted and target velocity (mean over all elements)."""
    return (prediction.float() - target.float()).pow(2).mean()


# ---------------------------------------------------------------------------------- guidance
def guided_velocity(v_cond: Tensor, v_uncond: Tensor, scale: float) -> Tensor:
    """Classifier-free guidance: ``(1 - w) v_uncond + w v_cond`` (``w = 1`` returns ``v_cond``)."""
    if scale == 1.0:
        return v_cond
    return v_uncond + scale * (v_cond - v_uncond)


# ----------------------------------------------------------------------------------- solvers
@dataclass
class ODESolution:
    """Result of :func:`solve_ode`."""

    x: Tensor
    """State at ``t = t1``."""
    nfe: int
    """Number of velocity-function evaluations spent."""


def _t(x: Tensor, t: float) -> Tensor:
    return torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)


def _fixed_step(f: VelocityFn, x: Tensor, solver: str, steps: int, t0: float, t1: float) -> ODESolution:
    h = (t1 - t0) / steps
    nfe = 0
    for i in range(steps):
        t = t0 + i * h
        if solver == "euler":
            x = x + h * f(x, _t(x, t))
            nfe += 1
        elif solver == "midpoint":
            k1 = f(x, _t(x, t))
            x = x + h * f(x + 0.5 * h * k1, _t(x, t + 0.5 * h))
            nfe += 2
        else:  # classical RK4
            k1 = f(x, _t(x, t))
            k2 = f(x + 0.5 * h * k1, _t(x, t + 0.5 * h))
            k3 = f(x + 0.5 * h * k2, _t(x, t + 0.5 * h))
            k4 = f(x + h * k3, _t(x, t + h))
            x = x + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
            nfe += 4
        report("sampling", i + 1, steps)
    return ODESolution(x=x, nfe=nfe)


# Dormand-Prince 5(4) Butcher tableau (Dormand & Prince 1980; the pair behind ode45/dopri5).
_DP_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_DP_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_DP_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_DP_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)


def _dopri5(f: VelocityFn, x: Tensor, t0: float, t1: float, rtol: float, atol: float, max_steps: int) -> ODESolution:
    """Adaptive Dormand-Prince 5(4) with FSAL and a standard I-controller on the RMS error."""
    t, h = t0, (t1 - t0) / 10.0
    k = f(x, _t(x, t))
    nfe, accepted = 1, 0
    for _ in range(max_steps):
        if t >= t1 - 1e-12:
            return ODESolution(x=x, nfe=nfe)
        h = min(h, t1 - t)
        ks = [k]
        for i in range(1, 7):
            xi = x + h * sum(a * kj for a, kj in zip(_DP_A[i], ks) if a != 0.0)
            ks.append(f(xi, _t(x, t + _DP_C[i] * h)))
            nfe += 1
        x5 = x + h * sum(b * kj for b, kj in zip(_DP_B5, ks) if b != 0.0)
        err = h * sum((b5 - b4) * kj for b5, b4, kj in zip(_DP_B5, _DP_B4, ks))
        scale = atol + rtol * torch.maximum(x.abs(), x5.abs())
        err_norm = float((err / scale).pow(2).mean().sqrt())
        if err_norm <= 1.0:
            t, x, k = t + h, x5, ks[6]  # FSAL: the 7th stage is f at the new point
            accepted += 1
        factor = 5.0 if err_norm == 0.0 else min(5.0, max(0.2, 0.9 * err_norm ** (-1.0 / 5.0)))
        h = h * factor
    raise ShapegenError(f"dopri5 did not reach t={t1} in {max_steps} steps (at t={t:.4g}); loosen rtol/atol or use a fixed-step solver")


def solve_ode(
    velocity: VelocityFn,
    x0: Float[Tensor, "B ..."],
    solver: Solver = "midpoint",
    steps: int = 25,
    t0: float = 0.0,
    t1: float = 1.0,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 10_000,
) -> ODESolution:
    """Integrate ``dx/dt = velocity(x, t)`` from ``t0`` to ``t1``.

    Args:
        velocity: ``v(x, t)`` with ``t`` a tensor of shape ``B``.
        x0: initial state (noise for sampling).
        solver: ``euler`` (1 evaluation per step), ``midpoint`` (2), ``rk4`` (4) or the adaptive
            ``dopri5`` (6 per step, step size from ``rtol``/``atol``; ``steps`` is ignored).
        steps: number of fixed steps.
        t0: start time.
        t1: end time.
        rtol: relative tolerance of ``dopri5``.
        atol: absolute tolerance of ``dopri5``.
        max_steps: cap on ``dopri5`` steps (accepted and rejected).

    Returns:
        The final state and the number of function evaluations.

    Raises:
        ShapegenError: for an unknown solver or a non-positive step count.
    """
    if solver not in SOLVERS:
        raise ShapegenError(f"unknown ODE solver '{solver}'; use one of {', '.join(SOLVERS)}")
    if solver == "dopri5":
        return _dopri5(velocity, x0, t0, t1, rtol, atol, max_steps)
    if steps < 1:
        raise ShapegenError(f"the number of solver steps must be at least 1, got {steps}")
    return _fixed_step(velocity, x0, solver, steps, t0, t1)


def evaluations_per_step(solver: str) -> int:
    """Function evaluations per fixed step (for picking ``steps`` under an NFE budget)."""
    return {"euler": 1, "midpoint": 2, "rk4": 4}.get(solver, math.nan)  # type: ignore[return-value]


def sample_noise(shape: tuple[int, ...], seed: int | None = None, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal noise; a given ``seed`` gives the same noise on every call (drawn on CPU, then moved)."""
    gen = torch.Generator(device="cpu")
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return torch.randn(shape, generator=gen, dtype=torch.float32).to(device=device, dtype=dtype)


__all__ = [
    "SOLVERS",
    "FlowMatchingBatch",
    "ODESolution",
    "draw_training_batch",
    "evaluations_per_step",
    "flow_matching_loss",
    "guided_velocity",
    "ot_path",
    "ot_target",
    "sample_noise",
    "solve_ode",
]
