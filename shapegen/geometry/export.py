"""Write meshes that open the same way up, with colours and materials, in Blender and other tools.

Formats (chosen by the file suffix):
    ``.glb`` (recommended) and ``.gltf``: glTF 2.0, one self-contained file (``.gltf`` embeds
    its buffer and PNG textures as data URIs). Positions, smooth ``NORMAL``, ``COLOR_0``,
    ``TEXCOORD_0`` and a metallic-roughness material (base colour, metallic-roughness with
    G = roughness and B = metallic, normal texture).
    ``.obj``: Wavefront OBJ with ``v x y z r g b`` vertex colours, ``vt``, ``vn``, plus
    ``<stem>.mtl`` and ``<stem>_{basecolor,roughness,metallic,normal}.png`` beside it; the MTL
    uses the PBR extension (``Pr``/``Pm``/``map_Pr``/``map_Pm``) and ``map_Bump`` for the
    normal map, which is what Blender's OBJ importer reads. Positions that differ only by a UV
    seam are written once (``v`` is welded, ``vt`` is not), so Blender sees one connected surface.
    Known Blender limitation (5.0): its OBJ importer tags the roughness, metallic and normal
    PNGs as sRGB images, so after importing an OBJ set those three to Non-Color (or use .glb,
    whose importer does this right). The PNGs themselves hold linear data, as MTL readers expect.
    ``.ply``: binary little-endian PLY with normals, ``s t`` UVs and 8-bit ``red green blue
    (alpha)`` colours; no material.

Axes and units (shapegen's frame is glTF's: right-handed, +Y up, metres, counter-clockwise
front faces). Each format is written so that Blender's importer, with its default settings,
puts shapegen's +Y on Blender's +Z:
    glTF: +Y up by specification; Blender converts to Z up.
    OBJ: written +Y up; Blender's OBJ importer defaults to ``up_axis='Y'``, ``forward_axis='-Z'``.
    PLY: Blender's PLY importer defaults to ``up_axis='Z'``, ``forward_axis='Y'``, i.e. no
    conversion, so PLY is written Z up by rotating ``(x, y, z) -> (x, -z, y)`` (a proper rotation,
    winding kept). Pass ``ply_up="y"`` for tools that expect Y-up PLY (MeshLab, Open3D).
All formats keep metres (no scaling).

Colours: ``Mesh.vertex_colors`` and base-colour textures are sRGB display values. OBJ and PLY
store them as such (Blender treats both as sRGB); glTF requires linear ``COLOR_0``, so they
are converted with the sRGB transfer function on the way out. glTF multiplies ``COLOR_0`` into
the base colour, so a mesh carrying both a texture and vertex colours shows their product there.

Every output is atomic: files are written under temporary names in the target folder and
renamed into place only when complete (OBJ: textures first, then the MTL, the OBJ last).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
from torch import Tensor

from shapegen.errors import ShapegenError
from shapegen.geometry.mesh import Mesh, PBRMaterial
from shapegen.geometry.rows import unique_rows
from shapegen.io import atomic_path, check_output_path

__all__ = ["EXPORT_SUFFIXES", "TEXTURE_SUFFIXES", "export_mesh", "linear_to_srgb", "srgb_to_linear"]

#: File suffixes :func:`export_mesh` writes (lower case, with the dot); the readable ones are
#: :data:`shapegen.geometry.mesh_io.MESH_SUFFIXES`.
EXPORT_SUFFIXES = (".glb", ".gltf", ".obj", ".ply")
#: The written formats that carry a material's texture images (PLY keeps UVs and vertex colours only).
TEXTURE_SUFFIXES = tuple(s for s in EXPORT_SUFFIXES if s != ".ply")


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB transfer function inverse (IEC 61966-2-1), elementwise on values in [0, 1]."""
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """sRGB transfer function (IEC 61966-2-1), elementwise on values in [0, 1]."""
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def export_mesh(
    mesh: Mesh,
    path: str | os.PathLike,
    *,
    normals: bool = True,
    double_sided: bool = False,
    ply_up: Literal["z", "y"] = "z",
    name: str | None = None,
) -> Path:
    """Write ``mesh`` to ``path`` in the format given by its suffix; returns the path written.

    Args:
        mesh: the mesh (shapegen frame: +Y up, metres). ``uv`` and ``material`` textures are
            written where present; a material without UVs is written with its factors only.
        path: output file; ``.glb`` (recommended), ``.gltf``, ``.obj`` or ``.ply``.
        normals: write smooth, area-weighted vertex normals (computed across UV seams, so
            seams do not show in the shading). Without them importers shade faces flat.
        double_sided: glTF ``doubleSided`` (render back faces; useful for open surfaces).
        ply_up: ``"z"`` writes PLY Z-up as Blender's PLY importer expects; ``"y"`` keeps Y up.
        name: object / material name in the file; defaults to the file stem.

    Raises:
        ShapegenError: unknown suffix, unwritable folder, an empty mesh, non-finite vertices,
            out-of-range faces, or an OS error while writing. No partial output is left behind.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise ShapegenError(
            f"unsupported mesh format {suffix or '(no suffix)'!r} for {path}; use .glb (recommended), .gltf, .obj or .ply"
        )
    if ply_up not in ("z", "y"):
        raise ShapegenError(f"ply_up must be 'z' or 'y', got {ply_up!r}")
    data = _MeshData.from_mesh(mesh, normals=normals)
    name = name or path.stem or "shapegen"
    path = check_output_path(path)
    try:
        if suffix in (".glb", ".gltf"):
            with atomic_path(path) as tmp:
                _write_gltf(
                    data, tmp, binary=suffix == ".glb", double_sided=double_sided, name=name
                )
        elif suffix == ".ply":
            with atomic_path(path) as tmp:
                _write_ply(data, tmp, up=ply_up, name=name)
        else:
            _write_obj_atomic(data, path, name=name)
    except OSError as exc:
        raise ShapegenError(
            f"cannot write {path}: {exc.strerror or exc}; check the disk space and permissions"
        ) from exc
    return path


# --------------------------------------------------------------------------------------------
# Mesh data as numpy, validated once for every writer


class _MeshData:
    """numpy views of a mesh, with textures as uint8 images and factors folded where needed."""

    def __init__(self, vertices, faces, colors, uv, vnormals, material: PBRMaterial | None):
        self.vertices: np.ndarray = vertices  # V 3 float32
        self.faces: np.ndarray = faces  # F 3 uint32
        self.colors: np.ndarray | None = colors  # V 3|4 float32 sRGB
        self.uv: np.ndarray | None = uv  # V 2 float32 glTF convention
        self.normals: np.ndarray | None = vnormals  # V 3 float32
        self.material = material

    @classmethod
    def from_mesh(cls, mesh: Mesh, *, normals: bool) -> _MeshData:
        v = _np(mesh.vertices).astype(np.float32)
        f = _np(mesh.faces).astype(np.int64)
        if len(f) == 0:
            raise ShapegenError(
                "the mesh has no faces (an empty surface); check the field and the extraction level before exporting"
            )
        if not np.isfinite(v).all():
            raise ShapegenError(
                "the mesh has NaN or infinite vertices; fix the field or extraction before exporting"
            )
        if f.size and (f.min() < 0 or f.max() >= len(v)):
            raise ShapegenError(f"the mesh has face indices outside [0, {len(v)}); it is corrupt")
        colors = (
            None
            if mesh.vertex_colors is None
            else np.clip(_np(mesh.vertex_colors).astype(np.float32), 0, 1)
        )
        if colors is not None and (
            colors.ndim != 2
            or colors.shape != (len(v), colors.shape[1])
            or colors.shape[1] not in (3, 4)
        ):
            raise ShapegenError(
                f"vertex_colors must be V x 3 or V x 4 with V = {len(v)}, got {colors.shape}"
            )
        uv = None if mesh.uv is None else _np(mesh.uv).astype(np.float32)
        if uv is not None and uv.shape != (len(v), 2):
            raise ShapegenError(f"uv must be V x 2 with V = {len(v)}, got {uv.shape}")
        return cls(
            v,
            f.astype(np.uint32),
            colors,
            uv,
            _smooth_normals(v, f) if normals else None,
            mesh.material,
        )

    def weld(self) -> tuple[np.ndarray, np.ndarray]:
        """``(first, inverse)``: one representative per distinct (position, colour), first-seen order."""
        key = (
            self.vertices
            if self.colors is None
            else np.concatenate([self.vertices, self.colors], 1)
        )
        _, first, inverse = unique_rows(key, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # keep first-occurrence order, not sorted order
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return first[order], rank[inverse]


def _np(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _smooth_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals summed over all copies of a position (seams stay smooth)."""
    if len(f) == 0:
        return np.zeros_like(v)
    _, inverse = unique_rows(v, return_inverse=True)
    tri = v[f].astype(np.float64)
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    # bincount sums in the same (corner) order as np.add.at, so the result is identical, and fast.
    corner = inverse[f].reshape(-1)
    size = int(inverse.max()) + 1
    acc = np.stack([np.bincount(corner, np.repeat(fn[:, k], 3), minlength=size) for k in range(3)], 1)
    n = acc[inverse]
    length = np.linalg.norm(n, axis=1, keepdims=True)
    n = np.where(
        length > 1e-20, n / np.maximum(length, 1e-20), np.array([0.0, 1.0, 0.0])
    )  # isolated: any unit
    return n.astype(np.float32)


def _image_u8(texture: Tensor, channels: tuple[int, ...] | None = None, factor=None) -> np.ndarray:
    """``H W C`` float texture -> uint8, optionally picking channels and multiplying a factor."""
    img = _np(texture).astype(np.float32)
    if img.ndim == 2:
        img = img[:, :, None]
    if channels is not None:
        img = img[:, :, list(channels)]
    if factor is not None:
        img = img * np.asarray(factor, np.float32)[: img.shape[2]]
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def _png_bytes(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# glTF 2.0


_FLOAT, _UINT = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def _gltf_document(data: _MeshData, *, double_sided: bool, name: str) -> tuple[dict, bytes]:
    blob = bytearray()
    views: list[dict] = []
    accessors: list[dict] = []

    def add_view(raw: bytes, target: int | None = None) -> int:
        blob.extend(b"\0" * (-len(blob) % 4))  # glTF: every view starts 4-byte aligned
        view = {"buffer": 0, "byteOffset": len(blob), "byteLength": len(raw)}
        if target is not None:
            view["target"] = target
        blob.extend(raw)
        views.append(view)
        return len(views) - 1

    def add_accessor(array: np.ndarray, type_: str, target: int, bounds: bool = False) -> int:
        comp = _UINT if array.dtype == np.uint32 else _FLOAT
        acc = {
            "bufferView": add_view(np.ascontiguousarray(array).tobytes(), target),
            "componentType": comp,
            "count": int(array.shape[0]),
            "type": type_,
        }
        if bounds:  # required on POSITION
            acc["min"] = [float(x) for x in array.min(0)]
            acc["max"] = [float(x) for x in array.max(0)]
        accessors.append(acc)
        return len(accessors) - 1

    attributes = {"POSITION": add_accessor(data.vertices, "VEC3", _ARRAY_BUFFER, bounds=True)}
    if data.normals is not None:
        attributes["NORMAL"] = add_accessor(data.normals, "VEC3", _ARRAY_BUFFER)
    if data.uv is not None:
        attributes["TEXCOORD_0"] = add_accessor(data.uv, "VEC2", _ARRAY_BUFFER)
    if data.colors is not None:
        linear = data.colors.copy()
        linear[:, :3] = srgb_to_linear(
            linear[:, :3]
        )  # glTF COLOR_0 is linear; alpha is not encoded
        attributes["COLOR_0"] = add_accessor(
            linear.astype(np.float32), f"VEC{linear.shape[1]}", _ARRAY_BUFFER
        )
    primitive = {"attributes": attributes, "mode": 4}
    primitive["indices"] = add_accessor(data.faces.reshape(-1), "SCALAR", _ELEMENT_ARRAY_BUFFER)

    doc: dict = {
        "asset": {"version": "2.0", "generator": "shapegen"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": name}],
        "meshes": [{"name": name, "primitives": [primitive]}],
    }
    mat = data.material
    if mat is not None:
        images: list[dict] = []

        def add_texture(img: np.ndarray) -> dict:
            images.append({"bufferView": add_view(_png_bytes(img)), "mimeType": "image/png"})
            return {"index": len(images) - 1}

        use_tex = data.uv is not None  # textures need UVs; without them only factors are written
        pbr: dict = {
            "baseColorFactor": [float(x) for x in mat.base_color_factor],
            "metallicFactor": float(mat.metallic_factor),
            "roughnessFactor": float(mat.roughness_factor),
        }
        material: dict = {
            "name": mat.name,
            "pbrMetallicRoughness": pbr,
            "doubleSided": bool(double_sided),
        }
        alpha = mat.base_color_factor[3] < 1
        if use_tex and mat.base_color_texture is not None:
            img = _image_u8(mat.base_color_texture)
            pbr["baseColorTexture"] = add_texture(img)
            alpha = alpha or (img.shape[2] == 4 and bool((img[:, :, 3] < 255).any()))
        if use_tex and mat.metallic_roughness_texture is not None:
            pbr["metallicRoughnessTexture"] = add_texture(
                _image_u8(mat.metallic_roughness_texture, (0, 1, 2))
            )
        if use_tex and mat.normal_texture is not None:
            material["normalTexture"] = add_texture(_image_u8(mat.normal_texture, (0, 1, 2)))
        if alpha:
            material["alphaMode"] = "BLEND"
        doc["materials"] = [material]
        primitive["material"] = 0
        if images:
            doc["images"] = images
            doc["samplers"] = [
                {"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}
            ]  # linear, clamp
            doc["textures"] = [{"sampler": 0, "source": i} for i in range(len(images))]
    blob.extend(b"\0" * (-len(blob) % 4))
    doc["accessors"] = accessors
    doc["bufferViews"] = views
    doc["buffers"] = [{"byteLength": len(blob)}]
    return doc, bytes(blob)


def _write_gltf(
    data: _MeshData, path: Path, *, binary: bool, double_sided: bool, name: str
) -> None:
    doc, blob = _gltf_document(data, double_sided=double_sided, name=name)
    if not binary:
        doc["buffers"][0]["uri"] = "data:application/octet-stream;base64," + base64.b64encode(
            blob
        ).decode("ascii")
        path.write_text(json.dumps(doc, indent=1))
        return
    text = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)  # JSON chunk padded with spaces, BIN chunk with zeros
    total = 12 + 8 + len(text) + 8 + len(blob)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<4sII", b"glTF", 2, total))
        fh.write(struct.pack("<I4s", len(text), b"JSON"))
        fh.write(text)
        fh.write(struct.pack("<I4s", len(blob), b"BIN\0"))
        fh.write(blob)


# --------------------------------------------------------------------------------------------
# Wavefront OBJ + MTL + PNG textures


def _obj_files(data: _MeshData, stem: str, name: str) -> dict[str, bytes]:
    """File name -> contents for the OBJ, its MTL and textures (all beside each other)."""
    files: dict[str, bytes] = {}
    mat = data.material
    first, inverse = data.weld()
    lines = ["# shapegen OBJ: +Y up, -Z forward, metres (Blender's OBJ importer defaults)"]
    if mat is not None:
        lines.append(f"mtllib {stem}.mtl")
    lines.append(f"o {name}")
    pos = data.vertices[first]
    if data.colors is not None:
        # Blender reads `v x y z r g b` as an sRGB colour attribute; OBJ has no alpha.
        lines.append(
            _rows(
                "v %.7g %.7g %.7g %.6g %.6g %.6g", np.concatenate([pos, data.colors[first, :3]], 1)
            )
        )
    else:
        lines.append(_rows("v %.7g %.7g %.7g", pos))
    if data.uv is not None:
        vt = np.stack([data.uv[:, 0], 1.0 - data.uv[:, 1]], 1)  # OBJ's v axis points up the image
        lines.append(_rows("vt %.7g %.7g", vt))
    if data.normals is not None:
        lines.append(_rows("vn %.6g %.6g %.6g", data.normals[first]))
    if mat is not None:
        lines.append(f"usemtl {mat.name}")
    vi = inverse[data.faces.astype(np.int64)] + 1  # OBJ indices are 1-based
    ti = data.faces.astype(np.int64) + 1
    if data.uv is not None and data.normals is not None:
        lines.append(_rows("f" + " %d/%d/%d" * 3, np.stack([vi, ti, vi], 2).reshape(-1, 9)))
    elif data.uv is not None:
        lines.append(_rows("f" + " %d/%d" * 3, np.stack([vi, ti], 2).reshape(-1, 6)))
    elif data.normals is not None:
        lines.append(_rows("f" + " %d//%d" * 3, np.stack([vi, vi], 2).reshape(-1, 6)))
    else:
        lines.append(_rows("f %d %d %d", vi))
    files[f"{stem}.obj"] = ("\n".join(lines) + "\n").encode("utf-8")
    if mat is not None:
        files.update(_mtl_files(mat, stem, textured=data.uv is not None))
    return files


#: Rows formatted by one ``%`` operation in :func:`_rows`.
_ROW_BLOCK = 4096


def _rows(fmt: str, array: np.ndarray) -> str:
    """One formatted line per row, the same text as ``np.savetxt(..., fmt=fmt)`` writes.

    ``np.savetxt`` formats row by row in Python; one ``%`` over a block of rows does the same
    formatting in C, several times faster on millions of rows.
    """
    array = np.asarray(array)
    line = fmt + "\n"
    parts = [(line * len(block)) % tuple(block.ravel().tolist())
             for block in (array[i : i + _ROW_BLOCK] for i in range(0, len(array), _ROW_BLOCK))]
    return "".join(parts).rstrip("\n")


def _mtl_files(mat: PBRMaterial, stem: str, *, textured: bool) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    r, g, b, a = (float(x) for x in mat.base_color_factor)
    rough, metal = float(mat.roughness_factor), float(mat.metallic_factor)
    lines = ["# shapegen MTL (PBR extension: Pr/Pm as read by Blender)", f"newmtl {mat.name}"]
    lines += [
        f"Kd {r:.6g} {g:.6g} {b:.6g}",
        "Ka 1 1 1",
        "Ks 0.5 0.5 0.5",
        "Ke 0 0 0",
        f"d {a:.6g}",
        "illum 2",
    ]
    lines += [f"Pr {rough:.6g}", f"Pm {metal:.6g}"]
    if textured and mat.base_color_texture is not None:
        # MTL has no texture x factor product, so the factor is folded into the image.
        img = _image_u8(mat.base_color_texture, factor=(r, g, b, a))
        files[f"{stem}_basecolor.png"] = _png_bytes(img)
        lines.append(f"map_Kd {stem}_basecolor.png")
        if img.shape[2] == 4 and (img[:, :, 3] < 255).any():
            files[f"{stem}_alpha.png"] = _png_bytes(img[:, :, 3:4])
            lines.append(f"map_d {stem}_alpha.png")
    if textured and mat.metallic_roughness_texture is not None:
        files[f"{stem}_roughness.png"] = _png_bytes(
            _image_u8(mat.metallic_roughness_texture, (1,), (rough,))
        )
        files[f"{stem}_metallic.png"] = _png_bytes(
            _image_u8(mat.metallic_roughness_texture, (2,), (metal,))
        )
        lines += [f"map_Pr {stem}_roughness.png", f"map_Pm {stem}_metallic.png"]
    if textured and mat.normal_texture is not None:
        files[f"{stem}_normal.png"] = _png_bytes(_image_u8(mat.normal_texture, (0, 1, 2)))
        lines.append(f"map_Bump -bm 1 {stem}_normal.png")  # Blender: tangent-space Normal Map node
    files[f"{stem}.mtl"] = ("\n".join(lines) + "\n").encode("utf-8")
    return files


def _write_obj_atomic(data: _MeshData, path: Path, *, name: str) -> None:
    files = _obj_files(data, path.stem, name)
    obj_name = f"{path.stem}.obj"
    # Write everything into a hidden temporary folder beside the target (same file system, so
    # renames are atomic), then move the companions first and the OBJ last: an OBJ never
    # appears without the files it references, and a failure leaves nothing behind.
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", dir=path.parent))
    try:
        for fname, content in files.items():
            _write_bytes(tmpdir / fname, content)
        order = [f for f in files if f != obj_name] + [obj_name]
        for fname in order:
            target = path if fname == obj_name else path.parent / fname
            os.replace(tmpdir / fname, target)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmpdir)


def _write_bytes(path: Path, content: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(content)


# --------------------------------------------------------------------------------------------
# PLY


def _write_ply(data: _MeshData, path: Path, *, up: str, name: str) -> None:
    v, n = data.vertices, data.normals
    if up == "z":
        # Y-up -> Z-up: (x, y, z) -> (x, -z, y), a rotation about +X by +90 degrees (det = +1).
        v = np.stack([v[:, 0], -v[:, 2], v[:, 1]], 1)
        n = None if n is None else np.stack([n[:, 0], -n[:, 2], n[:, 1]], 1)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if n is not None:
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    if data.uv is not None:
        fields += [("s", "<f4"), ("t", "<f4")]
    if data.colors is not None:
        fields += [(c, "u1") for c in ("red", "green", "blue", "alpha")[: data.colors.shape[1]]]
    vert = np.empty(len(v), dtype=fields)
    vert["x"], vert["y"], vert["z"] = v.T
    if n is not None:
        vert["nx"], vert["ny"], vert["nz"] = n.T
    if data.uv is not None:
        vert["s"], vert["t"] = (
            data.uv[:, 0],
            1.0 - data.uv[:, 1],
        )  # PLY/Blender: t points up the image
    if data.colors is not None:
        c8 = np.clip(np.round(data.colors * 255), 0, 255).astype(np.uint8)
        for k, c in enumerate(("red", "green", "blue", "alpha")[: data.colors.shape[1]]):
            vert[c] = c8[:, k]
    face = np.empty(len(data.faces), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    face["n"] = 3
    face["i"] = data.faces.astype(np.int32)
    ply_type = {"<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", "comment generated by shapegen"]
    header.append(
        f"comment axes: {'+Z up, Blender PLY importer default' if up == 'z' else '+Y up (glTF frame)'}; metres"
    )
    header.append(f"comment object {name}")
    header.append(f"element vertex {len(v)}")
    header += [f"property {ply_type[t]} {f}" for f, t in fields]
    header += [
        f"element face {len(data.faces)}",
        "property list uchar int vertex_indices",
        "end_header",
    ]
    with open(path, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(vert.tobytes())
        fh.write(face.tobytes())
