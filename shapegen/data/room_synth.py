"""A synthetic room with imperfect depth and normal priors, in the MonoSDF layout.

The room (metres, +Y up) is built from analytic SDF primitives
(:mod:`shapegen.geometry.primitives`): a 4 x 2.6 x 4 m shell (floor, walls, ceiling), a table
and a chair on thin legs (1.2-2 cm radius), a lamp on a thin pole, a shelf with 2 cm boards,
small cubes, and a dark low-albedo cabinet (albedo 0.03). Images are sphere-traced with the
shared renderer (:func:`renderers.sphere_trace`) from cameras inside the room and shaded with a
ceiling point light and an ambient term. Priors imitate monocular networks (the Occ-SDF notes,
"Offline test fixtures"): depth is ``a z + b`` with a per-image ``a in [0.5, 2]``, ``b in [0, 0.5]``
plus 2% multiplicative noise and a masked hole; normals are rotated by 5-10 degrees per image
plus per-pixel noise. ``erase_thin_in_priors`` renders the priors without the thin parts (the
case the hybrid is meant to fix).

Ground truth: ``gt_mesh.ply`` (world frame, metres) is the union of the primitives' meshes with
faces inside another primitive removed, and ``gt_labels.npy`` holds one label per face:
0 other, 1 thin structure, 2 dark region (for recall on those surfaces).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from shapegen.data.scenes import Scene, write_monosdf_scene
from shapegen.errors import ShapegenError
from shapegen.geometry import primitives as P

__all__ = [
    "LABEL_DARK", "LABEL_NAMES", "LABEL_OTHER", "LABEL_THIN", "LABEL_THIN_DARK",
    "Part", "RoomSynthConfig", "build_room", "render_room", "synthesize_room", "write_room",
]

LABEL_OTHER, LABEL_THIN, LABEL_DARK = 0, 1, 2
LABEL_THIN_DARK = LABEL_THIN | LABEL_DARK
"""Labels are bit flags: a thin part with a dark albedo is both (3)."""
LABEL_NAMES = {LABEL_THIN: "thin", LABEL_DARK: "dark", LABEL_THIN_DARK: "thin_or_dark"}
"""Label masks reported by the evaluation: a GT face counts for a name when its label shares a bit
with the mask (so ``thin`` includes the thin dark parts and ``thin_or_dark`` is every labelled face)."""


@dataclass
class RoomSynthConfig:
    """Options of ``shapegen room synth``."""

    num_views: int = 60
    """Images rendered."""
    width: int = 96
    """Image width (pixels)."""
    height: int = 96
    """Image height (pixels)."""
    fov_deg: float = 70.0
    """Vertical field of view (degrees)."""
    seed: int = 0
    """Seed of cameras and prior corruption."""
    depth_noise: float = 0.02
    """Relative (multiplicative) Gaussian noise of the depth prior."""
    depth_scale_range: list[float] = field(default_factory=lambda: [0.5, 2.0])
    """Range of the per-image depth scale ``a``."""
    depth_shift_range: list[float] = field(default_factory=lambda: [0.0, 0.5])
    """Range of the per-image depth shift ``b`` (normalised units)."""
    normal_rotation_deg: list[float] = field(default_factory=lambda: [5.0, 10.0])
    """Range of the per-image rotation applied to the normal prior (degrees)."""
    normal_noise: float = 0.05
    """Per-pixel Gaussian noise added to the prior normals before renormalising."""
    hole_fraction: float = 0.05
    """Side of a square masked-out hole in each prior, as a fraction of the image side."""
    erase_thin_in_priors: bool = False
    """Render depth/normal priors without the thin structures."""
    layout: str = "default"
    """``default``: the room of the module doc; ``claim``: the same room plus more thin parts
    (1-3 cm: a stool, a coat stand, a towel rail, shelf boards), dark surfaces (albedo <= 0.03) and
    parts that are both (a black stool and rail), the case Occ-SDF is meant to recover."""
    max_steps: int = 160
    """Sphere-tracing steps."""


@dataclass
class Part:
    """One primitive of the room: a box (``params`` = centre, half size), a capsule
    (``params`` = end a, end b, radius) or the room shell (the inside of a box)."""

    name: str
    kind: str
    params: tuple
    label: int
    albedo: tuple[float, float, float]
    mesh: object  # trimesh.Trimesh in world coordinates

    @property
    def sdf(self) -> P.SDF:
        if self.kind == "capsule":
            return P.capsule(*self.params)
        f = P.box(*self.params)
        return (lambda x: -f(x)) if self.kind == "shell" else f


def part_distances(parts: list[Part], x: Tensor) -> Tensor:
    """Signed distances ``N x len(parts)`` of all parts at once (batched boxes and capsules;
    the same values as each part's :mod:`~shapegen.geometry.primitives` SDF, much faster)."""
    boxes = [i for i, p in enumerate(parts) if p.kind in ("box", "shell")]
    caps = [i for i, p in enumerate(parts) if p.kind == "capsule"]
    cols = []
    kw = {"dtype": x.dtype, "device": x.device}
    if boxes:
        c = torch.tensor([parts[i].params[0] for i in boxes], **kw)
        h = torch.tensor([parts[i].params[1] for i in boxes], **kw)
        q = (x[:, None] - c).abs() - h
        d = q.clamp_min(0).norm(dim=-1) + q.amax(-1).clamp_max(0)
        cols.append(d * torch.tensor([-1.0 if parts[i].kind == "shell" else 1.0 for i in boxes], **kw))
    if caps:
        a = torch.tensor([parts[i].params[0] for i in caps], **kw)
        b = torch.tensor([parts[i].params[1] for i in caps], **kw)
        r = torch.tensor([parts[i].params[2] for i in caps], **kw)
        pa, ba = x[:, None] - a, b - a
        t = ((pa * ba).sum(-1) / (ba * ba).sum(-1)).clamp(0, 1)
        cols.append((pa - t[..., None] * ba).norm(dim=-1) - r)
    order = torch.argsort(torch.tensor(boxes + caps, dtype=torch.long, device=x.device))
    return torch.cat(cols, 1)[:, order]


def _capsule_mesh(a, b, r):
    import trimesh

    a, b = np.asarray(a, float), np.asarray(b, float)
    axis = b - a
    length = float(np.linalg.norm(axis))
    m = trimesh.creation.capsule(height=length, radius=r, count=[12, 12])
    rot = trimesh.geometry.align_vectors([0, 0, 1], axis / length)
    rot[:3, 3] = (a + b) / 2
    m.apply_transform(rot)
    return m


def _box_mesh(c, h, inward: bool = False):
    import trimesh

    m = trimesh.creation.box(extents=2 * np.asarray(h, float))
    m.apply_translation(np.asarray(c, float))
    if inward:
        m.invert()
    return m


def build_room(layout: str = "default") -> list[Part]:
    """The room's primitives (metres, +Y up, floor at y = 0, room centred on x = z = 0) for
    ``layout`` (``default`` or ``claim``, see :class:`RoomSynthConfig`).

    Raises:
        ShapegenError: an unknown layout.
    """
    parts: list[Part] = []

    def box(name, c, h, label=LABEL_OTHER, albedo=(0.7, 0.7, 0.7)):
        parts.append(Part(name, "box", (c, h), label, albedo, _box_mesh(c, h)))

    def leg(name, a, b, r, albedo=(0.55, 0.35, 0.2)):
        label = LABEL_THIN_DARK if max(albedo) <= 0.03 else LABEL_THIN
        parts.append(Part(name, "capsule", (a, b, r), label, albedo, _capsule_mesh(a, b, r)))

    shell = ((0.0, 1.3, 0.0), (2.0, 1.3, 2.0))
    parts.append(Part("shell", "shell", shell, LABEL_OTHER, (0.8, 0.78, 0.72), _box_mesh(*shell, inward=True)))
    # Table: 1.2 x 0.8 m top at 0.75 m on 2 cm legs.
    box("table_top", (0.6, 0.74, -0.5), (0.6, 0.025, 0.4), albedo=(0.6, 0.45, 0.3))
    for x in (0.05, 1.15):
        for z in (-0.85, -0.15):
            leg("table_leg", (x, 0.0, z), (x, 0.72, z), 0.02)
    # Chair: seat, back and 1.5 cm legs.
    box("chair_seat", (0.6, 0.45, 0.35), (0.22, 0.02, 0.22), albedo=(0.3, 0.5, 0.7))
    box("chair_back", (0.6, 0.72, 0.55), (0.22, 0.25, 0.02), albedo=(0.3, 0.5, 0.7))
    for x in (0.42, 0.78):
        for z in (0.17, 0.53):
            leg("chair_leg", (x, 0.0, z), (x, 0.43, z), 0.015, albedo=(0.2, 0.2, 0.25))
    # Lamp: 1.2 cm pole, base and shade.
    box("lamp_base", (-1.5, 0.015, 1.4), (0.15, 0.015, 0.15), albedo=(0.4, 0.4, 0.4))
    leg("lamp_pole", (-1.5, 0.03, 1.4), (-1.5, 1.55, 1.4), 0.012, albedo=(0.7, 0.7, 0.2))
    box("lamp_shade", (-1.5, 1.65, 1.4), (0.18, 0.1, 0.18), albedo=(0.95, 0.9, 0.7))
    # Shelf on the +x wall: two sides and 2 cm boards.
    for z in (0.6, 1.4):
        box("shelf_side", (1.82, 0.9, z), (0.15, 0.9, 0.02), albedo=(0.75, 0.6, 0.45))
    for y in (0.4, 0.9, 1.4):
        box("shelf_board", (1.82, y, 1.0), (0.15, 0.01, 0.38), LABEL_THIN, (0.75, 0.6, 0.45))
    # Small cubes on the table, a dark cabinet (the low-albedo region) and a dark cube on it.
    box("cube", (0.3, 0.82, -0.6), (0.05, 0.05, 0.05), albedo=(0.8, 0.2, 0.2))
    box("cube", (0.9, 0.82, -0.35), (0.05, 0.05, 0.05), albedo=(0.2, 0.7, 0.3))
    box("dark_cabinet", (-1.2, 0.45, -1.6), (0.6, 0.45, 0.35), LABEL_DARK, (0.03, 0.03, 0.03))
    box("dark_box", (-1.3, 1.0, -1.6), (0.15, 0.1, 0.15), LABEL_DARK, (0.02, 0.02, 0.025))
    if layout == "claim":
        _add_claim_parts(parts, box, leg)
    elif layout != "default":
        raise ShapegenError(f"unknown room layout '{layout}'; use default or claim")
    return parts


def _add_claim_parts(parts: list[Part], box, leg) -> None:
    """Extra thin, dark and thin-and-dark parts of the ``claim`` layout (free floor areas of the room)."""
    black, steel = (0.02, 0.02, 0.02), (0.6, 0.6, 0.62)
    # A black bar stool: 1.2 cm legs, a 2 cm foot ring and a dark seat.
    for dx in (-0.15, 0.15):
        for dz in (-0.15, 0.15):
            leg("stool_leg", (-0.3 + dx, 0.0, 1.2 + dz), (-0.3 + 0.6 * dx, 0.62, 1.2 + 0.6 * dz), 0.012, albedo=black)
    box("stool_seat", (-0.3, 0.64, 1.2), (0.16, 0.02, 0.16), LABEL_DARK, black)
    leg("stool_ring", (-0.42, 0.25, 1.08), (-0.18, 0.25, 1.08), 0.01, albedo=black)
    # A light coat stand: a 1.5 cm pole and three 1 cm hooks.
    leg("coat_pole", (1.5, 0.0, -1.5), (1.5, 1.8, -1.5), 0.015, albedo=steel)
    for k, (dx, dz) in enumerate(((0.2, 0.0), (-0.1, 0.17), (-0.1, -0.17))):
        leg("coat_hook", (1.5, 1.7 - 0.05 * k, -1.5), (1.5 + dx, 1.8 - 0.05 * k, -1.5 + dz), 0.01, albedo=steel)
    # A black towel rail on the -x wall: two 1 cm posts and a 1.5 cm bar.
    for z in (-0.3, 0.3):
        leg("rail_post", (-1.9, 0.0, z), (-1.9, 1.0, z), 0.01, albedo=black)
    leg("rail_bar", (-1.9, 1.0, -0.3), (-1.9, 1.0, 0.3), 0.015, albedo=black)
    # Black 2 cm shelf boards on two thin uprights by the -z wall, and a dark wall panel.
    for x in (-0.2, 0.5):
        leg("wall_shelf_post", (x, 0.0, -1.95), (x, 1.6, -1.95), 0.01, albedo=steel)
    for y in (0.8, 1.3):
        box("wall_shelf_board", (0.15, y, -1.85), (0.4, 0.01, 0.12), LABEL_THIN_DARK, black)
    box("dark_panel", (1.0, 1.2, 1.98), (0.5, 0.4, 0.02), LABEL_DARK, (0.025, 0.02, 0.02))


def room_sdf(parts: list[Part], include_thin: bool = True) -> P.SDF:
    """Union of the parts (free space positive: the shell is the inside of a box)."""
    keep = [p for p in parts if include_thin or not p.label & LABEL_THIN]
    return lambda x: part_distances(keep, x).amin(1)


def _nearest_part(parts: list[Part], x: Tensor) -> Tensor:
    return part_distances(parts, x).abs().argmin(1)


def room_mesh(parts: list[Part]):
    """Ground-truth mesh (trimesh) and per-face labels: parts' meshes with buried faces removed."""
    import trimesh

    meshes, labels = [], []
    for i, part in enumerate(parts):
        v, f = trimesh.remesh.subdivide_to_size(part.mesh.vertices, part.mesh.faces, max_edge=0.1)
        m = trimesh.Trimesh(v, f, process=False)
        c = torch.tensor(np.asarray(m.triangles_center), dtype=torch.float32)
        others = [q for j, q in enumerate(parts) if j != i]
        keep = (part_distances(others, c).amin(1) > -1e-4).numpy() if others else np.ones(len(c), bool)
        m.update_faces(keep)
        m.remove_unreferenced_vertices()
        meshes.append(m)
        labels.append(np.full(len(m.faces), part.label, np.int8))
    return trimesh.util.concatenate(meshes), np.concatenate(labels)


def _albedo(parts: list[Part], x: Tensor) -> Tensor:
    idx = _nearest_part(parts, x)
    alb = torch.tensor([p.albedo for p in parts], dtype=x.dtype)[idx]
    # A soft checker texture so photometric losses have something to match.
    checker = ((torch.floor(x[:, 0] * 4) + torch.floor(x[:, 1] * 4) + torch.floor(x[:, 2] * 4)) % 2) * 0.15 + 0.85
    return alb * checker[:, None]


def _cameras(cfg: RoomSynthConfig, sdf: P.SDF, gen: torch.Generator) -> Tensor:
    """OpenCV camera-to-world poses inside the room looking at random targets."""
    from renderers.cameras import look_at, opengl_to_opencv

    poses = []
    while len(poses) < cfg.num_views:
        u = torch.rand(6, generator=gen)
        eye = torch.stack([u[0] * 3.0 - 1.5, 1.1 + 0.7 * u[1], u[2] * 3.0 - 1.5])
        target = torch.stack([u[3] * 3.2 - 1.6, 0.2 + 0.9 * u[4], u[5] * 3.2 - 1.6])
        if float(sdf(eye[None])[0]) < 0.3 or float((target - eye).norm()) < 1.0:
            continue
        poses.append(opengl_to_opencv(look_at(eye, target)))
    return torch.stack(poses)


def render_room(parts: list[Part], c2w_cv: Tensor, K: Tensor, width: int, height: int, *, include_thin: bool = True,
                max_steps: int = 160, chunk: int = 1 << 18) -> tuple[Tensor, Tensor, Tensor]:
    """Sphere-trace views (all rays of all views together, in chunks, so per-step overhead is shared).

    Args:
        parts: the room.
        c2w_cv: ``B 4 4`` (or ``4 4``) camera-to-world poses, OpenCV axes, metres.
        K: ``3 3`` intrinsics shared by the views.
        width, height: image size.
        include_thin: render the thin parts.
        max_steps: sphere-tracing steps.
        chunk: rays traced together.

    Returns:
        RGB ``B H W 3`` in [0, 1], z-depth ``B H W`` (metres) and camera-frame normals ``B H W 3``
        (OpenCV axes); the batch dimension is dropped for a single ``4 4`` pose.
    """
    from renderers.cameras import Intrinsics
    from renderers.rays import generate_rays
    from renderers.sphere_tracing import sphere_trace

    single = c2w_cv.dim() == 2
    c2w = c2w_cv[None] if single else c2w_cv
    b = c2w.shape[0]
    sdf = room_sdf(parts, include_thin)
    intr = Intrinsics(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), width, height)
    rays = generate_rays(c2w, intr, opencv=True)
    rgb, z, normals = [], [], []
    light = torch.tensor([0.0, 2.4, 0.0])
    for i in range(0, len(rays), chunk):
        r = rays[i : i + chunk]
        out = sphere_trace(sdf, r.origins, r.directions, near=0.0, far=8.0, max_steps=max_steps, eps=2e-4)
        x = out.positions
        to_light = torch.nn.functional.normalize(light - x, dim=-1)
        shade = 0.3 + 0.7 * (out.normals * to_light).sum(-1).clamp_min(0)
        rgb.append((_albedo(parts, x) * shade[:, None]).clamp(0, 1))
        z.append(out.t * r.cos_to_axis)
        normals.append(out.normals)
    n_world = torch.cat(normals).reshape(b, height * width, 3)
    n_cam = torch.einsum("bji,bnj->bni", c2w[:, :3, :3], n_world)  # R^T n per view
    rgb_t, z_t = torch.cat(rgb).reshape(b, height, width, 3), torch.cat(z).reshape(b, height, width)
    n_t = n_cam.reshape(b, height, width, 3)
    return (rgb_t[0], z_t[0], n_t[0]) if single else (rgb_t, z_t, n_t)


def _rotation(axis: Tensor, angle: float) -> Tensor:
    a = torch.nn.functional.normalize(axis, dim=0)
    k = torch.tensor([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return torch.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def synthesize_room(cfg: RoomSynthConfig) -> tuple[Scene, object, np.ndarray]:
    """Render the room: the scene (normalised frame, corrupted priors), the GT mesh (world) and face labels."""
    gen = torch.Generator().manual_seed(cfg.seed)
    parts = build_room(cfg.layout)
    sdf = room_sdf(parts)
    c2w_world = _cameras(cfg, sdf, gen)
    focal = 0.5 * cfg.height / math.tan(math.radians(cfg.fov_deg) / 2)
    K = torch.tensor([[focal, 0, cfg.width / 2], [0, focal, cfg.height / 2], [0, 0, 1.0]])
    # Normalised frame: the room's longest side (4 m) becomes 1.8.
    center, scale = torch.tensor([0.0, 1.3, 0.0]), 4.0 / 1.8
    smat = torch.eye(4)
    smat[:3, :3] *= scale
    smat[:3, 3] = center
    rgb_all, z_all, n_all = render_room(parts, c2w_world, K, cfg.width, cfg.height, max_steps=cfg.max_steps)
    if cfg.erase_thin_in_priors:
        _, z_all, n_all = render_room(parts, c2w_world, K, cfg.width, cfg.height, include_thin=False, max_steps=cfg.max_steps)
    images, depths, normals, masks = [], [], [], []
    for i in range(cfg.num_views):
        rgb, z, n = rgb_all[i], z_all[i], n_all[i]
        z = z / scale
        u = torch.rand(5, generator=gen)
        a = cfg.depth_scale_range[0] + (cfg.depth_scale_range[1] - cfg.depth_scale_range[0]) * float(u[0])
        b = cfg.depth_shift_range[0] + (cfg.depth_shift_range[1] - cfg.depth_shift_range[0]) * float(u[1])
        noisy = (a * z + b) * (1 + cfg.depth_noise * torch.randn(z.shape, generator=gen))
        angle = math.radians(cfg.normal_rotation_deg[0] + (cfg.normal_rotation_deg[1] - cfg.normal_rotation_deg[0]) * float(u[2]))
        rot = _rotation(torch.randn(3, generator=gen), angle)
        n = torch.nn.functional.normalize(n @ rot.T + cfg.normal_noise * torch.randn(n.shape, generator=gen), dim=-1)
        mask = torch.ones(cfg.height, cfg.width, dtype=torch.bool)
        side = round(cfg.hole_fraction * min(cfg.width, cfg.height))
        if side > 0:
            r0 = int(u[3] * (cfg.height - side))
            c0 = int(u[4] * (cfg.width - side))
            mask[r0 : r0 + side, c0 : c0 + side] = False
        images.append(rgb)
        depths.append(torch.where(mask, noisy, torch.zeros_like(noisy)))
        normals.append(n)
        masks.append(mask)
    c2w_n = c2w_world.clone()
    c2w_n[:, :3, 3] = (c2w_world[:, :3, 3] - center) / scale
    scene = Scene(torch.stack(images), torch.stack(depths), torch.stack(normals), torch.stack(masks), c2w_n,
                  K.expand(cfg.num_views, 3, 3).clone(), smat, False, [f"{i:06d}" for i in range(cfg.num_views)])
    mesh, labels = room_mesh(parts)
    return scene, mesh, labels


def write_room(out_dir: str | Path, cfg: RoomSynthConfig) -> Path:
    """Synthesise the room and write it (MonoSDF layout + ``gt_mesh.ply`` + ``gt_labels.npy``)
    into ``out_dir``; everything is written to a temporary sibling folder first and renamed, so
    a failure leaves no partial output."""
    import os
    import shutil
    import tempfile

    out_dir = Path(out_dir)
    scene, mesh, labels = synthesize_room(cfg)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        write_monosdf_scene(tmp, scene)
        mesh.export(tmp / "gt_mesh.ply")
        np.save(tmp / "gt_labels.npy", labels)
        if out_dir.exists():
            os.rmdir(out_dir)  # only an empty folder may be replaced
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
