"""Skeletons, skin weights, linear blend skinning and rigging by transfer from a template.

Frames and units: shapegen's (+Y up, metres). A :class:`Skeleton` stores each joint's rest
transform in world space; bones point from a joint to its children and rest rotations are the
identity, so a rest transform is a translation (glTF and Blender accept this directly).

Rigging by transfer (the standard "closest point on a skinned template" recipe, e.g. Blender's
Data Transfer modifier or Mixamo-style auto rigging against a template) moves skin weights and
morph-target deltas from a rigged template onto any mesh. ``method="closest_point"`` (default):
    1. the closest point on the template's surface to each target vertex (BVH query of
       :class:`~shapegen.geometry.sdf.MeshSDF`), and its barycentric coordinates in the closest
       template triangle;
    2. weights and deltas are the barycentric interpolation of that triangle's three corners (only
       the corners of the body part with the largest share, where a triangle spans two parts), so a
       target vertex lying on the template surface gets exactly the template's interpolated rig;
    3. where the closest triangle's normal disagrees with the target vertex's (dot below
       ``min_normal_dot``: an arm resting against the torso finds the torso first), the vertex is
       transferred by the k-NN recipe below instead.
``method="knn"`` (and the fallback of step 3):
    1. the ``k`` nearest template vertices of each target vertex, with inverse-distance weights;
    2. candidates whose normal disagrees with the target vertex's are dropped;
    3. the candidates vote (by inverse distance) for a body part, and only the winning part's
       candidates are kept: weights never mix two limbs, i.e. they do not bleed across the body;
    4. weights and deltas are inverse-distance averaged over the kept candidates.
A vertex with no candidate that passes the normal test falls back to all ``k`` candidates. In both
methods weights finally keep their ``top_k`` largest entries and are renormalised to sum to one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from shapegen.errors import ShapegenError
from shapegen.geometry.mesh import Mesh

__all__ = [
    "RiggedMesh",
    "Skeleton",
    "SkinWeights",
    "TransferConfig",
    "axis_angle_matrix",
    "jaw_open_morph",
    "linear_blend_skinning",
    "procedural_skin_weights",
    "rig_analytic_template",
    "transfer_rig",
]


@dataclass
class Skeleton:
    """A joint hierarchy at rest.

    Attributes:
        names: joint names (unique), parents before children.
        parents: parent index per joint, -1 for roots.
        rest_transforms: ``J 4 4`` joint-to-world rest transforms (metres).
        parts: optional body-part name per joint (``torso``, ``arm_l``, ...); used by transfer
            to keep limbs apart. Without it every joint is its own part.
    """

    names: list[str]
    parents: list[int]
    rest_transforms: Float[Tensor, "J 4 4"]
    parts: list[str] | None = None

    def __post_init__(self) -> None:
        self.rest_transforms = torch.as_tensor(self.rest_transforms, dtype=torch.float32)
        j = len(self.names)
        if len(set(self.names)) != j or len(self.parents) != j or self.rest_transforms.shape != (j, 4, 4):
            raise ShapegenError(f"skeleton: {j} names (unique), {len(self.parents)} parents and {tuple(self.rest_transforms.shape)} transforms do not match")
        if any(not (-1 <= p < i) for i, p in enumerate(self.parents)):
            raise ShapegenError("skeleton: joints must be ordered parents first (parents[i] < i)")
        if self.parts is not None and len(self.parts) != j:
            raise ShapegenError(f"skeleton: {len(self.parts)} part names for {j} joints")

    @classmethod
    def from_positions(cls, names: list[str], parents: list[int], positions: Float[Tensor, "J 3"], parts: list[str] | None = None) -> Skeleton:
        """A skeleton with identity rest rotations at the given joint positions."""
        t = torch.eye(4).repeat(len(names), 1, 1)
        t[:, :3, 3] = torch.as_tensor(positions, dtype=torch.float32)
        return cls(list(names), list(parents), t, None if parts is None else list(parts))

    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def positions(self) -> Float[Tensor, "J 3"]:
        return self.rest_transforms[:, :3, 3]

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ShapegenError(f"no joint named {name!r}; the skeleton has {', '.join(self.names)}") from None

    def local_rest_transforms(self) -> Float[Tensor, "J 4 4"]:
        """Each joint's rest transform relative to its parent (world for roots)."""
        out = self.rest_transforms.clone()
        for i, p in enumerate(self.parents):
            if p >= 0:
                out[i] = torch.linalg.inv(self.rest_transforms[p]) @ self.rest_transforms[i]
        return out

    def forward_kinematics(self, local_rotations: Float[Tensor, "J 3 3"] | None = None) -> Float[Tensor, "J 4 4"]:
        """Posed joint-to-world transforms; ``local_rotations`` rotate each joint about its own origin."""
        local = self.local_rest_transforms()
        if local_rotations is not None:
            rot = torch.eye(4).repeat(self.num_joints, 1, 1)
            rot[:, :3, :3] = torch.as_tensor(local_rotations, dtype=torch.float32)
            local = local @ rot
        world = [torch.eye(4)] * self.num_joints
        for i, p in enumerate(self.parents):
            world[i] = local[i] if p < 0 else world[p] @ local[i]
        return torch.stack(world)

    def transformed(self, scale: float, offset: Float[Tensor, 3]) -> Skeleton:
        """The skeleton under ``x -> x * scale + offset`` (rest rotations stay the identity)."""
        t = self.rest_transforms.clone()
        t[:, :3, 3] = t[:, :3, 3] * scale + torch.as_tensor(offset, dtype=torch.float32)
        return Skeleton(self.names, self.parents, t, self.parts)


@dataclass
class SkinWeights:
    """Sparse per-vertex skin weights: ``K`` influences per vertex (glTF's JOINTS_0/WEIGHTS_0).

    Attributes:
        joints: ``V K`` joint indices (unused slots hold 0 with weight 0).
        weights: ``V K`` non-negative weights, each row summing to one, largest first.
    """

    joints: Int[Tensor, "V K"]
    weights: Float[Tensor, "V K"]

    @classmethod
    def from_dense(cls, dense: Float[Tensor, "V J"], top_k: int = 4) -> SkinWeights:
        """Keep the ``top_k`` largest weights of each row and renormalise them to sum to one."""
        dense = torch.as_tensor(dense, dtype=torch.float32).clamp_min(0)
        k = min(top_k, dense.shape[1])
        w, j = dense.topk(k, dim=1)
        total = w.sum(dim=1, keepdim=True)
        if (total <= 0).any():
            raise ShapegenError(f"{int((total <= 0).sum())} vertices have no skin weight at all")
        w = w / total
        j = torch.where(w > 0, j, torch.zeros_like(j))
        return cls(j.to(torch.int64), w)

    def dense(self, num_joints: int) -> Float[Tensor, "V J"]:
        out = torch.zeros(self.joints.shape[0], num_joints)
        return out.scatter_add_(1, self.joints, self.weights)


@dataclass
class RiggedMesh:
    """A mesh with a skeleton, skin weights and optional morph targets (all in the same frame).

    Attributes:
        mesh: the surface.
        skeleton: its joints.
        skin: ``V`` rows of weights.
        morph_targets: name -> ``V 3`` position deltas (e.g. ARKit-named face blendshapes).
    """

    mesh: Mesh
    skeleton: Skeleton
    skin: SkinWeights
    morph_targets: dict[str, Float[Tensor, "V 3"]] = field(default_factory=dict)

    def vertex_parts(self) -> list[str] | None:
        """Body part of each vertex (that of its largest-weight joint), if the skeleton has parts."""
        if self.skeleton.parts is None:
            return None
        return [self.skeleton.parts[j] for j in self.skin.joints[:, 0].tolist()]


# ------------------------------------------------------------------------------------------
# Posing


def axis_angle_matrix(axis: tuple[float, float, float], degrees: float) -> Float[Tensor, "3 3"]:
    """Rotation matrix (Rodrigues) about ``axis`` by ``degrees``, counter-clockwise looking down the axis."""
    a = torch.tensor(axis, dtype=torch.float32)
    a = a / a.norm()
    t = torch.tensor(np.radians(degrees), dtype=torch.float32)
    k = torch.tensor([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return torch.eye(3) + torch.sin(t) * k + (1 - torch.cos(t)) * (k @ k)


def linear_blend_skinning(
    vertices: Float[Tensor, "V 3"], skin: SkinWeights, skeleton: Skeleton, posed: Float[Tensor, "J 4 4"]
) -> Float[Tensor, "V 3"]:
    """Posed vertices: ``sum_j w_j G_j B_j^-1 v`` with ``G`` posed and ``B`` rest joint-to-world."""
    mats = posed @ torch.linalg.inv(skeleton.rest_transforms)  # J 4 4
    m = (mats[skin.joints] * skin.weights[..., None, None]).sum(dim=1)  # V 4 4
    return (m[:, :3, :3] @ vertices[:, :, None])[..., 0] + m[:, :3, 3]


# ------------------------------------------------------------------------------------------
# The analytic template


def procedural_skin_weights(prior, points: Float[Tensor, "N 3"], *, falloff: float = 0.03, top_k: int = 4) -> SkinWeights:
    """Skin weights of points on (or near) the analytic humanoid from its bone primitives.

    A point belongs to the body part of its closest primitive; only that part's joints and the
    joint it hangs from (the chest for an arm, the pelvis for a leg) can influence it, with
    weight ``exp(-((d_j - d_min) / falloff)^2)`` where ``d_j`` is the signed distance to joint
    ``j``'s primitives. A point midway between upper arm and forearm thus gets 1/2 each, and a
    torso point never moves with an arm.

    Args:
        prior: a :class:`shapegen.fields.body_prior.HumanoidPrior`.
        points: ``N 3`` points (metres).
        falloff: blend width in metres at the prior's design height.
        top_k: influences kept per point.
    """
    points = torch.as_tensor(points, dtype=torch.float32)
    num_j = prior.num_joints
    owner = torch.tensor([p.joint for p in prior.primitives])
    d_prim = prior.primitive_distances(points)  # N P
    d_joint = torch.full((points.shape[0], num_j), float("inf"))
    d_joint = d_joint.scatter_reduce(1, owner.expand_as(d_prim), d_prim, reduce="amin")
    parts = sorted(set(prior.parts))
    part_of = torch.tensor([parts.index(p) for p in prior.parts])
    allowed = torch.zeros(len(parts), num_j, dtype=torch.bool)
    for j, p in enumerate(prior.parts):
        allowed[part_of[j], j] = True
        parent = prior.parents[j]
        if parent >= 0 and prior.parts[parent] != p:
            allowed[part_of[j], parent] = True  # the joint a part hangs from
    part = part_of[owner[d_prim.argmin(dim=1)]]
    d = torch.where(allowed[part], d_joint, torch.full_like(d_joint, float("inf")))
    d_min = d.amin(dim=1, keepdim=True)
    dense = torch.exp(-(((d - d_min) / (falloff * prior.scale)) ** 2))
    return SkinWeights.from_dense(dense, top_k)


def jaw_open_morph(prior, points: Float[Tensor, "N 3"], degrees: float = 15.0) -> Float[Tensor, "N 3"]:
    """An ARKit-named ``jawOpen`` delta for points on the analytic humanoid's head.

    The lower front of the head (below the mouth line, in front of the ears) turns down by
    ``degrees`` about a left-right hinge axis at the jaw joint, faded in over about a
    centimetre; every other point (neck, back of the head, body) stays put.

    Args:
        prior: a :class:`shapegen.fields.body_prior.HumanoidPrior`.
        points: ``N 3`` points on (or near) its surface, metres.
        degrees: jaw opening angle.
    """
    points = torch.as_tensor(points, dtype=torch.float32)
    k = prior.scale
    hinge = torch.tensor([0.0, 1.60, -0.01]) * k
    mouth_y, fade = 1.575 * k, 0.006 * k
    head = prior.segment(points) == prior.joint_names.index("head")
    mask = head.float() * torch.sigmoid((mouth_y - points[:, 1]) / fade) * torch.sigmoid((points[:, 2] - 0.02 * k) / fade)
    rot = axis_angle_matrix((1.0, 0.0, 0.0), degrees)
    rel = points - hinge
    return mask[:, None] * (rel @ rot.T - rel)


def rig_analytic_template(prior, resolution: int = 96, face_morphs: bool = False) -> RiggedMesh:
    """The analytic humanoid as a rigged template mesh (marching cubes + procedural weights).

    With ``face_morphs`` the template also carries a ``jawOpen`` morph target
    (:func:`jaw_open_morph`), which transfer moves onto rigged meshes.
    """
    mesh = prior.template_mesh(resolution)
    skeleton = Skeleton.from_positions(prior.joint_names, prior.parents, prior.joint_positions, prior.parts)
    morphs = {"jawOpen": jaw_open_morph(prior, mesh.vertices)} if face_morphs else {}
    return RiggedMesh(mesh, skeleton, procedural_skin_weights(prior, mesh.vertices), morphs)


# ------------------------------------------------------------------------------------------
# Transfer


@dataclass
class TransferConfig:
    """Settings of :func:`transfer_rig`."""

    method: Literal["closest_point", "knn"] = "closest_point"
    """Barycentric interpolation at the closest surface point, or k-NN inverse-distance averaging."""
    neighbours: int = 16
    """Template vertices considered per target vertex (k-NN method and fallback)."""
    min_normal_dot: float = 0.0
    """Candidates whose unit normal has a smaller dot product with the target's are dropped."""
    top_k: int = 4
    """Influences kept per vertex (glTF's JOINTS_0 holds four)."""
    chunk: int = 32768
    """Target vertices processed at a time (bounds memory to ``chunk * neighbours * J`` floats)."""


def transfer_rig(template: RiggedMesh, target: Mesh, config: TransferConfig | None = None) -> RiggedMesh:
    """Move skin weights and morph targets from ``template`` onto ``target`` (same frame and scale).

    See the module docstring for the algorithm. The target keeps its vertices and faces; its
    skeleton is the template's.

    Raises:
        ShapegenError: for an empty target or a template without vertices.
    """
    from scipy.spatial import cKDTree

    cfg = config or TransferConfig()
    if target.num_vertices == 0 or template.mesh.num_vertices == 0:
        raise ShapegenError("rig transfer needs a non-empty template and target mesh")
    tv = template.mesh.vertices.detach().cpu().numpy().astype(np.float64)
    tn = template.mesh.vertex_normals().detach().cpu().numpy()
    pv = target.vertices.detach().cpu().numpy().astype(np.float64)
    pn = target.vertex_normals().detach().cpu().numpy() if target.num_faces else np.zeros_like(pv)
    num_j = template.skeleton.num_joints
    dense_t = template.skin.dense(num_j).numpy()
    labels = template.vertex_parts() or [str(j) for j in template.skin.joints[:, 0].tolist()]
    names = sorted(set(labels))
    part_t = np.array([names.index(x) for x in labels])
    morph_names = list(template.morph_targets)
    morph_t = [template.morph_targets[n].detach().cpu().numpy() for n in morph_names]

    k = min(cfg.neighbours, len(tv))
    dist, idx = cKDTree(tv).query(pv, k=k)
    dist, idx = dist.reshape(len(pv), k), idx.reshape(len(pv), k)
    out_w = np.zeros((len(pv), num_j), np.float32)
    out_m = [np.zeros_like(pv, dtype=np.float32) for _ in morph_names]
    for s in range(0, len(pv), cfg.chunk):
        d, i = dist[s : s + cfg.chunk], idx[s : s + cfg.chunk]
        ok = (tn[i] * pn[s : s + cfg.chunk, None]).sum(-1) >= cfg.min_normal_dot
        ok[~ok.any(axis=1)] = True  # nothing passes: fall back to all candidates
        exact = d[:, :1] < 1e-9
        inv = np.where(ok, 1.0 / (d * d + 1e-12), 0.0)
        inv = np.where(exact, np.eye(k)[0][None], inv)  # a template vertex hit exactly wins
        votes = np.zeros((len(d), len(names)))
        np.add.at(votes, (np.repeat(np.arange(len(d)), k), part_t[i].reshape(-1)), np.sqrt(inv).reshape(-1))
        winner = votes.argmax(axis=1)
        inv = np.where(part_t[i] == winner[:, None], inv, 0.0)
        inv = inv / inv.sum(axis=1, keepdims=True)
        out_w[s : s + cfg.chunk] = np.einsum("nk,nkj->nj", inv, dense_t[i])
        for m, delta in zip(out_m, morph_t, strict=True):
            m[s : s + cfg.chunk] = np.einsum("nk,nkc->nc", inv, delta[i])
    if cfg.method == "closest_point" and template.mesh.num_faces:
        bary_w, bary_m, ok = _closest_point_transfer(template, target, pn, dense_t, morph_t, part_t, cfg.min_normal_dot)
        out_w[ok] = bary_w[ok]
        for m, b in zip(out_m, bary_m, strict=True):
            m[ok] = b[ok]
    elif cfg.method not in ("closest_point", "knn"):
        raise ShapegenError(f"unknown transfer method '{cfg.method}'; use closest_point or knn")
    skin = SkinWeights.from_dense(torch.from_numpy(out_w), cfg.top_k)
    morphs = {n: torch.from_numpy(m) for n, m in zip(morph_names, out_m, strict=True)}
    return RiggedMesh(target, template.skeleton, skin, morphs)


def _closest_point_transfer(
    template: RiggedMesh, target: Mesh, target_normals: np.ndarray, dense_t: np.ndarray, morph_t: list[np.ndarray],
    part_t: np.ndarray, min_normal_dot: float,
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Barycentric weights/deltas at each target vertex's closest template point, and where usable.

    A triangle whose corners belong to two body parts (where a limb meets the torso) contributes
    only the corners of the part with the largest barycentric share, renormalised, so weights
    never mix two limbs.
    """
    from shapegen.geometry.sdf import MeshSDF

    tmesh = template.mesh
    q = MeshSDF(tmesh).query(target.vertices.detach().float().cpu(), signed=False)
    face = q.face.clamp_min(0)
    tri = tmesh.faces[face]
    a, b, c = (tmesh.vertices[tri[:, i]].double() for i in range(3))
    bary = _barycentric(q.closest_point.double(), a, b, c).numpy()
    tri = tri.numpy()
    corner_part = part_t[tri]
    share = np.stack([(bary * (corner_part == corner_part[:, i : i + 1])).sum(1) for i in range(3)], 1)
    winner = corner_part[np.arange(len(tri)), share.argmax(1)]
    bary = np.where(corner_part == winner[:, None], bary, 0.0)
    bary = bary / np.maximum(bary.sum(1, keepdims=True), 1e-30)
    w = np.einsum("nk,nkj->nj", bary, dense_t[tri]).astype(np.float32)
    m = [np.einsum("nk,nkc->nc", bary, d[tri]).astype(np.float32) for d in morph_t]
    fn = tmesh.face_normals()[face].numpy()
    ok = (q.face >= 0).numpy() & np.isfinite(q.distance.numpy()) & ((fn * target_normals).sum(-1) >= min_normal_dot)
    return w, m, ok


def _barycentric(p: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Float[Tensor, "N 3"]:
    """Barycentric coordinates of points ``p`` in triangles ``abc`` (clamped, summing to one)."""
    v0, v1, v2 = b - a, c - a, p - a
    d00, d01, d11 = (v0 * v0).sum(-1), (v0 * v1).sum(-1), (v1 * v1).sum(-1)
    d20, d21 = (v2 * v0).sum(-1), (v2 * v1).sum(-1)
    den = d00 * d11 - d01 * d01
    safe = den.abs() > 1e-30
    den = torch.where(safe, den, torch.ones_like(den))
    v = torch.where(safe, (d11 * d20 - d01 * d21) / den, torch.full_like(den, 1 / 3))
    w = torch.where(safe, (d00 * d21 - d01 * d20) / den, torch.full_like(den, 1 / 3))
    out = torch.stack([1 - v - w, v, w], -1).clamp_min(0)
    return out / out.sum(-1, keepdim=True).clamp_min(1e-30)
