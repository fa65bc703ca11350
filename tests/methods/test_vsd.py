"""VSD text-to-3D end to end with the tiny random Stable Diffusion (CPU, a few steps)."""

from __future__ import annotations

import json

import pytest
import torch
import trimesh
from _cli import run

from shapegen.methods import METHODS

pytestmark = pytest.mark.usefixtures("one_thread")



def test_registered():
    assert METHODS["vsd"].system == "shapegen.methods.vsd:VSDSystem"
    assert "msdf" in METHODS  # the table keeps every method
    METHODS["vsd"].check()  # CONFIG, for_training, write_preview, a RunConfig at train, the pipeline


def _tiny(*overrides: str):
    from shapegen.config import CONFIG_ROOT, load_config
    from shapegen.methods.vsd import VSDConfig

    return load_config(VSDConfig, CONFIG_ROOT / "vsd" / "tiny.yaml", ["export.turntable_frames=2", *overrides])


def test_each_stage_runs_with_its_own_length_cadence_and_the_config_seed():
    from shapegen.methods.text_to_3d import stage_run

    cfg = _tiny("steps=7", "export.checkpoint_every=3", "export.render_every=2", "geometry.steps=5", "geometry.render_every=0",
                "texture.checkpoint_every=4", "seed=11", "train.devices=2", "train.strategy=ddp", "train.max_steps=99")
    nerf, geometry, texture = (stage_run(cfg, s) for s in ("nerf", "geometry", "texture"))
    assert (nerf.max_steps, nerf.checkpoint_every, nerf.preview_every) == (7, 3, 2)
    assert (geometry.max_steps, geometry.preview_every) == (5, -1)  # render_every 0: no renders
    assert (texture.max_steps, texture.checkpoint_every) == (cfg.texture.steps, 4)
    for stage in (nerf, geometry, texture):
        assert (stage.seed, stage.devices, stage.strategy) == (11, 2, "ddp")
    assert cfg.train.max_steps == 99  # the config itself is left as it was


def test_text_to_3d_from_python_with_a_config(tmp_path):
    from shapegen.methods.text_to_3d import text_to_3d

    cfg = _tiny("steps=2", "export.render_every=0", "train.accelerator=cpu")
    cfg.prompt = "a red cube"
    result = text_to_3d(cfg, tmp_path / "run", progress=False)
    assert result.meshes == [tmp_path / "run" / "model.glb"] and len(trimesh.load(result.meshes[0], force="mesh").faces) > 20
    assert all(p.is_file() for p in result.files), result.files
    ckpt = torch.load(result.checkpoints["nerf"], map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2 and ckpt["hyper_parameters"]["config"]["prompt"] == "a red cube"
    assert ckpt["hyper_parameters"]["config"]["train"]["accelerator"] == "cpu"
    assert not (tmp_path / "run" / "renders").exists()  # render_every 0


def test_train_method_vsd_runs_the_nerf_stage_then_another_stage(capsys, tmp_path):
    out = tmp_path / "run"
    common = ["train", "--method", "vsd", "--config", "tiny", "--set", "model=tiny-random", "-o", str(out), "--accelerator", "cpu",
              "--set", "steps=2", "--set", "geometry.steps=2", "--set", "export.turntable_frames=2", "--set", "export.render_every=0",
              "--set", "geometry.render_every=0"]
    code, stdout, err = run(capsys, *common)
    assert code == 0, err
    for name in ("model.glb", "loss.png", "loss.csv", "losses.png", "history.json", "config.yaml"):
        assert (out / name).is_file(), name
    assert f"wrote {out / 'checkpoints' / 'last.ckpt'}" in stdout
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2 and ckpt["hyper_parameters"]["config"]["train"]["accelerator"] == "cpu"
    # --stage picks the next stage of the same pipeline in the same folder.
    code, _, err = run(capsys, *common, "--stage", "geometry")
    assert code == 0, err
    assert (out / "geometry.glb").is_file()
    assert torch.load(out / "checkpoints" / "geometry" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 2


def test_resolution_schedule():
    from shapegen.methods.vsd import RenderSettings, resolution_at

    rs = RenderSettings(resolutions=[64, 512], milestones=[5000])
    assert [resolution_at(s, rs) for s in (0, 4999, 5000, 10**6)] == [64, 64, 512, 512]


def test_text_to_3d_tiny_two_particles_to_glb_and_resume(capsys, tmp_path):
    out = tmp_path / "run"
    common = ["text-to-3d", "a hamburger", "--preset", "tiny", "--tiny-random-prior", "-o", str(out),
              "--set", "export.turntable_frames=2", "--particles", "2", "--set", "shading.mode=random"]
    code, _, err = run(capsys, *common, "--set", "steps=2")
    assert code == 0, err
    for k in range(2):
        mesh = trimesh.load(out / f"particle_{k}.glb", force="mesh")
        assert len(mesh.faces) > 20
        colors = mesh.visual.vertex_colors
        assert colors.shape[0] == len(mesh.vertices) and colors[:, :3].std() >= 0  # albedo per vertex
        assert (out / f"turntable_{k}.mp4").is_file() or (out / f"turntable_{k}.gif").is_file()
    assert (out / "losses.png").is_file() and (out / "config.yaml").is_file()
    assert sorted(p.name for p in (out / "renders").iterdir()) == [
        "step000001_p0.png", "step000001_p1.png", "step000002_p0.png", "step000002_p1.png"
    ]
    assert len(json.loads((out / "history.json").read_text())) == 2
    ckpt = out / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert any("lora_B" in k for k in state)
    assert not any(k.startswith("guidance.unet.") and "lora_" not in k for k in state)  # no frozen prior
    # --resume continues the same run to the new step count.
    code, _, err = run(capsys, *common, "--set", "steps=3", "--resume")
    assert code == 0, err
    history = json.loads((out / "history.json").read_text())
    assert [int(r["step"]) for r in history] == [0, 1, 2]
    # The checkpoint alone rebuilds the system (config saved as plain hyper-parameters).
    from shapegen.methods.vsd import VSDSystem

    system = VSDSystem.load_from_checkpoint(str(ckpt), map_location="cpu")
    assert system.config.particles == 2 and system.config.model == "tiny-random"
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert torch.equal(system.fields[1].encoding.embeddings, saved["fields.1.encoding.embeddings"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_gpu_preset_without_gpu_is_one_clear_line(capsys, tmp_path):
    code, _, err = run(capsys, "text-to-3d", "a cat", "--preset", "paper", "-o", str(tmp_path / "x"))
    assert code == 2 and err.count("\n") == 1
    assert "no CUDA GPU" in err and "--preset tiny" in err
    assert not (tmp_path / "x").exists()


def test_model_not_cached_is_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "text-to-3d", "a cat", "--preset", "tiny", "--model", "nobody/not-a-model", "-o", str(tmp_path))
    assert code == 2 and err.count("\n") == 1
    assert "hf download nobody/not-a-model" in err


def test_vsd_config_from_a_prompt_and_a_preset():
    from shapegen.errors import ShapegenError
    from shapegen.methods.text_to_3d import vsd_config

    cfg = vsd_config("a cat", "tiny", ["steps=5", "train.devices=2"])
    assert (cfg.prompt, cfg.steps, cfg.model, cfg.train.devices) == ("a cat", 5, "tiny-random", 2)
    assert vsd_config(cfg) is cfg
    with pytest.raises(ShapegenError, match="prompt is empty"):
        vsd_config("  ", "tiny")
    with pytest.raises(ShapegenError, match="set its fields"):
        vsd_config(cfg, overrides=["steps=1"])


def test_silhouette_iso_level_matches_the_rendered_opacity_of_a_soft_field():
    """A Gaussian density blob: its ``opacity > 0.5`` silhouette has radius ``s sqrt(ln(A s sqrt(pi) / ln 2))``
    and the level ``L`` surface radius ``s sqrt(ln(A / L))``. The opacity-per-step level (ln 2 / step) gives a
    sphere 19% too small; the silhouette level is the candidate (ln 2 / step halved k times) nearest the
    silhouette."""
    import math

    from shapegen.methods.vsd import iso_density_level, silhouette_iso_level

    amp, s = 200.0, 0.2
    blob = lambda x: amp * torch.exp(-(x * x).sum(-1) / s**2)
    step = 2 * math.sqrt(3) / 48
    silhouette = s * math.sqrt(math.log(amp * s * math.sqrt(math.pi) / math.log(2)))  # 0.430
    radius = lambda level: s * math.sqrt(math.log(amp / level))
    per_step = iso_density_level(blob, 1.0, step, -1.0, 64)
    assert per_step == pytest.approx(math.log(2) / step) and radius(per_step) < 0.85 * silhouette
    level = silhouette_iso_level(blob, 1.0, step, distance=1.5, fov_deg=52.5)
    candidates = [math.log(2) / step / 2**k for k in range(7)]
    nearest = min(candidates, key=lambda lv: abs(radius(lv) - silhouette))
    assert level == pytest.approx(nearest) and abs(radius(level) / silhouette - 1) < 0.03
    # A hard-edged field: every candidate gives the same sphere; the level stays below the peak.
    ball = lambda x: torch.where(x.norm(dim=-1) < 0.4, 3.0, 0.0)
    assert silhouette_iso_level(ball, 1.0, step, distance=1.5, fov_deg=52.5) < 3.0


def test_cpu_preset_exports_at_the_silhouette_level():
    from shapegen.methods.text_to_3d import vsd_config

    cfg = vsd_config("a chair", "cpu")
    assert (cfg.export.iso_density, cfg.export.iso_mode) == (-1.0, "silhouette")
    assert vsd_config("a chair", "tiny").export.iso_mode == "opacity"
