"""Volume rendering: analytic slab, gradcheck, packed vs dense, torch vs nerfacc's CPU functions."""

from __future__ import annotations

import math

import pytest
import torch

from renderers.backends import torch_backend as tb
from renderers.samplers import importance_samples, sample_pdf, uniform_bins, uniform_samples
from renderers.samples import RaySamples
from renderers.volume import occupancy_alpha, render_weights, volume_render


def _ragged_samples(dtype=torch.float64, counts=(3, 0, 5, 1, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    starts, ends, ri = [], [], []
    for r, n in enumerate(counts):
        edges = torch.sort(torch.rand(n + 1, generator=g, dtype=dtype) * 3).values
        starts.append(edges[:-1]), ends.append(edges[1:]), ri.append(torch.full((n,), r))
    return RaySamples(torch.cat(starts), torch.cat(ends), torch.cat(ri).long(), len(counts))


def test_constant_density_slab_transmittance():
    # Slab of density sigma on t in [1, 2]; rays with different (packed, ragged) sample counts.
    sigma, rays = 3.0, 4
    near, far = torch.zeros(rays), torch.full((rays,), 3.0)
    parts = [uniform_samples(near[:1], far[:1], n) for n in (60, 90, 120, 240)]
    samples = RaySamples(
        torch.cat([p.t_starts for p in parts]),
        torch.cat([p.t_ends for p in parts]),
        torch.cat([torch.full((len(p),), i) for i, p in enumerate(parts)]).long(),
        rays,
    )
    t = samples.t_mid
    sig = torch.where((t > 1) & (t < 2), torch.full_like(t, sigma), torch.zeros_like(t))
    out = volume_render(samples, sigmas=sig, backend="torch")
    torch.testing.assert_close(
        out.opacity[:, 0], torch.full((rays,), 1 - math.exp(-sigma)), atol=1e-5, rtol=0
    )
    # Transmittance at each sample start = exp(-sigma * length of slab before it).
    expected = torch.exp(-sigma * (samples.t_starts.clamp(1, 2) - 1))
    torch.testing.assert_close(out.transmittance, expected, atol=1e-5, rtol=0)
    # Expected depth of a slab: integral of t sigma exp(-sigma (t-1)) over [1, 2]. The weights of
    # piecewise-constant density are exact; only placing each at its interval's midpoint errs, by
    # the mean of t - t_mid under exp(-sigma t) on the interval, -sigma h^2 / 12 to first order, so
    # the depth is off by at most sigma h^2 / 12 = 6.25e-4 on the coarsest ray (h = 3 / 60).
    exact = (1 + 1 / sigma) * (1 - math.exp(-sigma)) - math.exp(-sigma)
    torch.testing.assert_close(out.depth[:, 0], torch.full((rays,), exact), atol=1e-3, rtol=0)


def test_background_features_and_normals():
    s = _ragged_samples(torch.float32)
    alphas = torch.rand(len(s))
    rgb, feat, nrm = torch.rand(len(s), 3), torch.randn(len(s), 7), torch.randn(len(s), 3)
    bg = torch.tensor([0.2, 0.4, 0.6])
    out = volume_render(s, alphas=alphas, rgb=rgb, features=feat, normals=nrm, background=bg)
    for r in range(s.n_rays):
        m = s.ray_indices == r
        a = alphas[m]
        w = a * torch.cumprod(torch.cat([torch.ones(1), 1 - a[:-1]]), 0)
        torch.testing.assert_close(out.opacity[r, 0], w.sum())
        torch.testing.assert_close(out.features[r], (w[:, None] * feat[m]).sum(0))
        torch.testing.assert_close(out.normals[r], (w[:, None] * nrm[m]).sum(0))
        torch.testing.assert_close(out.rgb[r], (w[:, None] * rgb[m]).sum(0) + (1 - w.sum()) * bg)
    torch.testing.assert_close(out.rgb[1], bg)  # the ray with no samples shows the background


def test_gradcheck_packed_float64():
    s = _ragged_samples(torch.float64)
    n = len(s)
    sig = (torch.rand(n, dtype=torch.float64) * 2).requires_grad_(True)
    alp = (torch.rand(n, dtype=torch.float64) * 0.9).requires_grad_(True)
    rgb = torch.rand(n, 3, dtype=torch.float64, requires_grad=True)
    t0 = s.t_starts.clone().requires_grad_(True)

    def f_density(sig, rgb, t0):
        ss = RaySamples(t0, s.t_ends, s.ray_indices, s.n_rays)
        out = volume_render(ss, sigmas=sig, rgb=rgb, backend="torch")
        return out.rgb, out.depth, out.transmittance

    def f_alpha(alp, rgb):
        out = volume_render(s, alphas=alp, rgb=rgb, backend="torch")
        return out.rgb, out.opacity

    assert torch.autograd.gradcheck(f_density, (sig, rgb, t0))
    assert torch.autograd.gradcheck(f_alpha, (alp, rgb))
    # alpha = 1 (hard occupancy) still has the right gradients (cumprod with zeros).
    hard = alp.detach().clone()
    hard[2] = 1.0
    assert torch.autograd.gradcheck(
        lambda a: volume_render(s, alphas=a, backend="torch").opacity, (hard.requires_grad_(True),)
    )


def test_packed_equals_dense():
    r, k = 6, 9
    bins = uniform_bins(torch.rand(r), 2 + torch.rand(r), k, stratified=True)
    dense = RaySamples.from_dense(bins[:, :-1], bins[:, 1:])
    sig, rgb = torch.rand(r, k) * 4, torch.rand(r, k, 3)
    w_d, t_d, _ = tb.weights_from_density(bins[:, :-1], bins[:, 1:], sig)  # dense path
    out = volume_render(dense, sigmas=sig.reshape(-1), rgb=rgb.reshape(-1, 3))
    torch.testing.assert_close(dense.to_dense(out.weights), w_d)
    torch.testing.assert_close(dense.to_dense(out.transmittance), t_d)
    torch.testing.assert_close(out.rgb, tb.accumulate(w_d, rgb))
    alpha = torch.rand(r, k)
    w_d, t_d = tb.weights_from_alpha(alpha)
    w_p, _, _ = render_weights(dense, alphas=alpha.reshape(-1))
    torch.testing.assert_close(dense.to_dense(w_p), w_d)


def test_unsorted_ray_indices_rejected():
    s = _ragged_samples(torch.float32)
    bad = RaySamples(s.t_starts, s.t_ends, s.ray_indices.flip(0), s.n_rays)
    with pytest.raises(ValueError, match="sorted"):
        render_weights(bad, alphas=torch.rand(len(s)))


def test_torch_matches_nerfacc_cpu_functions():
    nerfacc = pytest.importorskip("nerfacc")
    r, k = 5, 17
    bins = torch.sort(torch.rand(r, k + 1) * 4, -1).values
    sig, alpha, vals = torch.rand(r, k) * 5, torch.rand(r, k), torch.rand(r, k, 4)
    w_ref, t_ref, a_ref = nerfacc.render_weight_from_density(bins[:, :-1], bins[:, 1:], sig)
    w, t, a = tb.weights_from_density(bins[:, :-1], bins[:, 1:], sig)
    for x, y in ((w, w_ref), (t, t_ref), (a, a_ref)):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=0)
    w_ref, t_ref = nerfacc.render_weight_from_alpha(alpha)
    w, t = tb.weights_from_alpha(alpha)
    torch.testing.assert_close(w, w_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(t, t_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(
        tb.accumulate(w, vals), nerfacc.accumulate_along_rays(w, vals), atol=1e-6, rtol=0
    )
    # Packed accumulation runs on CPU in nerfacc too; packed weights vs nerfacc's dense ones.
    packed = RaySamples.from_dense(bins[:, :-1], bins[:, 1:])
    out = volume_render(
        packed, sigmas=sig.reshape(-1), features=vals.reshape(-1, 4), backend="torch"
    )
    w_ref, _, _ = nerfacc.render_weight_from_density(bins[:, :-1], bins[:, 1:], sig)
    torch.testing.assert_close(out.weights, w_ref.reshape(-1), atol=1e-6, rtol=0)
    ref = nerfacc.accumulate_along_rays(
        w_ref.reshape(-1), vals.reshape(-1, 4), ray_indices=packed.ray_indices, n_rays=r
    )
    torch.testing.assert_close(out.features, ref, atol=1e-6, rtol=0)


def test_occupancy_rendering_of_box():
    # Camera rays towards an occupancy box [-0.5, 0.5]^3: alpha = occupancy (0/1).
    o = torch.tensor([[0.0, 0.0, 3.0], [0.3, -0.2, 3.0], [2.0, 0.0, 3.0]])
    d = torch.tensor([[0.0, 0.0, -1.0]] * 3)
    step = 1e-3
    s = uniform_samples(torch.zeros(3), torch.full((3,), 6.0), int(6 / step))
    x = s.positions(o, d)
    occ = (x.abs() <= 0.5).all(-1).float()
    out = volume_render(s, alphas=occupancy_alpha(occ))
    torch.testing.assert_close(out.opacity[:, 0], torch.tensor([1.0, 1.0, 0.0]))
    torch.testing.assert_close(out.depth[:2, 0], torch.tensor([2.5, 2.5]), atol=step, rtol=0)


def test_sample_pdf_and_importance():
    bins = torch.linspace(0, 1, 11).expand(2, 11).contiguous()
    uniform = sample_pdf(bins, torch.ones(2, 10), 9, deterministic=True, padding=0)
    torch.testing.assert_close(uniform, torch.linspace(0.1, 0.9, 9).expand(2, 9))
    w = torch.zeros(2, 10)
    w[:, 3] = 1.0  # all mass in [0.3, 0.4]
    t = sample_pdf(bins, w, 1000, padding=1e-5)
    assert ((t >= 0.3) & (t <= 0.4)).float().mean() > 0.99
    fine, edges = importance_samples(bins, w, 16)
    assert edges.shape == (2, 27) and (edges[:, 1:] >= edges[:, :-1]).all()
    assert fine.samples_per_ray == 26
