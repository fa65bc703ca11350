"""Meshes shared by the export tests (plain module, imported by test files beside it)."""

from __future__ import annotations

import torch

from shapegen.geometry.mesh import Mesh, PBRMaterial

# A tall box: 0.2 wide (X), 1.0 high (shapegen +Y), 0.4 deep (Z), corners at +-half extents.
EXTENTS = (0.2, 1.0, 0.4)


def tall_box(subdivide: bool = True) -> Mesh:
    """Closed, counter-clockwise tall box with position-based sRGB vertex colours."""
    import trimesh

    tm = trimesh.creation.box(extents=EXTENTS)
    if subdivide:
        tm = tm.subdivide()
    v = torch.tensor(tm.vertices, dtype=torch.float32)
    colors = (v / torch.tensor(EXTENTS) + 0.5).clamp(0, 1)  # each channel spans [0, 1]
    return Mesh(v, torch.tensor(tm.faces), vertex_colors=colors)


def textured_box(resolution: int = 16) -> Mesh:
    """The tall box with a grid UV atlas and a full PBR material (distinct constant textures)."""
    from shapegen.geometry.texture import uv_atlas

    mesh = uv_atlas(tall_box(), method="grid", resolution=resolution, padding=1)
    r = resolution
    base = torch.zeros(r, r, 3)
    base[..., 0] = torch.linspace(0, 1, r)[None, :]  # red ramps left to right
    base[..., 1] = 0.25
    base[..., 2] = torch.linspace(0, 1, r)[:, None]  # blue ramps top to bottom
    mr = torch.zeros(r, r, 3)
    mr[..., 0], mr[..., 1], mr[..., 2] = 1.0, 0.6, 0.2  # G roughness, B metallic
    normal = torch.tensor([0.5, 0.5, 1.0]).expand(r, r, 3).clone()
    mesh.material = PBRMaterial(
        base_color_texture=base,
        metallic_roughness_texture=mr,
        metallic_factor=1.0,
        roughness_factor=1.0,
        normal_texture=normal,
        name="box_material",
    )
    return mesh
