"""Write and read a rigged mesh as glTF 2.0 binary (GLB): armature, skin, morph targets, material.

Builds on :mod:`shapegen.geometry.export` (same axes, units, normals, colours, PBR material
and atomic writes) and adds:
    - one node per joint (translation relative to its parent; rest rotations are the identity),
      with the skinned mesh node and the skeleton's root joints both at the scene root;
    - ``skins[0]`` with ``joints`` and ``inverseBindMatrices`` (inverse rest joint-to-world,
      column-major as glTF requires);
    - ``JOINTS_0`` (unsigned short) and ``WEIGHTS_0`` (float, rows summing to one), 4 per vertex;
    - morph targets as ``POSITION`` deltas, named in ``mesh.extras.targetNames`` (read by
      Blender as shape keys, by three.js as morph target names), default weights 0.
No pygltflib is needed: the JSON and binary chunks are written directly.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import torch

from shapegen.errors import ShapegenError
from shapegen.geometry.export import _gltf_document, _MeshData
from shapegen.geometry.mesh import Mesh, PBRMaterial
from shapegen.geometry.rigging import RiggedMesh, Skeleton, SkinWeights
from shapegen.io import atomic_path, check_output_path

__all__ = ["export_rigged_glb", "load_rigged_glb"]

_FLOAT, _USHORT = 5126, 5123
_ARRAY_BUFFER = 34962


def export_rigged_glb(rigged: RiggedMesh, path: str | os.PathLike, *, name: str | None = None, double_sided: bool = False) -> Path:
    """Write ``rigged`` to a ``.glb`` file atomically; returns the path.

    Raises:
        ShapegenError: a suffix other than ``.glb``, mismatched sizes, more than 65535 joints,
            or an OS error while writing (nothing partial is left behind).
    """
    path = Path(path)
    if path.suffix.lower() != ".glb":
        raise ShapegenError(f"a rigged mesh is written as .glb, got {path.name!r}")
    v = rigged.mesh.num_vertices
    sk, skin = rigged.skeleton, rigged.skin
    if skin.joints.shape[0] != v or any(m.shape != (v, 3) for m in rigged.morph_targets.values()):
        raise ShapegenError(f"skin weights / morph targets do not match the mesh's {v} vertices")
    if sk.num_joints > 65535:
        raise ShapegenError(f"glTF JOINTS_0 as unsigned short holds at most 65535 joints, got {sk.num_joints}")
    name = name or path.stem or "shapegen"
    data = _MeshData.from_mesh(rigged.mesh, normals=True)
    doc, blob0 = _gltf_document(data, double_sided=double_sided, name=name)
    blob = bytearray(blob0)

    def add(array: np.ndarray, type_: str, comp: int, target: int | None = _ARRAY_BUFFER, bounds: bool = False) -> int:
        blob.extend(b"\0" * (-len(blob) % 4))
        raw = np.ascontiguousarray(array).tobytes()
        view = {"buffer": 0, "byteOffset": len(blob), "byteLength": len(raw)}
        if target is not None:
            view["target"] = target
        blob.extend(raw)
        doc["bufferViews"].append(view)
        acc = {"bufferView": len(doc["bufferViews"]) - 1, "componentType": comp, "count": int(array.shape[0]), "type": type_}
        if bounds:
            acc["min"] = [float(x) for x in array.min(0)]
            acc["max"] = [float(x) for x in array.max(0)]
        doc["accessors"].append(acc)
        return len(doc["accessors"]) - 1

    k = skin.joints.shape[1]
    joints4 = np.zeros((v, 4), np.uint16)
    weights4 = np.zeros((v, 4), np.float32)
    joints4[:, : min(k, 4)] = skin.joints[:, :4].numpy().astype(np.uint16)
    w = skin.weights[:, :4].numpy().astype(np.float64)
    weights4[:, : min(k, 4)] = (w / w.sum(1, keepdims=True)).astype(np.float32)
    prim = doc["meshes"][0]["primitives"][0]
    prim["attributes"]["JOINTS_0"] = add(joints4, "VEC4", _USHORT)
    prim["attributes"]["WEIGHTS_0"] = add(weights4, "VEC4", _FLOAT)
    if rigged.morph_targets:
        prim["targets"] = [
            {"POSITION": add(m.detach().cpu().numpy().astype(np.float32), "VEC3", _FLOAT, bounds=True)} for m in rigged.morph_targets.values()
        ]
        doc["meshes"][0]["weights"] = [0.0] * len(rigged.morph_targets)
        doc["meshes"][0]["extras"] = {"targetNames": list(rigged.morph_targets)}

    rest = sk.rest_transforms.double()
    inverse_bind = torch.linalg.inv(rest).numpy()
    ibm = add(np.ascontiguousarray(inverse_bind.transpose(0, 2, 1)).reshape(-1, 16).astype(np.float32), "MAT4", _FLOAT, target=None)
    local = sk.local_rest_transforms().double().numpy()
    first = len(doc["nodes"])
    children: dict[int, list[int]] = {}
    for j, p in enumerate(sk.parents):
        children.setdefault(p, []).append(first + j)
    for j, jname in enumerate(sk.names):
        node: dict = {"name": jname}
        m = local[j]
        if not np.allclose(m[:3, :3], np.eye(3), atol=1e-7):
            node["matrix"] = [float(x) for x in m.T.reshape(-1)]
        else:
            node["translation"] = [float(x) for x in m[:3, 3]]
        if children.get(j):
            node["children"] = children[j]
        doc["nodes"].append(node)
    roots = children.get(-1, [])
    doc["skins"] = [{"name": f"{name}_armature", "joints": list(range(first, first + sk.num_joints)), "inverseBindMatrices": ibm, "skeleton": roots[0]}]
    doc["nodes"][0]["skin"] = 0
    doc["scenes"][0]["nodes"] = [0, *roots]
    blob.extend(b"\0" * (-len(blob) % 4))
    doc["buffers"] = [{"byteLength": len(blob)}]

    text = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    path = check_output_path(path)
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            fh.write(struct.pack("<4sII", b"glTF", 2, 12 + 8 + len(text) + 8 + len(blob)))
            fh.write(struct.pack("<I4s", len(text), b"JSON"))
            fh.write(text)
            fh.write(struct.pack("<I4s", len(blob), b"BIN\0"))
            fh.write(bytes(blob))
    except OSError as exc:
        raise ShapegenError(f"cannot write {path}: {exc.strerror or exc}; check the disk space and permissions") from exc
    return path


_DTYPES = {5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5121: np.uint8}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def load_rigged_glb(path: str | os.PathLike) -> RiggedMesh:
    """Read a GLB with one skinned mesh (as written by :func:`export_rigged_glb`).

    Joint order is the skin's; rest transforms come from the inverse bind matrices. UVs
    (``TEXCOORD_0``) and the PBR material (factors and base-colour, metallic-roughness and normal
    textures, as floats in [0, 1]) are read back when present.

    Raises:
        ShapegenError: not a GLB, or no skinned mesh in it.
    """
    raw = Path(path).read_bytes()
    if raw[:4] != b"glTF":
        raise ShapegenError(f"{path} is not a binary glTF (GLB) file")
    n_json = struct.unpack_from("<I", raw, 12)[0]
    doc = json.loads(raw[20 : 20 + n_json])
    blob = raw[20 + n_json + 8 :]

    def acc(i: int) -> np.ndarray:
        a = doc["accessors"][i]
        view = doc["bufferViews"][a["bufferView"]]
        dt = _DTYPES[a["componentType"]]
        n = a["count"] * _WIDTH[a["type"]]
        arr = np.frombuffer(blob, dt, n, view.get("byteOffset", 0) + a.get("byteOffset", 0))
        return arr.reshape(a["count"], -1) if _WIDTH[a["type"]] > 1 else arr

    node = next((n for n in doc["nodes"] if "skin" in n and "mesh" in n), None)
    if node is None:
        raise ShapegenError(f"{path} has no skinned mesh")
    gmesh = doc["meshes"][node["mesh"]]
    prim = gmesh["primitives"][0]
    at = prim["attributes"]
    uv = torch.from_numpy(acc(at["TEXCOORD_0"]).copy()) if "TEXCOORD_0" in at else None
    material = _read_material(doc, blob, prim["material"]) if "material" in prim else None
    mesh = Mesh(
        torch.from_numpy(acc(at["POSITION"]).copy()),
        torch.from_numpy(acc(prim["indices"]).astype(np.int64).reshape(-1, 3)),
        uv=uv,
        material=material,
    )
    skin_doc = doc["skins"][node["skin"]]
    joint_nodes = skin_doc["joints"]
    ibm = acc(skin_doc["inverseBindMatrices"]).reshape(-1, 4, 4).transpose(0, 2, 1)
    rest = torch.linalg.inv(torch.from_numpy(ibm.astype(np.float64))).float()
    parent_of = {c: i for i, n in enumerate(doc["nodes"]) for c in n.get("children", [])}
    position = {n: j for j, n in enumerate(joint_nodes)}
    parents = [position.get(parent_of.get(n, -1), -1) for n in joint_nodes]
    skeleton = Skeleton([doc["nodes"][n].get("name", f"joint{j}") for j, n in enumerate(joint_nodes)], parents, rest)
    skin = SkinWeights(torch.from_numpy(acc(at["JOINTS_0"]).astype(np.int64)), torch.from_numpy(acc(at["WEIGHTS_0"]).astype(np.float32)))
    names = gmesh.get("extras", {}).get("targetNames", [])
    morphs = {names[i] if i < len(names) else f"target{i}": torch.from_numpy(acc(t["POSITION"]).copy()) for i, t in enumerate(prim.get("targets", []))}
    return RiggedMesh(mesh, skeleton, skin, morphs)


def _read_material(doc: dict, blob: bytes, index: int) -> PBRMaterial:
    """The glTF metallic-roughness material ``index`` with its PNG textures decoded."""
    import io

    from PIL import Image

    mat = doc["materials"][index]
    pbr = mat.get("pbrMetallicRoughness", {})

    def texture(ref: dict | None) -> torch.Tensor | None:
        if ref is None:
            return None
        image = doc["images"][doc["textures"][ref["index"]]["source"]]
        view = doc["bufferViews"][image["bufferView"]]
        raw = blob[view.get("byteOffset", 0) : view.get("byteOffset", 0) + view["byteLength"]]
        return torch.from_numpy(np.asarray(Image.open(io.BytesIO(raw))).astype(np.float32) / 255.0)

    return PBRMaterial(
        base_color_texture=texture(pbr.get("baseColorTexture")),
        base_color_factor=tuple(float(x) for x in pbr.get("baseColorFactor", (1.0, 1.0, 1.0, 1.0))),
        metallic_roughness_texture=texture(pbr.get("metallicRoughnessTexture")),
        metallic_factor=float(pbr.get("metallicFactor", 1.0)),
        roughness_factor=float(pbr.get("roughnessFactor", 1.0)),
        normal_texture=texture(mat.get("normalTexture")),
        name=mat.get("name", "material"),
    )
