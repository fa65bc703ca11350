"""Scene readers (MonoSDF layout, RGB-D sequences) and the synthetic room, on tiny fixtures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from renderers.cameras import look_at, opengl_to_opencv
from shapegen.data.room_synth import (
    LABEL_DARK,
    LABEL_OTHER,
    LABEL_THIN,
    LABEL_THIN_DARK,
    RoomSynthConfig,
    build_room,
    part_distances,
    room_sdf,
    write_room,
)
from shapegen.data.scenes import (
    Scene,
    decompose_projection,
    load_scene,
    normals_from_depth,
    read_monosdf_scene,
    write_monosdf_scene,
)
from shapegen.errors import ShapegenError


def _tiny_scene(n: int = 2, h: int = 6, w: int = 8) -> Scene:
    c2w = torch.stack([opengl_to_opencv(look_at(torch.tensor([0.3 * i, 0.1, 0.5]), torch.zeros(3))) for i in range(n)])
    K = torch.tensor([[7.0, 0, 4.0], [0, 6.5, 3.0], [0, 0, 1]]).expand(n, 3, 3).clone()
    smat = torch.eye(4)
    smat[:3, :3] *= 2.5
    smat[:3, 3] = torch.tensor([1.0, -2.0, 0.5])
    normals = torch.nn.functional.normalize(torch.randn(n, h, w, 3), dim=-1)
    images = torch.randint(0, 256, (n, h, w, 3)).float() / 255
    return Scene(images, torch.rand(n, h, w), normals, torch.rand(n, h, w) > 0.3, c2w, K, smat, False, [])


def test_decompose_projection_roundtrip():
    K = np.array([[100.0, 0.5, 30], [0, 90, 20], [0, 0, 1]])
    c2w = opengl_to_opencv(look_at(torch.tensor([1.0, 2.0, 3.0]), torch.zeros(3))).double().numpy()
    P = -3.0 * (K @ np.linalg.inv(c2w)[:3])  # arbitrary scale and sign
    k2, c2w2 = decompose_projection(P)
    np.testing.assert_allclose(k2, K, atol=1e-4)
    np.testing.assert_allclose(c2w2, c2w, atol=1e-6)


def test_monosdf_write_read_roundtrip(tmp_path):
    scene = _tiny_scene()
    write_monosdf_scene(tmp_path, scene)
    back = load_scene(tmp_path)
    assert back.num_images == 2 and (back.height, back.width) == (6, 8)
    torch.testing.assert_close(back.c2w, scene.c2w, atol=1e-5, rtol=0)
    torch.testing.assert_close(back.K, scene.K, atol=1e-4, rtol=0)
    torch.testing.assert_close(back.scale_mat, scene.scale_mat)
    torch.testing.assert_close(back.images, scene.images, atol=1 / 255, rtol=0)
    torch.testing.assert_close(back.normals, scene.normals, atol=1e-5, rtol=0)
    assert torch.equal(back.masks, scene.masks)


def test_monosdf_missing_prior_is_one_line(tmp_path):
    write_monosdf_scene(tmp_path, _tiny_scene())
    (tmp_path / "000001_normal.npy").unlink()
    with pytest.raises(ShapegenError, match=r"000001_normal\.npy"):
        read_monosdf_scene(tmp_path)
    with pytest.raises(ShapegenError, match="not a scene folder"):
        load_scene(tmp_path / "..")


def test_normals_from_depth_of_a_tilted_plane():
    # Plane z = 2 + 0.5 x (camera frame): normal ~ (0.5, 0, -1) normalised, facing the camera.
    K = torch.tensor([[20.0, 0, 8], [0, 20.0, 8], [0, 0, 1]])
    _, u = torch.meshgrid(torch.arange(16) + 0.5, torch.arange(16) + 0.5, indexing="ij")
    x_over_z = (u - 8) / 20
    depth = 2.0 / (1 - 0.5 * x_over_z)
    n, valid = normals_from_depth(depth, K)
    expect = torch.nn.functional.normalize(torch.tensor([0.5, 0.0, -1.0]), dim=0)
    assert valid[2:-2, 2:-2].all()
    torch.testing.assert_close(n[2:-2, 2:-2], expect.expand(12, 12, 3), atol=1e-3, rtol=0)


def test_rgbd_sequence_reader(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    np.savetxt(tmp_path / "camera-intrinsics.txt", np.array([[20.0, 0, 8], [0, 20, 6], [0, 0, 1]]))
    for i in range(2):
        Image.fromarray(np.full((12, 16, 3), 100 + i, np.uint8)).save(frames / f"frame-{i:06d}.color.jpg")
        Image.fromarray(np.full((12, 16), 1500, np.uint16)).save(frames / f"frame-{i:06d}.depth.png")
        pose = np.eye(4)
        pose[0, 3] = 0.2 * i
        np.savetxt(frames / f"frame-{i:06d}.pose.txt", pose)
    s = load_scene(tmp_path, downscale=2)
    assert s.num_images == 2 and (s.height, s.width) == (6, 8) and s.depth_is_metric
    assert float(s.K[0, 0, 0]) == 10.0
    # Metric depth survives normalisation: 1.5 m in normalised units times the scale.
    assert abs(float(s.depths[0, 3, 4]) * s.scale - 1.5) < 1e-5
    # A fronto-parallel wall: normals point back at the camera (-z).
    assert float(s.normals[0, 3, 4, 2]) < -0.99
    assert float(s.c2w[:, :3, 3].abs().max()) <= 1.0


def test_rgbd_sequence_real_kitchen(shared_data):
    s = load_scene(shared_data / "scene_7scenes_redkitchen", downscale=16, max_images=3)
    assert s.num_images == 3 and (s.height, s.width) == (30, 40)
    assert s.masks.float().mean() > 0.3


def test_room_synth_writes_a_readable_scene(tmp_path):
    out = write_room(tmp_path / "room", RoomSynthConfig(num_views=2, width=12, height=10, max_steps=64))
    s = load_scene(out)
    assert s.num_images == 2 and (s.height, s.width) == (10, 12)
    labels = np.load(out / "gt_labels.npy")
    assert (labels == LABEL_THIN).any() and (labels == LABEL_DARK).any()
    assert (out / "gt_mesh.ply").is_file()
    # The priors are an affine map of the true depth: positive where valid, zero in the hole.
    assert (s.depths[s.masks] > 0).all() and (s.depths[~s.masks] == 0).all()
    # Cameras sit in free space.
    parts = build_room()
    eyes = (s.scale_mat[:3, :3] @ s.c2w[:, :3, 3].T).T + s.scale_mat[:3, 3]
    assert (part_distances(parts, eyes).amin(1) > 0.2).all()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_claim_layout_adds_thin_dark_and_thin_dark_parts():
    default, claim = build_room(), build_room("claim")
    assert {p.name for p in default} < {p.name for p in claim}
    extra = [p for p in claim if p.name not in {q.name for q in default}]
    # Every extra part is thin (1-3 cm capsules or 2 cm boards) or dark, and some are both.
    assert all(p.label != LABEL_OTHER for p in extra)
    both = [p for p in claim if p.label == LABEL_THIN_DARK]
    assert len(both) >= 4 and all(max(p.albedo) <= 0.03 for p in both)
    radii = [p.params[2] for p in extra if p.kind == "capsule"]
    assert radii and all(0.005 <= r <= 0.015 for r in radii)  # 1-3 cm across
    assert all(max(p.albedo) <= 0.03 for p in claim if p.label & LABEL_DARK)
    # Erasing the thin parts from the priors removes the thin dark ones too.
    x = torch.tensor([[p.params[0][0], 0.3, p.params[0][2]] for p in both if p.kind == "capsule"])
    assert (room_sdf(claim, include_thin=False)(x) > 0.005).all()
    with pytest.raises(ShapegenError, match="layout"):
        build_room("castle")


def test_room_synth_claim_preset(tmp_path):
    from shapegen.config import load_config, resolve_preset

    cfg = load_config(RoomSynthConfig, resolve_preset("claim", "room"), ["num_views=2", "width=12", "height=10", "max_steps=64"])
    assert cfg.layout == "claim"
    out = write_room(tmp_path / "room", cfg)
    labels = np.load(out / "gt_labels.npy")
    assert {LABEL_THIN, LABEL_DARK, LABEL_THIN_DARK} <= set(labels.tolist())
