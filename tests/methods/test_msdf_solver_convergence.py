"""Fixed-step solvers converge to the adaptive dopri5 solution on a small *trained* M-SDF generator.

Regression test for the time embedding: with DiT's ``1000 t`` sinusoidal features the learned
velocity oscillates in ``t`` faster than any solver step, and Euler/midpoint/RK4 errors against
dopri5 stalled or grew between 20 and 100 steps (docs/benchmarks.md, msdf-generator section).
"""

from __future__ import annotations

import itertools

import pytest
import torch
from _msdf_fixtures import write_class_folder

from shapegen.config import load_config, resolve_preset, to_dict
from shapegen.diffusion.flow_matching import draw_training_batch, flow_matching_loss, sample_noise, solve_ode
from shapegen.methods.msdf import MSDFConfig, MSDFGenerator, build_for_training

pytestmark = pytest.mark.usefixtures("one_thread")


def train_tiny(root, steps: int = 250, time_scale: float | None = None, seed: int = 0) -> MSDFGenerator:
    """The tiny preset trained by a plain loop on the analytic sphere/slab fixtures (n = 16, k = 3)."""
    over = [f"data.root={root}"] + ([] if time_scale is None else [f"model.time_scale={time_scale}"])
    cfg = load_config(MSDFConfig, resolve_preset("tiny", "msdf"), over)
    torch.manual_seed(seed)
    model, dm = build_for_training(cfg)
    data, labels = dm.dataset.tensors, torch.tensor(dm.dataset.labels)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.net.parameters(), lr=1e-3)
    for _ in range(steps):
        idx = torch.randint(0, data.shape[0], (16,), generator=gen)
        fm = draw_training_batch(model.normalize(data[idx]), cfg.sigma_min, gen)
        drop = torch.rand(16, generator=gen) < cfg.cond_drop
        loss = flow_matching_loss(model.net(fm.xt, fm.t, labels[idx], drop=drop), fm.target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def solver_errors(model: MSDFGenerator, solver: str, steps=(5, 10, 20, 50)) -> tuple[list[float], int]:
    """RMS difference (normalised units) of fixed-step samples from dopri5 (rtol = atol = 1e-6), and dopri5's NFE."""
    x0 = sample_noise((4, model.config.n, model.dim), seed=1)
    cond = {"labels": torch.tensor([0, 1, 0, 1])}

    def f(x, t):
        return model.velocity(x, t, cond, guidance=2.0, use_ema=False)

    with torch.no_grad():
        ref = solve_ode(f, x0, "dopri5", rtol=1e-6, atol=1e-6)
        errs = [float((solve_ode(f, x0, solver, n).x - ref.x).pow(2).mean().sqrt()) for n in steps]
    return errs, ref.nfe


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_tiny(write_class_folder(tmp_path_factory.mktemp("msdf_conv")))


def test_default_time_scale_is_not_the_stiff_one(trained):
    assert trained.config.model.time_scale == 100.0 and trained.net.time_scale == 100.0


@pytest.mark.parametrize("solver", ["euler", "midpoint", "rk4"])
def test_fixed_step_solvers_converge_to_dopri5_on_a_trained_model(trained, solver):
    errs, nfe = solver_errors(trained, solver)
    assert all(b < a for a, b in itertools.pairwise(errs)), errs  # 5 < 10 < 20 < 50 steps: strictly better
    assert errs[3] < 0.1 * errs[0], errs  # 50 steps much better than 5
    # From 20 to 50 steps (x2.5) the error falls at least as at order 1 (midpoint/RK4 faster).
    assert errs[2] / errs[3] > {"euler": 2.0, "midpoint": 4.0, "rk4": 8.0}[solver], errs
    assert nfe < 600  # a smooth field: dopri5 needs few evaluations (about 2000 with 1000 t)


def test_checkpoints_saved_before_time_scale_keep_their_embedding(trained):
    # load_from_checkpoint calls MSDFGenerator(**hyper_parameters); older files lack model.time_scale
    # and their weights were trained with 1000 t (e.g. assets/models/msdf_demo).
    hp = to_dict(trained.config)
    del hp["model"]["time_scale"]
    assert MSDFGenerator(**hp).net.time_scale == 1000.0
    assert MSDFGenerator(**to_dict(trained.config)).net.time_scale == 100.0


def test_guided_velocity_and_samples_permute_with_the_rows(trained):
    x = torch.randn(2, trained.config.n, trained.dim)
    t = torch.tensor([0.3, 0.8])
    cond = {"labels": torch.tensor([0, 1])}
    perm = torch.randperm(trained.config.n, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        v = trained.velocity(x, t, cond, guidance=2.0, use_ema=False)  # train_tiny keeps no EMA
        assert torch.allclose(trained.velocity(x[:, perm], t, cond, guidance=2.0, use_ema=False), v[:, perm], atol=1e-5)
        f = lambda z, s: trained.velocity(z, s, cond, guidance=2.0, use_ema=False)
        out = solve_ode(f, x, "midpoint", 5).x
        assert torch.allclose(solve_ode(f, x[:, perm], "midpoint", 5).x, out[:, perm], atol=1e-4)
    assert v.abs().mean() > 0.1  # a trained, non-trivial field


def test_set_transformer_sampler_reproduces_two_gaussians():
    # The M-SDF velocity network, time embedding and sampler on a 2-D toy: one row of 2 numbers per "shape".
    from shapegen.nn.transformer import SetTransformer, SetTransformerConfig

    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = SetTransformer(2, SetTransformerConfig(width=32, depth=2, heads=2, mlp_ratio=2.0, time_frequencies=32))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def data(m):
        sign = torch.randint(0, 2, (m,), generator=gen).float() * 2 - 1
        return (torch.stack([2.0 * sign, torch.zeros(m)], -1) + 0.3 * torch.randn(m, 2, generator=gen))[:, None]

    for _ in range(800):
        b = draw_training_batch(data(256), 1e-4, gen)
        loss = flow_matching_loss(net(b.xt, b.t), b.target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x = solve_ode(net, sample_noise((3000, 1, 2), seed=1), "midpoint", 25).x[:, 0]
        ref = solve_ode(net, sample_noise((3000, 1, 2), seed=1), "dopri5", rtol=1e-5, atol=1e-5).x[:, 0]
    assert x.mean(0).abs().max().item() < 0.2
    assert x[:, 0].std().item() == pytest.approx(2.02, abs=0.2)
    assert x[:, 1].std().item() == pytest.approx(0.3, abs=0.12)
    assert (x[:, 0].abs() > 1.0).float().mean().item() > 0.9
    assert (x[:, 0] > 0).float().mean().item() == pytest.approx(0.5, abs=0.07)
    # 50 evaluations already match the adaptive solution (a few points on the ridge between the modes may switch).
    diff = (x - ref).norm(dim=-1)
    assert diff.median().item() < 0.01 and (diff > 0.1).float().mean().item() < 0.01
