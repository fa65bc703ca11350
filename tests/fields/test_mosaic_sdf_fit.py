"""Tests of mesh -> Mosaic-SDF conversion: FPS, covering scales, fine-tuning, folder conversion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from shapegen.config import CONFIG_ROOT, load_config
from shapegen.fields.mosaic_sdf import MosaicSDF
from shapegen.fields.mosaic_sdf_fit import (
    MosaicSDFConvertConfig,
    convert_folder,
    convert_mesh,
    covering_scales,
    farthest_point_sampling,
    finetune,
    prepare_shape,
)
from shapegen.geometry.mesh import Mesh


def _tiny() -> MosaicSDFConvertConfig:
    return load_config(MosaicSDFConvertConfig, CONFIG_ROOT / "msdf_convert" / "tiny.yaml")


def _sphere_mesh(radius: float = 0.8) -> Mesh:
    tm = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    return Mesh(torch.from_numpy(tm.vertices).float(), torch.from_numpy(tm.faces).long())


def test_presets_load():
    default = load_config(MosaicSDFConvertConfig, CONFIG_ROOT / "msdf_convert" / "default.yaml")
    assert (default.n, default.k) == (1024, 7)
    assert _tiny().n == 32


def test_fps_spreads_points_and_is_batched():
    x = torch.rand(2, 500, 3)
    idx = farthest_point_sampling(x, 20)
    assert idx.shape == (2, 20) and all(len(set(row.tolist())) == 20 for row in idx)
    # FPS picks the 8 corners of a cube's vertex set first (after the start).
    corners = torch.tensor([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=torch.float32)
    pts = torch.cat([corners, torch.rand(200, 3) * 0.5 + 0.25])[None]
    assert set(farthest_point_sampling(pts, 8)[0].tolist()) == set(range(8))


@pytest.mark.parametrize("mode", ["shared", "per_grid"])
def test_covering_scales_cover_every_sample(mode):
    samples = torch.nn.functional.normalize(torch.randn(3000, 3), dim=1)
    centers = samples[farthest_point_sampling(samples[None], 64)[0]]
    s = covering_scales(samples, centers, 1.25, mode)
    m = MosaicSDF.from_parts(centers, s, torch.zeros(64, 8))
    # Hat weight of the best cube >= 1 - 1/c = 0.2 at every sample.
    hat = (1 - ((samples[:, None] - centers[None]).abs().amax(-1) / s[None])).amax(1)
    assert hat.min() >= 0.2 - 1e-5 and (m.coverage(samples) > 0).all()
    if mode == "shared":
        assert torch.all(s == s[0])


def test_convert_sphere_fine_tuning_lowers_error():
    cfg = _tiny()
    cfg.n, cfg.k, cfg.steps, cfg.batch_points = 48, 4, 12, 256
    mesh = _sphere_mesh()
    res = convert_mesh(mesh, cfg)
    assert res.msdf.tensor.shape == (48, 4 + 64) and res.msdf.k == 4
    # The normalised frame maps the sphere (radius 0.8) to radius 1.
    assert np.allclose(np.diag(res.msdf.normalization)[:3], 1.25, atol=0.01)
    x = torch.nn.functional.normalize(torch.randn(2000, 3), dim=1) * (1 + 0.02 * torch.randn(2000, 1))
    gt = x.norm(dim=1) - 1
    err = [float((m(x) - gt).abs().mean()) for m in (res.initial, res.msdf)]
    assert err[1] < err[0], err
    assert math.isfinite(res.stats.total_seconds) and res.stats.sdf_seconds > 0


def test_batched_fit_matches_shapes(tmp_path):
    cfg = _tiny()
    a, b = prepare_shape(_sphere_mesh(0.8), cfg, name="a"), prepare_shape(_sphere_mesh(0.5), cfg, name="b")
    out = finetune([a, b], cfg)
    assert [r.name for r in out] == ["a", "b"]
    assert not torch.equal(out[0].msdf.tensor, out[1].msdf.tensor)


def test_convert_folder_resumes_and_skips_failures(tmp_path, caplog):
    src = tmp_path / "meshes"
    (src / "sub").mkdir(parents=True)
    trimesh.creation.icosphere(subdivisions=2).export(src / "ball.obj")
    trimesh.creation.box().export(src / "sub" / "box.ply")
    (src / "broken.obj").write_text("this is not a mesh\n")
    out = tmp_path / "out"
    cfg = _tiny()
    inputs = sorted(p for p in src.rglob("*") if p.is_file())
    report = convert_folder(inputs, out, cfg, root=src, progress=False)
    assert sorted(p.relative_to(out).as_posix() for p in report.written) == ["ball.msdf.npz", "sub/box.msdf.npz"]
    assert [p.name for p, _ in report.failed] == ["broken.obj"] and "broken.obj" in caplog.text
    assert MosaicSDF.load(out / "ball.msdf.npz").source_hash  # hash of the source file
    again = convert_folder(inputs, out, cfg, root=src, progress=False)
    assert not again.written and len(again.skipped) == 2
    assert not list(out.rglob(".*"))  # no temporary files left
