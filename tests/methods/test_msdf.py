"""Mosaic-SDF generator: training signal, determinism, checkpoints, guidance, data loading."""

from __future__ import annotations

import itertools

import pytest
import pytorch_lightning as pl
import torch
from _msdf_fixtures import K, N, write_caption_folder, write_class_folder

from shapegen.config import load_config, resolve_preset
from shapegen.data.msdf_dataset import MSDFDataConfig, load_msdf_folder
from shapegen.diffusion.flow_matching import draw_training_batch, flow_matching_loss
from shapegen.errors import ShapegenError
from shapegen.methods import METHODS
from shapegen.methods.msdf import MSDFConfig, MSDFGenerator, build_for_training


def _config(root, **over) -> MSDFConfig:
    cfg = load_config(MSDFConfig, resolve_preset("tiny", "msdf"), [f"data.root={root}", *[f"{k}={v}" for k, v in over.items()]])
    return cfg


def _trainer(tmp_path, steps: int) -> pl.Trainer:
    return pl.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)


def _fixed_loss(model: MSDFGenerator, x: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        fm = draw_training_batch(model.normalize(x), model.config.sigma_min, torch.Generator().manual_seed(1))
        return flow_matching_loss(model.net(fm.xt, fm.t, labels), fm.target).item()


def test_registered_and_data_folder(tmp_path):
    assert METHODS["msdf"].system == "shapegen.methods.msdf:MSDFGenerator"
    data, classes, k = load_msdf_folder(MSDFDataConfig(root=str(write_class_folder(tmp_path))))
    assert classes == ["slab", "sphere"] and k == K and data.tensors.shape == (8, N, 4 + K**3)
    assert sorted(set(data.labels)) == [0, 1]
    assert all(classes[lab] == p.parent.name for lab, p in zip(data.labels, data.paths))


def test_captions_csv(tmp_path):
    root = write_caption_folder(tmp_path)
    data, classes, _ = load_msdf_folder(MSDFDataConfig(root=str(root), labels="captions", captions="captions.csv"))
    assert classes == [] and len(data) == 4
    assert {c for c, p in zip(data.captions, data.paths) if p.parent.name == "slab"} == {"a flat thin slab"}
    with pytest.raises(ShapegenError, match="captions CSV"):
        load_msdf_folder(MSDFDataConfig(root=str(root), labels="captions", captions="missing.csv"))


def test_loss_decreases_and_normalisation_is_stored(tmp_path):
    model, dm = build_for_training(_config(write_class_folder(tmp_path / "d")))
    x = dm.dataset.tensors
    labels = torch.tensor(dm.dataset.labels)
    assert model.normalize(x).reshape(-1, x.shape[-1])[:, :4].std(0, unbiased=False).sub(1).abs().max() < 1e-3
    assert torch.allclose(model.denormalize(model.normalize(x)), x, atol=1e-5)
    torch.nn.init.normal_(model.net.proj_out.weight, std=0.02)  # leave the all-zero start: a fairer "before"
    before = _fixed_loss(model, x, labels)
    _trainer(tmp_path, 60).fit(model, datamodule=dm)
    after = _fixed_loss(model, x, labels)
    assert after < 0.7 * before, (before, after)
    # EMA moved away from the initial weights.
    assert not torch.allclose(model.ema.proj_out.weight, torch.zeros_like(model.ema.proj_out.weight))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = write_class_folder(tmp_path_factory.mktemp("msdf"))
    torch.manual_seed(0)
    model, dm = build_for_training(_config(root, **{"train.max_steps": 20}))
    _trainer(root, 20).fit(model, datamodule=dm)
    return model, root


def test_sampling_is_deterministic_and_shaped(trained):
    model, _ = trained
    a = model.sample(3, cls="sphere", steps=4, seed=7)
    b = model.sample(3, cls="sphere", steps=4, seed=7)
    c = model.sample(3, cls="sphere", steps=4, seed=8)
    assert a.shape == (3, N, 4 + K**3) and torch.equal(a, b) and not torch.equal(a, c)
    assert (a[..., 3] > 0).all()
    # Sampling in batches of one gives the same shapes as one batch of three.
    model.config.sample.batch_size = 1
    try:
        assert torch.allclose(model.sample(3, cls="sphere", steps=4, seed=7), a, atol=1e-5)
    finally:
        model.config.sample.batch_size = 4
    with pytest.raises(ShapegenError, match="unknown class 'car'"):
        model.sample(1, cls="car")
    with pytest.raises(ShapegenError, match="not on text"):
        model.sample(1, prompt="a chair")


def test_checkpoint_round_trip(trained, tmp_path):
    model, _ = trained
    trainer = _trainer(tmp_path, 1)
    trainer.strategy.connect(model)
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt, weights_only=False)
    loaded = MSDFGenerator.load_from_checkpoint(ckpt, map_location="cpu")
    assert loaded.config == model.config and isinstance(loaded.hparams["model"], dict)
    assert torch.equal(loaded.norm_std, model.norm_std) and bool(loaded.norm_ready)
    assert torch.equal(loaded.sample(2, cls=1, steps=3, seed=3), model.sample(2, cls=1, steps=3, seed=3))


def test_guidance_one_is_the_conditional_model(trained):
    model, _ = trained
    x, t = torch.randn(2, N, 4 + K**3), torch.rand(2)
    cond = {"labels": torch.tensor([0, 1])}
    with torch.no_grad():
        direct = model.ema(x, t, labels=cond["labels"])
        assert torch.equal(model.velocity(x, t, cond, guidance=1.0), direct)
        uncond = model.ema(x, t, labels=torch.full((2,), model.net.null_class))
        # w = 3 extrapolates from the unconditional branch (batched together with the conditional one).
        assert torch.allclose(model.velocity(x, t, cond, guidance=3.0), uncond + 3.0 * (direct - uncond), atol=1e-5)
    # Unconditional sampling has nothing to guide: the scale does not matter.
    assert torch.equal(model.sample(2, steps=2, seed=1, guidance=3.0), model.sample(2, steps=2, seed=1, guidance=1.0))
    g1 = model.sample(2, cls="slab", steps=3, seed=1, guidance=1.0)
    g3 = model.sample(2, cls="slab", steps=3, seed=1, guidance=3.0)
    assert not torch.allclose(g1, g3)


def test_text_conditioning_trains_and_samples(tmp_path):
    root = write_caption_folder(tmp_path)
    cfg = _config(root, conditioning="text", **{"data.labels": "captions", "data.captions": "captions.csv", "train.max_steps": 3})
    model, dm = build_for_training(cfg)
    assert "_text_encoder" not in "".join(model.state_dict())
    _trainer(tmp_path, 3).fit(model, datamodule=dm)
    a = model.sample(1, prompt="a round ball", steps=2, seed=0)
    assert torch.equal(a, model.sample(1, prompt="a round ball", steps=2, seed=0))
    with pytest.raises(ShapegenError, match="not on classes"):
        model.sample(1, cls="sphere")


def test_class_conditioning_needs_class_folders(tmp_path):
    from _msdf_fixtures import sphere_msdf

    from shapegen.methods.msdf import save_msdf

    save_msdf(sphere_msdf(0.5, torch.Generator().manual_seed(0)), K, tmp_path / "a.msdf.npz")
    with pytest.raises(ShapegenError, match="sub-folder per class"):
        build_for_training(_config(tmp_path))
    with pytest.raises(ShapegenError, match="not a folder"):
        build_for_training(_config(tmp_path / "nope"))


def test_value_pca_basis_is_orthonormal_sorted_and_exact_at_full_rank(tmp_path):
    from shapegen.data.msdf_dataset import value_pca

    data, _, _ = load_msdf_folder(MSDFDataConfig(root=str(write_class_folder(tmp_path))))
    x = data.tensors
    values = x[..., 4:].reshape(-1, K**3)
    mean, basis = value_pca(x, K**3)
    assert torch.allclose(basis.T @ basis, torch.eye(K**3), atol=1e-4)
    variances = ((values - mean) @ basis).var(0, unbiased=False)
    assert (variances[:-1] >= variances[1:] - 1e-6).all()  # sorted by decreasing variance
    assert torch.allclose((values - mean) @ basis @ basis.T + mean, values, atol=1e-4)
    with pytest.raises(ShapegenError, match=r"value_components must be in 1\.\.27"):
        value_pca(x, K**3 + 1)


def test_value_components_model_projects_whitens_and_round_trips(tmp_path):
    root = write_class_folder(tmp_path / "d")
    m = 5
    model, dm = build_for_training(_config(root, value_components=m, **{"train.max_steps": 4}))
    x = dm.dataset.tensors
    assert model.dim == 4 + m and model.raw_dim == 4 + K**3
    z = model.normalize(x)
    assert z.shape == (*x.shape[:2], 4 + m)
    flat = z.reshape(-1, 4 + m)
    # Every channel standardised on its own, the basis coordinates included (whitening).
    assert flat.mean(0).abs().max() < 1e-3 and flat[:, [0, 1, 2, 4, 5, 6, 7, 8]].std(0, unbiased=False).sub(1).abs().max() < 1e-3
    # Denormalising gives the grids' projection on the basis: the best rank-m reconstruction.
    values = x[..., 4:]
    recon = model.denormalize(z)
    expected = (values - model.value_mean) @ model.value_basis @ model.value_basis.T + model.value_mean
    assert torch.allclose(recon[..., 4:], expected, atol=1e-4) and torch.allclose(recon[..., :4], x[..., :4], atol=1e-5)
    residual = (recon[..., 4:] - values).pow(2).mean()
    assert 0 < residual < values.var()
    # Rows are projected one by one: permuting the rows permutes the velocity.
    perm = torch.randperm(N)
    t = torch.rand(z.shape[0])
    labels = torch.tensor(dm.dataset.labels)
    with torch.no_grad():
        torch.nn.init.normal_(model.net.proj_out.weight, std=0.1)
        v = model.net(z, t, labels)
        assert torch.allclose(model.net(z[:, perm], t, labels), v[:, perm], atol=1e-5)
    # Training, sampling in full M-SDF rows, and the basis survives a checkpoint.
    _trainer(tmp_path, 4).fit(model, datamodule=dm)
    sample = model.sample(2, cls="slab", steps=3, seed=2)
    assert sample.shape == (2, N, 4 + K**3)
    trainer = _trainer(tmp_path, 1)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "m.ckpt", weights_only=False)
    loaded = MSDFGenerator.load_from_checkpoint(tmp_path / "m.ckpt", map_location="cpu")
    assert torch.equal(loaded.value_basis, model.value_basis) and loaded.dim == 4 + m
    assert torch.equal(loaded.sample(2, cls="slab", steps=3, seed=2), sample)
    with pytest.raises(ShapegenError, match="value_components must be 0"):
        MSDFGenerator(_config(root, value_components=7**3 + 1, classes=["a"]))  # k = 7 without data


def test_cosine_schedule_warms_up_then_decays_to_the_final_share():
    from shapegen.methods.msdf import MSDFTrainConfig, lr_factor

    tc = MSDFTrainConfig(max_steps=1000, warmup_steps=100, lr_schedule="cosine", lr_final=0.1)
    f = [lr_factor(tc, i) for i in range(1000)]
    assert f[0] == pytest.approx(0.01) and f[98] == pytest.approx(0.99)
    assert f[99] == pytest.approx(1.0) and f[999] == pytest.approx(0.1)
    assert f[549] == pytest.approx(0.55, abs=1e-9)  # half-way down the cosine: the mean of 1 and 0.1
    assert all(a >= b for a, b in itertools.pairwise(f[99:]))
    constant = MSDFTrainConfig(max_steps=1000, warmup_steps=100)
    assert lr_factor(constant, 999) == 1.0


def test_init_from_continues_a_saved_model_and_refuses_another_architecture(trained, tmp_path):
    from shapegen.checkpoints import save_checkpoint

    model, root = trained
    ckpt = tmp_path / "exported.ckpt"
    # An exported model: the EMA weights stored as net, the normalisation buffers, no EMA entries.
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(("net.", "ema."))}
    state |= {f"net.{k}": v for k, v in model.ema.state_dict().items()}
    save_checkpoint({"state_dict": state, "hyper_parameters": dict(model.hparams)}, ckpt)
    warm, _ = build_for_training(_config(root, **{"train.init_from": str(ckpt)}))
    for (name, a), b in zip(warm.net.state_dict().items(), model.ema.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(warm.norm_std, model.norm_std)
    assert torch.equal(warm.sample(2, cls=1, steps=3, seed=3), model.sample(2, cls=1, steps=3, seed=3))
    with pytest.raises(ShapegenError, match="does not fit this config"):
        build_for_training(_config(root, **{"train.init_from": str(ckpt), "model.width": 48}))
    with pytest.raises(ShapegenError, match="not found"):
        build_for_training(_config(root, **{"train.init_from": str(tmp_path / "missing.ckpt")}))
