"""Posed-image scenes for room reconstruction: MonoSDF/Occ-SDF folders and RGB-D sequences.

Two on-disk layouts are read into one in-memory :class:`Scene`:

* **MonoSDF / Occ-SDF** (``autonomousvision/monosdf``, ``shawLyu/Occ-SDF-Hybrid``): a folder with
  ``cameras.npz`` holding ``world_mat_i`` (``K [R|t]``, world -> pixels, OpenCV axes) and
  ``scale_mat_i`` (normalised cube -> world), and per image ``i`` (6-digit, zero-padded)
  ``{i}_rgb.png``, ``{i}_depth.npy`` (``H W`` relative depth prior), ``{i}_normal.npy``
  (``3 H W`` camera-frame normals stored in [0, 1], mapped with ``2 n - 1``) and an optional
  ``{i}_mask.npy`` (prior mask). Synthetic rooms (:mod:`shapegen.data.room_synth`) are written
  in this layout, with ``gt_mesh.ply`` and ``gt_labels.npy`` beside.
* **RGB-D sequence** (7-Scenes as redistributed by tsdf-fusion-python): ``camera-intrinsics.txt``
  (3x3 K) and ``frames/frame-XXXXXX.{color.jpg,depth.png,pose.txt}``; depth is 16-bit
  millimetres (0 invalid), poses camera-to-world in metres with OpenCV axes. Normal priors are
  derived from depth (cross product of neighbouring back-projected points).

Frames: :class:`Scene` works in the **normalised** frame where the room fits in ``[-1, 1]^3``;
``scale_mat`` maps it to the world (metres for RGB-D). Poses are camera-to-world with OpenCV
axes (x right, y down, z forward), so rays come from
``renderers.generate_rays(c2w, intrinsics, opencv=True)``. Depth priors are z-depths up to an
unknown per-image affine map (metric, in normalised units, for RGB-D: ``depth_is_metric``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from shapegen.errors import ShapegenError

__all__ = [
    "Scene",
    "decompose_projection",
    "load_scene",
    "normals_from_depth",
    "read_monosdf_scene",
    "read_rgbd_sequence",
    "write_monosdf_scene",
]


@dataclass
class Scene:
    """N posed images with depth and normal priors, in the normalised frame."""

    images: Float[Tensor, "N H W 3"]
    """Colours in [0, 1] (sRGB values as stored)."""
    depths: Float[Tensor, "N H W"]
    """Depth priors (z-depth up to a per-image affine map; 0 where unknown)."""
    normals: Float[Tensor, "N H W 3"]
    """Unit normal priors in the camera frame (OpenCV axes), facing the camera."""
    masks: Bool[Tensor, "N H W"]
    """Where the priors are valid."""
    c2w: Float[Tensor, "N 4 4"]
    """Camera-to-world poses in the normalised frame, OpenCV axes."""
    K: Float[Tensor, "N 3 3"]
    """Intrinsics in pixels (pixel centres at ``u + 0.5``)."""
    scale_mat: Float[Tensor, "4 4"] = field(default_factory=lambda: torch.eye(4))
    """Normalised frame -> world frame (``x_world = scale_mat @ x_norm``)."""
    depth_is_metric: bool = False
    """True when ``depths`` are true z-depths in normalised units (sensor depth)."""
    names: list[str] = field(default_factory=list)
    """One name per image (file stem)."""

    @property
    def num_images(self) -> int:
        return int(self.images.shape[0])

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    @property
    def scale(self) -> float:
        """World units per normalised unit."""
        return float(self.scale_mat[0, 0])

    def intrinsics(self, index: int):
        """:class:`renderers.cameras.Intrinsics` of image ``index``."""
        from renderers.cameras import Intrinsics

        k = self.K[index]
        return Intrinsics(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), self.width, self.height)

    def subset(self, indices) -> Scene:
        """The scene restricted to the images ``indices``."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return Scene(self.images[idx], self.depths[idx], self.normals[idx], self.masks[idx], self.c2w[idx], self.K[idx],
                     self.scale_mat.clone(), self.depth_is_metric, [self.names[i] for i in idx.tolist()] if self.names else [])


# ------------------------------------------------------------------------------------ cameras
def decompose_projection(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a 3x4 projection ``P ~ K [R | t]`` into K (3x3, positive diagonal) and the
    camera-to-world pose (4x4, OpenCV axes); MonoSDF's ``load_K_Rt_from_P`` without OpenCV.

    Raises:
        ShapegenError: for a singular matrix.
    """
    from scipy.linalg import rq

    P = np.asarray(P, dtype=np.float64)[:3, :4]
    M = P[:, :3]
    if abs(np.linalg.det(M)) < 1e-12:
        raise ShapegenError("a camera projection matrix in cameras.npz is singular; check world_mat/scale_mat")
    if np.linalg.det(M) < 0:  # P is defined up to sign; choose the one with a proper rotation
        P, M = -P, -M
    k, r = rq(M)
    d = np.diag(np.sign(np.diag(k)))
    k, r = k @ d, d @ r
    t = np.linalg.solve(k, P[:, 3])
    k = k / k[2, 2]
    c2w = np.eye(4)
    c2w[:3, :3] = r.T
    c2w[:3, 3] = -r.T @ t
    return k, c2w


def _projection(K: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    w2c = np.linalg.inv(c2w)
    P = np.eye(4)
    P[:3, :4] = K @ w2c[:3, :4]
    return P


# ------------------------------------------------------------------------------------ normals
def normals_from_depth(depth: Float[Tensor, "H W"], K: Float[Tensor, "3 3"]) -> tuple[Float[Tensor, "H W 3"], Bool[Tensor, "H W"]]:
    """Camera-frame unit normals (OpenCV axes, facing the camera) from a z-depth map.

    Central differences of the back-projected points; a pixel is valid when it and its four
    neighbours have depth and the neighbours lie within 5% of its depth (no depth edge).
    """
    h, w = depth.shape
    v, u = torch.meshgrid(torch.arange(h, dtype=depth.dtype) + 0.5, torch.arange(w, dtype=depth.dtype) + 0.5, indexing="ij")
    pts = torch.stack([(u - K[0, 2]) / K[0, 0] * depth, (v - K[1, 2]) / K[1, 1] * depth, depth], -1)
    pad = torch.nn.functional.pad(pts.permute(2, 0, 1)[None], (1, 1, 1, 1), mode="replicate")[0].permute(1, 2, 0)
    dx = pad[1:-1, 2:] - pad[1:-1, :-2]
    dy = pad[2:, 1:-1] - pad[:-2, 1:-1]
    n = torch.linalg.cross(dx, dy, dim=-1)
    n = torch.nn.functional.normalize(n, dim=-1)
    n = torch.where((n * pts).sum(-1, keepdim=True) > 0, -n, n)  # face the camera
    dpad = torch.nn.functional.pad(depth[None, None], (1, 1, 1, 1), mode="replicate")[0, 0]
    neigh = torch.stack([dpad[1:-1, 2:], dpad[1:-1, :-2], dpad[2:, 1:-1], dpad[:-2, 1:-1]])
    valid = (depth > 0) & (neigh > 0).all(0) & ((neigh - depth).abs() < 0.05 * depth).all(0)
    return torch.where(valid[..., None], n, torch.zeros_like(n)), valid


# ------------------------------------------------------------------------------------ MonoSDF
def _index_of(path: Path, suffix: str) -> str:
    return path.name[: -len(suffix)]


def _open_image(path: Path):
    """A fully decoded Pillow image, or a one-line ShapegenError naming the corrupt file."""
    from PIL import Image, UnidentifiedImageError

    try:
        im = Image.open(path)
        im.load()  # decode now: a truncated file fails here, not somewhere downstream
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise ShapegenError(f"cannot read the image {path} ({' '.join(str(exc).split())[:100]}); replace the corrupt or truncated file") from exc
    return im


def _load_matrix(path: Path, rows: int, cols: int) -> np.ndarray:
    """A ``rows x cols`` matrix from a text file, or a one-line ShapegenError naming the file."""
    try:
        return np.loadtxt(path).reshape(rows, cols)
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise ShapegenError(f"{path} must hold a {rows}x{cols} matrix of numbers; replace the corrupt file") from exc


def read_monosdf_scene(root: str | Path, *, max_images: int | None = None) -> Scene:
    """Read a MonoSDF/Occ-SDF scene folder (see the module doc).

    Raises:
        ShapegenError: missing or inconsistent files, with the file named.
    """
    root = Path(root)
    cams_path = root / "cameras.npz"
    if not cams_path.is_file():
        raise ShapegenError(f"{root} has no cameras.npz; expected a MonoSDF scene folder (cameras.npz, *_rgb.png, *_depth.npy, *_normal.npy)")
    try:
        cams = dict(np.load(cams_path, allow_pickle=False))
    except Exception as exc:
        raise ShapegenError(f"cannot read {cams_path}: {str(exc).splitlines()[0]}") from exc
    rgb_files = sorted(root.glob("*_rgb.png"))
    if not rgb_files:
        raise ShapegenError(f"{root} has cameras.npz but no *_rgb.png images")
    if max_images is not None:
        rgb_files = rgb_files[:max_images]
    images, depths, normals, masks, c2ws, ks, names = [], [], [], [], [], [], []
    scale_mat = None
    for n_img, f in enumerate(rgb_files):
        stem = _index_of(f, "_rgb.png")
        i = int(stem) if stem.isdigit() else n_img
        wkey, skey = f"world_mat_{i}", f"scale_mat_{i}"
        if wkey not in cams:
            raise ShapegenError(f"{cams_path} has no {wkey} for image {f.name}")
        smat = cams.get(skey, np.eye(4))
        scale_mat = smat if scale_mat is None else scale_mat
        k, c2w = decompose_projection((cams[wkey] @ smat)[:3, :4])
        img = np.asarray(_open_image(f).convert("RGB"), dtype=np.float32) / 255.0
        h, w = img.shape[:2]
        try:
            depth = np.load(root / f"{stem}_depth.npy", allow_pickle=False).astype(np.float32).reshape(h, w)
            normal = np.load(root / f"{stem}_normal.npy", allow_pickle=False).astype(np.float32)
        except FileNotFoundError as exc:
            raise ShapegenError(f"{root} lacks {Path(exc.filename).name}; every image needs _depth.npy and _normal.npy priors") from exc
        except ValueError as exc:
            raise ShapegenError(f"depth prior of {f.name} does not match the image size {w}x{h}") from exc
        if normal.shape == (3, h, w):
            normal = normal.transpose(1, 2, 0)
        if normal.shape != (h, w, 3):
            raise ShapegenError(f"{stem}_normal.npy has shape {normal.shape}; expected 3 x {h} x {w}")
        normal = normal * 2.0 - 1.0
        mpath = root / f"{stem}_mask.npy"
        try:
            mask = np.load(mpath, allow_pickle=False).reshape(h, w) > 0.5 if mpath.is_file() else np.ones((h, w), bool)
        except ValueError as exc:  # also an object array, which is never unpickled
            raise ShapegenError(f"cannot read {mpath.name} as a {w}x{h} mask: {str(exc).splitlines()[0]}") from exc
        if images and img.shape != images[0].shape:
            raise ShapegenError(f"{f.name} is {w}x{h} but earlier images are {images[0].shape[1]}x{images[0].shape[0]}; all images must share one size")
        images.append(img)
        depths.append(depth)
        normals.append(normal)
        masks.append(mask)
        c2ws.append(c2w)
        ks.append(k)
        names.append(stem)
    t = lambda a, dt=torch.float32: torch.as_tensor(np.stack(a), dtype=dt)
    n = torch.nn.functional.normalize(t(normals), dim=-1)
    return Scene(t(images), t(depths), n, t(masks, torch.bool), t(c2ws), t(ks),
                 torch.as_tensor(scale_mat, dtype=torch.float32), False, names)


def write_monosdf_scene(root: str | Path, scene: Scene) -> Path:
    """Write ``scene`` in the MonoSDF layout (files are written into ``root``, created if needed)."""
    from PIL import Image

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    smat = scene.scale_mat.double().numpy()
    cams: dict[str, np.ndarray] = {}
    for i in range(scene.num_images):
        stem = f"{i:06d}"
        c2w_world = smat @ scene.c2w[i].double().numpy()
        # Keep the rotation orthonormal in the world frame: undo the scale on the rotation part.
        c2w_world[:3, :3] = scene.c2w[i, :3, :3].double().numpy()
        cams[f"world_mat_{i}"] = _projection(scene.K[i].double().numpy(), c2w_world)
        cams[f"scale_mat_{i}"] = smat
        img = (scene.images[i].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        Image.fromarray(img).save(root / f"{stem}_rgb.png")
        np.save(root / f"{stem}_depth.npy", scene.depths[i].numpy().astype(np.float32))
        np.save(root / f"{stem}_normal.npy", ((scene.normals[i].numpy() + 1.0) / 2.0).transpose(2, 0, 1).astype(np.float32))
        np.save(root / f"{stem}_mask.npy", scene.masks[i].numpy())
    np.savez(root / "cameras.npz", **cams)
    return root


# ------------------------------------------------------------------------------------ RGB-D
_FRAME = re.compile(r"frame-(\d+)\.color\.(jpg|png)$")


def read_rgbd_sequence(
    root: str | Path, *, downscale: int = 4, stride: int = 1, max_images: int | None = None, max_depth: float = 5.0
) -> Scene:
    """Read a posed RGB-D sequence (7-Scenes layout), normalise it into ``[-1, 1]^3``.

    The normalisation centres the box spanning the camera centres and the 2nd-98th percentile of
    the back-projected depth points, and scales its longest side to 1.8 (a 10% margin).

    Args:
        root: folder with ``camera-intrinsics.txt`` and ``frames/``.
        downscale: integer factor to shrink images (nearest for depth, box filter for colour).
        stride: use every ``stride``-th frame.
        max_images: keep at most this many frames (after ``stride``).
        max_depth: sensor depths beyond this (metres) are treated as invalid.

    Raises:
        ShapegenError: missing intrinsics, frames or poses.
    """
    from PIL import Image

    root = Path(root)
    kfile = root / "camera-intrinsics.txt"
    fdir = root / "frames" if (root / "frames").is_dir() else root
    if not kfile.is_file():
        raise ShapegenError(f"{root} has no camera-intrinsics.txt; expected an RGB-D sequence folder (camera-intrinsics.txt, frames/)")
    K = _load_matrix(kfile, 3, 3)
    frames = sorted(p for p in fdir.iterdir() if _FRAME.search(p.name))[::max(1, stride)]
    if max_images is not None:
        frames = frames[:max_images]
    if not frames:
        raise ShapegenError(f"no frame-XXXXXX.color.jpg files in {fdir}")
    ds = max(1, int(downscale))
    Ks = K.copy()
    Ks[:2] /= ds
    images, depths, c2ws, names = [], [], [], []
    for f in frames:
        stem = f.name.split(".")[0]
        dpath, ppath = fdir / f"{stem}.depth.png", fdir / f"{stem}.pose.txt"
        if not dpath.is_file() or not ppath.is_file():
            raise ShapegenError(f"{f.name} has no matching {dpath.name} / {ppath.name}")
        depth = np.asarray(_open_image(dpath), dtype=np.float32) / 1000.0
        img = _open_image(f).convert("RGB")
        h, w = depth.shape[0] // ds, depth.shape[1] // ds
        img = np.asarray(img.resize((w, h), Image.BOX), dtype=np.float32) / 255.0
        depth = depth[ds // 2 :: ds, ds // 2 :: ds][:h, :w]
        depth[(depth > max_depth) | ~np.isfinite(depth)] = 0.0
        pose = _load_matrix(ppath, 4, 4)
        if not np.isfinite(pose).all():
            continue  # 7-Scenes marks lost tracking with inf poses
        images.append(img)
        depths.append(depth)
        c2ws.append(pose)
        names.append(stem)
    if not images:
        raise ShapegenError(f"no frame in {fdir} has a finite pose")
    depth_t = torch.as_tensor(np.stack(depths))
    c2w_t = torch.as_tensor(np.stack(c2ws), dtype=torch.float64)
    K_t = torch.as_tensor(Ks, dtype=torch.float32)
    # World points for the normalisation (every 4th pixel of every frame).
    pts = []
    for i in range(len(images)):
        d = depth_t[i, ::4, ::4]
        v, u = torch.meshgrid(torch.arange(0, depth_t.shape[1], 4) + 0.5, torch.arange(0, depth_t.shape[2], 4) + 0.5, indexing="ij")
        cam = torch.stack([(u - Ks[0, 2]) / Ks[0, 0] * d, (v - Ks[1, 2]) / Ks[1, 1] * d, d], -1)[d > 0].double()
        pts.append(cam @ c2w_t[i, :3, :3].T + c2w_t[i, :3, 3])
    allp = torch.cat([*pts, c2w_t[:, :3, 3]])
    lo = torch.quantile(allp[:: max(1, len(allp) // 100000)], 0.02, dim=0)
    hi = torch.quantile(allp[:: max(1, len(allp) // 100000)], 0.98, dim=0)
    lo, hi = torch.minimum(lo, c2w_t[:, :3, 3].amin(0)), torch.maximum(hi, c2w_t[:, :3, 3].amax(0))
    center, scale = (lo + hi) / 2, float((hi - lo).max()) / 1.8
    smat = torch.eye(4, dtype=torch.float64)
    smat[:3, :3] *= scale
    smat[:3, 3] = center
    c2w_n = c2w_t.clone()
    c2w_n[:, :3, 3] = (c2w_t[:, :3, 3] - center) / scale
    normals, valid = zip(*(normals_from_depth(depth_t[i], K_t) for i in range(len(images))))
    return Scene(
        torch.as_tensor(np.stack(images)), depth_t / scale, torch.stack(normals), torch.stack(valid),
        c2w_n.float(), K_t.expand(len(images), 3, 3).clone(), smat.float(), True, names,
    )


def load_scene(root: str | Path, **kwargs) -> Scene:
    """Read a scene folder in either layout (detected from ``cameras.npz`` or
    ``camera-intrinsics.txt``); ``kwargs`` go to the matching reader.

    Raises:
        ShapegenError: a folder in neither layout.
    """
    root = Path(root)
    if not root.is_dir():
        raise ShapegenError(f"scene folder {root} does not exist")
    if (root / "cameras.npz").is_file():
        kwargs.pop("downscale", None)
        kwargs.pop("stride", None)
        kwargs.pop("max_depth", None)
        return read_monosdf_scene(root, **kwargs)
    if (root / "camera-intrinsics.txt").is_file():
        return read_rgbd_sequence(root, **kwargs)
    raise ShapegenError(f"{root} is not a scene folder: expected cameras.npz (MonoSDF layout) or camera-intrinsics.txt + frames/ (RGB-D)")
