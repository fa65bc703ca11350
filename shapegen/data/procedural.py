"""A procedural shape set: parametric furniture and tableware as analytic SDFs.

Eleven classes: chairs (and stools), tables, shelves, lamps, mugs, sofas, beds, benches, vases,
bowls and desks. The first five (:data:`DEMO_CLASSES`) are what the shipped demo models were trained on;
their parameters are drawn exactly as when those models were made.

Every shape is a union of exact primitive SDFs (:mod:`shapegen.data.procedural_parts`) whose
parameters are drawn per class (:mod:`shapegen.data.procedural_classes`): proportions, part
counts (legs, spokes, shelves, slats, rails), optional parts (backs, arms, aprons, lower
shelves, back panels, rim lips) and part styles (round or square tops and legs, pedestal,
trestle or sled supports, handle shapes, shade shapes). The data set is made by the project
itself, so it can be shipped, regenerated bit for bit, and used to train the demo models.
:mod:`shapegen.data.captions` describes each shape in words from its parameters.

Conventions:
    * Frame: shapegen's (glTF's): +Y up, +Z front, right-handed. A shape is normalised by
      its analytic bounding box: the box centre moves to the origin and the longest side is
      scaled to span ``[-extent, extent]`` (0.9 by default), so every shape lies in
      ``[-1, 1]^3`` with room for a marching-cubes grid on ``[-1, 1]^3`` to close it.
    * Seeds: shape ``index`` of class ``cls`` in a set with seed ``seed`` draws its parameters
      from ``numpy.random.default_rng(shape_seed(seed, cls, index))``; the shape seed is a hash
      of the three, so one shape can be regenerated alone, in any order, on any machine.
    * Meshes: :func:`to_mesh` runs marching cubes on ``[-1, 1]^3``. The surface never reaches
      the grid's border, so the mesh is closed (watertight) by construction, and parts are at
      least 0.07 thick after normalisation (2.2 cells at the default resolution 64), so thin
      parts do not tear.

Example:
    >>> shape = generate("chair", 7, seed=0)
    >>> shape.params["legs"], shape.sdf(torch.zeros(1, 3))  # doctest: +SKIP
    >>> mesh = to_mesh(shape, resolution=64)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from shapegen.data.procedural_classes import GENERATORS, Assembly, Params
from shapegen.data.procedural_furniture import RICH_GENERATORS
from shapegen.data.procedural_parts import FAR, Part, bounds_of, smooth_min, union_parts
from shapegen.errors import ShapegenError
from shapegen.geometry.mesh import Mesh
from shapegen.geometry.primitives import SDF

CLASSES: tuple[str, ...] = tuple(GENERATORS)
"""The object classes, in the order the data set lists them."""

DEMO_CLASSES: tuple[str, ...] = ("chair", "table", "shelf", "lamp", "mug")
"""The first five classes: what the shipped demo models were trained and evaluated on."""

VARIANTS: tuple[str, ...] = ("classic", "rich")
"""Generator variants: ``classic`` (every class's own generator, what the demo models saw) and
``rich`` (chairs, tables and mugs drawn from :mod:`shapegen.data.procedural_furniture`'s families,
which include the classic one; the other classes are unchanged)."""


def _generator(cls: str, variant: str):
    if variant not in VARIANTS:
        raise ShapegenError(f"unknown procedural variant '{variant}'; use {' or '.join(VARIANTS)}")
    return RICH_GENERATORS[cls] if variant == "rich" and cls in RICH_GENERATORS else GENERATORS[cls]

DEFAULT_EXTENT = 0.9
"""Half side of the cube the longest side of every shape is scaled to."""

FAST_BAND = 0.1
"""Truncation distance of :attr:`ProceduralShape.fast_sdf` in normalised units (above the
half-diagonal 0.054 of a cell of the coarsest sparse-extraction level, so culling still works)."""

DEFAULT_RESOLUTION = 64
"""Marching-cubes samples per axis used by :func:`to_mesh` by default."""

MAX_DILATE = 0.08
"""Largest growth :func:`to_mesh` meshes: the level set ``sdf = d`` must lie inside :data:`FAST_BAND`
less the parts' blend radius, where ``fast_sdf`` equals the true distance."""


@dataclass(frozen=True)
class ProceduralShape:
    """One procedural shape: where it comes from, its parameters and its analytic SDF.

    Attributes:
        cls: object class, one of :data:`CLASSES`.
        index: index of the shape within its class.
        seed: the shape's own seed (:func:`shape_seed` of the set seed, class and index).
        params: the drawn parameters (JSON-serialisable, metres and degrees before
            normalisation); :func:`from_params` rebuilds the same shape from them.
        sdf: signed distance in the normalised frame, ``N 3`` points to ``N`` values,
            negative inside; exact outside the object, a 1-Lipschitz bound inside.
        fast_sdf: ``sdf`` clamped to ``[-FAST_BAND, FAST_BAND]``, each part evaluated only
            near it (several times faster; what :func:`to_mesh` extracts). Equal to ``sdf``
            wherever ``|sdf| < FAST_BAND - smooth``, same sign everywhere; still 1-Lipschitz
            and a lower bound of the distance.
        bbox: ``(min corner, max corner)`` of the object in the normalised frame (analytic;
            a smooth blend may bulge past it by at most ``smooth / 4``).
        center: centre of the object's box in metres (subtracted before scaling).
        scale: normalised units per metre.
    """

    cls: str
    index: int
    seed: int
    params: dict[str, Any]
    sdf: SDF
    fast_sdf: SDF
    bbox: tuple[tuple[float, float, float], tuple[float, float, float]]
    center: tuple[float, float, float]
    scale: float
    assembly: Assembly = field(repr=False, compare=False)
    """The parts in metres (for part-wise grid evaluation, see :func:`grid_values`)."""

    @property
    def name(self) -> str:
        """File stem of the shape: ``<class>_<index>`` with the index zero-padded to 5 digits."""
        return f"{self.cls}_{self.index:05d}"


def check_class(cls: str) -> str:
    """Return ``cls`` if it is a known class.

    Raises:
        ShapegenError: naming the known classes otherwise.
    """
    if cls not in GENERATORS:
        raise ShapegenError(f"unknown procedural class '{cls}'; choose from {', '.join(CLASSES)}")
    return cls


def shape_seed(seed: int, cls: str, index: int) -> int:
    """The seed of one shape: a stable 63-bit hash of ``(seed, cls, index)`` (not Python's ``hash``)."""
    digest = hashlib.sha256(f"shapegen-procedural/{int(seed)}/{cls}/{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _normalised(assembly: Assembly, extent: float) -> tuple[SDF, SDF, tuple, tuple, float]:
    """The assembly's exact and banded SDFs in the normalised frame, its box there, centre and scale."""
    if not assembly.solids:
        raise ShapegenError("a procedural shape has no parts")
    lo, hi = bounds_of(assembly.solids)
    center = (lo + hi) / 2
    scale = float(extent / ((hi - lo).max() / 2))

    def normalise(solid: SDF, holes: SDF | None, band: float) -> SDF:
        def sdf(p: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
            # Uniform scaling keeps an SDF an SDF: d_norm(p) = s * d_world(p / s + c).
            q = p / scale + torch.as_tensor(center, dtype=p.dtype, device=p.device)
            d = solid(q)
            if holes is not None:  # subtraction, max(a, -b): a 1-Lipschitz bound
                d = torch.maximum(d, -holes(q))
            return (d * scale).clamp(-band, band)

        return sdf

    def holes(band: float) -> SDF | None:
        return union_parts(assembly.holes, band=band) if assembly.holes else None

    exact = normalise(union_parts(assembly.solids, assembly.smooth), holes(math.inf), math.inf)
    w = FAST_BAND / scale
    banded = normalise(union_parts(assembly.solids, assembly.smooth, band=w), holes(w), FAST_BAND)
    bbox = (tuple(float(x) for x in (lo - center) * scale), tuple(float(x) for x in (hi - center) * scale))
    return exact, banded, bbox, tuple(float(x) for x in center), scale


def from_params(cls: str, params: dict[str, Any], *, index: int = -1, seed: int = -1, extent: float = DEFAULT_EXTENT) -> ProceduralShape:
    """Rebuild a shape from recorded parameters (e.g. the ``params`` column of ``index.csv``).

    Raises:
        ShapegenError: for an unknown class or parameters that do not describe a shape of it.
    """
    check_class(cls)
    # A rich shape records its family; the classic generators draw no such parameter.
    variant = "rich" if "family" in params and cls in RICH_GENERATORS else "classic"
    try:
        assembly = _generator(cls, variant)(Params(values=params))
    except KeyError as exc:
        raise ShapegenError(f"the parameters do not describe a {cls}: {exc.args[0]}") from exc
    sdf, fast, bbox, center, scale = _normalised(assembly, extent)
    return ProceduralShape(cls, index, seed, dict(params), sdf, fast, bbox, center, scale, assembly)


def generate(cls: str, index: int, seed: int = 0, *, extent: float = DEFAULT_EXTENT, variant: str = "classic") -> ProceduralShape:
    """Draw shape ``index`` of class ``cls`` of the set with seed ``seed``.

    Cheap (no field is evaluated): drawing parameters and composing closures takes well
    under a millisecond.

    Args:
        cls: object class, one of :data:`CLASSES`.
        index: index of the shape within its class (>= 0).
        seed: seed of the whole set.
        extent: half side of the cube the longest side is scaled to (< 1 leaves a margin).
        variant: one of :data:`VARIANTS`; ``rich`` draws chairs, tables and mugs from more
            families (the same shape seed, other parameters).

    Returns:
        The shape; the same arguments always give the same parameters and SDF.

    Raises:
        ShapegenError: for an unknown class or variant, a negative index or an extent outside (0, 1).
    """
    check_class(cls)
    if index < 0:
        raise ShapegenError(f"shape index must be >= 0, got {index}")
    if not 0 < extent < 1:
        raise ShapegenError(f"extent must lie in (0, 1) so shapes fit in [-1, 1]^3 with a margin, got {extent}")
    s = shape_seed(seed, cls, index)
    gen = _generator(cls, variant)
    P = Params(rng=np.random.default_rng(s))
    assembly = gen(P)
    sdf, fast, bbox, center, scale = _normalised(assembly, extent)
    return ProceduralShape(cls, int(index), s, P.values, sdf, fast, bbox, center, scale, assembly)


def grid_values(shape: ProceduralShape, resolution: int = DEFAULT_RESOLUTION) -> Float[Tensor, "G G G"]:
    """``shape.fast_sdf`` on the ``G^3`` grid spanning ``[-1, 1]^3`` (corners included), part by part.

    Each part is evaluated only on the sub-block of grid samples inside its box grown by
    :data:`FAST_BAND`; every other sample keeps the band value (the part is at least that far).
    For objects of many thin parts this evaluates a few percent of ``G^3`` points per part and
    needs no per-point culling. Layout as :func:`shapegen.geometry.extract.evaluate_grid`:
    ``values[i, j, k]`` is the field at ``-1 + 2 (i, j, k) / (G - 1)``.
    """
    g = int(resolution)
    if g < 2:
        raise ShapegenError(f"resolution must be at least 2, got {resolution}")
    axis = torch.linspace(-1.0, 1.0, g, dtype=torch.float64).float()
    values = torch.full((g, g, g), FAR)
    s, c = shape.scale, np.asarray(shape.center)
    k = shape.assembly.smooth * s  # the smooth min commutes with scaling
    for part in shape.assembly.solids:
        block, pts = _sub_block(values, axis, part, s, c)
        if block is not None:
            e = part.sdf(pts / s + torch.as_tensor(c, dtype=torch.float32)) * s
            block.copy_(smooth_min(block, e.reshape(block.shape), k))
    # Holes: the same sub-block evaluation; outside a hole's grown box, subtracting it would
    # change only values below -FAST_BAND, which the clamp below removes anyway.
    for part in shape.assembly.holes:
        block, pts = _sub_block(values, axis, part, s, c)
        if block is not None:
            e = part.sdf(pts / s + torch.as_tensor(c, dtype=torch.float32)) * s
            block.copy_(torch.maximum(block, -e.reshape(block.shape)))
    return values.clamp_(-FAST_BAND, FAST_BAND)


def _sub_block(values: Tensor, axis: Tensor, part: Part, s: float, c: np.ndarray) -> tuple[Tensor | None, Tensor | None]:
    """The view of ``values`` inside ``part``'s box grown by the band, and its sample points."""
    g = axis.shape[0]
    lo = ((np.asarray(part.lo) - c) * s - FAST_BAND + 1) * (g - 1) / 2
    hi = ((np.asarray(part.hi) - c) * s + FAST_BAND + 1) * (g - 1) / 2
    i0, i1 = np.maximum(np.ceil(lo), 0).astype(int), np.minimum(np.floor(hi), g - 1).astype(int)
    if (i1 < i0).any():
        return None, None
    sub = [axis[i0[a] : i1[a] + 1] for a in range(3)]
    pts = torch.stack(torch.meshgrid(*sub, indexing="ij"), -1).reshape(-1, 3)
    return values[i0[0] : i1[0] + 1, i0[1] : i1[1] + 1, i0[2] : i1[2] + 1], pts
    return values


def to_mesh(shape: ProceduralShape, resolution: int = DEFAULT_RESOLUTION, *, method: Literal["grid", "sparse"] = "grid",
            dilate: float = 0.0) -> Mesh:
    """Extract the shape's surface by marching cubes on ``[-1, 1]^3`` (closed by construction).

    Args:
        shape: a generated shape.
        resolution: samples per axis (cell size ``2 / (resolution - 1)``).
        method: ``"grid"``: :func:`grid_values` then one marching-cubes pass (fastest up to
            about 128^3); ``"sparse"``: coarse-to-fine :func:`~shapegen.geometry.extract.extract_mesh`
            on ``fast_sdf`` (less memory at high resolutions). Both give the same surface.
        dilate: extract the level set ``sdf = dilate`` instead: the shape grown by that distance
            (below :data:`MAX_DILATE`, where ``fast_sdf`` is still exact).

    Returns:
        A watertight mesh in the normalised frame, faces counter-clockwise seen from outside.
    """
    from shapegen.geometry.extract import extract_mesh, marching_cubes

    if not 0 <= dilate <= MAX_DILATE:
        raise ShapegenError(f"dilate must lie in [0, {MAX_DILATE}] (the fast field is exact only near the surface), got {dilate}")
    box = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))
    if method == "grid":
        return marching_cubes(grid_values(shape, resolution) - dilate, box)
    if method == "sparse":
        field = shape.fast_sdf if dilate == 0 else (lambda p: shape.fast_sdf(p) - dilate)
        return extract_mesh(field, resolution, box, method="sparse")
    raise ShapegenError(f"unknown meshing method '{method}'; use 'grid' or 'sparse'")


def generate_many(classes: Sequence[str], per_class: int, seed: int = 0) -> list[ProceduralShape]:
    """Shapes ``0 .. per_class - 1`` of every class in ``classes`` (class-major order)."""
    return [generate(c, i, seed) for c in classes for i in range(per_class)]


#: Preview colour per class (sRGB), so a sheet reads at a glance.
CLASS_COLORS: dict[str, tuple[float, float, float]] = {
    "chair": (0.78, 0.52, 0.3),
    "table": (0.62, 0.45, 0.3),
    "shelf": (0.55, 0.62, 0.72),
    "lamp": (0.9, 0.78, 0.42),
    "mug": (0.55, 0.75, 0.6),
    "sofa": (0.5, 0.58, 0.78),
    "bed": (0.72, 0.6, 0.78),
    "bench": (0.7, 0.58, 0.42),
    "vase": (0.85, 0.55, 0.5),
    "bowl": (0.5, 0.72, 0.8),
    "desk": (0.6, 0.5, 0.4),
}


def preview_sheet(
    rows: Sequence[Sequence[tuple[str, Mesh | np.ndarray]]],
    tile: int = 160,
    *,
    azimuth_deg: float = 35.0,
    elevation_deg: float = 20.0,
    captions: Sequence[Sequence[str]] | None = None,
) -> np.ndarray:
    """Render a sheet of previews: one row per list in ``rows``, each a list of ``(label, mesh)``.

    Meshes are rendered in the normalised frame from a fixed camera (azimuth from +Z towards
    +X), so sizes and orientations compare across tiles, in their class's colour
    (:data:`CLASS_COLORS`, from the label's first word); labels are drawn in each tile's corner.
    An ``H W 3`` uint8 image in place of a mesh (e.g. an input sketch) is resized into its tile.

    Args:
        rows: the tiles, row by row.
        tile: side of one rendered tile in pixels.
        azimuth_deg: camera azimuth.
        elevation_deg: camera elevation.
        captions: optional text under each tile (same layout as ``rows``), wrapped to the tile's
            width; every row gets the height of its longest caption.

    Returns:
        ``H W 3`` uint8 image, ``tile`` pixels per column.
    """
    from renderers.preview import orbit_camera, render_sheet

    def color(label: str, item: Mesh | np.ndarray) -> tuple[float, float, float] | None:
        if isinstance(item, np.ndarray):
            return None
        cls = label.replace(":", " ").replace("_", " ").split()[0] if label.strip() else ""
        return CLASS_COLORS.get(cls, (0.8, 0.8, 0.8))

    # A fixed distance that fits the [-1, 1]^3 cube's bounding sphere, so tiles share a scale.
    distance = 1.05 * 3**0.5 / np.sin(np.radians(40.0) / 2)
    c2w = orbit_camera(torch.zeros(3), distance, azimuth_deg, elevation_deg)
    return render_sheet([[item for _, item in row] for row in rows], tile, views=[c2w], fov_deg=40.0,
                        colors=[[color(label, item) for label, item in row] for row in rows],
                        labels=[[label for label, _ in row] for row in rows], captions=captions)
