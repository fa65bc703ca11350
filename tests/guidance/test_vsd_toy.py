"""The paper's central claim on a toy problem: VSD particles cover the modes, SDS collapses.

Setup (small enough for a CPU, everything in closed form):

* "renders" are the particles themselves, ``g(theta) = theta`` in R^2 (no camera);
* the prior is a mixture of two Gaussians ``0.5 N(+m, s^2 I) + 0.5 N(-m, s^2 I)`` whose noisy
  marginals under Stable Diffusion's scaled-linear schedule are again mixtures, so
  ``eps_prior(x_t, t) = -sigma_t grad log p_t(x_t)`` is exact;
* the variational score stand-in for the LoRA model is the exact minimiser of the denoising
  loss (Eq. 10) for the particles smoothed by a small Gaussian kernel of width h: the noisy
  score of ``1/K sum_k N(theta_k, h^2 I)`` (a real LoRA MLP fitted online gives the same picture
  but takes minutes).

Both methods use the library's :func:`vsd_gradient` and :func:`score_distillation_loss`, the
same time range and weighting ``w(t) = 1 - abar_t``, and the same initial particles (all near 0).
"""

from __future__ import annotations

import torch

from shapegen.guidance.vsd import score_distillation_loss, vsd_gradient

T = 1000
ABAR = torch.cumprod(1 - torch.linspace(0.00085**0.5, 0.012**0.5, T) ** 2, 0)
MODES = torch.tensor([[0.6, 0.0], [-0.6, 0.0]])
STD = 0.1


def _mixture_epsilon(x: torch.Tensor, t: torch.Tensor, means: torch.Tensor, std: float) -> torch.Tensor:
    """``-sigma_t grad log p_t(x)`` for ``p_0`` an equal mixture of ``N(means_k, std^2 I)``."""
    a = ABAR[t].sqrt()[:, None]
    s = (1 - ABAR[t]).sqrt()[:, None]
    var = a**2 * std**2 + s**2
    diff = x[:, None, :] - a[:, None, :] * means[None]  # (B, K, D)
    resp = torch.softmax(-(diff**2).sum(-1) / (2 * var), dim=-1)
    return s * (resp[..., None] * diff).sum(1) / var


def _distill(mode: str, k: int = 16, steps: int = 400, lr: float = 0.03) -> torch.Tensor:
    theta = (0.1 * torch.randn(k, 2)).requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    for _ in range(steps):
        t = torch.randint(20, 981, (k,))  # t in [0.02, 0.98] T
        eps = torch.randn(k, 2)
        with torch.no_grad():
            x_t = ABAR[t].sqrt()[:, None] * theta + (1 - ABAR[t]).sqrt()[:, None] * eps
            eps_prior = _mixture_epsilon(x_t, t, MODES, STD)
            # SDS: the injected noise; VSD: the particles' own (kernel-smoothed) noisy score.
            eps_var = eps if mode == "sds" else _mixture_epsilon(x_t, t, theta.detach(), 0.05)
            grad = vsd_gradient(eps_prior, eps_var, 1 - ABAR[t])
        opt.zero_grad()
        score_distillation_loss(theta, grad).backward()
        opt.step()
    return theta.detach()


def test_vsd_particles_cover_both_modes_while_sds_collapses_to_the_mean(one_thread):
    torch.manual_seed(0)
    sds = _distill("sds")
    torch.manual_seed(0)  # the same initial particles and noise stream for VSD
    vsd = _distill("vsd")
    # SDS: every particle ends near the mixture mean (0), far from both modes (|m| = 0.6).
    assert sds[:, 0].abs().max() < 0.3 and sds[:, 0].mean().abs() < 0.1
    assert (sds - MODES[:, None]).norm(dim=-1).min(0).values.min() > 0.3
    # VSD: particles sit on the modes, each mode holds a fair share, spread like the modes.
    dist = (vsd[None] - MODES[:, None]).norm(dim=-1)  # (2, K)
    nearest = dist.argmin(0)
    on_mode = dist.min(0).values < 0.3
    assert on_mode.float().mean() >= 0.8
    share = (nearest[on_mode] == 0).float().mean()
    assert 0.25 <= share <= 0.75
    assert 0.04 < vsd[:, 1].std() < 0.2  # the prior's std is 0.1
