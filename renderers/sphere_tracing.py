"""Sphere tracing of signed distance functions (Hart 1996), with normals, for previews and
sketch renders. SDF positive outside; the march steps ``t += scale * f(o + t d)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor

__all__ = ["SphereTraceOutput", "sdf_normals", "sphere_trace"]


@dataclass
class SphereTraceOutput:
    """Per-ray results of :func:`sphere_trace`."""

    t: Float[Tensor, " R"]
    """Hit distance along the unit ray (``far`` where missed)."""
    hit: Bool[Tensor, " R"]
    """|f| < eps was reached before ``far``."""
    positions: Float[Tensor, "R 3"]
    """``o + t d``."""
    normals: Float[Tensor, "R 3"]
    """Unit SDF gradient at the hit (zeros where missed)."""
    steps: int
    """Iterations run."""


def sdf_normals(
    sdf_fn: Callable[[Tensor], Tensor], x: Float[Tensor, "N 3"], eps: float | None = None
) -> Float[Tensor, "N 3"]:
    """Unit gradients of the SDF: autograd when ``eps`` is None, else central differences."""
    if eps is None:
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(sdf_fn(xg).sum(), xg)
    else:
        offs = torch.eye(3, device=x.device, dtype=x.dtype) * eps
        g = torch.stack([(sdf_fn(x + o) - sdf_fn(x - o)).reshape(-1) for o in offs], -1) / (2 * eps)
    return torch.nn.functional.normalize(g, dim=-1)


@torch.no_grad()
def sphere_trace(
    sdf_fn: Callable[[Tensor], Tensor],
    origins: Float[Tensor, "R 3"],
    directions: Float[Tensor, "R 3"],
    near: Float[Tensor, " R"] | float = 0.0,
    far: Float[Tensor, " R"] | float = 10.0,
    max_steps: int = 128,
    eps: float = 1e-4,
    step_scale: float = 1.0,
    normal_eps: float | None = None,
) -> SphereTraceOutput:
    """March every ray until ``|f| < eps``, ``t > far`` or ``max_steps``; only active rays are
    evaluated. ``step_scale < 1`` is safer for approximate (non-metric) SDFs."""
    r = origins.shape[0]
    t = torch.as_tensor(near, dtype=origins.dtype, device=origins.device).expand(r).clone()
    far_t = torch.as_tensor(far, dtype=origins.dtype, device=origins.device).expand(r)
    hit = torch.zeros(r, dtype=torch.bool, device=origins.device)
    active = t < far_t
    steps = 0
    # The loop variable is the step count returned after the loop.
    for steps in range(1, max_steps + 1):  # noqa: B007
        idx = active.nonzero()[:, 0]
        if idx.numel() == 0:
            break
        d = sdf_fn(origins[idx] + t[idx, None] * directions[idx]).reshape(-1)
        done = d.abs() < eps
        hit[idx[done]] = True
        t[idx] = torch.where(done, t[idx], t[idx] + step_scale * d)
        active[idx] = ~done & (t[idx] < far_t[idx])
    t = torch.where(hit, t, far_t)
    pos = origins + t[:, None] * directions
    normals = torch.zeros_like(pos)
    if bool(hit.any()):
        normals[hit] = sdf_normals(sdf_fn, pos[hit], normal_eps)
    return SphereTraceOutput(t, hit, pos, normals, steps)
