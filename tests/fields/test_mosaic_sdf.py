"""Tests of the Mosaic-SDF representation: blending, hashing, outside values, meshing and files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shapegen.errors import ShapegenError
from shapegen.fields.mosaic_sdf import CubeIndex, MosaicSDF, grid_offsets, row_width
from shapegen.geometry import primitives
from shapegen.geometry.metrics import chamfer_l2


def _random_msdf(n: int = 64, k: int = 5, shared: bool = False) -> MosaicSDF:
    centers = torch.rand(n, 3, dtype=torch.float64) * 1.2 - 0.6
    scales = torch.full((n,), 0.2, dtype=torch.float64) if shared else torch.rand(n, dtype=torch.float64) * 0.2 + 0.05
    values = torch.randn(n, k**3, dtype=torch.float64) * 0.1
    return MosaicSDF.from_parts(centers, scales, values)


def _points_in_cubes(m: MosaicSDF, per_cube: int = 20) -> torch.Tensor:
    u = torch.rand(m.n, per_cube, 3, dtype=m.tensor.dtype) * 1.98 - 0.99
    return (m.centers[:, None] + m.scales[:, None, None] * u).reshape(-1, 3)


def _brute_force(m: MosaicSDF, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense reference over all n grids: the paper's formula with no hashing."""
    k = m.k
    u = (x[:, None, :] - m.centers[None]) / m.scales[None, :, None]  # N n 3
    hat = (1 - u.abs().amax(-1)).clamp_min(0)
    g = ((u.clamp(-1, 1) + 1) / 2 * (k - 1)).permute(1, 0, 2)  # n N 3 in index units
    vals = m.values.reshape(m.n, 1, k, k, k)
    # grid_sample wants (z, y, x) order in the last dim for a D H W volume indexed [x, y, z].
    grid = (g / (k - 1) * 2 - 1).flip(-1)[:, :, None, None, :]
    tri = torch.nn.functional.grid_sample(vals, grid, mode="bilinear", align_corners=True).reshape(m.n, -1).T
    w = hat.sum(1)
    return (hat * tri).sum(1) / w.clamp_min(1e-30), w


def _msdf_from_sdf(sdf, surface: torch.Tensor, n: int, k: int, margin: float = 1.3) -> MosaicSDF:
    """Centres by farthest points on a surface sample, shared covering scale, analytic values."""
    idx = [0]
    d = (surface - surface[0]).norm(dim=1)
    for _ in range(n - 1):
        idx.append(int(d.argmax()))
        d = torch.minimum(d, (surface - surface[idx[-1]]).norm(dim=1))
    c = surface[idx]
    s = margin * float(torch.cdist(surface, c, p=float("inf")).min(1).values.max())
    nodes = c[:, None] + s * grid_offsets(k)[None]
    return MosaicSDF.from_parts(c, s, sdf(nodes.reshape(-1, 3)).reshape(n, -1))


def test_row_layout_accessors():
    m = _random_msdf(8, 3)
    assert m.tensor.shape == (8, row_width(3)) == (8, 31)
    assert torch.equal(m.centers, m.tensor[:, :3]) and torch.equal(m.scales, m.tensor[:, 3])
    nodes = m.node_points()
    # Node (a, b, c) = column 4 + (a k + b) k + c sits at p + s (-1 + 2 (a, b, c) / (k - 1)).
    assert torch.allclose(nodes[2, (1 * 3 + 2) * 3 + 0], m.centers[2] + m.scales[2] * torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64))


def test_partition_of_unity_and_hash_matches_brute_force():
    m = _random_msdf(64, 5)
    x = _points_in_cubes(m)
    ones = MosaicSDF.from_parts(m.centers, m.scales, torch.ones_like(m.values))
    assert torch.allclose(ones(x), torch.ones(x.shape[0], dtype=torch.float64), atol=1e-12)  # sum_i w_i = 1 on Omega
    ref, w = _brute_force(m, x)
    res = m.blend(x)
    assert torch.allclose(res.weight, w, atol=1e-12)
    assert torch.allclose(res.value, ref, atol=1e-10)
    # The hash lists only a few candidates per point, not all n grids.
    pid, _ = m.index().candidates(x)
    assert pid.shape[0] < 0.5 * x.shape[0] * m.n


def test_row_permutation_changes_nothing():
    m = _random_msdf(64, 5)
    x = torch.cat([_points_in_cubes(m, 5), torch.rand(500, 3, dtype=torch.float64) * 3 - 1.5])
    perm = torch.randperm(m.n)
    assert torch.allclose(m(x), m.permute(perm)(x), atol=1e-12)


def test_plane_is_reproduced_exactly():
    m = _random_msdf(64, 4)
    normal, offset = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64), 0.1
    plane = MosaicSDF.from_parts(m.centers, m.scales, (m.node_points() @ normal + offset))
    x = _points_in_cubes(m)
    assert torch.allclose(plane(x), x @ normal + offset, atol=1e-12)


def test_outside_every_cube_is_positive_and_grows():
    m = _random_msdf(32, 3)
    direction = torch.nn.functional.normalize(torch.randn(200, 3, dtype=torch.float64), dim=1)
    near, far = direction * 2.0, direction * 4.0
    assert not m.blend(near).covered.any()
    v_near, v_far = m(near), m(far)
    assert (v_near > 0).all() and (v_far > v_near + 1.0).all()
    # Uncovered points inside the sampled region are positive too (never 0).
    x = torch.rand(4000, 3, dtype=torch.float64) * 2 - 1
    uncovered = ~m.blend(x).covered
    assert uncovered.any() and (m(x[uncovered]) > 0).all()


def test_gradients_wrt_points_and_tensor():
    m = _random_msdf(32, 4)
    tensor = m.tensor.clone().requires_grad_(True)
    field = MosaicSDF(tensor, m.k)
    x = _points_in_cubes(m, 2)[:50].clone().requires_grad_(True)
    gx, gt = torch.autograd.grad(field(x).sum(), [x, tensor])
    assert torch.isfinite(gx).all() and gx.abs().sum() > 0 and gt[:, 4:].abs().sum() > 0
    # Finite differences along x at one point.
    e = torch.tensor([1e-6, 0, 0], dtype=torch.float64)
    p = x[:1].detach()
    fd = (m(p + e) - m(p - e)) / 2e-6
    assert torch.allclose(fd, gx[:1, 0], rtol=1e-4, atol=1e-6)


def _analytic_surface(shape: str, num: int) -> torch.Tensor:
    """Area-uniform points on the sphere (r 0.6) or the torus (R 0.55, r 0.22) around Y."""
    if shape == "sphere":
        return torch.nn.functional.normalize(torch.randn(num, 3), dim=1) * 0.6
    big, small = 0.55, 0.22
    theta = torch.rand(4 * num) * 2 * torch.pi
    phi = torch.rand(4 * num) * 2 * torch.pi
    keep = torch.rand(4 * num) < (big + small * torch.cos(phi)) / (big + small)  # area element
    theta, phi = theta[keep][:num], phi[keep][:num]
    ring = big + small * torch.cos(phi)
    return torch.stack([ring * torch.cos(theta), small * torch.sin(phi), ring * torch.sin(theta)], dim=1)


@pytest.mark.parametrize("shape", ["sphere", "torus"])
def test_analytic_round_trip_to_mesh(shape):
    from shapegen.geometry.sampling import sample_surface

    sdf = primitives.sphere(radius=0.6) if shape == "sphere" else primitives.torus(major=0.55, minor=0.22)
    surface = _analytic_surface(shape, 3000)
    m = _msdf_from_sdf(sdf, surface, n=128, k=5)
    mesh = m.to_mesh(48)
    assert mesh.num_faces > 500
    # Against the sampling-noise floor: two independent samples of the true surface.
    floor = float(chamfer_l2(_analytic_surface(shape, 3000), surface))
    cd = float(chamfer_l2(sample_surface(mesh, 3000).points, surface))
    assert cd < 1.3 * floor, (cd, floor)
    # Every vertex lies on the analytic surface (no spurious sheet at the band's inner edge).
    assert float(sdf(mesh.vertices).abs().max()) < 0.02


def test_to_mesh_source_frame_and_normalized_frame():
    sdf = primitives.sphere(radius=0.6)
    pts = torch.nn.functional.normalize(torch.randn(3000, 3), dim=1) * 0.6
    m = _msdf_from_sdf(sdf, pts, n=96, k=4)
    a = np.diag([0.5, 0.5, 0.5, 1.0])
    a[:3, 3] = [0.1, -0.2, 0.3]  # x_unit = 0.5 x + t, so source = (x_unit - t) / 0.5
    m = MosaicSDF(m.tensor, m.k, a)
    unit = m.to_mesh(40, normalized=True)
    src = m.to_mesh(40)
    assert torch.allclose(src.vertices, (unit.vertices - torch.tensor([0.1, -0.2, 0.3])) / 0.5, atol=1e-5)


def test_file_round_trip(tmp_path):
    m = _random_msdf(16, 3)
    m = MosaicSDF(m.tensor.float(), 3, np.diag([2.0, 2.0, 2.0, 1.0]), "abc123")
    path = m.save(tmp_path / "shape.msdf.npz")
    back = MosaicSDF.load(path)
    assert torch.equal(back.tensor, m.tensor) and back.k == 3 and back.source_hash == "abc123"
    assert np.array_equal(back.normalization, m.normalization)
    data = np.load(path, allow_pickle=False)
    assert data["tensor"].dtype == np.float32 and int(data["version"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["shape.msdf.npz"]  # no temporary left behind


def test_bad_inputs_raise_one_line_errors(tmp_path):
    m = _random_msdf(8, 3)
    with pytest.raises(ShapegenError, match="n x 31"):
        MosaicSDF(m.tensor[:, :-1], 3)
    bad = m.tensor.clone()
    bad[2, 7] = float("nan")
    with pytest.raises(ShapegenError, match="NaN"):
        MosaicSDF(bad, 3)
    with pytest.raises(ShapegenError, match="not found"):
        MosaicSDF.load(tmp_path / "missing.msdf.npz")
    np.savez(tmp_path / "nokeys.msdf.npz", tensor=m.tensor.numpy())
    with pytest.raises(ShapegenError, match="missing the keys"):
        MosaicSDF.load(tmp_path / "nokeys.msdf.npz")
    np.savez(tmp_path / "nan.msdf.npz", tensor=bad.numpy().astype(np.float32), k=3, normalization=np.eye(4), source_hash="", version=1)
    with pytest.raises(ShapegenError, match="NaN") as err:
        MosaicSDF.load(tmp_path / "nan.msdf.npz")
    assert "\n" not in str(err.value)
    (tmp_path / "garbage.msdf.npz").write_bytes(b"not a zip")
    with pytest.raises(ShapegenError, match="corrupt"):
        MosaicSDF.load(tmp_path / "garbage.msdf.npz")


def test_cube_index_batches_keep_shapes_apart():
    a, b = _random_msdf(16, 3), _random_msdf(16, 3)
    c = torch.cat([a.centers, b.centers])
    s = torch.cat([a.scales, b.scales])
    batch = torch.arange(2).repeat_interleave(16)
    index = CubeIndex.build(c, s, batch)
    x = _points_in_cubes(a, 5)
    _, cid = index.candidates(x, torch.zeros(x.shape[0], dtype=torch.long))
    assert (cid < 16).all()
    _, cid = index.candidates(x, torch.ones(x.shape[0], dtype=torch.long))
    assert (cid >= 16).all()


def test_warp_backend_matches_torch_reference():
    from shapegen.geometry.sdf import warp_available

    if not warp_available()[0]:
        pytest.skip("warp-lang is unusable here")
    m = _random_msdf(64, 5)
    tensor = m.tensor.float()
    x = torch.cat([_points_in_cubes(m, 10).float(), torch.rand(3000, 3) * 3 - 1.5])
    ref = MosaicSDF(tensor, 5, backend="torch")
    fast = MosaicSDF(tensor, 5, backend="warp")
    assert torch.allclose(fast(x), ref(x), atol=1e-5)
    assert torch.equal(fast.coverage(x) > 0, ref.coverage(x) > 0)
    with pytest.raises(ShapegenError, match="forward only"):
        fast(x.requires_grad_(True))


def _sphere_msdf(n: int = 128, k: int = 5) -> MosaicSDF:
    sdf = primitives.sphere(radius=0.6)
    return _msdf_from_sdf(sdf, _analytic_surface("sphere", 3000), n=n, k=k)


def test_closing_leaves_a_covered_surface_unchanged():
    from shapegen.geometry.mesh_io import inspect_mesh

    torch.manual_seed(0)
    m = _sphere_msdf()
    old, new = m.to_mesh(40, close_holes=False), m.to_mesh(40)
    assert inspect_mesh(old).watertight and inspect_mesh(new).watertight
    # The same triangles: every vertex of one mesh is a vertex of the other.
    assert new.num_faces == old.num_faces
    near = torch.cdist(new.vertices, old.vertices, compute_mode="donot_use_mm_for_euclid_dist").min(1).values
    assert float(near.max()) < 1e-6


def test_gap_in_the_cube_coverage_closes_only_with_close_holes():
    from shapegen.geometry.mesh_io import inspect_mesh

    torch.manual_seed(0)
    m = _sphere_msdf()
    gap = MosaicSDF(m.tensor[m.centers[:, 1] < 0.45], m.k)  # no cube over the top cap
    open_mesh, closed = gap.to_mesh(40, close_holes=False), gap.to_mesh(40)
    assert inspect_mesh(open_mesh).num_boundary_edges > 10
    report = inspect_mesh(closed)
    assert report.watertight and report.num_components == 1
    # The cap is closed near the sphere, not far outside it (the closing stays within the cubes' box).
    assert float(closed.vertices.norm(dim=1).max()) < 0.8


def test_small_floating_parts_are_dropped_unless_kept():
    from shapegen.geometry.cleanup import face_components

    torch.manual_seed(0)
    blob = torch.tensor([0.75, 0.75, 0.0])
    sdf = lambda x: torch.minimum(x.norm(dim=-1) - 0.5, (x - blob.to(x)).norm(dim=-1) - 0.08)
    surface = torch.cat([torch.nn.functional.normalize(torch.randn(3000, 3), dim=1) * 0.5,
                         blob + torch.nn.functional.normalize(torch.randn(300, 3), dim=1) * 0.08])
    m = _msdf_from_sdf(sdf, surface, n=160, k=5)
    kept = m.to_mesh(48, min_component_fraction=0.0)
    assert face_components(kept)[0] == 2
    cleaned = m.to_mesh(48, min_component_fraction=0.05)
    assert face_components(cleaned)[0] == 1
    assert float(cleaned.vertices.norm(dim=1).max()) < 0.55  # the sphere stayed, the blob went
    with pytest.raises(ShapegenError, match="min_component_fraction"):
        m.to_mesh(16, min_component_fraction=1.5)


def test_encoded_mesh_keeps_its_covered_surface_and_closes_a_gap(shared_data):
    """On a real mesh: the closed extraction contains the inside-the-cubes one, also around a gap."""
    from shapegen.config import CONFIG_ROOT, load_config
    from shapegen.fields.mosaic_sdf_fit import MosaicSDFConvertConfig, convert_mesh
    from shapegen.geometry.mesh_io import inspect_mesh

    cfg = load_config(MosaicSDFConvertConfig, CONFIG_ROOT / "msdf_convert" / "tiny.yaml")
    cfg.n, cfg.k, cfg.steps, cfg.fps_samples, cfg.num_surface, cfg.num_near, cfg.device = 256, 5, 0, 5000, 5000, 5000, "cpu"
    m = convert_mesh(shared_data / "meshes_classic" / "spot.obj", cfg).msdf
    # Drop the 12 cubes nearest to one of them: a hole in the coverage of the surface.
    gap = MosaicSDF(m.tensor[(m.centers - m.centers[0]).norm(dim=1).argsort()[12:]], m.k)
    for msdf, complete in ((m, True), (gap, False)):
        old, new = msdf.to_mesh(48, normalized=True, close_holes=False), msdf.to_mesh(48, normalized=True)
        assert inspect_mesh(old).watertight == complete
        report = inspect_mesh(new)
        assert report.watertight and report.num_components == 1
        # Every vertex of the old mesh is a vertex of the new one: the covered surface did not move.
        near = torch.cdist(old.vertices, new.vertices, compute_mode="donot_use_mm_for_euclid_dist").min(1).values
        assert float(near.max()) < 1e-6
        assert new.num_faces >= old.num_faces + (0 if complete else 10)


def test_one_piece_joins_a_detached_part_and_keeps_the_pieces_apart_when_off():
    from shapegen.geometry.cleanup import face_components
    from shapegen.geometry.mesh_io import inspect_mesh

    torch.manual_seed(0)
    top = torch.tensor([0.0, 0.55, 0.0])
    # A sphere and a second, smaller one above it with a gap between them (a shade off its stem).
    sdf = lambda x: torch.minimum(x.norm(dim=-1) - 0.4, (x - top.to(x)).norm(dim=-1) - 0.1)
    surface = torch.cat([torch.nn.functional.normalize(torch.randn(3000, 3), dim=1) * 0.4,
                         top + torch.nn.functional.normalize(torch.randn(800, 3), dim=1) * 0.1])
    m = _msdf_from_sdf(sdf, surface, n=160, k=5)
    apart = m.to_mesh(48, min_component_fraction=0.05)
    assert face_components(apart)[0] == 2  # the small sphere is above the debris threshold
    joined = m.to_mesh(48, min_component_fraction=0.05, one_piece=True)
    report = inspect_mesh(joined)
    assert report.num_components == 1 and report.watertight
    # Both spheres are still there: the top of the small one and the bottom of the big one.
    y = joined.vertices[:, 1]
    assert float(y.max()) > 0.6 and float(y.min()) < -0.35
