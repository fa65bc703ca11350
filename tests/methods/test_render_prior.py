"""The render prior: tokenizer, training through ``shapegen train``, export as a diffusers folder,
loading by path and by name, ``train.init_from``, sampling."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pytest
import torch
from _cli import run

from shapegen.checkpoints import load_checkpoint
from shapegen.config import CONFIG_ROOT, load_config
from shapegen.errors import ShapegenError
from shapegen.guidance import prior as prior_module
from shapegen.guidance.prior import RENDER_PRIOR, load_stable_diffusion
from shapegen.methods import METHODS
from shapegen.methods.render_prior import PriorRunConfig, RenderPrior, RenderPriorConfig, build_tokenizer, lr_factor, sample_images

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _prior_fixtures import tiny_prior_folder, write_tiny_renders

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny prior trained three steps through the command line, and its exported folder."""
    import torch as _torch

    threads = _torch.get_num_threads()
    _torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("prior")
    folder = tiny_prior_folder(root, steps=3)
    _torch.set_num_threads(threads)
    return root, folder


def test_registered_and_keeps_its_promises():
    spec = METHODS["render_prior"]
    spec.check()
    assert spec.export.endswith(":export_pipeline") and not spec.generate


def test_lr_schedule_warms_up_then_stays_or_follows_a_cosine_to_its_floor():
    const = PriorRunConfig(max_steps=1000, warmup_steps=100)
    assert lr_factor(const, 0) == pytest.approx(0.01) and lr_factor(const, 49) == pytest.approx(0.5)
    assert lr_factor(const, 99) == 1.0 and lr_factor(const, 999) == 1.0
    cos = PriorRunConfig(max_steps=1000, warmup_steps=100, lr_schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(cos, 49) == pytest.approx(0.5)  # the same warm-up
    assert lr_factor(cos, 99) == pytest.approx(1.0)
    assert lr_factor(cos, 549) == pytest.approx(0.55)  # half way: the mean of 1 and the floor
    assert lr_factor(cos, 999) == pytest.approx(0.1) and lr_factor(cos, 5000) == pytest.approx(0.1)
    steps = [lr_factor(cos, s) for s in range(99, 1000)]
    assert all(a >= b for a, b in itertools.pairwise(steps))

    default = load_config(RenderPriorConfig, CONFIG_ROOT / "render_prior" / "default.yaml")
    finetune = load_config(RenderPriorConfig, CONFIG_ROOT / "render_prior" / "finetune.yaml")
    assert default.train.lr_schedule == "constant"
    assert finetune.train.lr_schedule == "cosine" and finetune.train.init_from == "render-prior"
    assert (finetune.unet, finetune.text) == (default.unet, default.text)  # init_from needs the same architecture


def test_tokenizer_is_word_level_with_unknown_words_and_view_suffixes():
    tok = build_tokenizer(["a", "chair", "tall"], max_length=8)
    ids = tok(["A tall chair, front view", "a zebra"], padding="max_length", max_length=8, return_tensors="pt").input_ids
    vocab = tok.get_vocab()
    words = [vocab[w] for w in ("<s>", "a", "tall", "chair", ",", "front", "view", "</s>")]
    assert ids[0].tolist() == words
    assert ids[1].tolist() == [vocab["<s>"], vocab["a"], vocab["[UNK]"], vocab["</s>"]] + [vocab["[PAD]"]] * 4


def test_train_export_and_reload_by_path_and_by_name(tiny_run, monkeypatch):
    root, folder = tiny_run
    assert load_checkpoint(root / "run" / "checkpoints" / "last.ckpt")["global_step"] == 3
    assert {p.name for p in folder.iterdir()} >= {"unet", "text_encoder", "tokenizer", "scheduler", "model_index.json"}
    assert not (folder / "vae").exists()
    index = json.loads((folder / "model_index.json").read_text())
    assert index["vae"] == [None, None] and index["shapegen"]["pixel_space"]
    sd = load_stable_diffusion(str(folder))
    assert sd.vae is None and sd.pixel_space and sd.vae_scale_factor == 1 and sd.image_size == 16
    assert next(sd.unet.parameters()).dtype == torch.float32  # stored in float16, upcast on loading
    # The exported UNet is the run's EMA UNet, to float16 precision (11 significant bits).
    state = load_checkpoint(root / "run" / "checkpoints" / "last.ckpt")["state_dict"]
    for name, p in sd.unet.named_parameters():
        ref = state[f"ema_unet.{name}"]
        torch.testing.assert_close(p, ref.half().float(), rtol=0, atol=0)
    monkeypatch.setitem(prior_module.SHIPPED_MODELS, RENDER_PRIOR, str(folder))
    by_name = load_stable_diffusion(RENDER_PRIOR)
    for a, b in zip(by_name.unet.parameters(), sd.unet.parameters()):
        assert torch.equal(a, b)


def test_export_model_command_writes_a_loadable_folder(tiny_run, capsys, tmp_path):
    root, _ = tiny_run
    code, out, err = run(capsys, "export-model", "--method", "render_prior", str(root / "run" / "checkpoints" / "last.ckpt"),
                         "-o", str(tmp_path / "m"))
    assert code == 0, err
    assert "diffusers folder" in out and (tmp_path / "m" / "unet" / "config.json").is_file()


def test_init_from_the_exported_folder_starts_from_its_weights(tiny_run, tmp_path):
    root, folder = tiny_run
    from shapegen.methods.training import load_method_config

    cfg = load_method_config(METHODS["render_prior"], "tiny", [f"data.root={root / 'renders'}", f"train.init_from={folder}"])
    model, _ = RenderPrior.for_training(cfg)
    sd = load_stable_diffusion(str(folder))
    assert model.config.vocabulary == [w for w, _ in sorted(sd.tokenizer.get_vocab().items(), key=lambda kv: kv[1])][4:]
    for (name, a), b in zip(model.unet.named_parameters(), sd.unet.parameters()):
        assert torch.equal(a, b), name
    cfg.train.init_from = str(tmp_path / "nothing")
    with pytest.raises(ShapegenError, match="init_from"):
        RenderPrior.for_training(cfg)


def test_camera_prior_starts_from_a_plain_one_and_learns_from_the_cameras(tiny_run, tmp_path, monkeypatch):
    root, folder = tiny_run
    from shapegen.data.render_set import read_render_cameras
    from shapegen.guidance.prior import camera_features, is_camera_prior
    from shapegen.methods.training import load_method_config

    cfg = load_method_config(METHODS["render_prior"], "tiny", [f"data.root={root / 'renders'}", f"train.init_from={folder}", "camera=true"])
    model, _ = RenderPrior.for_training(cfg)
    assert is_camera_prior(model.unet)
    cams = read_render_cameras(root / "renders", "train")
    assert torch.equal(model.views, camera_features(cams[:, 0], cams[:, 1])) and len(model.views) == len(model.images)
    sd = load_stable_diffusion(str(folder))
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([10, 800])
    states = sd.text_encoder(sd.tokenizer(["chair", "mug"], padding="max_length", max_length=sd.tokenizer.model_max_length,
                                          return_tensors="pt").input_ids)[0]
    with torch.no_grad():  # the zero camera embedding: the plain prior's output for any camera
        plain = sd.unet(x, t, encoder_hidden_states=states).sample
        for az in (0.0, 90.0):
            views = camera_features(torch.tensor([az, az]), torch.tensor([20.0, 20.0]))
            out = model.unet(x, t, encoder_hidden_states=states, class_labels=views).sample
            assert torch.allclose(out, plain, atol=1e-5)
    opt = model.configure_optimizers()["optimizer"]
    assert len(opt.param_groups) == 1  # camera_lr 0: one rate for all
    cfg.train.camera_lr = 7e-3
    groups = model.configure_optimizers()["optimizer"].param_groups
    assert [g["initial_lr"] for g in groups] == [cfg.train.lr, 7e-3]  # before the warm-up factor
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.unet.class_embedding.parameters()}
    assert sum(len(g["params"]) for g in groups) == len([*model.unet.parameters(), *model.text_encoder.parameters()])
    labels = []
    model.unet.register_forward_pre_hook(lambda _m, args, kwargs: labels.append(kwargs["class_labels"]), with_kwargs=True)
    model.training_step(None, 0)
    assert labels and labels[0].shape == (cfg.data.batch_size, 4)
    assert all(any(torch.equal(row, v) for v in model.views) for row in labels[0])
    # Trained and exported, it loads as a camera prior whose samples depend on the camera.
    last = tmp_path / "run"
    from shapegen.methods.render_prior import export_pipeline
    from shapegen.methods.training import train

    ckpt = train(METHODS["render_prior"], "tiny", [f"data.root={root / 'renders'}", "train.accelerator=cpu", "camera=true",
                                                    "train.max_steps=2", f"train.init_from={folder}"], last, progress=False)
    camera_sd = load_stable_diffusion(str(export_pipeline(ckpt, tmp_path / "m", use_ema=False).path))
    assert is_camera_prior(camera_sd.unet) and not is_camera_prior(sd.unet)
    torch.nn.init.normal_(camera_sd.unet.class_embedding.linear_2.weight, std=0.5)
    front, side = (sample_images(camera_sd, ["chair"], steps=3, azimuth_deg=a) for a in (0.0, 90.0))
    assert not torch.allclose(front, side, atol=1e-3)
    assert torch.equal(front, sample_images(camera_sd, ["chair"], steps=3, azimuth_deg=0.0))
    with pytest.raises(ShapegenError, match="azimuth and elevation"):
        model.set_data(model.images, ["chair"] * len(model.images), None)


def test_x0_loss_weight_adds_the_clean_image_error(tiny_run):
    root, _ = tiny_run
    from shapegen.methods.training import load_method_config

    cfg = load_method_config(METHODS["render_prior"], "tiny", [f"data.root={root / 'renders'}"])
    model, _ = RenderPrior.for_training(cfg)
    model.eval()
    seen = []
    model.unet.register_forward_hook(lambda _m, args, out: seen.append((args[0], args[1], out.sample)))
    with torch.no_grad():
        plain = model.training_step(None, 0)
        x_t, t, eps = seen[-1]
        model.config.x0_loss_weight = 0.5
        weighted = model.training_step(None, 0)  # the same batch: it is drawn from (seed, step)
    abar = model.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    gen = torch.Generator().manual_seed(cfg.train.seed * 1_000_003)
    idx = torch.randint(len(model.images), (cfg.data.batch_size,), generator=gen)
    x0 = model.images[idx].float() / 127.5 - 1.0
    x0_hat = (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()
    assert float(weighted - plain) == pytest.approx(0.5 * float((x0_hat - x0).square().mean()), rel=1e-4)


def test_loss_falls_on_the_tiny_set(tmp_path):
    from shapegen.methods.training import train

    data = write_tiny_renders(tmp_path / "renders")
    train(METHODS["render_prior"], "tiny", [*data, "train.max_steps=120", "train.lr=3e-3", "train.checkpoint_every=1000"],
          tmp_path / "run", progress=False)
    rows = (tmp_path / "run" / "loss.csv").read_text().splitlines()[1:]
    losses = [float(r.split(",")[-1]) for r in rows]
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < 0.7 * first, (first, last)


def test_samples_are_images_and_repeat_for_a_seed(tiny_run):
    _, folder = tiny_run
    sd = load_stable_diffusion(str(folder))
    a = sample_images(sd, ["chair", "mug"], steps=3, seed=1)
    b = sample_images(sd, ["chair", "mug"], steps=3, seed=1)
    c = sample_images(sd, ["chair", "mug"], steps=3, seed=2)
    assert a.shape == (2, 3, 16, 16) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_the_shipped_prior_loads_by_name_and_is_small():
    folder = REPO / "assets" / "models" / "render_prior"
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 10e6
    sd = load_stable_diffusion(RENDER_PRIOR)
    assert sd.pixel_space and sd.image_size == 32
    ids = sd.tokenizer(["a chair, front view"], return_tensors="pt").input_ids[0].tolist()
    assert sd.tokenizer.unk_token_id not in ids
