"""Shading: normals from density, Lambertian/textureless formulas, random mode frequencies."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from shapegen.fields.shading import ShadingConfig, density_normals, pick_shading, shade


def test_density_normals_point_outward_for_a_radial_density():
    x = torch.randn(100, 3)
    x = x * (0.3 + torch.rand(100, 1)) / x.norm(dim=-1, keepdim=True)
    normals = density_normals(lambda p: torch.exp(-3 * p.norm(dim=-1)), x, eps=1e-3)
    assert torch.allclose(normals, F.normalize(x, dim=-1), atol=1e-3)


def test_lambertian_and_textureless_formulas():
    albedo = torch.tensor([[0.2, 0.4, 0.8], [0.5, 0.5, 0.5]])
    n = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    light = torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # facing the light; facing away
    lit = shade(albedo, n, light, "lambertian", ambient=0.1)
    assert torch.allclose(lit[0], albedo[0]) and torch.allclose(lit[1], 0.1 * albedo[1])
    white = shade(albedo, n, light, "textureless", ambient=0.1)
    assert torch.allclose(white, torch.tensor([[1.0] * 3, [0.1] * 3]))
    assert shade(albedo, None, None, "albedo", 0.1) is albedo


def test_random_shading_frequencies():
    cfg = ShadingConfig(mode="random", start_step=10, albedo_prob=0.2, textureless_prob=0.5)
    assert pick_shading(cfg, 9) == "albedo"
    gen = torch.Generator().manual_seed(0)
    picks = [pick_shading(cfg, 10, gen) for _ in range(4000)]
    freq = {m: picks.count(m) / len(picks) for m in ("albedo", "lambertian", "textureless")}
    # Binomial sigma for 4000 picks: 0.0063 at p = 0.2 and 0.0077 at p = 0.4 (half of the other 0.8).
    assert abs(freq["albedo"] - 0.2) < 0.03 and abs(freq["textureless"] - 0.4) < 0.03
    assert pick_shading(ShadingConfig(mode="lambertian"), 0) == "lambertian"
