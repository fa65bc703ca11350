"""Samplers along rays: uniform, stratified, and importance (inverse-CDF) resampling.

The occupancy-grid estimator lives in :mod:`renderers.occupancy_grid` and the error-bounded
SDF sampler of VolSDF/MonoSDF in :mod:`renderers.sdf_samplers`.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from renderers.samples import RaySamples

__all__ = ["importance_samples", "sample_pdf", "uniform_bins", "uniform_samples"]


def uniform_bins(
    near: Float[Tensor, " R"],
    far: Float[Tensor, " R"],
    n_samples: int,
    stratified: bool = False,
    generator: torch.Generator | None = None,
) -> Float[Tensor, "R S1"]:
    """``S + 1`` bin edges per ray between ``near`` and ``far`` (S = ``n_samples``).

    ``stratified`` jitters every edge uniformly between the midpoints of its neighbours
    (NeRF's stratified sampling), so each edge stays in its own stratum.
    """
    u = torch.linspace(0.0, 1.0, n_samples + 1, device=near.device, dtype=near.dtype)
    t = near[:, None] + (far - near)[:, None] * u
    if stratified:
        mids = 0.5 * (t[:, 1:] + t[:, :-1])
        upper = torch.cat([mids, t[:, -1:]], -1)
        lower = torch.cat([t[:, :1], mids], -1)
        r = torch.rand(t.shape, generator=generator, device=t.device, dtype=t.dtype)
        t = lower + (upper - lower) * r
    return t


def uniform_samples(
    near: Float[Tensor, " R"],
    far: Float[Tensor, " R"],
    n_samples: int,
    stratified: bool = False,
    hit: Bool[Tensor, " R"] | None = None,
    generator: torch.Generator | None = None,
) -> RaySamples:
    """``n_samples`` intervals per ray covering ``[near, far]`` (packed).

    Rays where ``hit`` is False get no samples (their opacity renders as 0).
    """
    samples = RaySamples.from_bins(uniform_bins(near, far, n_samples, stratified, generator))
    if hit is not None and not bool(hit.all()):
        samples = samples.select(hit[samples.ray_indices])
    return samples


def sample_pdf(
    bins: Float[Tensor, "R S1"],
    weights: Float[Tensor, "R S"],
    n_samples: int,
    deterministic: bool = False,
    padding: float = 1e-5,
    generator: torch.Generator | None = None,
) -> Float[Tensor, "R K"]:
    """Inverse-CDF sampling of the piecewise-constant pdf ``weights`` over ``bins``.

    Returns sorted distances ``(R, K)``, ``K = n_samples``. ``deterministic`` uses evenly
    spaced quantiles (evaluation), otherwise uniform random ones (training). ``padding`` is
    added to every weight so empty rays fall back to uniform sampling.
    """
    w = weights.detach() + padding
    pdf = w / w.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1).clamp_max(1.0)
    if deterministic:
        u = torch.linspace(0.0, 1.0, n_samples + 2, device=bins.device, dtype=bins.dtype)[1:-1]
        u = u.expand(bins.shape[0], n_samples).contiguous()
    else:
        u = torch.rand(
            (bins.shape[0], n_samples), generator=generator, device=bins.device, dtype=bins.dtype
        )
    idx = torch.searchsorted(cdf, u, right=True)
    below = (idx - 1).clamp(0, cdf.shape[-1] - 1)
    above = idx.clamp(0, cdf.shape[-1] - 1)
    cdf_b, cdf_a = cdf.gather(1, below), cdf.gather(1, above)
    bin_b, bin_a = bins.gather(1, below), bins.gather(1, above)
    denom = cdf_a - cdf_b
    frac = torch.where(denom < 1e-12, torch.zeros_like(denom), (u - cdf_b) / denom.clamp_min(1e-12))
    t = bin_b + frac * (bin_a - bin_b)
    return torch.sort(t, -1).values.detach()


def importance_samples(
    bins: Float[Tensor, "R S1"],
    weights: Float[Tensor, "R S"],
    n_samples: int,
    include_coarse: bool = True,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[RaySamples, Float[Tensor, "R K1"]]:
    """Resamples ``n_samples`` edges from coarse weights (NeRF's hierarchical sampling).

    Returns the packed fine samples and their bin edges; with ``include_coarse`` the new edges
    are merged with the coarse ones (``K1 = S1 + n_samples``), else ``K1 = n_samples``.
    """
    t = sample_pdf(bins, weights, n_samples, deterministic, generator=generator)
    if include_coarse:
        t = torch.sort(torch.cat([bins.detach(), t], -1), -1).values
    return RaySamples.from_bins(t), t
