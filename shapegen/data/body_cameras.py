"""Body-aware cameras for avatars: full-body views plus zoomed head views (DreamAvatar, TADA).

Full-body cameras are :class:`~shapegen.data.cameras.RandomCameraSampler` draws around the
origin (where the body's centre is). With probability ``head_probability`` a step instead gets a
head camera: drawn from its own (closer, narrower) ranges around the origin, then translated by
the head's centre, so it looks at the head from the same range of directions. Head cameras are
tagged so the guidance can use a head prompt ("the face of ...") with the usual view suffix.

Frames: camera-to-world, OpenGL axes, +Y up, azimuth 0 on the +Z side (the body's front).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Bool
from torch import Tensor

from renderers.cameras import CameraBatch
from shapegen.data.cameras import CameraSamplerConfig, RandomCameraSampler

__all__ = ["HeadZoomCameraSampler", "HeadZoomConfig"]


@dataclass
class HeadZoomConfig:
    """The head branch of :class:`HeadZoomCameraSampler`."""

    probability: float = 0.25
    """Chance that a step's cameras are head views instead of full-body views."""
    cameras: CameraSamplerConfig = field(
        default_factory=lambda: CameraSamplerConfig(
            elevation_range_deg=[-10.0, 30.0], distance_range=[0.45, 0.65], fov_range_deg=[30.0, 45.0]
        )
    )
    """Ranges of the head cameras, relative to the head centre (world units)."""
    prompt: str = "the face of {prompt}"
    """Prompt of head views; ``{prompt}`` is replaced by the avatar's prompt (view suffix appended)."""


class HeadZoomCameraSampler:
    """Full-body cameras, or (with the head branch's probability) cameras zoomed on the head.

    One generator drives every draw, so a seed fixes the whole sequence (and checkpoints can
    save :attr:`generator`'s state).

    Args:
        body: ranges of the full-body cameras (around the origin).
        head: the head branch.
        head_center: the head's centre in world coordinates (where head cameras look).
        seed: seed of the generator.
    """

    def __init__(self, body: CameraSamplerConfig, head: HeadZoomConfig, head_center: Sequence[float], seed: int = 0) -> None:
        if not 0.0 <= head.probability <= 1.0:
            raise ValueError(f"head camera probability must be in [0, 1], got {head.probability}")
        self.generator = torch.Generator().manual_seed(seed)
        self.body = RandomCameraSampler(body)
        self.head = RandomCameraSampler(head.cameras)
        self.body.generator = self.head.generator = self.generator
        self.probability = head.probability
        self.head_center = torch.tensor([float(x) for x in head_center])

    def sample(self, width: int, height: int, device: torch.device | str | None = None) -> tuple[CameraBatch, Bool[Tensor, " B"]]:
        """A batch of cameras and, per camera, whether it is a head view."""
        head = bool(torch.rand((), generator=self.generator) < self.probability)
        cams = (self.head if head else self.body).sample(width, height, device=device)
        if head:
            c2w = cams.c2w.clone()
            c2w[:, :3, 3] += self.head_center.to(c2w)
            cams = CameraBatch(
                c2w=c2w,
                intrinsics=cams.intrinsics,
                elevation_deg=cams.elevation_deg,
                azimuth_deg=cams.azimuth_deg,
                distance=cams.distance,
                fov_y_deg=cams.fov_y_deg,
            )
        return cams, torch.full((cams.c2w.shape[0],), head, dtype=torch.bool, device=cams.c2w.device)
