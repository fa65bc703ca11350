"""Warp kernels for triangle visibility (``rasterize(..., backend="warp")``), CPU and CUDA.

Same coverage rule and arithmetic as the torch reference
(:func:`renderers.preview.triangle_fragments`): bounding box of pixel centres per triangle,
normalised edge functions ``>= -1e-7``, depth ``-1/z`` interpolated linearly in screen
space. One thread per (view, triangle) walks its bounding box twice: pass 1 takes the
atomic minimum of the depth per pixel, pass 2 the atomic minimum of the face id among the
fragments that reached that depth, so ties go to the lower face id as in the reference.
The reference quantises depth to 40 bits instead of comparing float32 values, so the two
may differ on exact depth ties between faces (shared edges), never on visible depth.

Warp is imported when this module is imported; :mod:`renderers.rasterize` imports it only
when the Warp backend is requested. A CPU launch runs on one thread.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from renderers.backends.warp_init import init_warp

wp = init_warp()

NAME = "warp"
_NO_FACE = 2**31 - 1


@wp.kernel(module="unique")
def _raster_kernel(
    xy: wp.array(dtype=wp.vec2),
    depth: wp.array(dtype=wp.float32),
    keep: wp.array(dtype=wp.int32),
    num_faces: int,
    height: int,
    width: int,
    second_pass: int,
    zbuf: wp.array(dtype=wp.float32),
    ids: wp.array(dtype=wp.int32),
):
    t = wp.tid()
    if keep[t] == 0:
        return
    a = xy[3 * t]
    b = xy[3 * t + 1]
    c = xy[3 * t + 2]
    area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    if wp.abs(area) <= 1.0e-12:
        return
    d0 = depth[3 * t]
    d1 = depth[3 * t + 1]
    d2 = depth[3 * t + 2]
    x0 = wp.max(int(wp.floor(wp.min(wp.min(a[0], b[0]), c[0]) - 0.5)), 0)
    y0 = wp.max(int(wp.floor(wp.min(wp.min(a[1], b[1]), c[1]) - 0.5)), 0)
    x1 = wp.min(int(wp.ceil(wp.max(wp.max(a[0], b[0]), c[0]) - 0.5)), width - 1)
    y1 = wp.min(int(wp.ceil(wp.max(wp.max(a[1], b[1]), c[1]) - 0.5)), height - 1)
    face = t % num_faces
    base = (t // num_faces) * height * width
    for py in range(y0, y1 + 1):
        for px in range(x0, x1 + 1):
            qx = float(px) + 0.5
            qy = float(py) + 0.5
            w0 = ((c[0] - b[0]) * (qy - b[1]) - (c[1] - b[1]) * (qx - b[0])) / area
            w1 = ((a[0] - c[0]) * (qy - c[1]) - (a[1] - c[1]) * (qx - c[0])) / area
            w2 = ((b[0] - a[0]) * (qy - a[1]) - (b[1] - a[1]) * (qx - a[0])) / area
            if w0 >= -1.0e-7 and w1 >= -1.0e-7 and w2 >= -1.0e-7:
                z = w0 * d0 + w1 * d1 + w2 * d2
                i = base + py * width + px
                if second_pass == 0:
                    wp.atomic_min(zbuf, i, z)
                elif z == zbuf[i]:
                    wp.atomic_min(ids, i, face)


def _device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    if device.type == "cpu":
        return "cpu"
    raise ValueError(f"the warp backend runs on CPU or CUDA tensors, not on '{device.type}'")


def face_ids(
    pixels: Float[Tensor, "B V 2"],
    z: Float[Tensor, "B V"],
    faces: Int[Tensor, "F 3"],
    keep: Bool[Tensor, "B F"],
    height: int,
    width: int,
) -> Int[Tensor, "B H W"]:
    """Nearest face covering each pixel centre, -1 for background (see the module docstring)."""
    device = pixels.device
    bsz, num_faces = keep.shape
    out = torch.full((bsz, height, width), -1, dtype=torch.long, device=device)
    if num_faces == 0 or height * width == 0:
        return out
    b = torch.arange(bsz, device=device)[:, None, None]
    xy = pixels.float()[b, faces].reshape(-1, 2).contiguous()
    d = (-1.0 / z.float().clamp_min(1e-30))[b, faces].reshape(-1).contiguous()
    kp = keep.to(torch.int32).reshape(-1).contiguous()
    zbuf = torch.full((bsz * height * width,), float("inf"), dtype=torch.float32, device=device)
    ids = torch.full((bsz * height * width,), _NO_FACE, dtype=torch.int32, device=device)
    key = _device(device)
    stream = (
        wp.stream_from_torch(torch.cuda.current_stream(device)) if device.type == "cuda" else None
    )
    args = [
        wp.from_torch(xy, dtype=wp.vec2),
        wp.from_torch(d),
        wp.from_torch(kp),
        num_faces,
        height,
        width,
    ]
    for second in (0, 1):
        wp.launch(
            _raster_kernel,
            dim=bsz * num_faces,
            inputs=[*args, second],
            outputs=[wp.from_torch(zbuf), wp.from_torch(ids)],
            device=key,
            stream=stream,
        )
    ids = ids.view(bsz, height, width).long()
    return torch.where(ids != _NO_FACE, ids, out)
