"""Rays: the :class:`Rays` bundle, ray generation through pixel centres, and ray bounds
(axis-aligned box and sphere intersection, with a ``hit`` mask for rays that miss).

Frames: origins and directions are in world coordinates; directions are unit length, so a
ray parameter ``t`` is a distance along the ray (world units). ``cos_to_axis`` converts it
to z-depth (distance along the camera's viewing axis): ``z = t * cos_to_axis``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from renderers.cameras import Intrinsics

__all__ = ["RayBounds", "Rays", "generate_rays", "ray_aabb_intersect", "ray_sphere_intersect"]


@dataclass
class Rays:
    """A flat bundle of R rays (world frame)."""

    origins: Float[Tensor, "R 3"]
    """Ray origins (world units)."""
    directions: Float[Tensor, "R 3"]
    """Unit ray directions."""
    cos_to_axis: Float[Tensor, " R"] | None = None
    """Cosine between each ray and its camera's viewing axis (t -> z-depth); None if unknown."""

    def __len__(self) -> int:
        return self.origins.shape[0]

    @property
    def device(self) -> torch.device:
        return self.origins.device

    def __getitem__(self, index) -> Rays:
        cos = None if self.cos_to_axis is None else self.cos_to_axis[index]
        return Rays(self.origins[index], self.directions[index], cos)

    def at(self, t: Float[Tensor, " R"]) -> Float[Tensor, "R 3"]:
        """Points ``origins + t * directions``."""
        return self.origins + t[:, None] * self.directions

    def to(self, *args, **kwargs) -> Rays:
        cos = None if self.cos_to_axis is None else self.cos_to_axis.to(*args, **kwargs)
        return replace(
            self,
            origins=self.origins.to(*args, **kwargs),
            directions=self.directions.to(*args, **kwargs),
            cos_to_axis=cos,
        )


@dataclass
class RayBounds:
    """Per-ray entry/exit distances; ``near == far`` where ``hit`` is False."""

    near: Float[Tensor, " R"]
    """Entry distance, clamped to >= ``min_near`` (the camera may sit inside the volume)."""
    far: Float[Tensor, " R"]
    """Exit distance."""
    hit: Bool[Tensor, " R"]
    """True where the ray meets the volume in front of ``min_near``."""


def generate_rays(
    c2w: Float[Tensor, "*B 4 4"], intrinsics: Intrinsics, opencv: bool = False
) -> Rays:
    """One ray through the centre of every pixel, row-major (``R = B * H * W``).

    Args:
        c2w: camera-to-world poses, OpenGL axes unless ``opencv``; ``(4, 4)`` or ``(B, 4, 4)``.
        intrinsics: pinhole intrinsics (floats, or ``(B,)`` tensors for per-camera values).
        opencv: the poses use OpenCV axes (looks down +Z, +Y down).

    Returns:
        Rays ordered as ``(B, H, W)`` flattened; pixel ``(v, u)`` of camera ``b`` is ray
        ``(b * H + v) * W + u``.
    """
    single = c2w.dim() == 2
    c2w = c2w[None] if single else c2w
    b = c2w.shape[0]
    dev, dt = c2w.device, c2w.dtype
    h, w = intrinsics.height, intrinsics.width
    v, u = torch.meshgrid(
        torch.arange(h, device=dev, dtype=dt) + 0.5,
        torch.arange(w, device=dev, dtype=dt) + 0.5,
        indexing="ij",
    )

    def per_cam(x):
        return torch.as_tensor(x, device=dev, dtype=dt).reshape(-1, 1, 1).expand(b, 1, 1)

    fx, fy, cx, cy = (
        per_cam(x) for x in (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy)
    )
    x = (u - cx) / fx
    y = (v - cy) / fy  # image y runs down
    if opencv:
        cam = torch.stack([x, y, torch.ones_like(x)], -1)
    else:
        cam = torch.stack([x, -y, -torch.ones_like(x)], -1)
    cam_norm = cam.norm(dim=-1)
    dirs = torch.einsum("bij,bhwj->bhwi", c2w[:, :3, :3], cam / cam_norm[..., None])
    origins = c2w[:, None, None, :3, 3].expand_as(dirs)
    return Rays(origins.reshape(-1, 3), dirs.reshape(-1, 3), (1.0 / cam_norm).reshape(-1))


def ray_aabb_intersect(
    origins: Float[Tensor, "R 3"],
    directions: Float[Tensor, "R 3"],
    aabb: Float[Tensor, 6] | tuple[float, ...],
    min_near: float = 0.0,
) -> RayBounds:
    """Slab test against the box ``aabb = (xmin, ymin, zmin, xmax, ymax, zmax)``."""
    aabb = torch.as_tensor(aabb, dtype=origins.dtype, device=origins.device)
    inv = 1.0 / torch.where(directions == 0, torch.full_like(directions, 1e-12), directions)
    t0 = (aabb[:3] - origins) * inv
    t1 = (aabb[3:] - origins) * inv
    near = torch.minimum(t0, t1).amax(-1).clamp_min(min_near)
    far = torch.maximum(t0, t1).amin(-1)
    hit = far > near
    near = torch.where(hit, near, torch.zeros_like(near))
    far = torch.where(hit, far, near)
    return RayBounds(near, far, hit)


def ray_sphere_intersect(
    origins: Float[Tensor, "R 3"],
    directions: Float[Tensor, "R 3"],
    center: Float[Tensor, 3] | tuple[float, float, float] = (0.0, 0.0, 0.0),
    radius: float = 1.0,
    min_near: float = 0.0,
) -> RayBounds:
    """Intersection with the ball of ``radius`` around ``center`` (unit directions)."""
    center = torch.as_tensor(center, dtype=origins.dtype, device=origins.device)
    oc = origins - center
    b = (oc * directions).sum(-1)
    c = (oc * oc).sum(-1) - radius**2
    disc = b * b - c
    sq = disc.clamp_min(0).sqrt()
    near = (-b - sq).clamp_min(min_near)
    far = -b + sq
    hit = (disc > 0) & (far > near)
    near = torch.where(hit, near, torch.zeros_like(near))
    far = torch.where(hit, far, near)
    return RayBounds(near, far, hit)
