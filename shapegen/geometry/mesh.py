"""The one triangle-mesh type used across shapegen, and the normalisation transform.

Vertices and faces are torch tensors so that meshes move between devices with the fields
that produced them; conversion to and from :class:`trimesh.Trimesh` is explicit and never
merges or reorders vertices (``process=False``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor


@dataclass
class PBRMaterial:
    """A glTF metallic-roughness material; textures are ``H W C`` floats in [0, 1].

    Attributes:
        base_color_texture: ``H W 3|4`` base colour (sRGB) texture, or None to use the factor.
        base_color_factor: RGBA multiplier (linear), glTF's ``baseColorFactor``.
        metallic_roughness_texture: ``H W 3`` texture, glTF layout: G = roughness, B = metallic.
        metallic_factor: glTF ``metallicFactor``.
        roughness_factor: glTF ``roughnessFactor``.
        normal_texture: ``H W 3`` tangent-space normal map, or None.
        name: material name written to the file.
    """

    base_color_texture: Float[Tensor, "H W C"] | None = None
    base_color_factor: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    metallic_roughness_texture: Float[Tensor, "H W 3"] | None = None
    metallic_factor: float = 0.0
    roughness_factor: float = 0.8
    normal_texture: Float[Tensor, "H W 3"] | None = None
    name: str = "shapegen_material"


@dataclass
class Mesh:
    """A triangle mesh with optional per-vertex colours, UVs and a PBR material.

    Coordinates are in the frame of whoever made the mesh; shapegen's exporters write glTF
    conventions (Y up, metres, counter-clockwise front faces), see
    :mod:`shapegen.geometry.export`.

    Attributes:
        vertices: ``V 3`` float positions.
        faces: ``F 3`` int64 vertex indices, counter-clockwise seen from outside.
        vertex_colors: optional ``V 3|4`` floats in [0, 1], sRGB display values (exporters
            convert to linear where a format requires it, e.g. glTF ``COLOR_0``).
        uv: optional ``V 2`` texture coordinates (glTF convention: origin top-left), one per
            vertex; UV seams are represented by duplicated vertices.
        material: optional PBR material whose textures are addressed by ``uv``.
    """

    vertices: Float[Tensor, "V 3"]
    faces: Int[Tensor, "F 3"]
    vertex_colors: Float[Tensor, "V C"] | None = None
    uv: Float[Tensor, "V 2"] | None = None
    material: PBRMaterial | None = None

    def __post_init__(self) -> None:
        self.vertices = torch.as_tensor(self.vertices, dtype=torch.float32)
        self.faces = torch.as_tensor(self.faces, dtype=torch.int64, device=self.vertices.device)
        if self.vertices.ndim != 2 or self.vertices.shape[-1] != 3:
            raise ValueError(f"vertices must be V x 3, got {tuple(self.vertices.shape)}")
        if self.faces.ndim != 2 or self.faces.shape[-1] != 3:
            raise ValueError(f"faces must be F x 3, got {tuple(self.faces.shape)}")
        if self.vertex_colors is not None:
            self.vertex_colors = torch.as_tensor(self.vertex_colors, dtype=torch.float32, device=self.vertices.device)
        if self.uv is not None:
            self.uv = torch.as_tensor(self.uv, dtype=torch.float32, device=self.vertices.device)

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    @property
    def device(self) -> torch.device:
        return self.vertices.device

    def to(self, device: torch.device | str) -> Mesh:
        """Copy of the mesh on ``device`` (textures included)."""
        move = lambda t: None if t is None else t.to(device)
        material = None
        if self.material is not None:
            material = dataclasses.replace(
                self.material,
                base_color_texture=move(self.material.base_color_texture),
                metallic_roughness_texture=move(self.material.metallic_roughness_texture),
                normal_texture=move(self.material.normal_texture),
            )
        return Mesh(move(self.vertices), move(self.faces), move(self.vertex_colors), move(self.uv), material)

    def bounds(self) -> Float[Tensor, "2 3"]:
        """Axis-aligned bounds as ``[min, max]`` rows."""
        return torch.stack([self.vertices.amin(0), self.vertices.amax(0)])

    def face_normals(self) -> Float[Tensor, "F 3"]:
        """Unit face normals (zero for degenerate faces), right-hand rule on the winding."""
        tri = self.vertices[self.faces]
        n = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
        return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-20)

    def vertex_normals(self) -> Float[Tensor, "V 3"]:
        """Area-weighted unit vertex normals."""
        tri = self.vertices[self.faces]
        n = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
        acc = torch.zeros_like(self.vertices).index_add_(0, self.faces.reshape(-1), n.repeat_interleave(3, 0))
        return acc / acc.norm(dim=-1, keepdim=True).clamp_min(1e-20)

    def area(self) -> float:
        tri = self.vertices[self.faces].double()
        return float(torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1).norm(dim=-1).sum() / 2)

    def volume(self) -> float:
        """Signed volume by the divergence theorem (meaningful for closed, consistently wound meshes)."""
        tri = self.vertices[self.faces].double()
        return float((tri[:, 0] * torch.cross(tri[:, 1], tri[:, 2], dim=-1)).sum() / 6)

    def to_trimesh(self):
        """A :class:`trimesh.Trimesh` with the same vertex order (``process=False``)."""
        import trimesh

        colors = None
        if self.vertex_colors is not None:
            c = self.vertex_colors.detach().cpu().numpy()
            if c.shape[1] == 3:
                c = np.concatenate([c, np.ones_like(c[:, :1])], axis=1)
            colors = np.clip(np.round(c * 255), 0, 255).astype(np.uint8)
        return trimesh.Trimesh(
            vertices=self.vertices.detach().cpu().numpy().astype(np.float64),
            faces=self.faces.detach().cpu().numpy(),
            vertex_colors=colors,
            process=False,
        )

    @classmethod
    def from_trimesh(cls, tm) -> Mesh:
        """Wrap a :class:`trimesh.Trimesh` without touching its vertex order."""
        colors = None
        visual = getattr(tm, "visual", None)
        if visual is not None and getattr(visual, "kind", None) == "vertex":
            colors = torch.from_numpy(np.asarray(visual.vertex_colors, dtype=np.float32) / 255.0)
        return cls(torch.from_numpy(np.asarray(tm.vertices, dtype=np.float32)), torch.from_numpy(np.asarray(tm.faces, dtype=np.int64)), colors)


@dataclass
class Normalization:
    """Similarity transform ``x_unit = (x - center) * scale`` into the unit frame.

    Keeps what is needed to map results back to the source mesh's coordinates.

    Attributes:
        center: the source-frame point mapped to the origin.
        scale: the uniform scale factor applied after centring.
        mode: ``"cube"`` (fits [-1, 1]^3 scaled by the padding) or ``"sphere"`` (unit ball).
    """

    center: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 1.0
    mode: str = "cube"
    padding: float = 1.0
    extras: dict = field(default_factory=dict)

    def apply(self, points: Float[Tensor, "N 3"]) -> Float[Tensor, "N 3"]:
        c = torch.as_tensor(self.center, dtype=points.dtype, device=points.device)
        return (points - c) * self.scale

    def invert(self, points: Float[Tensor, "N 3"]) -> Float[Tensor, "N 3"]:
        c = torch.as_tensor(self.center, dtype=points.dtype, device=points.device)
        return points / self.scale + c

    def matrix(self) -> np.ndarray:
        """4x4 homogeneous matrix of :meth:`apply`."""
        m = np.eye(4)
        m[:3, :3] *= self.scale
        m[:3, 3] = -np.asarray(self.center) * self.scale
        return m
