"""Sketches for LAS-Diffusion: synthetic line drawings of meshes from the LAS views, and user sketches.

Views (LAS, Zheng et al. 2023, arXiv 2305.04461): a pinhole camera at distance 2.5 from the
origin looking at it, +Y up, vertical field of view 60 degrees, elevation 20 degrees and one of
five canonical azimuths 0, 45, 90, 135, 180 degrees (view index 0..4). Azimuth 0 looks from +Z,
positive azimuth turns towards +X (:func:`renderers.cameras.orbit_pose`). Shapes live in the
cube [-1, 1]^3 (prepared meshes fill [-0.8, 0.8]).

Sketch tensors are ``H W`` float32 *ink* maps: 1 on a stroke, 0 on paper. Files are written
black on white (the usual look of a sketch); :func:`load_sketch` accepts either polarity.

Three synthetic styles, all at the resolution asked for:

* ``contour``: silhouette, depth-discontinuity and crease lines of a z-buffer render
  (:func:`renderers.preview.rasterize`): a pixel is ink where a 4-neighbour belongs to the
  background while it does not, where the depth jumps by more than ``depth_jump`` (relative),
  or where the interpolated normals turn by more than ``crease_deg``.
* ``canny``: the LAS recipe without OpenCV: the shaded headlight render of
  :func:`renderers.preview.render_mesh` (grey), Gaussian blur, Sobel gradients, non-maximum
  suppression and hysteresis thresholds (20/180 on 0..255 grey levels after normalising the
  gradient like OpenCV's L1 Sobel), then a 3x3 dilation; pure torch.
* ``hand``: what a person draws (:func:`hand_sketch`): the contour lines from a slightly wrong
  view (azimuth and elevation off by up to 20 and 10 degrees, field of view 40..75 degrees at the
  distance that keeps the object's size), some interior lines left out, strokes that wobble,
  break, are drawn twice a little apart and vary in thickness, and a few hatched shadows.
  Deterministic from its ``seed``.

The projection used everywhere (:func:`view_projection`) maps world points to pixel
coordinates with ``u`` right and ``v`` down, pixel centres at ``+0.5``, the same as the renderer,
so voxel centres of a shape land on its own sketch's silhouette (tested).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from renderers.cameras import Intrinsics, opengl_to_opencv, orbit_pose
from renderers.preview import rasterize, render_mesh
from shapegen.errors import ShapegenError
from shapegen.geometry.mesh import Mesh

__all__ = [
    "LAS_AZIMUTHS",
    "LAS_DISTANCE",
    "LAS_ELEVATION",
    "LAS_FOV",
    "SKETCH_STYLES",
    "SketchStyle",
    "binarize_sketch",
    "hand_sketch",
    "load_sketch",
    "render_sketch",
    "save_sketch",
    "view_c2w",
    "view_projection",
]

LAS_DISTANCE = 2.5
"""Camera distance from the origin (world units)."""
LAS_FOV = 60.0
"""Vertical field of view (degrees)."""
LAS_ELEVATION = 20.0
"""Elevation of every canonical view (degrees)."""
LAS_AZIMUTHS = (0.0, 45.0, 90.0, 135.0, 180.0)
"""Canonical azimuths (degrees); the view index selects one."""

SketchStyle = Literal["contour", "canny", "hand"]

SKETCH_STYLES: tuple[str, ...] = ("contour", "canny", "hand")
"""Every synthetic sketch style, in the order tables list them."""

#: Smallest and largest side (pixels) of a user sketch; others are refused.
MIN_SKETCH_SIDE = 32
MAX_SKETCH_SIDE = 4096
#: Largest accepted aspect ratio (long side / short side).
MAX_ASPECT = 4.0
#: Fewest ink pixels (after resizing) for a sketch not to count as empty.
MIN_INK_PIXELS = 8


def view_c2w(azimuth_deg: float, elevation_deg: float = LAS_ELEVATION, distance: float = LAS_DISTANCE) -> Float[Tensor, "4 4"]:
    """OpenGL camera-to-world pose of a LAS view looking at the origin."""
    return orbit_pose(float(azimuth_deg), float(elevation_deg), float(distance)).float()


def view_projection(
    azimuth_deg: float | Float[Tensor, " B"],
    size: int,
    elevation_deg: float | Float[Tensor, " B"] = LAS_ELEVATION,
    distance: float = LAS_DISTANCE,
    fov_deg: float = LAS_FOV,
) -> Float[Tensor, "*B 3 4"]:
    """The 3x4 matrix ``P = K [R | t]`` (OpenCV camera axes) taking world points to pixels.

    ``(u, v, w) = P @ (x, y, z, 1)``; the pixel is ``(u / w, v / w)`` with ``u`` right, ``v`` down,
    pixel centres at ``+0.5``, in a ``size x size`` image; ``w`` is the depth in front of the camera.
    """
    c2w = orbit_pose(
        torch.as_tensor(azimuth_deg, dtype=torch.float32),
        torch.as_tensor(elevation_deg, dtype=torch.float32),
        torch.as_tensor(float(distance)),
    ).float()
    w2c = torch.linalg.inv(opengl_to_opencv(c2w))
    k = Intrinsics.from_fov(fov_deg, size, size).matrix()
    return k @ w2c[..., :3, :]


def project(points: Float[Tensor, "N 3"], proj: Float[Tensor, "3 4"]) -> tuple[Float[Tensor, "N 2"], Float[Tensor, " N"]]:
    """Pixel coordinates (u right, v down) and depth of world points under ``proj``."""
    uvw = points @ proj[:, :3].T + proj[:, 3]
    depth = uvw[:, 2]
    return uvw[:, :2] / depth.clamp_min(1e-8)[:, None], depth


# ------------------------------------------------------------------------ synthetic sketches
@dataclass
class GBuffer:
    """Per-pixel results of :func:`gbuffer`."""

    mask: Tensor
    """``H W`` bool, covered by the mesh."""
    depth: Tensor
    """``H W`` depth along the view axis (0 on the background)."""
    normal: Tensor
    """``H W 3`` unit world-space normals (smooth), zeros on the background."""


def gbuffer(mesh: Mesh, proj: Float[Tensor, "3 4"], size: int) -> GBuffer:
    """Rasterise ``mesh`` with the pinhole ``proj`` into mask, depth and normals (CPU)."""
    v = mesh.vertices.detach().float().cpu()
    f = mesh.faces.detach().long().cpu()
    px, z = project(v, proj)
    keep = (z[f] > 1e-4).all(1)
    f = f[keep]
    mask = torch.zeros(size, size, dtype=torch.bool)
    depth = torch.zeros(size, size)
    normal = torch.zeros(size, size, 3)
    if f.numel() == 0:
        return GBuffer(mask, depth, normal)
    face_id, bary = rasterize(px[f], -1.0 / z[f], size, size)
    hit = face_id >= 0
    tri = f[face_id[hit]]
    b = bary[hit] / z[tri]  # perspective-correct weights
    b = b / b.sum(-1, keepdim=True).clamp_min(1e-20)
    tv = v[f]
    fn = torch.linalg.cross(tv[:, 1] - tv[:, 0], tv[:, 2] - tv[:, 0])
    vn = torch.zeros_like(v).index_add_(0, f.reshape(-1), fn.repeat_interleave(3, 0))
    n = F.normalize((b[:, :, None] * vn[tri]).sum(1), dim=-1)
    # Two-sided: flip normals to face the camera so inconsistent winding does not draw creases.
    cam_dir = torch.linalg.inv(torch.cat([proj, torch.tensor([[0.0, 0, 0, 1]])]))[:3, 3]
    p = (b[:, :, None] * v[tri]).sum(1)
    n = torch.where(((cam_dir - p) * n).sum(-1, keepdim=True) < 0, -n, n)
    mask[hit] = True
    depth[hit] = (b * z[tri]).sum(-1)
    normal[hit] = n
    return GBuffer(mask, depth, normal)


def _neighbour_diff(x: Tensor, fn) -> Tensor:
    """OR over the 4-neighbourhood of ``fn(x, shifted x)`` (edges padded by replication)."""
    out = torch.zeros(x.shape[:2], dtype=torch.bool)
    pad = F.pad(x.permute(2, 0, 1)[None] if x.ndim == 3 else x[None, None], (1, 1, 1, 1), mode="replicate")[0]
    pad = pad.permute(1, 2, 0) if x.ndim == 3 else pad[0]
    h, w = x.shape[:2]
    for di, dj in ((0, 1), (2, 1), (1, 0), (1, 2)):
        out |= fn(x, pad[di : di + h, dj : dj + w])
    return out


def contour_sketch(g: GBuffer, depth_jump: float = 0.04, crease_deg: float = 35.0) -> Float[Tensor, "H W"]:
    """Contour and crease lines of a :class:`GBuffer` as an ink map (see the module doc)."""
    m = g.mask.float()[..., None]
    sil = _neighbour_diff(m, lambda a, b: (a[..., 0] > 0.5) & (b[..., 0] < 0.5))
    d = g.depth[..., None]
    jump = _neighbour_diff(d, lambda a, b: (a[..., 0] - b[..., 0]) > depth_jump * a[..., 0].clamp_min(1e-6))
    cos = math.cos(math.radians(crease_deg))
    crease = _neighbour_diff(g.normal, lambda a, b: ((a * b).sum(-1) < cos) & (b.norm(dim=-1) > 0.5))
    return ((sil | jump | crease) & g.mask).float()


def _gauss_blur(x: Tensor, sigma: float = 1.0) -> Tensor:
    r = max(1, math.ceil(2 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))


def canny(grey: Float[Tensor, "H W"], low: float = 20.0, high: float = 180.0) -> Float[Tensor, "H W"]:
    """Canny edges of a 0..255 grey image (Sobel L1 magnitude, 4-direction NMS, hysteresis)."""
    x = _gauss_blur(grey.float()[None, None], 1.0)
    sx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    gx = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), sx.view(1, 1, 3, 3))[0, 0]
    gy = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), sx.T.reshape(1, 1, 3, 3))[0, 0]
    mag = gx.abs() + gy.abs()
    angle = torch.rad2deg(torch.atan2(gy, gx)) % 180
    sector = ((angle + 22.5) // 45).long() % 4  # 0: horizontal gradient, 1: 45, 2: vertical, 3: 135
    pad = F.pad(mag[None, None], (1, 1, 1, 1))[0, 0]
    h, w = mag.shape
    offsets = {0: ((1, 0), (1, 2)), 1: ((0, 0), (2, 2)), 2: ((0, 1), (2, 1)), 3: ((0, 2), (2, 0))}
    keep = torch.zeros_like(mag, dtype=torch.bool)
    for s, ((a0, a1), (b0, b1)) in offsets.items():
        na, nb = pad[a0 : a0 + h, a1 : a1 + w], pad[b0 : b0 + h, b1 : b1 + w]
        keep |= (sector == s) & (mag >= na) & (mag >= nb)
    mag = torch.where(keep, mag, torch.zeros_like(mag))
    strong, weak = mag >= high, mag >= low
    # Hysteresis: grow strong edges through weak ones (bounded number of 3x3 dilations).
    for _ in range(max(h, w)):
        grown = F.max_pool2d(strong.float()[None, None], 3, 1, 1)[0, 0].bool() & weak
        if torch.equal(grown, strong):
            break
        strong = grown
    return strong.float()


def _smooth_noise(gen: torch.Generator, size: int, cells: int, channels: int = 1) -> Float[Tensor, "C S S"]:
    """Band-limited noise in about [-1, 1]: a ``cells x cells`` random grid, bicubically upsampled."""
    coarse = torch.rand(1, channels, cells + 3, cells + 3, generator=gen) * 2 - 1
    fine = F.interpolate(coarse, size=(size + 3 * size // cells, size + 3 * size // cells), mode="bicubic", align_corners=False)
    o = (fine.shape[-1] - size) // 2
    return fine[0, :, o : o + size, o : o + size]


def _warp(ink: Tensor, shift: Float[Tensor, "2 S S"]) -> Tensor:
    """``ink`` resampled at each pixel plus ``shift`` (pixels, x then y): strokes move and bend."""
    s = ink.shape[-1]
    ys, xs = torch.meshgrid(torch.arange(s, dtype=torch.float32), torch.arange(s, dtype=torch.float32), indexing="ij")
    gx = (xs + shift[0] + 0.5) / s * 2 - 1
    gy = (ys + shift[1] + 0.5) / s * 2 - 1
    return F.grid_sample(ink[None, None], torch.stack([gx, gy], -1)[None], mode="bilinear", padding_mode="zeros", align_corners=False)[0, 0]


def hand_sketch(
    mesh: Mesh,
    azimuth_deg: float,
    *,
    size: int = 224,
    seed: int = 0,
    elevation_deg: float = LAS_ELEVATION,
    distance: float = LAS_DISTANCE,
    fov_deg: float = LAS_FOV,
) -> Float[Tensor, "H W"]:
    """A hand-drawn-looking sketch of ``mesh`` near a LAS view, deterministic from ``seed``.

    Steps (at twice the size, then max-pooled): the view is perturbed (azimuth by a normal of
    sigma 8 degrees clipped to +-20, elevation by sigma 4 clipped to +-10, field of view drawn
    in 40..75 degrees with the distance scaled so the object keeps its size); the silhouette is
    kept while each interior (crease and depth-jump) line survives only where a coarse noise
    field allows (30..80 % of them); strokes are displaced by a smooth field a few pixels strong
    (wobble), drawn a second time with another field in places (over-drawn), cut where a finer
    noise is low (broken), and thickened where a third field is high (varying pressure); faces
    turned away from a light at the upper side get diagonal hatching in one or two blobs.

    Args:
        mesh: the shape in the LAS frame.
        azimuth_deg: the intended view's azimuth.
        size: image side in pixels.
        seed: the drawing's randomness (view error, strokes, hatching).
        elevation_deg, distance, fov_deg: the intended camera.

    Returns:
        ``size x size`` float32 ink map (1 = stroke).
    """
    gen = torch.Generator().manual_seed(int(seed) & 0x7FFFFFFFFFFFFFFF)

    def u(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=gen))

    def n(sigma: float, clip: float) -> float:
        return float((torch.randn((), generator=gen) * sigma).clamp(-clip, clip))

    az = azimuth_deg + n(8.0, 20.0)
    el = elevation_deg + n(4.0, 10.0)
    fov = u(40.0, 75.0)
    # Same apparent size: the image half-height covers distance * tan(fov / 2) at the origin.
    dist = distance * math.tan(math.radians(fov_deg) / 2) / math.tan(math.radians(fov) / 2)
    s2 = 2 * size
    g = gbuffer(mesh, view_projection(az, s2, el, dist, fov), s2)
    m = g.mask.float()[..., None]
    sil = _neighbour_diff(m, lambda a, b: (a[..., 0] > 0.5) & (b[..., 0] < 0.5)) & g.mask
    d = g.depth[..., None]
    jump = _neighbour_diff(d, lambda a, b: (a[..., 0] - b[..., 0]) > 0.04 * a[..., 0].clamp_min(1e-6))
    crease = _neighbour_diff(g.normal, lambda a, b: ((a * b).sum(-1) < math.cos(math.radians(35.0))) & (b.norm(dim=-1) > 0.5))
    interior = (jump | crease) & g.mask & ~sil
    keep = _smooth_noise(gen, s2, 6)[0] > u(-0.5, 0.4)  # missing interior lines, in patches
    ink = (sil | (interior & keep)).float()
    # Partial hatching: faces turned from a light above, in one or two blobs, at about 45 degrees.
    light = F.normalize(torch.tensor([u(-1.0, 1.0), 1.5, u(-1.0, 1.0)]), dim=0)
    shade = g.mask & ((g.normal * light).sum(-1) < u(-0.2, 0.2))
    blobs = _smooth_noise(gen, s2, 3)[0] > u(0.2, 0.6)
    period = max(4, s2 // 40)
    ys, xs = torch.meshgrid(torch.arange(s2), torch.arange(s2), indexing="ij")
    lines = ((xs + ys * (1 if u(0, 1) < 0.5 else -1)) % period) < max(1, period // 4)
    hatch = (shade & blobs & lines).float() if u(0, 1) < 0.6 else torch.zeros_like(ink)
    amp = s2 * u(0.006, 0.014)
    base = torch.maximum(ink, hatch * 0.99)
    drawn = _warp(base, _smooth_noise(gen, s2, 5, 2) * amp + _smooth_noise(gen, s2, 16, 2) * amp * 0.25)
    again = _warp(ink, _smooth_noise(gen, s2, 5, 2) * amp * 1.3 + torch.tensor([u(-1, 1), u(-1, 1)]).view(2, 1, 1) * amp * 0.5)
    twice = _smooth_noise(gen, s2, 4)[0] > u(0.0, 0.5)  # over-drawn in places
    out = torch.maximum(drawn, again * twice.float())
    gaps = _smooth_noise(gen, s2, 24)[0] > u(-0.85, -0.55)  # broken strokes
    out = (out > 0.3).float() * gaps.float()
    heavy = _smooth_noise(gen, s2, 4)[0] > u(-0.2, 0.4)  # pressure: thicker strokes where high
    thick = F.max_pool2d(out[None, None], 3, 1, 1)[0, 0]
    out = torch.where(heavy, thick, out)
    return F.max_pool2d(out[None, None], 2)[0, 0]


def render_sketch(
    mesh: Mesh,
    azimuth_deg: float,
    *,
    style: SketchStyle = "contour",
    size: int = 224,
    elevation_deg: float = LAS_ELEVATION,
    distance: float = LAS_DISTANCE,
    fov_deg: float = LAS_FOV,
    seed: int = 0,
) -> Float[Tensor, "H W"]:
    """A synthetic sketch (ink map) of ``mesh`` seen from a LAS view.

    Args:
        mesh: the shape in the LAS frame (inside [-1, 1]^3, +Y up).
        azimuth_deg: view azimuth (canonical: :data:`LAS_AZIMUTHS`; any value works, e.g. jitter).
        style: ``contour`` (depth/normal discontinuities), ``canny`` (edges of a shaded render) or
            ``hand`` (:func:`hand_sketch`: a person's drawing from a roughly chosen view).
        size: image side in pixels.
        elevation_deg, distance, fov_deg: the rest of the camera.
        seed: randomness of the ``hand`` style (the other styles are deterministic).

    Returns:
        ``size x size`` float32 ink map (1 = stroke).
    """
    if style == "hand":
        return hand_sketch(mesh, azimuth_deg, size=size, seed=seed, elevation_deg=elevation_deg, distance=distance, fov_deg=fov_deg)
    if style == "contour":
        # Lines are drawn at 2x and max-pooled so their width matches the canny style's.
        g = gbuffer(mesh, view_projection(azimuth_deg, 2 * size, elevation_deg, distance, fov_deg), 2 * size)
        ink = contour_sketch(g)
        return F.max_pool2d(ink[None, None], 2)[0, 0]
    if style == "canny":
        image = render_mesh(
            mesh.vertices, mesh.faces, width=size, height=size, fov_deg=fov_deg,
            c2w=view_c2w(azimuth_deg, elevation_deg, distance), ambient=0.3,
        )
        grey = torch.from_numpy(image.astype(np.float32)).mean(-1)
        edges = canny(grey)
        return F.max_pool2d(edges[None, None], 3, 1, 1)[0, 0] if size >= 128 else edges
    raise ShapegenError(f"unknown sketch style '{style}'; use one of {', '.join(SKETCH_STYLES)}")


def save_sketch(path: str | os.PathLike, ink: Float[Tensor, "H W"]) -> Path:
    """Write an ink map as a black-on-white 8-bit PNG, atomically."""
    from PIL import Image

    from shapegen.io import atomic_path

    img = (255 - (ink.detach().cpu().clamp(0, 1) * 255).round()).to(torch.uint8).numpy()
    with atomic_path(path) as tmp:
        Image.fromarray(img, mode="L").save(tmp, format="PNG")
    return Path(path)


# ------------------------------------------------------------------------------ user sketches
def binarize_sketch(grey: Float[Tensor, "H W"], size: int, threshold: float = 0.2) -> Float[Tensor, "S S"]:
    """Square, resize and binarise a grey ink map the same way for every input.

    The image is padded to a square with paper (centred, so the view's optical axis stays at
    the image centre), area-resized to ``size`` (thin strokes become partial coverage), and a
    pixel is ink where its coverage is at least ``threshold``.

    Args:
        grey: ``H W`` ink coverage in [0, 1] (1 = stroke).
        size: output side.
        threshold: coverage that counts as ink.
    """
    h, w = grey.shape
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    sq = F.pad(grey[None, None].float(), (left, side - w - left, top, side - h - top))
    small = F.interpolate(sq, size=(size, size), mode="area") if side >= size else F.interpolate(sq, size=(size, size), mode="bilinear", align_corners=False)
    return (small[0, 0] >= threshold).float()


def load_sketch(path: str | os.PathLike, size: int = 224) -> Float[Tensor, "S S"]:
    """Read a user sketch (any image Pillow reads) as a binary ``size x size`` ink map.

    Dark strokes on light paper and light strokes on dark paper are both accepted (the minority
    tone is ink); transparent pixels count as paper. See :func:`binarize_sketch` for resizing.

    Raises:
        ShapegenError: one line if the file is missing, not an image, has an unsupported size or
            aspect ratio, or holds no strokes.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ShapegenError(f"sketch '{path}' does not exist; check the path")

    def check_size(w: int, h: int) -> None:
        if min(h, w) < MIN_SKETCH_SIDE or max(h, w) > MAX_SKETCH_SIDE or max(h, w) / min(h, w) > MAX_ASPECT:
            raise ShapegenError(
                f"sketch '{path.name}' is {w}x{h} pixels; sides must be {MIN_SKETCH_SIDE}..{MAX_SKETCH_SIDE} "
                f"and at most {MAX_ASPECT:g}:1, e.g. 224x224"
            )

    try:
        # The header gives the size: refuse a huge image before decoding it (Pillow would warn
        # about a decompression bomb on stderr, then spend seconds and gigabytes on it).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            check_size(*im.size)
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(paper, rgba)
            grey = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except Image.DecompressionBombError as exc:
        raise ShapegenError(
            f"sketch '{path.name}' is far too large to decode; sides must be {MIN_SKETCH_SIDE}..{MAX_SKETCH_SIDE} pixels, e.g. 224x224"
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ShapegenError(f"'{path.name}' is not a readable image ({type(exc).__name__}); give a PNG or JPEG sketch") from exc
    if float(grey.max() - grey.min()) < 0.1:
        raise ShapegenError(f"sketch '{path.name}' is empty (one flat tone); draw dark strokes on white paper")
    # Otsu-free polarity rule: the darker tone is ink unless it covers most of the image.
    mid = 0.5 * (float(grey.min()) + float(grey.max()))
    dark = grey < mid
    ink = 1.0 - grey if dark.mean() <= 0.5 else grey
    ink = (ink - ink.min()) / max(float(ink.max() - ink.min()), 1e-6)
    out = binarize_sketch(torch.from_numpy(np.ascontiguousarray(ink)), size)
    if int(out.sum()) < MIN_INK_PIXELS:
        raise ShapegenError(f"sketch '{path.name}' is empty after resizing to {size}x{size}; use bolder strokes")
    return out


def view_index_to_azimuth(view: int) -> float:
    """Canonical azimuth (degrees) of a LAS view index 0..4."""
    if not 0 <= int(view) < len(LAS_AZIMUTHS):
        raise ShapegenError(f"view index {view} out of range; use 0..{len(LAS_AZIMUTHS) - 1}")
    return LAS_AZIMUTHS[int(view)]


def silhouette(mesh: Mesh, azimuth_deg: float, size: int) -> Int[Tensor, "H W"]:
    """Binary silhouette (1 inside) of ``mesh`` from a LAS view; used by tests and benchmarks."""
    return gbuffer(mesh, view_projection(azimuth_deg, size), size).mask.long()
