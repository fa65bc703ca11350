"""UV atlases and baking: UV range, non-overlapping charts, baked values match the field."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from renderers.preview import triangle_fragments
from shapegen.errors import ShapegenError
from shapegen.geometry.mesh import Mesh
from shapegen.geometry.texture import bake_textures, bake_vertex_colors, uv_atlas, uv_rasterize

trimesh = pytest.importorskip("trimesh")

METHODS = ["grid"] + (["xatlas"] if importlib.util.find_spec("xatlas") else [])


def _sphere(subdivisions: int = 2) -> Mesh:
    tm = trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.5)
    v = torch.tensor(tm.vertices, dtype=torch.float32)
    return Mesh(v, torch.tensor(tm.faces), vertex_colors=v + 0.5)


def gradient(points: torch.Tensor) -> torch.Tensor:
    """A smooth colour field: position in [-0.5, 0.5]^3 -> RGB in [0, 1]."""
    return (points + 0.5).clamp(0, 1)


def _sample(texture: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear texture lookup at glTF UVs (origin top-left), as a viewer would do it."""
    grid = (uv * 2 - 1).view(1, -1, 1, 2)  # grid_sample: x = u, y = v, both in [-1, 1]
    img = texture.permute(2, 0, 1)[None]
    return torch.nn.functional.grid_sample(img, grid, mode="bilinear", align_corners=False)[
        0, :, :, 0
    ].T


@pytest.mark.parametrize("method", METHODS)
def test_atlas_uv_range_and_topology(method):
    mesh = _sphere()
    atlas = uv_atlas(mesh, method=method, resolution=256)
    assert atlas.num_faces == mesh.num_faces
    assert atlas.uv.min() >= 0 and atlas.uv.max() <= 1
    # Same triangles in space (vertices only duplicated along seams), same winding.
    np.testing.assert_allclose(
        atlas.vertices[atlas.faces].numpy(), mesh.vertices[mesh.faces].numpy(), atol=1e-6
    )
    np.testing.assert_allclose(
        atlas.vertex_colors.numpy(), (atlas.vertices + 0.5).numpy(), atol=1e-6
    )


@pytest.mark.parametrize("method", METHODS)
def test_atlas_charts_do_not_overlap(method):
    atlas = uv_atlas(_sphere(), method=method, resolution=512)
    r = 512
    coverage = torch.zeros(r * r, dtype=torch.int64)
    # Count, per texel, the triangles whose interior (not just an edge) contains its centre.
    xy = atlas.uv[atlas.faces] * r
    for pix, _, bary in triangle_fragments(xy, r, r):
        strict = (bary > 1e-3).all(-1)
        coverage.index_add_(0, pix[strict], torch.ones_like(pix[strict]))
    assert coverage.max() == 1
    assert (coverage > 0).float().mean() > 0.2  # the atlas really uses the texture


def test_bake_reproduces_field_at_surface_points():
    atlas = uv_atlas(_sphere(), method=METHODS[-1], resolution=256)
    baked = bake_textures(atlas, gradient, 256, roughness_fn=lambda p: p[:, 1] + 0.5, padding=4)
    assert baked.vertex_colors is None and baked.material is not None
    tex = baked.material.base_color_texture
    assert tex.shape == (256, 256, 3)
    # Random surface points (inside triangles, edges included) via random barycentrics.
    g = torch.Generator().manual_seed(0)
    f = torch.randint(0, atlas.num_faces, (2000,), generator=g)
    w = -torch.rand(2000, 3, generator=g).log()
    w = w / w.sum(1, keepdim=True)
    pts = (w[:, :, None] * atlas.vertices[atlas.faces[f]]).sum(1)
    uvs = (w[:, :, None] * atlas.uv[atlas.faces[f]]).sum(1)
    got = _sample(tex, uvs)
    # Tolerance: the field changes by at most |grad| * texel size ~ a few 1e-3 across a texel.
    err = (got - gradient(pts)).abs()
    assert err.max() < 0.01 and err.mean() < 0.001, (
        err.max(),
        err.mean(),
    )  # without padding: max 0.28
    mr = baked.material.metallic_roughness_texture
    rough = _sample(mr, uvs)[:, 1]
    assert (rough - (pts[:, 1] + 0.5)).abs().max() < 0.03
    assert baked.material.roughness_factor == baked.material.metallic_factor == 1.0
    # Metallic was not given: the default metallic value fills the B channel.
    assert torch.allclose(_sample(mr, uvs)[:, 2], torch.zeros(2000), atol=1e-6)


def test_gutter_is_filled_and_empty_texels_are_neutral():
    atlas = uv_atlas(_sphere(1), method="grid", resolution=64, padding=2)
    face_id, _ = uv_rasterize(atlas.uv, atlas.faces, 64, padding=0)
    padded, bary = uv_rasterize(atlas.uv, atlas.faces, 64, padding=2)
    assert (padded >= 0).sum() > (face_id >= 0).sum()  # the gutter grew
    assert torch.equal(padded[face_id >= 0], face_id[face_id >= 0])  # covered texels unchanged
    assert torch.allclose(bary[padded >= 0].sum(-1), torch.ones(int((padded >= 0).sum())))
    assert (bary >= 0).all()


def test_bake_vertex_colors_matches_interpolated_colours():
    atlas = uv_atlas(_sphere(), method=METHODS[-1], resolution=256)
    baked = bake_vertex_colors(atlas, 256)
    assert baked.vertex_colors is None
    g = torch.Generator().manual_seed(1)
    f = torch.randint(0, atlas.num_faces, (1000,), generator=g)
    w = torch.rand(1000, 3, generator=g) + 0.1
    w = w / w.sum(1, keepdim=True)
    want = (w[:, :, None] * atlas.vertex_colors[atlas.faces[f]]).sum(1)
    got = _sample(
        baked.material.base_color_texture, (w[:, :, None] * atlas.uv[atlas.faces[f]]).sum(1)
    )
    assert (got - want).abs().max() < 0.03


def test_user_errors():
    mesh = _sphere(0)
    with pytest.raises(ShapegenError, match="uv_atlas"):
        bake_textures(mesh, gradient, 16)
    with pytest.raises(ShapegenError, match="NaN"):
        bake_textures(uv_atlas(mesh, method="grid"), lambda p: p * float("nan"), 16)
    with pytest.raises(ValueError, match="N x 3"):
        bake_textures(uv_atlas(mesh, method="grid"), lambda p: p[:, :2], 16)
    with pytest.raises(ShapegenError, match="vertex_colors"):
        bake_vertex_colors(
            Mesh(mesh.vertices, mesh.faces, uv=torch.zeros(mesh.num_vertices, 2)), 16
        )
