"""Occ-SDF: losses, analytic rendering consistency, a tiny fit, checkpoint resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from shapegen.data.room_synth import RoomSynthConfig, write_room
from shapegen.data.scenes import load_scene
from shapegen.methods.occsdf import (
    OccSDFSystem,
    build_for_scene,
    fit,
    normal_loss,
    preset_config,
    scale_shift_invariant_depth_loss,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_room(tmp_path_factory):
    return write_room(tmp_path_factory.mktemp("room") / "room", RoomSynthConfig(num_views=2, width=12, height=10, max_steps=64))


def test_depth_loss_is_invariant_to_scale_and_shift_of_the_prediction():
    pred = torch.rand(50) + 0.5
    target = 2.0 * torch.rand(50)
    mask = torch.rand(50) > 0.2
    base = scale_shift_invariant_depth_loss(pred, target, mask)
    for a, b in [(3.0, -1.0), (0.2, 5.0), (-1.5, 0.3)]:
        torch.testing.assert_close(scale_shift_invariant_depth_loss(a * pred + b, target, mask), base, rtol=1e-4, atol=1e-6)
    assert float(scale_shift_invariant_depth_loss(pred, 0.7 * pred + 0.2, mask)) < 1e-10
    assert float(base) > 1e-3
    # Masked rays do not count.
    wild = torch.where(mask, target, torch.full_like(target, 1e3))
    torch.testing.assert_close(scale_shift_invariant_depth_loss(pred, wild, mask), base)


def test_normal_loss_zero_for_equal_and_four_for_opposite():
    n = torch.nn.functional.normalize(torch.randn(10, 3), dim=-1)
    m = torch.ones(10, dtype=torch.bool)
    l1, cos = normal_loss(3.0 * n, n, m)
    assert float(l1) < 1e-6 and float(cos) < 1e-6
    l1, cos = normal_loss(-n, n, m)
    assert abs(float(cos) - 2.0) < 1e-5 and float(l1) > 2.0


class _Sphere(nn.Module):
    """Analytic geometry: the inside of a sphere of radius 0.8 (free space inside, SDF positive),
    with the raw occupancy a sharper copy of the SDF."""

    def forward(self, x):
        f = 0.8 - x.norm(dim=-1)
        return torch.stack([f, 20.0 * f, *torch.zeros(16, len(x))], -1)

    def grid_parameters(self):
        return []


def test_occupancy_and_sdf_heads_render_the_same_depth_on_an_analytic_scene():
    cfg = preset_config("tiny")
    cfg.train.n_samples, cfg.train.n_eval, cfg.train.sampler_iters = 64, 64, 5
    model = OccSDFSystem(cfg)
    model.geometry = _Sphere()
    with torch.no_grad():
        model.density.beta.fill_(0.01)
    d = torch.nn.functional.normalize(torch.randn(32, 3), dim=-1)
    o = 0.3 * torch.nn.functional.normalize(torch.randn(32, 3), dim=-1)
    # Distance from o along d to the sphere |x| = 0.8.
    b = (o * d).sum(-1)
    t_true = -b + torch.sqrt(b * b - (o * o).sum(-1) + 0.64)
    r = model.render_rays(o, d, torch.ones(32), torch.zeros(32, dtype=torch.long), occupancy=True)
    assert r.sign_change.all()
    torch.testing.assert_close(r.depth, t_true, atol=0.03, rtol=0)
    torch.testing.assert_close(r.depth_occ, t_true, atol=0.03, rtol=0)
    torch.testing.assert_close(r.depth_occ, r.depth, atol=0.03, rtol=0)
    # Both normal renderings point inwards (towards free space), like -x/|x| at the hit.
    hit = o + t_true[:, None] * d
    expect = -torch.nn.functional.normalize(hit, dim=-1)
    cos_sdf = (torch.nn.functional.normalize(r.normals, dim=-1) * expect).sum(-1)
    cos_occ = (torch.nn.functional.normalize(r.normals_occ, dim=-1) * expect).sum(-1)
    assert cos_sdf.min() > 0.99 and cos_occ.min() > 0.99


def test_tiny_preset_reduces_the_loss_on_a_tiny_room(tiny_room):
    model = build_for_scene(preset_config("tiny"), load_scene(tiny_room))
    opt = model.configure_optimizers()["optimizer"]
    probe = [1000, 1001, 1002]
    before = sum(float(model.compute_losses(s, training=False)["loss"]) for s in probe)
    for step in range(25):
        loss = model.compute_losses(step)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = sum(float(model.compute_losses(s, training=False)["loss"]) for s in probe)
    assert after < 0.8 * before, (before, after)


def test_baseline_switches_drop_the_occupancy_and_feature_terms(tiny_room):
    cfg = preset_config("tiny", ["loss.occupancy=false", "loss.feature_rgb=false"])
    model = build_for_scene(cfg, load_scene(tiny_room))
    losses = model.compute_losses(0)
    assert "depth_occ" not in losses and "rgb_feature" not in losses and "depth" in losses


class _Crash(Exception):
    pass


class _CrashAt(pl.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise _Crash


def test_resume_from_checkpoint_gives_the_same_state(tiny_room, tmp_path):
    scene = load_scene(tiny_room)
    cfg = lambda: preset_config("tiny", ["train.max_steps=4", "train.checkpoint_every=2"])
    straight = build_for_scene(cfg(), scene)
    fit(straight, tmp_path / "a", progress=False, previews=False)
    crashed = build_for_scene(cfg(), scene)
    with pytest.raises(_Crash):  # killed after the step-2 checkpoint
        fit(crashed, tmp_path / "b", progress=False, previews=False, callbacks=(_CrashAt(3),))
    resumed = build_for_scene(cfg(), scene)
    fit(resumed, tmp_path / "b", resume=True, progress=False, previews=False)
    assert resumed.trainer.global_step == 4
    differs = any(not torch.equal(p, q) for p, q in zip(straight.state_dict().values(), crashed.state_dict().values()))
    assert differs  # the crashed run really stopped early
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(p, q, msg=name)
    loaded = OccSDFSystem.load_from_checkpoint(tmp_path / "b" / "checkpoints" / "last.ckpt")
    for (name, p), q in zip(resumed.state_dict().items(), loaded.state_dict().values()):
        torch.testing.assert_close(p, q, msg=name)


def test_registered_and_trainable_from_the_generic_entry_point(tiny_room):
    from shapegen.commands.methods import method_class
    from shapegen.methods import METHODS

    assert METHODS["occsdf"].system == "shapegen.methods.occsdf:OccSDFSystem" and "msdf" in METHODS
    system = method_class("occsdf")
    model, datamodule = system.for_training(preset_config("tiny", [f"scene.path={tiny_room}"]))
    assert datamodule is None and model.config.num_images == 2
    mesh = model.extract_world_mesh(16)
    assert mesh.num_faces > 0


def test_metric_depth_sees_what_the_invariant_loss_forgives():
    from shapegen.methods.occsdf import metric_depth_loss

    target = torch.rand(40) + 0.5
    mask = torch.ones(40, dtype=torch.bool)
    wrong = 1.3 * target + 0.1  # right up to scale and shift, 13-30% too far
    assert float(scale_shift_invariant_depth_loss(wrong, target, mask)) < 1e-10
    torch.testing.assert_close(metric_depth_loss(wrong, target, mask), ((wrong - target) ** 2).mean() / 2)
    assert float(metric_depth_loss(target, target, mask)) == 0.0
    assert float(metric_depth_loss(wrong, target, torch.zeros(40, dtype=torch.bool))) == 0.0


@pytest.mark.parametrize(("mode", "metric_scene", "expected"), [
    ("auto", True, "metric_depth_loss"), ("auto", False, "scale_shift_invariant_depth_loss"),
    ("scale_shift", True, "scale_shift_invariant_depth_loss"), ("metric", False, "metric_depth_loss"),
])
def test_the_depth_loss_follows_the_scene_unless_set(tiny_room, mode, metric_scene, expected):
    import dataclasses

    scene = load_scene(tiny_room)
    scene = dataclasses.replace(scene, depth_is_metric=metric_scene)
    model = build_for_scene(preset_config("tiny", [f"loss.depth_loss={mode}"]), scene)
    assert model.depth_loss_function().__name__ == expected


@pytest.mark.parametrize(("weight", "metric_scene", "expected"), [
    (None, True, 1.0), (None, False, 0.0), (0.0, True, 0.0), (2.0, False, 2.0),
])
def test_the_sensor_sdf_term_follows_the_scene_unless_set(tiny_room, weight, metric_scene, expected):
    import dataclasses

    scene = dataclasses.replace(load_scene(tiny_room), depth_is_metric=metric_scene)
    overrides = [] if weight is None else [f"loss.sensor_sdf={weight}"]
    model = build_for_scene(preset_config("tiny", overrides), scene)
    assert model.sensor_sdf_weight() == expected
    assert ("sensor_sdf" in model.compute_losses(0)) == (expected > 0)


def test_sensor_sdf_term_is_zero_for_the_true_sdf_of_a_wall():
    # A camera at the origin looking down +z at a wall z = 0.5 (normalised units): the true SDF
    # of the free side is 0.5 - z, which the term must accept (near band exact, free space bounded).
    from shapegen.data.scenes import Scene

    n = 8
    K = torch.tensor([[8.0, 0, 4], [0, 8.0, 4], [0, 0, 1]])
    depth = torch.full((1, n, n), 0.5)  # z-depth of the wall at every pixel
    normals = torch.zeros(1, n, n, 3)
    normals[..., 2] = -1.0
    scene = Scene(torch.rand(1, n, n, 3), depth, normals, torch.ones(1, n, n, dtype=torch.bool), torch.eye(4)[None], K[None],
                  depth_is_metric=True)
    model = build_for_scene(preset_config("tiny", ["train.rays_per_batch=32", "loss.sensor_sdf_band=0.1"]), scene)
    b = model.draw_batch(0)
    model.geometry = _Plane(0.5)
    assert float(model.sensor_sdf_loss(b, torch.Generator().manual_seed(0))) < 1e-5
    # A wall 10 cm too far is penalised by about the offset along the ray (z-distance 0.1).
    model.geometry = _Plane(0.6)
    assert float(model.sensor_sdf_loss(b, torch.Generator().manual_seed(0))) > 0.05


def test_extra_sensor_rays_come_from_every_image_and_enter_the_loss(tiny_room):
    import dataclasses

    scene = dataclasses.replace(load_scene(tiny_room), depth_is_metric=True)
    model = build_for_scene(preset_config("tiny", ["loss.sensor_sdf_rays=256"]), scene)
    extra = model.draw_sensor_rays(0, 256)
    n_img = scene.depths.shape[0]
    # every ray's origin is one of the cameras' centres, and several cameras appear in one draw
    centres = scene.c2w[:, :3, 3].to(extra["origins"])
    dist = (extra["origins"][:, None] - centres[None]).norm(dim=-1)
    which = dist.argmin(1)
    assert dist.min(1).values.max() < 1e-5
    assert len(set(which.tolist())) == n_img
    assert torch.equal(extra["rot"], scene.c2w[which, :3, :3].to(extra["rot"]))
    # the extra rays change the term (and it stays reproducible from the step)
    with_extra = model.compute_losses(3)["sensor_sdf"]
    assert torch.equal(with_extra, model.compute_losses(3)["sensor_sdf"])
    plain = build_for_scene(preset_config("tiny"), scene)
    plain.load_state_dict(model.state_dict())
    assert not torch.allclose(plain.compute_losses(3)["sensor_sdf"], with_extra)


class _Plane(nn.Module):
    """SDF ``z0 - z`` (free space at z < z0), padded to the geometry network's outputs."""

    def __init__(self, z0: float = 0.5) -> None:
        super().__init__()
        self.z0 = z0

    def forward(self, x):
        f = self.z0 - x[:, 2:3]
        return torch.cat([f, torch.zeros(len(x), 1 + 16)], 1)


def test_sensor_depth_reconstruction_lines_up_with_fusion_on_real_kitchen_frames(shared_data):
    """Four real RGB-D frames: a short fit puts the SDF's zero where the sensor saw surfaces and its
    mesh close to the TSDF fusion of the same frames. Without the sensor-depth SDF term the same
    300 steps leave a median |SDF| of about 15 cm at the sensor points and F@5cm about 0.33; with
    it, about 1.4 cm and 0.66. The bounds sit between: the 2x32 tiny network cannot hold the
    kitchen's fine detail, so F@5cm stays well below the 0.98 that fusing the frames again gives."""
    from shapegen.commands.fuse import scene_depth_world
    from shapegen.geometry.recon_metrics import evaluate_meshes
    from shapegen.geometry.tsdf import fuse_depth_maps

    scene = load_scene(shared_data / "scene_7scenes_redkitchen", downscale=8, max_images=4)
    torch.manual_seed(0)
    model = build_for_scene(preset_config("tiny", ["train.max_steps=300", "train.mesh_resolution=128"]), scene)
    opt = model.configure_optimizers()["optimizer"]
    for step in range(300):
        loss = model.compute_losses(step)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    sdf_at_sensor = []
    for i in range(scene.num_images):
        d = scene.depths[i]
        seen = d > 0
        v, u = torch.meshgrid(torch.arange(d.shape[0]) + 0.5, torch.arange(d.shape[1]) + 0.5, indexing="ij")
        k = scene.K[i]
        cam = torch.stack([(u - k[0, 2]) / k[0, 0] * d, (v - k[1, 2]) / k[1, 1] * d, d], -1)[seen]
        with torch.no_grad():
            sdf_at_sensor.append(model.geometry(cam @ scene.c2w[i, :3, :3].T + scene.c2w[i, :3, 3])[:, 0].abs() * scene.scale)
    assert float(torch.cat(sdf_at_sensor).median()) < 0.05
    depths, K, c2w, _ = scene_depth_world(scene)
    fused = fuse_depth_maps(depths, K, c2w, voxel_size=0.02, trunc=0.08).extract_mesh()
    m = evaluate_meshes(model.extract_world_mesh(), fused, num_points=20000, cameras=(c2w, K, scene.width, scene.height),
                        max_depth=5.0, depths=depths)
    assert m.fscore[0.05] > 0.5


def test_every_preset_loads_and_rgbd_is_fast_with_its_two_changes():
    import dataclasses

    names = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "configs" / "occsdf").glob("*.yaml"))
    assert {"tiny", "fast", "rgbd", "default", "paper"} <= set(names)
    cfgs = {n: preset_config(n) for n in names}
    fast, rgbd = dataclasses.asdict(cfgs["fast"]), dataclasses.asdict(cfgs["rgbd"])
    assert rgbd["geometry"].pop("frequencies") == 8 and fast["geometry"].pop("frequencies") == 6
    assert rgbd["loss"].pop("sensor_sdf_rays") == 1024 and fast["loss"].pop("sensor_sdf_rays") == 0
    assert rgbd == fast
