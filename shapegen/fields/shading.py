"""Shading of radiance-field samples for score distillation (DreamFusion, arXiv 2209.14988, Sec. 3.1).

Normals come from the density field: ``n = -grad sigma / ||grad sigma||`` (central finite
differences, so the shading gradient also reaches the geometry, as in DreamFusion). With a
point light in direction ``l`` (unit, from the surface towards the light):

* ``albedo``: ``c = rho``;
* ``lambertian``: ``c = rho (a + (1 - a) max(0, n . l))`` with ambient ratio ``a``;
* ``textureless``: the same with ``rho = 1`` (white), which makes the prior judge shape alone.

``random`` picks one of the three per step (DreamFusion / threestudio: albedo with probability
``albedo_prob``, otherwise textureless with probability ``textureless_prob``, else lambertian),
with the light around the camera (its direction perturbed by Gaussian noise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

__all__ = ["ShadingConfig", "density_normals", "pick_shading", "shade"]

Shading = Literal["albedo", "lambertian", "textureless"]


@dataclass
class ShadingConfig:
    """How training renders are shaded."""

    mode: Literal["albedo", "lambertian", "textureless", "random"] = "albedo"
    """Fixed shading, or ``random`` per step (from ``start_step`` on; albedo before)."""
    start_step: int = 0
    """First step at which ``random`` shading may pick a lit mode."""
    ambient: float = 0.1
    """Ambient ratio ``a`` of the lit modes."""
    albedo_prob: float = 0.2
    """``random``: probability of plain albedo."""
    textureless_prob: float = 0.5
    """``random``: probability of textureless among the lit modes."""
    light_jitter: float = 0.5
    """Std of the Gaussian perturbation of the light direction around the camera's."""
    normal_eps: float = 0.01
    """Finite-difference step of the normals (world units)."""


def density_normals(
    density: Callable[[Tensor], Tensor], x: Float[Tensor, "N 3"], eps: float
) -> Float[Tensor, "N 3"]:
    """Unit normals ``-grad sigma / ||grad sigma||`` by central differences (differentiable)."""
    offsets = torch.eye(3, device=x.device, dtype=x.dtype) * eps
    pts = torch.cat([x[:, None, :] + offsets, x[:, None, :] - offsets], dim=1).reshape(-1, 3)
    sig = density(pts).reshape(-1, 2, 3)
    grad = (sig[:, 0] - sig[:, 1]) / (2 * eps)
    return F.normalize(-grad, dim=-1, eps=1e-12)


def shade(
    albedo: Float[Tensor, "N 3"],
    normals: Float[Tensor, "N 3"] | None,
    light_dirs: Float[Tensor, "N 3"] | None,
    mode: Shading,
    ambient: float,
) -> Float[Tensor, "N 3"]:
    """Colours of shaded samples (see the module doc)."""
    if mode == "albedo":
        return albedo
    if normals is None or light_dirs is None:
        raise ValueError(f"{mode} shading needs normals and light directions")
    lit = ambient + (1.0 - ambient) * (normals * light_dirs).sum(-1, keepdim=True).clamp_min(0.0)
    if mode == "lambertian":
        return albedo * lit
    if mode == "textureless":
        return lit.expand_as(albedo)
    raise ValueError(f"unknown shading {mode!r}")


def pick_shading(cfg: ShadingConfig, step: int, generator: torch.Generator | None = None) -> Shading:
    """The shading of this step (``random``: drawn with the configured probabilities)."""
    if cfg.mode != "random":
        return cfg.mode
    if step < cfg.start_step:
        return "albedo"
    u = torch.rand(2, generator=generator)
    if u[0] < cfg.albedo_prob:
        return "albedo"
    return "textureless" if u[1] < cfg.textureless_prob else "lambertian"
