"""Random cameras around an object, for score distillation (DreamFusion / ProlificDreamer).

Cameras look at the origin from a sphere band: elevation, azimuth, distance and vertical field
of view are drawn uniformly from configured ranges (threestudio's VSD ranges by default) by
:func:`renderers.cameras.sample_cameras_on_sphere`; poses are camera-to-world, OpenGL axes,
+Y up, azimuth 0 on the +Z side ("front").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch.utils.data import IterableDataset

from renderers.cameras import CameraBatch, sample_cameras_on_sphere

__all__ = ["CameraSamplerConfig", "RandomCameraSampler", "StepDataset"]


@dataclass
class CameraSamplerConfig:
    """Ranges of :class:`RandomCameraSampler` (low, high)."""

    elevation_range_deg: list[float] = field(default_factory=lambda: [-10.0, 45.0])
    """Elevation above the horizontal plane (degrees)."""
    azimuth_range_deg: list[float] = field(default_factory=lambda: [-180.0, 180.0])
    """Azimuth around +Y from +Z towards +X (degrees)."""
    distance_range: list[float] = field(default_factory=lambda: [1.0, 1.5])
    """Distance from the origin (world units)."""
    fov_range_deg: list[float] = field(default_factory=lambda: [40.0, 70.0])
    """Vertical field of view (degrees)."""
    batch_size: int = 1
    """Cameras per training step."""


class RandomCameraSampler:
    """Draws batches of random cameras; reproducible for a given seed.

    Args:
        config: the ranges.
        seed: seed of the sampler's own generator (None: torch's global RNG).
    """

    def __init__(self, config: CameraSamplerConfig | None = None, seed: int | None = None) -> None:
        self.config = config or CameraSamplerConfig()
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    def sample(self, width: int, height: int, n: int | None = None, device: torch.device | str | None = None) -> CameraBatch:
        """``n`` (default ``batch_size``) cameras for ``width x height`` images, moved to ``device``."""
        cfg = self.config
        cams = sample_cameras_on_sphere(
            n or cfg.batch_size,
            width,
            height,
            elevation_range_deg=tuple(cfg.elevation_range_deg),
            azimuth_range_deg=tuple(cfg.azimuth_range_deg),
            distance_range=tuple(cfg.distance_range),
            fov_range_deg=tuple(cfg.fov_range_deg),
            generator=self.generator,
        )
        if device is None:
            return cams
        intr = cams.intrinsics
        return CameraBatch(
            c2w=cams.c2w.to(device),
            intrinsics=type(intr)(
                fx=intr.fx.to(device), fy=intr.fy.to(device), cx=intr.cx, cy=intr.cy, width=intr.width, height=intr.height
            ),
            elevation_deg=cams.elevation_deg.to(device),
            azimuth_deg=cams.azimuth_deg.to(device),
            distance=cams.distance.to(device),
            fov_y_deg=cams.fov_y_deg.to(device),
        )


class StepDataset(IterableDataset):
    """An endless stream of step indices: score distillation draws its data (cameras) itself."""

    def __iter__(self) -> Iterator[int]:
        i = 0
        while True:
            yield i
            i += 1
