"""Differentiable mesh rasterisation: analytic depth/normals, brute-force visibility,
gradchecks, silhouette gradients, textures, backends (Warp on CPU, CUDA agreement)."""

from __future__ import annotations

import pytest
import torch

from renderers.cameras import Intrinsics, orbit_pose
from renderers.rasterize import (
    antialias,
    face_neighbors,
    interpolate,
    rasterize,
    render_gbuffers,
    texture_sample,
    warp_import_error,
)
from renderers.rays import generate_rays, ray_aabb_intersect, ray_sphere_intersect

trimesh = pytest.importorskip("trimesh")

BACKENDS = [
    "torch",
    pytest.param(
        "warp", marks=pytest.mark.skipif(warp_import_error() is not None, reason="warp missing")
    ),
]


def _mesh(tm, dtype=torch.float32):
    return torch.tensor(tm.vertices, dtype=dtype), torch.tensor(tm.faces)


def _square(half: float, dtype=torch.float64):
    v = torch.tensor([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], dtype=dtype) * half
    return v, torch.tensor([[0, 1, 2], [0, 2, 3]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_sphere_depth_and_normals_match_ray_sphere(backend):
    v, f = _mesh(trimesh.creation.icosphere(subdivisions=4, radius=1.0))
    k = Intrinsics.from_fov(40.0, 48, 40)
    c2w = orbit_pose(torch.tensor([0.0, 70.0]), torch.tensor([10.0, -20.0]), 4.0)
    out = render_gbuffers(v, f, c2w, k, backend=backend)
    rays = generate_rays(c2w, k)
    hit = ray_sphere_intersect(rays.origins, rays.directions)
    depth = (hit.near * rays.cos_to_axis).view(2, 40, 48)
    point = rays.at(hit.near).view(2, 40, 48, 3)  # on the unit sphere: also the normal
    facing = -(point * rays.directions.view(2, 40, 48, 3)).sum(-1)
    ref_mask = hit.hit.view(2, 40, 48)
    # The inscribed polyhedron loses at most a one-pixel rim of the disc.
    assert (out.mask & ~ref_mask).sum() == 0
    assert (ref_mask & ~out.mask).sum() <= 0.1 * ref_mask.sum()
    inner = out.mask & (facing > 0.5)
    assert inner.sum() > 0.5 * ref_mask.sum()
    assert (out.depth - depth)[inner].abs().max() < 4e-3  # faces sit <= 1e-3 inside the sphere
    assert (out.normals - point)[inner].norm(dim=-1).max() < 0.02
    assert (out.face_normals - point)[inner].norm(dim=-1).max() < 0.05
    assert (out.depth[~out.mask] == 0).all() and (out.normals[~out.mask] == 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_cube_depth_and_face_normals_match_ray_box(backend):
    v, f = _mesh(trimesh.creation.box(extents=(1.0, 1.0, 1.0)))
    k = Intrinsics.from_fov(45.0, 40, 32)
    c2w = orbit_pose(30.0, 25.0, 3.0)
    out = render_gbuffers(v, f, c2w, k, backend=backend)
    rays = generate_rays(c2w, k)
    hit = ray_aabb_intersect(rays.origins, rays.directions, (-0.5,) * 3 + (0.5,) * 3)
    ref_mask = hit.hit.view(1, 32, 40)
    assert (out.mask != ref_mask).sum() <= 2
    both = out.mask & ref_mask
    depth = (hit.near * rays.cos_to_axis).view(1, 32, 40)
    torch.testing.assert_close(out.depth[both], depth[both], atol=1e-4, rtol=0)
    # Analytic normal: the axis of the face the ray enters through (skip pixels near an edge).
    p = rays.at(hit.near).view(1, 32, 40, 3)
    top2 = p.abs().topk(2, dim=-1).values
    clear = both & (top2[..., 0] - top2[..., 1] > 1e-3)
    normal = torch.zeros_like(p).scatter_(-1, p.abs().argmax(-1, keepdim=True), 1.0) * p.sign()
    torch.testing.assert_close(out.face_normals[clear], normal[clear], atol=1e-5, rtol=0)
    assert {tuple(n) for n in normal[clear].tolist()} >= {
        (0.0, 0.0, 1.0),
        (0.0, 1.0, 0.0),
        (1.0, 0.0, 0.0),
    }


def _brute_force(v, f, c2w, k):
    """Nearest ray/triangle hit per pixel (Moller-Trumbore), float64."""
    rays = generate_rays(c2w.double(), k)
    o, d = rays.origins[:, None], rays.directions[:, None]
    a, b, c = (v.double()[f[:, i]][None] for i in range(3))
    e1, e2 = b - a, c - a
    d, e1, e2 = torch.broadcast_tensors(d, e1, e2)
    pv = torch.linalg.cross(d, e2, dim=-1)
    det = (e1 * pv).sum(-1)
    tv = o - a
    u = (tv * pv).sum(-1) / det
    qv = torch.linalg.cross(tv.expand_as(e1), e1, dim=-1)
    w = (d * qv).sum(-1) / det
    t = (e2 * qv).sum(-1) / det
    ok = (u >= 0) & (w >= 0) & (u + w <= 1) & (t > 0)
    t = torch.where(ok, t, torch.inf)
    best, ids = t.min(1)
    ids = torch.where(best.isfinite(), ids, -1)
    return ids.view(k.height, k.width), (best * rays.cos_to_axis).view(k.height, k.width)


@pytest.mark.parametrize("backend", BACKENDS)
def test_face_ids_match_brute_force_on_interpenetrating_triangles(backend):
    g = torch.Generator().manual_seed(5)
    centre = (torch.rand(6, 1, 3, generator=g) - 0.5) * 0.6
    v = (centre + (torch.rand(6, 3, 3, generator=g) - 0.5) * 1.8).view(18, 3)
    f = torch.arange(18).view(6, 3)
    k = Intrinsics.from_fov(50.0, 24, 20)
    c2w = orbit_pose(15.0, 10.0, 3.5)
    rast = rasterize(v, f, c2w, k, backend=backend)
    ids, depth = _brute_force(v, f, c2w, k)
    assert (ids >= 0).sum() > 80 and len(ids.unique()) == 7  # all six visible somewhere
    assert torch.equal(rast.face_id[0], ids)
    hit = ids >= 0
    torch.testing.assert_close(rast.depth[0][hit], depth[hit].float(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rast.bary.sum(-1)[rast.mask], torch.ones(int(hit.sum())))


def test_interpolate_depth_and_antialias_gradcheck_float64_vertices_attributes_pose():
    g = torch.Generator().manual_seed(0)
    v = torch.tensor(
        [[-0.8, -0.6, 0.1], [0.7, -0.5, -0.2], [0.1, 0.8, 0.0], [0.9, 0.7, 0.3]],
        dtype=torch.float64,
    )
    f = torch.tensor([[0, 1, 2], [1, 3, 2]])
    attr = torch.rand(4, 2, generator=g, dtype=torch.float64)
    k = Intrinsics.from_fov(50.0, 8, 8)
    c2w = orbit_pose(10.0, 5.0, 2.5).double()

    def fn(verts, values, pose):
        rast = rasterize(verts, f, pose, k)
        color = interpolate(values, rast)
        return color, rast.depth, antialias(color, rast)

    base = fn(v, attr, c2w)
    assert base[0].abs().sum() > 0 and not torch.equal(base[2], base[0])  # some edges blended
    inputs = (v.requires_grad_(), attr.requires_grad_(), c2w.requires_grad_())
    torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


def test_silhouette_loss_gradient_grows_a_small_square():
    k = Intrinsics.from_fov(40.0, 32, 32)
    c2w = orbit_pose(0.0, 0.0, 3.0).double()
    target_v, f = _square(0.6)
    target = rasterize(target_v, f, c2w, k).mask[..., None].double()
    v, _ = _square(0.4)
    v.requires_grad_()
    neighbors = face_neighbors(f)

    def loss_of(verts):
        rast = rasterize(verts, f, c2w, k)
        alpha = antialias(rast.mask[..., None].to(verts.dtype), rast, neighbors)
        return ((alpha - target) ** 2).sum()

    loss = loss_of(v)
    loss.backward()
    step = -v.grad
    # Every corner moves outwards in the image plane (x, y), the step does not touch z much.
    assert ((step[:, :2] * v.detach()[:, :2]).sum(-1) > 0).all(), step
    assert (step[:, :2].sign() == v.detach()[:, :2].sign()).all()
    # A few normalised steps along the gradient enlarge the rendered square.
    moved = v.detach().clone().requires_grad_()
    for _ in range(5):
        moved.grad = None
        loss_of(moved).backward()
        with torch.no_grad():
            moved -= 0.03 * moved.grad / moved.grad.abs().max()
    assert loss_of(moved) < loss.detach()
    assert rasterize(moved, f, c2w, k).mask.sum() > rasterize(v, f, c2w, k).mask.sum()


def test_face_neighbors_on_a_closed_mesh_and_a_boundary():
    _, f = _mesh(trimesh.creation.icosphere(subdivisions=1))
    nb = face_neighbors(f)
    assert (nb >= 0).all()
    for i in range(len(f)):  # the neighbour across edge k shares both of its vertices
        for k in range(3):
            edge = {int(f[i, k]), int(f[i, (k + 1) % 3])}
            assert edge <= set(f[nb[i, k]].tolist()) and nb[i, k] != i
    _, sq = _square(1.0)
    assert face_neighbors(sq).tolist() == [[-1, -1, 1], [0, -1, -1]]


def test_texture_sample_gltf_convention_and_uv_render():
    tex = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]], [[0, 0, 1.0], [1.0, 1.0, 1.0]]])  # 2x2 RGB
    uv = torch.tensor([[[[0.25, 0.25], [0.75, 0.25]], [[0.25, 0.75], [0.75, 0.75]]]])
    torch.testing.assert_close(texture_sample(tex, uv)[0], tex)  # texel centres are exact
    # A quad facing the camera with uv (0, 0) at its top-left shows the texture upright.
    v, f = _square(0.5)
    uvs = torch.tensor([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    k = Intrinsics.from_fov(40.0, 32, 32)
    out = render_gbuffers(
        v, f, orbit_pose(0.0, 0.0, 2.0).double(), k, uvs=uvs, texture=tex.double()
    )
    img = out.texture[0]
    # The quad spans pixels 5..27; pixel centres 10.5 and 21.5 sit at uv 0.25 and 0.75.
    for (i, j), texel in {
        (10, 10): (0, 0),
        (10, 21): (0, 1),
        (21, 10): (1, 0),
        (21, 21): (1, 1),
    }.items():
        torch.testing.assert_close(img[i, j], tex[texel].double(), atol=0.01, rtol=0)
    assert (img[0, 0] == 0).all()


def test_batched_views_and_per_view_vertices_match_single_views():
    v, f = _mesh(trimesh.creation.icosphere(subdivisions=2, radius=0.8))
    k = Intrinsics(
        fx=torch.tensor([30.0, 40.0]),
        fy=torch.tensor([30.0, 40.0]),
        cx=16.0,
        cy=16.0,
        width=32,
        height=32,
    )
    c2w = orbit_pose(torch.tensor([0.0, 90.0]), torch.tensor([0.0, 30.0]), 3.0)
    verts = torch.stack([v, v * 1.1])
    batched = rasterize(verts, f, c2w, k)
    for b in range(2):
        kb = Intrinsics(fx=float(k.fx[b]), fy=float(k.fy[b]), cx=16.0, cy=16.0, width=32, height=32)
        single = rasterize(verts[b], f, c2w[b], kb)
        assert torch.equal(batched.face_id[b], single.face_id[0])
        torch.testing.assert_close(batched.bary[b], single.bary[0])


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["torch", "warp"])
def test_cpu_and_cuda_agree(backend):
    if backend == "warp" and warp_import_error() is not None:
        pytest.skip(warp_import_error())
    v, f = _mesh(trimesh.creation.icosphere(subdivisions=3, radius=1.0))
    k = Intrinsics.from_fov(40.0, 64, 64)
    c2w = orbit_pose(torch.tensor([0.0, 120.0]), torch.tensor([20.0, -10.0]), 3.5)
    colors = torch.rand(len(v), 3)
    outs = []
    for device in ("cpu", "cuda"):
        vd = v.to(device).requires_grad_()
        out = render_gbuffers(
            vd, f.to(device), c2w.to(device), k, attributes=colors.to(device), backend=backend
        )
        (out.alpha.sum() + out.attributes.square().sum()).backward()
        outs.append((out, vd.grad))
    (a, ga), (b, gb) = outs
    agree = (a.rasterization.face_id == b.rasterization.face_id.cpu()).float().mean()
    assert agree > 0.999
    same = a.rasterization.face_id == b.rasterization.face_id.cpu()
    torch.testing.assert_close(a.depth[same], b.depth.cpu()[same], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(a.attributes[same], b.attributes.cpu()[same], atol=1e-4, rtol=1e-4)
    if bool(same.all()):
        torch.testing.assert_close(ga, gb.cpu(), atol=1e-3, rtol=1e-3)


def test_antialias_matches_area_coverage_of_straight_edges():
    # A camera-facing rectangle whose edges fall at non-integer pixel positions: next to a
    # vertical (horizontal) edge, the anti-aliased alpha equals the covered pixel fraction.
    k = Intrinsics(fx=20.0, fy=20.0, cx=16.0, cy=16.0, width=32, height=32)
    d = 2.0
    left, right, top, bottom = 10.3, 24.6, 6.8, 25.25  # pixel coordinates of the edges
    x = [(u - 16.0) * d / 20.0 for u in (left, right)]
    y = [(16.0 - v) * d / 20.0 for v in (top, bottom)]
    v = torch.tensor(
        [[x[0], y[1], 0.0], [x[1], y[1], 0.0], [x[1], y[0], 0.0], [x[0], y[0], 0.0]],
        dtype=torch.float64,
    )
    f = torch.tensor([[0, 1, 2], [0, 2, 3]])
    out = render_gbuffers(v, f, orbit_pose(0.0, 0.0, d).double(), k)
    alpha = out.alpha[0, ..., 0]
    row, col = 16, 17
    torch.testing.assert_close(
        alpha[row, 9:26], torch.tensor([0.0, 0.7] + [1.0] * 13 + [0.6, 0.0], dtype=torch.float64)
    )
    torch.testing.assert_close(
        alpha[5:27, col], torch.tensor([0.0, 0.2] + [1.0] * 18 + [0.25, 0.0], dtype=torch.float64)
    )


def test_backend_selection_without_warp(monkeypatch):
    import renderers.rasterize as rz
    from renderers.backends import BackendUnavailable

    monkeypatch.setattr(rz, "_warp", None)
    monkeypatch.setattr(rz, "_warp_error", "warp does not import (test)")
    v, f = _square(0.5, torch.float32)
    k = Intrinsics.from_fov(40.0, 16, 16)
    c2w = orbit_pose(0.0, 0.0, 2.0)
    with pytest.raises(BackendUnavailable, match="warp does not import"):
        rasterize(v, f, c2w, k, backend="warp")
    assert rasterize(v, f, c2w, k, backend="auto").mask.sum() > 0
    with pytest.raises(ValueError, match="backend must be"):
        rasterize(v, f, c2w, k, backend="nerfacc")


@pytest.mark.skipif(warp_import_error() is not None, reason="warp missing")
def test_warp_and_torch_backends_agree_on_cpu():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.7)
    box = trimesh.creation.box(extents=(1.0, 0.6, 0.8))  # interpenetrates the sphere
    tm = trimesh.util.concatenate([sphere, box])
    v, f = _mesh(tm)
    k = Intrinsics.from_fov(45.0, 64, 64)
    c2w = orbit_pose(torch.tensor([20.0, 200.0]), torch.tensor([15.0, -35.0]), 2.5)
    ref = rasterize(v, f, c2w, k, backend="torch")
    fast = rasterize(v, f, c2w, k, backend="warp")
    assert torch.equal(ref.mask, fast.mask)
    differ = ref.face_id != fast.face_id
    assert differ.float().mean() < 1e-3  # only exact depth ties (shared edges) may differ
    torch.testing.assert_close(ref.depth, fast.depth, atol=1e-5, rtol=1e-5)
