"""Cameras: pinhole intrinsics, camera-to-world poses, OpenGL/OpenCV conversion, look-at and
random cameras on a sphere.

Conventions (used everywhere in :mod:`renderers`):

* Poses are **camera-to-world** 4x4 matrices ``c2w`` (columns: camera x, y, z axes and the
  camera centre in world coordinates; world units, e.g. metres).
* Default axes are **OpenGL**: the camera looks down its -Z axis, +Y is up and +X is right.
  OpenCV poses (looks down +Z, +Y down, +X right) are converted explicitly with
  :func:`opengl_to_opencv` / :func:`opencv_to_opengl`; the two differ by a 180 degree turn
  about the camera's X axis, so the conversion is its own inverse.
* Pixel ``(u, v)`` covers ``[u, u+1) x [v, v+1)``; ``u`` runs right, ``v`` runs down; pixel
  centres sit at ``u + 0.5``. ``cx, cy`` are in the same pixel units (``width/2`` is the centre).
* Spherical cameras: azimuth 0 and elevation 0 put the camera on the +Z side of the target;
  positive azimuth turns it towards +X, positive elevation raises it towards +Y (the same as
  :func:`renderers.preview.orbit_camera`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

__all__ = [
    "CameraBatch",
    "Intrinsics",
    "look_at",
    "opencv_to_opengl",
    "opengl_to_opencv",
    "orbit_pose",
    "project_points",
    "sample_cameras_on_sphere",
]

# diag(1, -1, -1, 1): flips the camera's Y and Z axes (OpenGL <-> OpenCV).
_FLIP_YZ = (1.0, -1.0, -1.0, 1.0)


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels.

    ``fx, fy, cx, cy`` are floats for one camera or tensors of shape ``(B,)`` for a batch of
    cameras sharing one image size (e.g. random field of view per camera).
    """

    fx: float | Float[Tensor, " B"]
    """Focal length along image x (pixels)."""
    fy: float | Float[Tensor, " B"]
    """Focal length along image y (pixels)."""
    cx: float | Float[Tensor, " B"]
    """Principal point x (pixels; ``width / 2`` is the image centre)."""
    cy: float | Float[Tensor, " B"]
    """Principal point y (pixels; ``height / 2`` is the image centre)."""
    width: int
    """Image width W in pixels."""
    height: int
    """Image height H in pixels."""

    @classmethod
    def from_fov(
        cls, fov_y_deg: float | Float[Tensor, " B"], width: int, height: int
    ) -> Intrinsics:
        """Square-pixel intrinsics from the vertical field of view (degrees), centred.

        Args:
            fov_y_deg: full vertical field of view in degrees (float or a ``(B,)`` tensor).
            width: image width in pixels.
            height: image height in pixels.
        """
        if isinstance(fov_y_deg, Tensor):
            focal = 0.5 * height / torch.tan(torch.deg2rad(fov_y_deg) / 2)
        else:
            if not 0.0 < fov_y_deg < 180.0:
                raise ValueError(f"fov_y_deg must be in (0, 180), got {fov_y_deg}")
            focal = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
        return cls(fx=focal, fy=focal, cx=width / 2, cy=height / 2, width=width, height=height)

    @property
    def fov_y_deg(self) -> float | Tensor:
        """Vertical field of view in degrees."""
        if isinstance(self.fy, Tensor):
            return torch.rad2deg(2 * torch.atan(0.5 * self.height / self.fy))
        return math.degrees(2 * math.atan(0.5 * self.height / self.fy))

    def matrix(self, device: torch.device | str | None = None) -> Float[Tensor, "*B 3 3"]:
        """The 3x3 matrix K (OpenCV form: x right, y down, z forward), batched if tensors."""
        fx, fy, cx, cy = (
            torch.as_tensor(v, dtype=torch.float32, device=device)
            for v in (self.fx, self.fy, self.cx, self.cy)
        )
        fx, fy, cx, cy = torch.broadcast_tensors(fx, fy, cx, cy)
        k = torch.zeros((*fx.shape, 3, 3), dtype=fx.dtype, device=fx.device)
        k[..., 0, 0], k[..., 1, 1], k[..., 0, 2], k[..., 1, 2], k[..., 2, 2] = fx, fy, cx, cy, 1.0
        return k

    def scaled(self, factor: float) -> Intrinsics:
        """Intrinsics for the image resized by ``factor`` (e.g. 0.5 halves each side)."""
        return Intrinsics(
            fx=self.fx * factor,
            fy=self.fy * factor,
            cx=self.cx * factor,
            cy=self.cy * factor,
            width=max(1, round(self.width * factor)),
            height=max(1, round(self.height * factor)),
        )


def _as_vec3(v: Tensor | Sequence[float], like: Tensor) -> Tensor:
    return torch.as_tensor(v, dtype=like.dtype, device=like.device).expand_as(like)


def look_at(
    eye: Float[Tensor, "... 3"],
    target: Float[Tensor, "... 3"] | Sequence[float] = (0.0, 0.0, 0.0),
    up: Float[Tensor, "... 3"] | Sequence[float] = (0.0, 1.0, 0.0),
) -> Float[Tensor, "... 4 4"]:
    """Camera-to-world pose at ``eye`` looking at ``target``, OpenGL axes.

    The camera's -Z points from ``eye`` to ``target``; +Y is as close to ``up`` as possible;
    +X = Y x Z points right. When the view direction is parallel to ``up`` another
    perpendicular is chosen (world +Z, or +X if that is parallel too), so the result is
    always a proper rotation.

    Args:
        eye: camera centres, any leading batch shape.
        target: points looked at (broadcast against ``eye``).
        up: world up direction (broadcast against ``eye``).

    Returns:
        ``(..., 4, 4)`` camera-to-world matrices with the dtype and device of ``eye``.
    """
    eye = torch.as_tensor(eye)
    if not eye.is_floating_point():
        eye = eye.float()
    target = _as_vec3(target, eye)
    up = _as_vec3(up, eye)
    z = eye - target
    z = z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    x = torch.linalg.cross(up, z, dim=-1)
    # Degenerate when looking along `up`: fall back to world +Z, then +X.
    for fallback in ((0.0, 0.0, 1.0), (1.0, 0.0, 0.0)):
        bad = x.norm(dim=-1, keepdim=True) < 1e-6
        if not bool(bad.any()):
            break
        x = torch.where(bad, torch.linalg.cross(_as_vec3(fallback, eye), z, dim=-1), x)
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    y = torch.linalg.cross(z, x, dim=-1)
    c2w = torch.zeros((*eye.shape[:-1], 4, 4), dtype=eye.dtype, device=eye.device)
    c2w[..., :3, 0], c2w[..., :3, 1], c2w[..., :3, 2], c2w[..., :3, 3] = x, y, z, eye
    c2w[..., 3, 3] = 1.0
    return c2w


def _flip_yz(c2w: Tensor) -> Tensor:
    flip = torch.tensor(_FLIP_YZ, dtype=c2w.dtype, device=c2w.device)
    return c2w * flip  # scales columns 1 and 2 (camera Y and Z axes); the centre is kept


def opengl_to_opencv(c2w: Float[Tensor, "... 4 4"]) -> Float[Tensor, "... 4 4"]:
    """Camera-to-world pose with OpenGL camera axes -> the same camera with OpenCV axes."""
    return _flip_yz(c2w)


def opencv_to_opengl(c2w: Float[Tensor, "... 4 4"]) -> Float[Tensor, "... 4 4"]:
    """Camera-to-world pose with OpenCV camera axes -> the same camera with OpenGL axes."""
    return _flip_yz(c2w)


def orbit_pose(
    azimuth_deg: float | Float[Tensor, "*B"],
    elevation_deg: float | Float[Tensor, "*B"],
    distance: float | Float[Tensor, "*B"],
    target: Float[Tensor, 3] | Sequence[float] = (0.0, 0.0, 0.0),
    up: Sequence[float] = (0.0, 1.0, 0.0),
) -> Float[Tensor, "*B 4 4"]:
    """OpenGL camera-to-world pose on a sphere around ``target``, looking at it (+Y up).

    Azimuth 0, elevation 0 is on the +Z side; positive azimuth turns towards +X, positive
    elevation raises towards +Y. Angles in degrees, ``distance`` in world units.
    """
    az, el, dist = torch.broadcast_tensors(
        *(
            torch.as_tensor(v, dtype=torch.get_default_dtype()) if not isinstance(v, Tensor) else v
            for v in (azimuth_deg, elevation_deg, distance)
        )
    )
    az, el = torch.deg2rad(az), torch.deg2rad(el)
    direction = torch.stack([el.cos() * az.sin(), el.sin(), el.cos() * az.cos()], dim=-1)
    target_t = _as_vec3(target, direction)
    return look_at(target_t + dist[..., None] * direction, target_t, up)


def project_points(
    points: Float[Tensor, "*B N 3"],
    c2w: Float[Tensor, "*B 4 4"],
    intrinsics: Intrinsics,
    min_depth: float | None = None,
) -> tuple[Float[Tensor, "*B N 2"], Float[Tensor, "*B N"]]:
    """World points -> pixel coordinates and view depth (OpenGL pose, pixel conventions above).

    ``u = cx + fx * x / z`` and ``v = cy - fy * y / z`` with camera-frame ``(x, y, -z)``, i.e.
    ``z`` is the positive distance along the camera's viewing axis (-Z); the exact inverse of
    :func:`renderers.rays.generate_rays`. Differentiable in ``points``, ``c2w`` and tensor
    intrinsics.

    Args:
        points: world points; leading dims broadcast against those of ``c2w``.
        c2w: camera-to-world poses, OpenGL axes.
        intrinsics: pinhole intrinsics (floats, or ``(B,)`` tensors matching ``c2w``).
        min_depth: if given, divide by ``max(z, min_depth)`` so points behind the camera stay
            finite (callers drop them); ``z`` itself is returned unclamped.

    Returns:
        ``(pixels, z)``: pixel coordinates ``(u, v)`` and view depth (world units).
    """
    w2c = torch.linalg.inv(c2w)
    cam = points @ w2c[..., :3, :3].transpose(-1, -2) + w2c[..., None, :3, 3]
    z = -cam[..., 2]
    zs = z if min_depth is None else z.clamp_min(min_depth)

    def per_cam(v: float | Tensor) -> float | Tensor:
        return v[..., None] if isinstance(v, Tensor) else v

    u = per_cam(intrinsics.cx) + per_cam(intrinsics.fx) * cam[..., 0] / zs
    v = per_cam(intrinsics.cy) - per_cam(intrinsics.fy) * cam[..., 1] / zs
    return torch.stack([u, v], -1), z


@dataclass
class CameraBatch:
    """Random cameras from :func:`sample_cameras_on_sphere`."""

    c2w: Float[Tensor, "B 4 4"]
    """Camera-to-world poses, OpenGL axes."""
    intrinsics: Intrinsics
    """Per-camera intrinsics (``fx..cy`` are ``(B,)`` tensors)."""
    elevation_deg: Float[Tensor, " B"]
    """Elevation above the target's horizontal plane (degrees)."""
    azimuth_deg: Float[Tensor, " B"]
    """Azimuth around +Y from +Z towards +X (degrees)."""
    distance: Float[Tensor, " B"]
    """Distance from the target (world units)."""
    fov_y_deg: Float[Tensor, " B"]
    """Vertical field of view (degrees)."""


def _uniform(n: int, lo_hi: tuple[float, float], gen, device) -> Tensor:
    lo, hi = lo_hi
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=device)


def sample_cameras_on_sphere(
    n: int,
    width: int,
    height: int,
    elevation_range_deg: tuple[float, float] = (-10.0, 45.0),
    azimuth_range_deg: tuple[float, float] = (-180.0, 180.0),
    distance_range: tuple[float, float] = (1.0, 1.5),
    fov_range_deg: tuple[float, float] = (40.0, 70.0),
    target: Sequence[float] = (0.0, 0.0, 0.0),
    uniform_sphere: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> CameraBatch:
    """``n`` random cameras looking at ``target`` (defaults: threestudio's VSD ranges).

    Args:
        n: number of cameras B.
        width, height: image size in pixels.
        elevation_range_deg: elevation range (degrees, in [-90, 90]).
        azimuth_range_deg: azimuth range (degrees).
        distance_range: distance range (world units).
        fov_range_deg: vertical field of view range (degrees).
        target: the point every camera looks at.
        uniform_sphere: if True, sample elevation so that directions are uniform in area on
            the sphere band (``sin(elevation)`` uniform) instead of uniform in angle.
        generator: optional torch generator (on ``device``) for reproducibility.
        device: device of the returned tensors.
    """
    for name, (lo, hi) in {
        "elevation_range_deg": elevation_range_deg,
        "distance_range": distance_range,
        "fov_range_deg": fov_range_deg,
    }.items():
        if lo > hi:
            raise ValueError(f"{name}: low {lo} > high {hi}")
    if not -90.0 <= elevation_range_deg[0] <= elevation_range_deg[1] <= 90.0:
        raise ValueError(f"elevation_range_deg must lie in [-90, 90], got {elevation_range_deg}")
    if uniform_sphere:
        s = _uniform(
            n, tuple(math.sin(math.radians(e)) for e in elevation_range_deg), generator, device
        )
        elevation = torch.rad2deg(torch.asin(s.clamp(-1, 1)))
    else:
        elevation = _uniform(n, elevation_range_deg, generator, device)
    azimuth = _uniform(n, azimuth_range_deg, generator, device)
    distance = _uniform(n, distance_range, generator, device)
    fov = _uniform(n, fov_range_deg, generator, device)
    target_t = torch.as_tensor(target, dtype=elevation.dtype, device=elevation.device)
    c2w = orbit_pose(azimuth, elevation, distance, target_t)
    return CameraBatch(
        c2w=c2w,
        intrinsics=Intrinsics.from_fov(fov, width, height),
        elevation_deg=elevation,
        azimuth_deg=azimuth,
        distance=distance,
        fov_y_deg=fov,
    )
