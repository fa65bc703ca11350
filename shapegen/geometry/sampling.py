"""Point sampling on, near and around meshes, reproducible through ``torch.Generator``.

Surface samples are area-weighted: a face is drawn with probability proportional to its area,
then a point uniformly inside it with the square-root barycentric map (Osada et al. 2002,
"Shape distributions", Eq. 1: ``p = (1 - sqrt(r1)) a + sqrt(r1) (1 - r2) b + sqrt(r1) r2 c``).
Near-surface samples add isotropic Gaussian noise to surface samples, as in DeepSDF and
3DShape2VecSet. All sampling happens on the mesh's device; a generator, if given, must live
on that device too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from shapegen.errors import ShapegenError
from shapegen.geometry.mesh import Mesh


@dataclass
class SurfaceSamples:
    """Points on a mesh surface.

    Attributes:
        points: ``N 3`` positions.
        normals: ``N 3`` unit normals of the faces they lie on (right-hand rule on the winding).
        faces: ``N`` index of the face each point lies on.
    """

    points: Float[Tensor, "N 3"]
    normals: Float[Tensor, "N 3"]
    faces: Int[Tensor, " N"]


@dataclass
class SDFSamples:
    """Query points with their signed distances (negative inside).

    Attributes:
        points: ``N 3`` positions.
        sdf: ``N`` signed distances, or None when not requested.
    """

    points: Float[Tensor, "N 3"]
    sdf: Float[Tensor, " N"] | None = None


def sample_surface(mesh: Mesh, num_points: int, *, generator: torch.Generator | None = None) -> SurfaceSamples:
    """Area-weighted uniform samples on the surface, with face normals.

    Args:
        mesh: the surface (degenerate faces are never drawn: their area is zero).
        num_points: number of samples N.
        generator: random source on the mesh's device, for reproducibility.

    Returns:
        Points, unit normals and face indices.
    """
    if mesh.num_faces == 0:
        raise ShapegenError("cannot sample the surface of a mesh without faces")
    tri = mesh.vertices[mesh.faces]  # F 3 3
    cross = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    double_area = cross.norm(dim=-1)
    if not bool(double_area.sum() > 0):
        raise ShapegenError("cannot sample the surface of a mesh whose faces all have zero area")
    face = torch.multinomial(double_area.double(), num_points, replacement=True, generator=generator)
    r = torch.rand(num_points, 2, generator=generator, device=mesh.device, dtype=mesh.vertices.dtype)
    s1 = r[:, :1].sqrt()
    # Osada et al. Eq. 1.
    a, b, c = tri[face, 0], tri[face, 1], tri[face, 2]
    points = (1 - s1) * a + s1 * (1 - r[:, 1:]) * b + s1 * r[:, 1:] * c
    normals = cross[face] / double_area[face, None]
    return SurfaceSamples(points, normals, face)


def sample_near_surface(
    mesh: Mesh,
    num_points: int,
    sigmas: float | Sequence[float] = (0.01,),
    *,
    generator: torch.Generator | None = None,
) -> Float[Tensor, "N 3"]:
    """Surface samples displaced by isotropic Gaussian noise.

    With several ``sigmas`` the points are split as evenly as possible between them (the first
    ones get the remainder), in the order given.

    Args:
        mesh: the surface.
        num_points: total number of samples N.
        sigmas: standard deviation(s) of the noise, in mesh units.
        generator: random source on the mesh's device.
    """
    sigmas = [float(sigmas)] if isinstance(sigmas, (int, float)) else [float(s) for s in sigmas]
    if not sigmas or min(sigmas) < 0:
        raise ShapegenError(f"near-surface sigmas must be a non-empty list of non-negative numbers, got {sigmas}")
    k = len(sigmas)
    counts = [num_points // k + (1 if i < num_points % k else 0) for i in range(k)]
    base = sample_surface(mesh, num_points, generator=generator).points
    sigma = torch.cat([torch.full((n,), s, dtype=base.dtype, device=base.device) for n, s in zip(counts, sigmas)])
    noise = torch.randn(num_points, 3, generator=generator, device=base.device, dtype=base.dtype)
    return base + noise * sigma[:, None]


def sample_uniform(
    num_points: int,
    bounds: Float[Tensor, "2 3"] | Sequence[Sequence[float]] = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)),
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Float[Tensor, "N 3"]:
    """Uniform samples in the axis-aligned box ``bounds = [min, max]`` (default [-1, 1]^3)."""
    b = torch.as_tensor(bounds, dtype=torch.float32, device=device)
    if b.shape != (2, 3) or not bool((b[1] >= b[0]).all()):
        raise ShapegenError(f"bounds must be [[xmin, ymin, zmin], [xmax, ymax, zmax]] with max >= min, got {b.tolist()}")
    u = torch.rand(num_points, 3, generator=generator, device=b.device)
    return b[0] + u * (b[1] - b[0])


def sample_sdf(
    mesh: Mesh,
    num_surface: int,
    num_uniform: int,
    sigmas: float | Sequence[float] = (0.01,),
    *,
    bounds: Float[Tensor, "2 3"] | Sequence[Sequence[float]] = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)),
    with_sdf: bool = True,
    backend: str = "auto",
    generator: torch.Generator | None = None,
) -> SDFSamples:
    """Near-surface plus uniform samples, optionally with signed distances (training data).

    Args:
        mesh: the surface; its SDF sign comes from the winding number (see
            :mod:`shapegen.geometry.sdf`).
        num_surface: near-surface samples (Gaussian noise at ``sigmas``).
        num_uniform: uniform samples in ``bounds``.
        sigmas: near-surface noise levels.
        bounds: box for the uniform samples.
        with_sdf: compute signed distances.
        backend: signed-distance backend (``auto``, ``torch``, ``warp``).
        generator: random source on the mesh's device.

    Returns:
        The near-surface points first, then the uniform ones, with their SDF.
    """
    near = sample_near_surface(mesh, num_surface, sigmas, generator=generator)
    uni = sample_uniform(num_uniform, bounds, generator=generator, device=mesh.device)
    points = torch.cat([near, uni])
    sdf = None
    if with_sdf:
        from shapegen.geometry.sdf import signed_distance

        sdf = signed_distance(points, mesh, backend=backend)
    return SDFSamples(points, sdf)
