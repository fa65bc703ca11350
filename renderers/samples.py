"""Packed ray samples: a variable number of intervals per ray, with ray indices.

Packed layout (the same as nerfacc's): N samples, sorted by ray, each an interval
``[t_start, t_end]`` along ray ``ray_indices[i]``; samples of one ray are contiguous and in
increasing ``t``. Dense ``(R, S)`` samples convert with :meth:`RaySamples.from_dense`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

__all__ = ["RaySamples"]


@dataclass
class RaySamples:
    """N packed samples (intervals along rays)."""

    t_starts: Float[Tensor, " N"]
    """Interval starts (distance along the unit ray)."""
    t_ends: Float[Tensor, " N"]
    """Interval ends."""
    ray_indices: Int[Tensor, " N"]
    """Ray of each sample (int64, non-decreasing)."""
    n_rays: int
    """Number of rays R (rays with no samples are allowed)."""
    t_positions: Float[Tensor, " N"] | None = None
    """Where the field is evaluated; None means interval midpoints. The error-bounded sampler
    evaluates at the interval start, as VolSDF/MonoSDF do."""
    samples_per_ray: int | None = None
    """S when every ray has exactly S samples (made by :meth:`from_dense`), else None."""

    def __len__(self) -> int:
        return self.t_starts.shape[0]

    @property
    def t_mid(self) -> Float[Tensor, " N"]:
        """Evaluation distance of every sample."""
        return (
            self.t_positions
            if self.t_positions is not None
            else 0.5 * (self.t_starts + self.t_ends)
        )

    @property
    def deltas(self) -> Float[Tensor, " N"]:
        """Interval lengths."""
        return self.t_ends - self.t_starts

    def positions(
        self, origins: Float[Tensor, "R 3"], directions: Float[Tensor, "R 3"]
    ) -> Float[Tensor, "N 3"]:
        """World positions ``o + t * d`` of the samples."""
        return origins[self.ray_indices] + self.t_mid[:, None] * directions[self.ray_indices]

    def counts(self) -> Int[Tensor, " R"]:
        """Samples per ray."""
        return torch.bincount(self.ray_indices, minlength=self.n_rays)

    @classmethod
    def from_dense(
        cls,
        t_starts: Float[Tensor, "R S"],
        t_ends: Float[Tensor, "R S"],
        t_positions: Float[Tensor, "R S"] | None = None,
    ) -> RaySamples:
        """Packs dense per-ray samples (every ray keeps all S)."""
        r, s = t_starts.shape
        ray_indices = torch.arange(r, device=t_starts.device).repeat_interleave(s)
        tp = None if t_positions is None else t_positions.reshape(-1)
        return cls(t_starts.reshape(-1), t_ends.reshape(-1), ray_indices, r, tp, s)

    @classmethod
    def from_bins(cls, bins: Float[Tensor, "R S1"]) -> RaySamples:
        """Packs consecutive bin edges ``(R, S + 1)`` as S intervals per ray."""
        return cls.from_dense(bins[:, :-1], bins[:, 1:])

    def select(self, mask: torch.Tensor) -> RaySamples:
        """The samples where ``mask`` (N,) is True (order kept)."""
        tp = None if self.t_positions is None else self.t_positions[mask]
        return RaySamples(
            self.t_starts[mask], self.t_ends[mask], self.ray_indices[mask], self.n_rays, tp, None
        )

    def to_dense(self, values: Tensor) -> Tensor:
        """Reshapes per-sample values ``(N, ...)`` to ``(R, S, ...)``; needs ``samples_per_ray``."""
        if self.samples_per_ray is None:
            raise ValueError(
                "to_dense needs samples made by RaySamples.from_dense (a fixed S per ray)"
            )
        return values.reshape(self.n_rays, self.samples_per_ray, *values.shape[1:])
