"""Volume rendering of packed samples and the opacity models.

Quadrature (NeRF, Mildenhall et al. 2020, arXiv 2003.08934, Eq. 3):
``alpha_i = 1 - exp(-sigma_i delta_i)``, ``T_i = prod_{j<i} (1 - alpha_j)``,
``w_i = T_i alpha_i``, ``C = sum_i w_i c_i (+ (1 - sum_i w_i) c_bg)``.

Opacity models (all give per-sample alpha or density; pick one per method):

* density (NeRF): ``sigma >= 0``, alpha as above.
* VolSDF (Yariv et al. 2021, arXiv 2106.12052, Eq. 2-3): ``sigma = (1/beta) Psi_beta(-f)``
  with ``Psi_beta`` the Laplace(0, beta) CDF, SDF ``f`` positive outside/free space;
  learnable ``beta`` used as ``|beta| + beta_min`` (MonoSDF's ``LaplaceDensity``).
* NeuS (Wang et al. 2021, arXiv 2106.10689, Eq. 13): ``alpha_i = max((Phi_s(f_i) -
  Phi_s(f_{i+1})) / Phi_s(f_i), 0)`` with ``Phi_s`` the logistic CDF of slope ``s``.
  :func:`neus_alpha_from_gradient` estimates ``f_i, f_{i+1}`` from the SDF and its
  directional derivative at the midpoint, with the official code's cosine annealing.
* occupancy (UNISURF / Occ-SDF, arXiv 2303.09152 Eq. 14): ``alpha_i = o_i``.

Depth is the expected ray distance ``sum_i w_i t_i`` (the background contributes 0);
:attr:`RenderOutput.depth_normalized` divides by the opacity, as MonoSDF does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor, nn

from renderers.backends import Backend, get_backend
from renderers.samples import RaySamples

__all__ = [
    "LaplaceDensity",
    "NeuSVariance",
    "RenderOutput",
    "accumulate_along_rays",
    "neus_alpha",
    "neus_alpha_from_gradient",
    "occupancy_alpha",
    "render_weights",
    "volsdf_density",
    "volume_render",
]


@dataclass
class RenderOutput:
    """Per-ray results of :func:`volume_render` (per-sample weights kept for losses)."""

    weights: Float[Tensor, " N"]
    """w_i = T_i alpha_i per sample."""
    transmittance: Float[Tensor, " N"]
    """T_i per sample (before the sample)."""
    alphas: Float[Tensor, " N"]
    """alpha_i per sample."""
    opacity: Float[Tensor, "R 1"]
    """sum_i w_i (accumulated opacity, 1 - final transmittance)."""
    depth: Float[Tensor, "R 1"]
    """sum_i w_i t_i: expected distance along the unit ray (0 for the background)."""
    rgb: Float[Tensor, "R 3"] | None = None
    """sum_i w_i c_i, composited over the background when one was given."""
    normals: Float[Tensor, "R 3"] | None = None
    """sum_i w_i n_i (not renormalised)."""
    features: Float[Tensor, "R C"] | None = None
    """sum_i w_i F_i for arbitrary feature vectors (e.g. Occ-SDF's feature colour)."""

    @property
    def depth_normalized(self) -> Float[Tensor, "R 1"]:
        """sum_i w_i t_i / sum_i w_i (MonoSDF's depth), 0 where the opacity is ~0."""
        return self.depth / self.opacity.clamp_min(1e-10)


def render_weights(
    samples: RaySamples,
    sigmas: Float[Tensor, " N"] | None = None,
    alphas: Float[Tensor, " N"] | None = None,
    backend: Backend = "auto",
) -> tuple[Float[Tensor, " N"], Float[Tensor, " N"], Float[Tensor, " N"]]:
    """(weights, transmittance, alphas) from exactly one of ``sigmas`` or ``alphas``."""
    if (sigmas is None) == (alphas is None):
        raise ValueError("give exactly one of sigmas (density) or alphas (opacity)")
    ref = sigmas if sigmas is not None else alphas
    be = get_backend(backend, ref.device)
    if sigmas is not None:
        return be.weights_from_density(
            samples.t_starts, samples.t_ends, sigmas, samples.ray_indices, samples.n_rays
        )
    weights, trans = be.weights_from_alpha(alphas, samples.ray_indices, samples.n_rays)
    return weights, trans, alphas


def accumulate_along_rays(
    weights: Float[Tensor, " N"],
    values: Float[Tensor, "N C"] | None,
    samples: RaySamples,
    backend: Backend = "auto",
) -> Float[Tensor, "R C"]:
    """sum_i w_i v_i per ray (``values=None``: sum_i w_i)."""
    return get_backend(backend, weights.device).accumulate(
        weights, values, samples.ray_indices, samples.n_rays
    )


def volume_render(
    samples: RaySamples,
    *,
    sigmas: Float[Tensor, " N"] | None = None,
    alphas: Float[Tensor, " N"] | None = None,
    rgb: Float[Tensor, "N 3"] | None = None,
    normals: Float[Tensor, "N 3"] | None = None,
    features: Float[Tensor, "N C"] | None = None,
    background: Float[Tensor, 3] | Float[Tensor, "R 3"] | None = None,
    backend: Backend = "auto",
) -> RenderOutput:
    """Renders packed samples: weights, opacity, depth and any per-sample quantities.

    Args:
        samples: packed samples (variable count per ray).
        sigmas: densities (NeRF, VolSDF via :func:`volsdf_density`); or
        alphas: opacities (NeuS, occupancy); exactly one of the two.
        rgb, normals, features: per-sample values to accumulate.
        background: colour composited behind ``rgb`` with weight ``1 - opacity``.
        backend: ``auto | torch | nerfacc`` (see :mod:`renderers.backends`).
    """
    weights, trans, alphas = render_weights(samples, sigmas, alphas, backend)
    be = get_backend(backend, weights.device)
    acc = lambda v: (
        None if v is None else be.accumulate(weights, v, samples.ray_indices, samples.n_rays)
    )
    opacity = be.accumulate(weights, None, samples.ray_indices, samples.n_rays)
    depth = acc(samples.t_mid[:, None])
    color = acc(rgb)
    if background is not None:
        if color is None:
            raise ValueError("background needs rgb")
        color = color + (1.0 - opacity) * background
    return RenderOutput(weights, trans, alphas, opacity, depth, color, acc(normals), acc(features))


# --- opacity models -----------------------------------------------------------------------


def volsdf_density(sdf: Float[Tensor, "*N"], beta: float | Tensor) -> Float[Tensor, "*N"]:
    """VolSDF density ``(1/beta) Psi_beta(-sdf)`` (Eq. 2-3), SDF positive outside."""
    # 0.5 + 0.5 sign(f) (exp(-|f|/beta) - 1) == Psi_beta(-f); expm1 keeps it accurate near 0.
    return (0.5 + 0.5 * sdf.sign() * torch.expm1(-sdf.abs() / beta)) / beta


def neus_alpha(
    sdf_start: Float[Tensor, "*N"], sdf_end: Float[Tensor, "*N"], inv_s: float | Tensor
) -> Float[Tensor, "*N"]:
    """NeuS discrete opacity (Eq. 13) from the SDF at the interval ends."""
    prev_cdf = torch.sigmoid(sdf_start * inv_s)
    next_cdf = torch.sigmoid(sdf_end * inv_s)
    return ((prev_cdf - next_cdf + 1e-5) / (prev_cdf + 1e-5)).clip(0.0, 1.0)


def neus_alpha_from_gradient(
    sdf: Float[Tensor, "*N"],
    dir_dot_grad: Float[Tensor, "*N"],
    deltas: Float[Tensor, "*N"],
    inv_s: float | Tensor,
    cos_anneal_ratio: float = 1.0,
) -> Float[Tensor, "*N"]:
    """NeuS opacity from the midpoint SDF and ``d . grad f`` (official code's estimate).

    ``cos_anneal_ratio`` < 1 blends towards ``-|cos|`` early in training (NeuS code).
    """
    true_cos = dir_dot_grad
    iter_cos = -(
        torch.relu(-true_cos * 0.5 + 0.5) * (1.0 - cos_anneal_ratio)
        + torch.relu(-true_cos) * cos_anneal_ratio
    )
    sdf_start = sdf - iter_cos * deltas * 0.5
    sdf_end = sdf + iter_cos * deltas * 0.5
    return neus_alpha(sdf_start, sdf_end, inv_s)


def occupancy_alpha(occupancy: Float[Tensor, "*N"]) -> Float[Tensor, "*N"]:
    """Occupancy as opacity (UNISURF / Occ-SDF): alpha = o, clamped to [0, 1]."""
    return occupancy.clamp(0.0, 1.0)


class LaplaceDensity(nn.Module):
    """VolSDF density with learnable beta (used as ``|beta| + beta_min``)."""

    def __init__(self, beta_init: float = 0.1, beta_min: float = 1e-4) -> None:
        super().__init__()
        self.beta = nn.Parameter(torch.tensor(float(beta_init)))
        self.beta_min = beta_min

    def get_beta(self) -> Tensor:
        return self.beta.abs() + self.beta_min

    def forward(self, sdf: Tensor, beta: Tensor | None = None) -> Tensor:
        return volsdf_density(sdf, self.get_beta() if beta is None else beta)


class NeuSVariance(nn.Module):
    """NeuS learnable inverse standard deviation ``s = exp(10 * variance)``."""

    def __init__(self, init_val: float = 0.3) -> None:
        super().__init__()
        self.variance = nn.Parameter(torch.tensor(float(init_val)))

    def forward(self) -> Tensor:
        return torch.exp(self.variance * 10.0).clip(1e-6, 1e6)

    @staticmethod
    def from_inv_s(inv_s: float) -> NeuSVariance:
        return NeuSVariance(math.log(inv_s) / 10.0)
