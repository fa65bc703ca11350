"""The avatar preset of the VSD mesh stages: body-prior init, head cameras, prior regulariser, rig."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from shapegen.config import load_config, resolve_preset
from shapegen.data.body_cameras import HeadZoomCameraSampler
from shapegen.errors import ShapegenError
from shapegen.fields.body_prior import BodyPriorConfig
from shapegen.geometry.mesh import Mesh
from shapegen.geometry.texture import uv_atlas
from shapegen.methods.text_avatar import (
    AvatarBody,
    AvatarConfig,
    AvatarGeometrySystem,
    parse_body_params,
    prior_sdf_penalty,
    rig_avatar,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(*overrides: str) -> AvatarConfig:
    return load_config(AvatarConfig, resolve_preset("tiny", "avatar"), list(overrides))


@pytest.fixture(scope="module")
def geometry():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    system = AvatarGeometrySystem(tiny("vsd.geometry.tet_resolution=24"))
    system.init_from_prior()
    torch.set_num_threads(threads)
    return system


def test_prior_init_is_the_body_in_the_world_frame(geometry):
    body = geometry.body
    mesh = geometry.extract_mesh()
    lo, hi = mesh.bounds()
    assert float(hi[1] - lo[1]) == pytest.approx(1.0, abs=0.08)  # body_extent world units tall
    assert float((lo[1] + hi[1]) / 2) == pytest.approx(0.0, abs=0.05)  # mid-height at the origin
    back = body.frame.to_body(mesh.vertices)
    assert float(back[:, 1].min()) == pytest.approx(0.0, abs=0.06) and float(back[:, 1].max()) == pytest.approx(1.7, abs=0.06)
    # The surface lies on the prior's zero level (within a tet cell), and the regulariser is 0.
    cell = float(geometry.dmtet.cell_size.max())
    assert float(body.sdf_world(mesh.vertices).abs().max()) < cell
    assert float(geometry.extra_losses(mesh.vertices, mesh.faces, 0)["loss_prior"].detach()) == 0.0


def test_two_avatar_steps_reach_the_geometry(geometry):
    """Two optimiser steps of the avatar geometry stage (SDS on normals + regularisers, head and
    body cameras) move the tet grid's SDF values; the prior term is logged and finite."""
    import pytorch_lightning as pl

    system = AvatarGeometrySystem(tiny("vsd.geometry.tet_resolution=24", "head.probability=0.5"))
    system.init_from_prior()
    before = system.dmtet.sdf.detach().clone()
    loss = system.training_step(None, 0)
    loss.backward()
    grad = system.dmtet.sdf.grad
    assert grad is not None and torch.isfinite(grad).all() and float(grad.abs().sum()) > 0
    system.dmtet.sdf.grad = None
    trainer = pl.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(system)
    assert float((system.dmtet.sdf.detach() - before).abs().max()) > 0
    assert all("loss_prior" in r and r["loss_prior"] == r["loss_prior"] for r in system.history)
    assert system.history[-1]["loss_prior"] > 0  # the surface left the prior and is pulled back


def test_prior_penalty_is_strong_inside_and_weak_away_from_the_body():
    prior = torch.tensor([-0.2, 0.0, 0.05, 0.3])
    assert float(prior_sdf_penalty(prior.clone(), prior, 0.03)) == 0.0
    sdf = prior.clone().requires_grad_(True)
    prior_sdf_penalty(sdf - 0.01, prior, 0.03).backward()  # every value moved the same amount
    g = sdf.grad.abs()
    assert g[0] == g[1] and g[1] > 4 * g[2] > 0 and g[2] > 1000 * g[3]  # hair/clothing may grow outside


def test_head_cameras_look_at_the_head():
    cfg = tiny("head.probability=1.0")
    body = AvatarBody(cfg)
    head = torch.tensor(body.head_center_world)
    assert float(body.frame.to_body(head[None])[0, 1]) == pytest.approx(1.615 * 1.7 / 1.72, abs=0.005)  # the analytic head centre, at 1.7 m
    sampler = HeadZoomCameraSampler(cfg.vsd.cameras, cfg.head, body.head_center_world, seed=0)
    for _ in range(5):
        cams, is_head = sampler.sample(32, 32)
        eye, forward = cams.c2w[0, :3, 3], -cams.c2w[0, :3, 2]  # OpenGL: the camera looks down -Z
        to_head = head - eye
        assert bool(is_head.all())
        assert float(torch.cross(forward, to_head, dim=0).norm()) < 1e-4 * float(to_head.norm()) + 1e-5
        assert 0.45 - 1e-4 <= float(to_head.norm()) <= 0.65 + 1e-4
    body_cams, is_head = HeadZoomCameraSampler(cfg.vsd.cameras, type(cfg.head)(probability=0.0), body.head_center_world).sample(32, 32)
    assert not bool(is_head.any()) and float(body_cams.c2w[0, :3, 3].norm()) >= 1.6 - 1e-4


def test_head_prompt_is_a_guidance_variant(geometry):
    emb = geometry.guidance.text_embeddings
    assert emb.shape[0] == 1 + 2 * 5  # negative, then (main, head) x (plain + 4 view suffixes)
    assert not torch.allclose(emb[1], emb[6])  # "the face of ..." differs from the prompt


def test_body_params_parse_and_refuse_bad_input():
    body = parse_body_params("height=1.8, arm_angle=40", BodyPriorConfig())
    assert body.height == 1.8 and body.arm_angle == 40.0
    for bad, message in [("size=2", "unknown key 'size'"), ("height", "expected KEY=VALUE"), ("height=tall", "must be a number"),
                         ("kind=smpl", "analytic or anny")]:
        with pytest.raises(ShapegenError, match=message):
            parse_body_params(bad, BodyPriorConfig())
    with pytest.raises(ShapegenError, match="height"):
        AvatarBody(tiny("body.height=5.0"))


def test_rig_avatar_keeps_seams_together_and_moves_the_jaw():
    """Transfer runs on the welded surface; the UV-split copies get the same weights and deltas."""
    cfg = tiny()
    body = AvatarBody(cfg)
    surface_body = body.prior.template_mesh(40)
    surface = Mesh(body.frame.to_world(surface_body.vertices), surface_body.faces)
    textured = uv_atlas(surface, method="grid", resolution=256, padding=1)
    assert textured.num_vertices > surface.num_vertices
    rigged, _ = rig_avatar(body, textured, surface)
    torch.testing.assert_close(rigged.mesh.vertices[:, 1].max(), torch.tensor(1.7), atol=0.05, rtol=0)
    torch.testing.assert_close(rigged.skin.weights.sum(1), torch.ones(textured.num_vertices))
    key = [tuple(v) for v in (rigged.mesh.vertices * 1e5).round().long().tolist()]
    first: dict = {}
    for i, k in enumerate(key):
        j = first.setdefault(k, i)
        assert torch.equal(rigged.skin.joints[i], rigged.skin.joints[j]) and torch.equal(rigged.skin.weights[i], rigged.skin.weights[j])
    jaw = rigged.morph_targets["jawOpen"]
    moving = rigged.mesh.vertices[jaw.norm(dim=1) > 1e-3]
    assert len(moving) > 0
    assert float(moving[:, 1].min()) > 1.45 and float(moving[:, 2].min()) > -0.02  # the front of the lower head only
    assert rigged.mesh.uv is not None and rigged.skeleton.num_joints == 19


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("anny") is None or not os.environ.get("SHAPEGEN_ANNY_CACHE"),
    reason="needs the optional package anny and SHAPEGEN_ANNY_CACHE (its first build takes minutes and ~1.1 GB)",
)
def test_anny_body_prior_frames_the_body_and_finds_the_head():
    cfg = tiny()
    parse_body_params(f"kind=anny,anny_cache_dir={os.environ['SHAPEGEN_ANNY_CACHE']}", cfg.body)
    body = AvatarBody(cfg)
    assert 1.4 < body.height < 2.0
    head = body.frame.to_body(torch.tensor([body.head_center_world]))[0]
    assert 0.85 * body.height < float(head[1]) < body.height and abs(float(head[0])) < 0.02
    inside = body.sdf_world(torch.tensor([[0.0, 0.0, 0.0], list(body.head_center_world)]))
    outside = body.sdf_world(torch.tensor([[0.0, 0.0, 0.45], [0.0, 0.6, 0.0]]))
    assert bool((inside < 0).all()) and bool((outside > 0).all())
    assert "jawOpen" in body.template().morph_targets
