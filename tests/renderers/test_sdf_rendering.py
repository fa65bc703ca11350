"""Depth to a sphere from VolSDF, NeuS, the error-bounded sampler and sphere tracing."""

from __future__ import annotations

import torch

from renderers.rays import ray_sphere_intersect
from renderers.samplers import uniform_samples
from renderers.sdf_samplers import ErrorBoundedSampler
from renderers.sphere_tracing import sphere_trace
from renderers.volume import LaplaceDensity, neus_alpha, volsdf_density, volume_render

RADIUS = 0.5


def sphere(x):
    return x.norm(dim=-1) - RADIUS


def _camera_rays(n=64):
    g = torch.Generator().manual_seed(0)
    o = torch.tensor([0.0, 0.0, 2.0]).expand(n, 3)
    target = torch.cat([(torch.rand(n, 2, generator=g) - 0.5) * 0.7, torch.zeros(n, 1)], -1)
    d = torch.nn.functional.normalize(target - o, dim=-1)
    truth = ray_sphere_intersect(o, d, radius=RADIUS)
    assert truth.hit.all()
    return o, d, truth.near


def test_volsdf_depth_to_sphere():
    o, d, depth = _camera_rays()
    s = uniform_samples(torch.zeros(len(o)), torch.full((len(o),), 4.0), 2000)
    sdf = sphere(s.positions(o, d))
    out = volume_render(s, sigmas=volsdf_density(sdf, 0.005))
    assert (out.opacity > 0.999).all()
    torch.testing.assert_close(out.depth_normalized[:, 0], depth, atol=1e-2, rtol=0)
    # Learnable beta: gradients flow to it.
    dens = LaplaceDensity(beta_init=0.01)
    volume_render(s, sigmas=dens(sdf)).depth.sum().backward()
    assert dens.beta.grad is not None and dens.beta.grad.abs() > 0


def test_neus_depth_to_sphere():
    o, d, depth = _camera_rays()
    s = uniform_samples(torch.zeros(len(o)), torch.full((len(o),), 4.0), 2000)
    f0 = sphere(o[s.ray_indices] + s.t_starts[:, None] * d[s.ray_indices])
    f1 = sphere(o[s.ray_indices] + s.t_ends[:, None] * d[s.ray_indices])
    out = volume_render(s, alphas=neus_alpha(f0, f1, 400.0))
    assert (out.opacity > 0.99).all()
    # NeuS is unbiased to first order: the weight peak sits on the surface.
    w = s.to_dense(out.weights)
    peak = s.to_dense(s.t_mid).gather(1, w.argmax(1, keepdim=True))[:, 0]
    torch.testing.assert_close(peak, depth, atol=3e-3, rtol=0)
    # The mean is pulled forward by the official code's +1e-5 alpha floor: each of the d / dt
    # samples before the surface keeps weight ~1e-5, which moves the mean by ~1e-5 d^2 / (2 dt),
    # at most 8.1e-3 here (surface depth d <= 1.8, dt = 4 / 2000).
    torch.testing.assert_close(out.depth_normalized[:, 0], depth, atol=1e-2, rtol=0)


def test_sphere_tracing_depth_and_normals():
    o, d, depth = _camera_rays()
    o = torch.cat([o, torch.tensor([[0.0, 0.0, 2.0]])])
    d = torch.cat([d, torch.tensor([[0.0, 1.0, 0.0]])])  # misses
    out = sphere_trace(sphere, o, d, far=6.0, eps=1e-5)
    assert out.hit[:-1].all() and not out.hit[-1]
    torch.testing.assert_close(out.t[:-1], depth, atol=1e-4, rtol=0)
    torch.testing.assert_close(out.normals[:-1], out.positions[:-1] / RADIUS, atol=1e-3, rtol=0)
    fd = sphere_trace(sphere, o, d, far=6.0, eps=1e-5, normal_eps=1e-4)
    torch.testing.assert_close(fd.normals, out.normals, atol=1e-3, rtol=0)


def test_error_bounded_sampler_on_sphere():
    o, d, depth = _camera_rays(32)
    near, far = torch.full((32,), 0.5), torch.full((32,), 3.5)
    beta = 0.01
    res = ErrorBoundedSampler().sample(sphere, o, d, near, far, beta)
    assert res.t.shape == (32, 98)  # 64 + 32 + near + far, as MonoSDF
    assert (res.beta_plus <= beta * 1.01 + 1e-6).all()  # the bound was met with beta itself
    # Samples concentrate at the surface: far more than uniform would put within 0.05.
    near_surface = ((res.t - depth[:, None]).abs() < 0.05).float().sum(-1)
    assert (near_surface >= 30).all()
    s = res.samples
    sdf = sphere(s.positions(o, d))
    out = volume_render(s, sigmas=volsdf_density(sdf, beta))
    torch.testing.assert_close(out.depth_normalized[:, 0], depth, atol=1.5e-2, rtol=0)
