"""Headless CPU previews: a small vectorised triangle rasteriser in pure torch.

No OpenGL, no display, no GPU: images of a mesh for logs, READMEs and tests.

Frames and units:
    World: right-handed, +Y up (glTF / shapegen frame), any length unit.
    Camera: OpenGL axes (camera looks down -Z, +Y up), camera-to-world 4x4 ``c2w``.
    Pixels: row 0 at the top, pixel ``(i, j)`` has its centre at ``x = j + 0.5, y = i + 0.5``.

The rasteriser enumerates, per triangle, the pixel centres inside its bounding box (in chunks
so memory stays bounded), keeps those inside the triangle (edge functions), and resolves
visibility with a scatter-min over a packed ``(quantised depth, face id)`` key. The same
fragment enumeration bakes textures in UV space (``shapegen.geometry.texture``).

Deviations from a full renderer, on purpose: triangles with a vertex behind the near plane
are dropped rather than clipped (auto-fit cameras never produce them); no anti-aliasing.

This module never imports :mod:`shapegen`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from renderers.cameras import Intrinsics, orbit_pose, project_points

__all__ = [
    "orbit_camera",
    "rasterize",
    "render_mesh",
    "render_sheet",
    "render_turntable",
    "save_animation",
    "save_image",
    "triangle_fragments",
]

# Fragments (pixel, face) candidates handled at once; bounds peak memory to ~100 MB.
_MAX_FRAGMENTS = 2_000_000


def _signed_area2(tri: Float[Tensor, "K 3 2"]) -> Float[Tensor, " K"]:
    """Twice the signed area (positive when counter-clockwise in x-right, y-up axes)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def barycentric_2d(
    tri: Float[Tensor, "K 3 2"], p: Float[Tensor, "K 2"], area2: Float[Tensor, " K"] | None = None
) -> Float[Tensor, "K 3"]:
    """Barycentric weights of points ``p`` in 2D triangles ``tri`` (either winding; may be negative outside).

    Each weight is the signed area of the sub-triangle opposite its corner over the whole
    (edge functions). Degenerate triangles give non-finite weights; callers filter them.
    """
    if area2 is None:
        area2 = _signed_area2(tri)
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]

    def edge(u: Tensor, v: Tensor) -> Tensor:
        return (v[:, 0] - u[:, 0]) * (p[:, 1] - u[:, 1]) - (v[:, 1] - u[:, 1]) * (p[:, 0] - u[:, 0])

    return torch.stack([edge(b, c), edge(c, a), edge(a, b)], -1) / area2[:, None]


def triangle_fragments(
    xy: Float[Tensor, "F 3 2"], height: int, width: int, *, eps: float = 1e-7
) -> Iterator[tuple[Int[Tensor, " K"], Int[Tensor, " K"], Float[Tensor, "K 3"]]]:
    """Yield the pixels covered by each triangle, chunk by chunk.

    A pixel is covered when its centre lies inside the triangle or on an edge (shared edges
    may thus be covered twice; visibility or ``index_put`` resolves that). Degenerate and
    fully off-screen triangles yield nothing.

    Args:
        xy: triangle corners in pixel units (x to the right, y down), either winding.
        height: image height H.
        width: image width W.
        eps: tolerance on the normalised edge functions.

    Yields:
        ``(pixel, face, bary)``: flat pixel indices ``i * W + j``, face indices into ``xy``, and
        screen-space barycentric weights of the pixel centre (rows sum to 1).
    """
    xy = xy.float()
    device = xy.device
    lo = torch.floor(xy.amin(1) - 0.5).clamp_min(0)  # first pixel whose centre may be inside
    hi = torch.ceil(xy.amax(1) - 0.5)
    x0, y0 = lo[:, 0].long(), lo[:, 1].long()
    x1 = hi[:, 0].long().clamp(max=width - 1)
    y1 = hi[:, 1].long().clamp(max=height - 1)
    bw, bh = (x1 - x0 + 1).clamp_min(0), (y1 - y0 + 1).clamp_min(0)
    area = _signed_area2(xy)
    count = bw * bh
    count = torch.where(area.abs() > 1e-12, count, torch.zeros_like(count))
    faces = torch.nonzero(count > 0).squeeze(1)
    if faces.numel() == 0:
        return
    # Split the faces into chunks of about _MAX_FRAGMENTS candidate pixels each.
    csum = torch.cumsum(count[faces], 0)
    start, total = 0, faces.numel()
    while start < total:
        base = int(csum[start - 1]) if start else 0
        stop = max(int(torch.searchsorted(csum, base + _MAX_FRAGMENTS, right=True)), start + 1)
        f = faces[start:stop]
        start = stop
        n = count[f]
        face = torch.repeat_interleave(f, n)
        first = torch.cumsum(n, 0) - n
        local = torch.arange(face.numel(), device=device) - torch.repeat_interleave(first, n)
        w = bw[face]
        px = x0[face] + local % w
        py = y0[face] + torch.div(local, w, rounding_mode="floor")
        p = torch.stack([px.float() + 0.5, py.float() + 0.5], -1)
        bary = barycentric_2d(xy[face], p, area[face])
        inside = (bary >= -eps).all(-1)
        yield (py * width + px)[inside], face[inside], bary[inside]


def rasterize(
    xy: Float[Tensor, "F 3 2"], depth: Float[Tensor, "F 3"], height: int, width: int
) -> tuple[Int[Tensor, "H W"], Float[Tensor, "H W 3"]]:
    """Nearest-triangle id and screen-space barycentrics per pixel (z-buffer).

    Args:
        xy: triangle corners in pixel units.
        depth: depth value of each corner, smaller is nearer; interpolated linearly in screen
            space, which is exact for ``-1 / z`` (what :func:`render_mesh` passes).
        height: image height H.
        width: image width W.

    Returns:
        ``(face_id, bary)``: ``face_id`` is -1 where no triangle covers the pixel.
    """
    device = xy.device
    num_faces = xy.shape[0]
    dmin, dmax = float(depth.min()), float(depth.max())
    # Depth gets the bits of an int64 that the face id does not need (31 bits up to 2 ** 31 faces).
    levels = 2 ** min(40, 62 - max(num_faces, 1).bit_length()) - 1
    scale = levels / max(dmax - dmin, 1e-30)
    key = torch.full(
        (height * width,), torch.iinfo(torch.int64).max, dtype=torch.int64, device=device
    )
    for pix, face, bary in triangle_fragments(xy, height, width):
        z = (bary * depth[face]).sum(-1)
        # Pack (depth, face) so that one scatter-min gives the nearest face; ties -> lower id.
        q = ((z - dmin) * scale).round().clamp(0, levels).long()
        key.scatter_reduce_(0, pix, q * num_faces + face, reduce="amin")
    hit = key != torch.iinfo(torch.int64).max
    face_id = torch.where(hit, key % max(num_faces, 1), torch.full_like(key, -1))
    # Barycentrics of the winning face at each covered pixel centre.
    bary = torch.zeros(height * width, 3, device=device)
    idx = torch.nonzero(hit).squeeze(1)
    if idx.numel():
        f = face_id[idx]
        p = torch.stack(
            [
                (idx % width).float() + 0.5,
                torch.div(idx, width, rounding_mode="floor").float() + 0.5,
            ],
            -1,
        )
        bary[idx] = barycentric_2d(xy[f], p)
    return face_id.view(height, width), bary.view(height, width, 3)


def orbit_camera(
    center: Float[Tensor, 3], distance: float, azimuth_deg: float, elevation_deg: float
) -> Float[Tensor, "4 4"]:
    """Camera-to-world matrix on a sphere around ``center`` looking at it, +Y up.

    Azimuth 0 and elevation 0 put the camera on the +Z side (the glTF "front"); positive
    azimuth turns it towards +X, positive elevation raises it towards +Y. A thin wrapper of
    :func:`renderers.cameras.orbit_pose` in float32 on the CPU.
    """
    center = torch.as_tensor(center, dtype=torch.float32).cpu()
    return orbit_pose(float(azimuth_deg), float(elevation_deg), float(distance), center).float()


def render_mesh(
    vertices: Float[Tensor, "V 3"],
    faces: Int[Tensor, "F 3"],
    *,
    vertex_colors: Float[Tensor, "V C"] | None = None,
    width: int = 512,
    height: int = 512,
    azimuth_deg: float = 30.0,
    elevation_deg: float = 20.0,
    fov_deg: float = 40.0,
    distance: float | None = None,
    c2w: Float[Tensor, "4 4"] | None = None,
    ambient: float = 0.3,
    smooth: bool = True,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Render a shaded preview of a triangle mesh on the CPU.

    Shading is a headlight: ``ambient + (1 - ambient) * |n . v|`` (two-sided, so open or
    inconsistently wound meshes still read well) times the vertex colour (sRGB, default light grey).

    Args:
        vertices: positions (world frame, +Y up).
        faces: triangle vertex indices.
        vertex_colors: optional ``V 3|4`` colours in [0, 1]; alpha is ignored.
        width: image width in pixels.
        height: image height in pixels.
        azimuth_deg: orbit azimuth around the bounding-box centre, see :func:`orbit_camera`.
        elevation_deg: orbit elevation.
        fov_deg: vertical field of view.
        distance: camera distance from the bounding-box centre; None fits the bounding sphere
            in the view with a 5% margin.
        c2w: explicit camera-to-world matrix (OpenGL axes); overrides the orbit arguments.
        ambient: ambient share of the shading in [0, 1].
        smooth: interpolate area-weighted vertex normals (True) or use flat face normals.
        background: RGB of uncovered pixels.

    Returns:
        ``H W 3`` uint8 image.
    """
    v = torch.as_tensor(vertices).detach().float().cpu()
    f = torch.as_tensor(faces).detach().long().cpu()
    image = np.empty((height, width, 3), np.uint8)
    image[:] = np.asarray(background, np.uint8)
    if f.numel() == 0 or v.numel() == 0:
        return image
    lo, hi = v.amin(0), v.amax(0)
    center = (lo + hi) / 2
    radius = float((hi - lo).norm() / 2) or 1.0
    half = math.radians(fov_deg) / 2
    if c2w is None:
        if distance is None:
            # The bounding sphere subtends asin(r / d); fit it in the smaller half-angle.
            half_min = min(half, math.atan(math.tan(half) * width / height))
            distance = 1.05 * radius / math.sin(half_min)
        c2w = orbit_camera(center, distance, azimuth_deg, elevation_deg)
    c2w = torch.as_tensor(c2w, dtype=torch.float32).cpu()
    near = 1e-4 * max(radius, 1e-8)
    px, z = project_points(v, c2w, Intrinsics.from_fov(fov_deg, width, height), min_depth=near)
    zs = z.clamp_min(near)  # z: positive depth in front of the camera
    keep = (z[f] > near).all(1)
    fk = f[keep]
    if fk.numel() == 0:
        return image
    # Depth 1/z is affine in screen space, so the z-test is exact; negate so smaller = nearer.
    face_id, bary = rasterize(px[fk], -1.0 / zs[fk], height, width)
    hit = face_id >= 0
    fid, b = face_id[hit], bary[hit]
    tri = fk[fid]
    # Perspective-correct weights: divide screen-space barycentrics by depth and renormalise.
    b = b / zs[tri]
    b = b / b.sum(-1, keepdim=True).clamp_min(1e-20)

    tv = v[fk]
    fn = torch.linalg.cross(tv[:, 1] - tv[:, 0], tv[:, 2] - tv[:, 0])
    if smooth:
        vn = torch.zeros_like(v).index_add_(0, fk.reshape(-1), fn.repeat_interleave(3, 0))
        n = (b[:, :, None] * vn[tri]).sum(1)
    else:
        n = fn[fid]
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-20)
    # Headlight: light comes from the eye, so use the direction from the surface to the eye.
    p = (b[:, :, None] * v[tri]).sum(1)
    to_eye = c2w[:3, 3] - p
    to_eye = to_eye / to_eye.norm(dim=-1, keepdim=True).clamp_min(1e-20)
    shade = ambient + (1 - ambient) * (n * to_eye).sum(-1).abs()
    if vertex_colors is not None:
        col = torch.as_tensor(vertex_colors).detach().float().cpu()[:, :3]
        albedo = (b[:, :, None] * col[tri]).sum(1)
    else:
        albedo = torch.full((tri.shape[0], 3), 0.8)
    rgb = (albedo * shade[:, None]).clamp(0, 1)
    image[hit.numpy()] = (rgb * 255 + 0.5).to(torch.uint8).numpy()
    return image


def render_turntable(
    vertices: Float[Tensor, "V 3"],
    faces: Int[Tensor, "F 3"],
    *,
    num_frames: int = 36,
    elevation_deg: float = 20.0,
    **kwargs,
) -> list[np.ndarray]:
    """Frames of a full turn around the +Y axis at a fixed distance (same options as :func:`render_mesh`)."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if kwargs.get("distance") is None:
        # Fix the distance once so the object does not breathe between frames.
        v = torch.as_tensor(vertices).detach().float()
        radius = float((v.amax(0) - v.amin(0)).norm() / 2) or 1.0
        half = math.radians(kwargs.get("fov_deg", 40.0)) / 2
        w, h = kwargs.get("width", 512), kwargs.get("height", 512)
        kwargs["distance"] = 1.05 * radius / math.sin(min(half, math.atan(math.tan(half) * w / h)))
    return [
        render_mesh(
            vertices,
            faces,
            azimuth_deg=360.0 * k / num_frames,
            elevation_deg=elevation_deg,
            **kwargs,
        )
        for k in range(num_frames)
    ]


def render_sheet(
    rows: Sequence[Sequence[Any]],
    tile: int = 256,
    *,
    views: Sequence[Float[Tensor, "4 4"]] | None = None,
    fov_deg: float = 40.0,
    colors: Sequence[Sequence[tuple[float, float, float] | None]] | None = None,
    labels: Sequence[Sequence[str]] | None = None,
    captions: Sequence[Sequence[str]] | None = None,
) -> np.ndarray:
    """Render a sheet of square tiles, one row of the sheet per list in ``rows``.

    Each item of a row is one of:

    - a mesh: anything with ``vertices`` (``V 3``) and ``faces`` (``F 3``), rendered shaded with
      :func:`render_mesh` (a mesh without faces gives a blank tile);
    - an ``H W 3`` uint8 image (e.g. an input sketch), resized into its tile;
    - ``None``: a blank tile.

    Args:
        rows: the items, row by row; the sheet is as wide as its longest row.
        tile: side of one tile in pixels.
        views: camera-to-world matrices (OpenGL axes); every mesh is rendered once per view,
            side by side, while an image or a blank takes one tile. ``None``: one tile per mesh
            from :func:`render_mesh`'s default orbit, fitted to the mesh's bounding sphere (sizes
            then do not compare across tiles; pass a fixed view for that).
        fov_deg: vertical field of view of every render.
        colors: optional sRGB colour in [0, 1] per item (same layout as ``rows``; ``None`` keeps
            the default light grey).
        labels: optional text per item, drawn in the corner of its first tile.
        captions: optional text per item, wrapped to the tile's width under its first tile;
            every row gets the height of its longest caption.

    Returns:
        ``H W 3`` uint8 image on a white background.
    """
    from PIL import Image, ImageDraw, ImageFont

    def width(item: Any) -> int:  # tiles an item takes
        return len(views) if views is not None and item is not None and not isinstance(item, np.ndarray) else 1

    starts = [np.concatenate([[0], np.cumsum([width(item) for item in row])]).astype(int) for row in rows]
    n_cols = max((int(s[-1]) for s in starts), default=0)
    if captions is not None:
        font = ImageFont.load_default(size=max(8, tile // 12))
        line_h = int(font.getbbox("Ag")[3]) + 2
        wrapped = [[_wrap(text, font, tile - 6) for text in row] for row in captions]
        bands = [max((len(lines) for lines in row), default=0) * line_h + (4 if row else 0) for row in wrapped]
    else:
        bands = [0] * len(rows)
    tops = np.concatenate([[0], np.cumsum([tile + b for b in bands])]).astype(int)
    sheet = np.full((int(tops[-1]), tile * max(n_cols, 1), 3), 255, np.uint8)
    for r, row in enumerate(rows):
        y = int(tops[r])
        for c, item in enumerate(row):
            x = int(starts[r][c]) * tile
            if item is None:
                images = [np.full((tile, tile, 3), 255, np.uint8)]
            elif isinstance(item, np.ndarray):
                images = [np.asarray(Image.fromarray(item).convert("RGB").resize((tile, tile), Image.Resampling.LANCZOS))]
            else:
                color = colors[r][c] if colors is not None else None
                vc = None if color is None else torch.tensor(color, dtype=torch.float32).expand(torch.as_tensor(item.vertices).shape[0], 3)
                kwargs = {"vertex_colors": vc, "width": tile, "height": tile, "fov_deg": fov_deg}
                images = [render_mesh(item.vertices, item.faces, c2w=c2w, **kwargs) for c2w in (views if views is not None else [None])]
            for k, image in enumerate(images):
                sheet[y : y + tile, x + k * tile : x + (k + 1) * tile] = image
            if labels is not None and labels[r][c]:
                pil = Image.fromarray(sheet[y : y + tile, x : x + tile])
                ImageDraw.Draw(pil).text((4, 2), labels[r][c], fill=(60, 60, 60))
                sheet[y : y + tile, x : x + tile] = np.asarray(pil)
            if captions is not None and c < len(wrapped[r]) and bands[r]:
                band = Image.new("RGB", (tile, bands[r]), (255, 255, 255))
                draw = ImageDraw.Draw(band)
                for k, line in enumerate(wrapped[r][c]):
                    draw.text((3, k * line_h), line, fill=(30, 30, 30), font=font)
                sheet[y + tile : y + tile + bands[r], x : x + tile] = np.asarray(band)
    return sheet


def _wrap(text: str, font: Any, width: int) -> list[str]:
    """Greedy word wrap of ``text`` to lines at most ``width`` pixels wide in ``font``."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


@contextmanager
def _atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temporary file beside ``path`` (same suffix) and rename it onto ``path`` if the block
    succeeds; an OS error names ``path``, and the temporary never stays behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise _named(exc, path) from exc
    finally:
        _remove(tmp)


def _remove(tmp: Path) -> None:
    """Delete a temporary file if it is there; on a read-only file system even a missing file
    cannot be unlinked (EROFS), which must not hide the error that stopped the write."""
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        pass


def _named(exc: OSError, path: Path) -> OSError:
    """The same OS error (errno kept) naming the file that could not be written, not its temporary."""
    return OSError(exc.errno, exc.strerror or str(exc), str(path)) if exc.errno is not None else exc


def save_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an ``H W 3|4`` uint8 image (PNG, JPEG, ... by suffix) atomically; returns the path."""
    from PIL import Image

    path = Path(path)
    with _atomic_write(path) as tmp:
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format=Image.registered_extensions().get(path.suffix.lower()))
    return path


def save_animation(path: str | os.PathLike, frames: list[np.ndarray], fps: float = 12.0) -> Path:
    """Write frames as ``.gif`` (Pillow, loops forever) or ``.mp4`` (needs imageio-ffmpeg), atomically.

    Raises:
        ValueError: for other suffixes, or ``.mp4`` without imageio-ffmpeg (one line,
            suggesting ``.gif``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not frames:
        raise ValueError("save_animation needs at least one frame")
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401 (only checks that it is installed)
        except ImportError:
            raise ValueError(
                f"writing {path.name} needs imageio-ffmpeg (pip install imageio-ffmpeg); or save as .gif"
            ) from None
    elif suffix != ".gif":
        raise ValueError(f"unsupported animation format {suffix!r} for {path}; use .gif or .mp4")
    with _atomic_write(path) as tmp:
        if suffix == ".gif":
            from PIL import Image

            images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
            duration = max(
                round(1000 / fps), 20
            )  # GIF delays are in 10 ms steps; browsers clamp < 20 ms
            images[0].save(
                tmp,
                format="GIF",
                save_all=True,
                append_images=images[1:],
                duration=duration,
                loop=0,
            )
        else:
            import imageio.v2 as imageio

            # H.264 with yuv420p needs even sizes; pad by repeating the last row/column.
            h, w = frames[0].shape[:2]
            pad = ((0, h % 2), (0, w % 2), (0, 0))
            with imageio.get_writer(tmp, fps=fps, codec="libx264", format="FFMPEG") as writer:
                for frame in frames:
                    writer.append_data(np.pad(frame[..., :3], pad, mode="edge"))
    return path
