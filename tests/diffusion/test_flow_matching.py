"""Flow matching: path, target and loss by hand; a learned 2-D toy; solvers against dopri5."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from shapegen.diffusion.flow_matching import (
    draw_training_batch,
    flow_matching_loss,
    guided_velocity,
    ot_path,
    ot_target,
    sample_noise,
    solve_ode,
)
from shapegen.errors import ShapegenError


def test_path_target_and_loss_hand_computed():
    x0 = torch.tensor([[1.0, -2.0]])
    x1 = torch.tensor([[3.0, 4.0]])
    t = torch.tensor([0.25])
    s = 0.1
    # x_t = (1 - 0.9 * 0.25) x0 + 0.25 x1 = 0.775 x0 + 0.25 x1
    assert torch.allclose(ot_path(x0, x1, t, s), torch.tensor([[0.775 + 0.75, -1.55 + 1.0]]))
    # u = x1 - 0.9 x0
    u = ot_target(x0, x1, s)
    assert torch.allclose(u, torch.tensor([[2.1, 5.8]]))
    # Loss of predicting zero: mean(2.1^2, 5.8^2)
    assert flow_matching_loss(torch.zeros_like(u), u).item() == pytest.approx((2.1**2 + 5.8**2) / 2)
    # Endpoints: t=0 is the noise, t=1 is data up to s_min x0.
    assert torch.allclose(ot_path(x0, x1, torch.tensor([0.0]), s), x0)
    assert torch.allclose(ot_path(x0, x1, torch.tensor([1.0]), s), x1 + s * x0)
    # The target is the time derivative of the path.
    eps = 1e-3
    fd = (ot_path(x0, x1, t + eps, s) - ot_path(x0, x1, t - eps, s)) / (2 * eps)
    assert torch.allclose(fd, u, atol=1e-3)


def test_training_batch_is_consistent_and_seeded():
    x1 = torch.randn(4, 3, 5)
    b1 = draw_training_batch(x1, 1e-4, torch.Generator().manual_seed(3))
    b2 = draw_training_batch(x1, 1e-4, torch.Generator().manual_seed(3))
    assert torch.equal(b1.xt, b2.xt) and torch.equal(b1.t, b2.t)
    assert torch.allclose(b1.xt, ot_path(b1.x0, x1, b1.t, 1e-4))
    assert torch.allclose(b1.target, ot_target(b1.x0, x1, 1e-4))


def test_guidance_combine():
    vc, vu = torch.tensor([2.0]), torch.tensor([1.0])
    assert torch.equal(guided_velocity(vc, vu, 1.0), vc)
    assert torch.equal(guided_velocity(vc, vu, 0.0), vu)
    assert guided_velocity(vc, vu, 3.0).item() == pytest.approx(-2 * 1.0 + 3 * 2.0)


def test_noise_is_seeded():
    assert torch.equal(sample_noise((2, 3), seed=5), sample_noise((2, 3), seed=5))
    assert not torch.equal(sample_noise((2, 3), seed=5), sample_noise((2, 3), seed=6))


@pytest.mark.parametrize("solver,steps,tol", [("euler", 200, 2e-2), ("midpoint", 25, 5e-3), ("rk4", 10, 1e-4)])
def test_solvers_agree_with_dopri5_and_exact_on_linear_ode(solver, steps, tol):
    a = torch.tensor([[-0.5, 2.0], [-2.0, -0.5]], dtype=torch.float64)

    def f(x, t):
        return x @ a.T

    x0 = torch.tensor([[1.0, 0.0], [0.3, -2.0]], dtype=torch.float64)
    exact = x0 @ torch.linalg.matrix_exp(a).T
    ref = solve_ode(f, x0, "dopri5", rtol=1e-8, atol=1e-8)
    assert torch.allclose(ref.x, exact, atol=1e-6)
    out = solve_ode(f, x0, solver, steps)
    assert out.nfe == steps * {"euler": 1, "midpoint": 2, "rk4": 4}[solver]
    err = (out.x - ref.x).abs().max().item()
    assert err < tol
    # Convergence order 1, 2, 4: doubling the steps divides the error by about 2, 4, 16.
    err2 = (solve_ode(f, x0, solver, 2 * steps).x - ref.x).abs().max().item()
    assert err / err2 > {"euler": 1.8, "midpoint": 3.5, "rk4": 12.0}[solver]


def test_solver_errors_are_one_line():
    with pytest.raises(ShapegenError, match="unknown ODE solver"):
        solve_ode(lambda x, t: x, torch.zeros(1, 1), "heun")  # type: ignore[arg-type]
    with pytest.raises(ShapegenError, match="at least 1"):
        solve_ode(lambda x, t: x, torch.zeros(1, 1), "euler", 0)


class _ToyVelocity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 2))

    def forward(self, x, t):
        return self.net(torch.cat([x, t[:, None]], dim=-1))


def _two_gaussians(n: int, gen: torch.Generator) -> torch.Tensor:
    sign = torch.randint(0, 2, (n,), generator=gen).float() * 2 - 1
    return torch.stack([2.0 * sign, torch.zeros(n)], dim=-1) + 0.3 * torch.randn(n, 2, generator=gen)


def test_two_gaussians_learned_and_sampled():
    gen = torch.Generator().manual_seed(0)
    model = _ToyVelocity()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(1500):
        x1 = _two_gaussians(256, gen)
        b = draw_training_batch(x1, 1e-4, gen)
        loss = flow_matching_loss(model(b.xt, b.t), b.target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x = solve_ode(model, sample_noise((4000, 2), seed=1), "midpoint", 25).x
    # Target moments: mean 0, std_x = sqrt(4 + 0.09) = 2.02, std_y = 0.3; two modes at x = +-2.
    assert x.mean(0).abs().max().item() < 0.15
    assert x[:, 0].std().item() == pytest.approx(2.02, abs=0.15)
    assert x[:, 1].std().item() == pytest.approx(0.3, abs=0.1)
    assert (x[:, 0].abs() > 1.0).float().mean().item() > 0.9
    assert (x[:, 0] > 0).float().mean().item() == pytest.approx(0.5, abs=0.07)
    # Seeded sampling is deterministic.
    with torch.no_grad():
        again = solve_ode(model, sample_noise((4000, 2), seed=1), "midpoint", 25).x
    assert torch.equal(x, again)


def _gaussian_ot_velocity(mean: float, std: float):
    """Exact marginal velocity of the OT path (s_min = 0) from N(0, 1) to N(mean, std^2), per element.

    ``p_t = N(t mean, sigma_t^2)`` with ``sigma_t^2 = (1 - t)^2 + t^2 std^2``, and
    ``u(x, t) = mean + sigma_t' / sigma_t (x - t mean)``; the flow maps ``x0`` to ``mean + std x0``.
    """

    def f(x, t):
        tb = t.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        var = (1 - tb) ** 2 + tb**2 * std**2
        dlog_sigma = (-(1 - tb) + tb * std**2) / var
        return mean + dlog_sigma * (x - tb * mean)

    return f


@pytest.mark.parametrize("solver,order", [("euler", 1), ("midpoint", 2), ("rk4", 4)])
def test_fixed_step_solvers_converge_to_dopri5_on_the_gaussian_flow(solver, order):
    # A time-dependent, nonlinear-in-t field with a closed-form end point: the flow-matching ODE itself.
    f = _gaussian_ot_velocity(1.5, 0.2)
    x0 = torch.linspace(-2.5, 2.5, 11, dtype=torch.float64)[:, None]
    exact = 1.5 + 0.2 * x0
    ref = solve_ode(f, x0, "dopri5", rtol=1e-10, atol=1e-10)
    assert (ref.x - exact).abs().max().item() < 1e-8
    errs = [(solve_ode(f, x0, solver, n).x - ref.x).abs().max().item() for n in (5, 10, 20, 50, 100, 200)]
    assert all(b < a for a, b in itertools.pairwise(errs)), errs  # monotone
    assert errs[3] < 0.2 * 0.1 ** (order - 1) * errs[0], errs  # 50 steps much better than 5 (10x steps: >= 5 x 10^(order-1))
    # Asymptotic order: 100 -> 200 steps divides the error by about 2^order.
    assert errs[4] / errs[5] > 0.8 * 2**order, errs
