"""``shapegen fuse``: TSDF fusion of a tiny RGB-D sequence of an analytic sphere, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cli import run
from PIL import Image

from renderers.cameras import Intrinsics, opengl_to_opencv, orbit_pose
from renderers.rays import generate_rays, ray_sphere_intersect
from shapegen.geometry.mesh_io import load_mesh

pytestmark = pytest.mark.usefixtures("one_thread")

W, H, F = 96, 72, 70.0
CENTER = (0.3, -0.2, 2.5)
RADIUS = 0.4



@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    """A 7-Scenes-layout folder: 8 views of a sphere, 16-bit millimetre depth, OpenCV camera-to-world poses."""
    root = tmp_path_factory.mktemp("seq")
    (root / "frames").mkdir()
    np.savetxt(root / "camera-intrinsics.txt", np.array([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]]))
    az = torch.arange(8.0) * 45
    el = torch.tensor([20.0, -20] * 4)
    c2w = opengl_to_opencv(orbit_pose(az, el, torch.full_like(az, 1.6), target=CENTER))
    rays = generate_rays(c2w, Intrinsics(F, F, W / 2, H / 2, W, H), opencv=True)
    b = ray_sphere_intersect(rays.origins, rays.directions, CENTER, RADIUS)
    z = torch.where(b.hit, b.near * rays.cos_to_axis, torch.zeros_like(b.near)).reshape(8, H, W)
    for i in range(8):
        stem = root / "frames" / f"frame-{i:06d}"
        Image.fromarray(np.round(z[i].numpy() * 1000).astype(np.uint16)).save(f"{stem}.depth.png")
        Image.fromarray(np.full((H, W, 3), 30 * i, np.uint8)).save(f"{stem}.color.jpg")
        np.savetxt(f"{stem}.pose.txt", c2w[i].numpy())
    return root


def _radial_error(path) -> np.ndarray:
    mesh = load_mesh(path, dedupe=False)
    return np.abs(np.linalg.norm(mesh.vertices.numpy() - np.array(CENTER), axis=1) - RADIUS)


def test_fuse_writes_the_sphere_in_the_world_frame(capsys, tmp_path, sequence) -> None:
    out = tmp_path / "fused.ply"
    code, stdout, err = run(capsys, "fuse", str(sequence), "-o", str(out), "--voxel", "0.03", "--no-progress")
    assert code == 0, err
    assert "fused 8 frames" in stdout and "frames/s" in stdout
    err_ply = _radial_error(out)
    assert err_ply.max() < 0.03 and err_ply.mean() < 0.01  # within a voxel of the sphere, in world metres
    # The GLB holds the same world-frame surface.
    glb = tmp_path / "fused.glb"
    assert run(capsys, "fuse", str(sequence), "-o", str(glb), "--voxel", "0.03", "--no-progress")[0] == 0
    assert _radial_error(glb).max() < 0.03


def test_fuse_frames_selects_views(capsys, tmp_path, sequence) -> None:
    one = tmp_path / "one.ply"
    code, stdout, err = run(capsys, "fuse", str(sequence), "-o", str(one), "--voxel", "0.04", "--frames", "0", "--no-progress")
    assert code == 0, err
    assert "fused 1 frames" in stdout
    every = tmp_path / "every.ply"
    assert run(capsys, "fuse", str(sequence), "-o", str(every), "--voxel", "0.04", "--frames", "::2", "--no-progress")[0] == 0
    # One view sees less than half the sphere: far fewer vertices than four views around it.
    assert load_mesh(one, dedupe=False).num_vertices < 0.6 * load_mesh(every, dedupe=False).num_vertices


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--frames", "3:99:x"], "--frames"),
        (["--frames", "12"], "has 8 frames"),
        (["--voxel", "-1"], "--voxel"),
        (["--voxel", "0.0001"], "voxels"),
        (["--trunc", "0"], "--trunc"),
    ],
)
def test_fuse_bad_options_fail_with_one_line_and_write_nothing(capsys, tmp_path, sequence, extra, message) -> None:
    out = tmp_path / "x.ply"
    code, _, err = run(capsys, "fuse", str(sequence), "-o", str(out), "--no-progress", *extra)
    assert code == 2
    assert err.startswith("error:") and message in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_fuse_rejects_missing_and_non_metric_scenes(capsys, tmp_path, sequence) -> None:
    code, _, err = run(capsys, "fuse", str(tmp_path / "nope"), "-o", str(tmp_path / "x.ply"))
    assert code == 2 and err.startswith("error:")
    code, _, err = run(capsys, "fuse", str(sequence), "-o", str(tmp_path / "x.stl"))
    assert code == 2 and "format" in err
    # A MonoSDF-layout scene has only up-to-scale depth priors.
    from shapegen.data.scenes import load_scene, write_monosdf_scene

    mono = write_monosdf_scene(tmp_path / "mono", load_scene(sequence, downscale=2))
    out = tmp_path / "m.ply"
    code, _, err = run(capsys, "fuse", str(mono), "-o", str(out))
    assert code == 2 and "metric" in err and not out.exists()


def test_fuse_real_kitchen_lies_on_its_depth_points(capsys, tmp_path, shared_data) -> None:
    """5 kitchen frames at 160x120, 5 cm voxels: the mesh sits on the back-projected sensor depth."""
    from scipy.spatial import cKDTree

    from shapegen.commands.fuse import scene_depth_world
    from shapegen.data.scenes import load_scene

    root = shared_data / "scene_7scenes_redkitchen"
    out = tmp_path / "kitchen.ply"
    code, stdout, err = run(capsys, "fuse", str(root), "-o", str(out), "--voxel", "0.05", "--stride", "20",
                            "--downscale", "4", "--no-progress")
    assert code == 0, err
    assert "fused 5 frames" in stdout
    verts = load_mesh(out, dedupe=False).vertices.numpy()
    depths, K, c2w, _ = scene_depth_world(load_scene(root, downscale=4, stride=20))
    pts = []
    for i in range(depths.shape[0]):
        v, u = torch.nonzero(depths[i] > 0, as_tuple=True)
        z = depths[i, v, u]
        cam = torch.stack([(u + 0.5 - K[i, 0, 2]) / K[i, 0, 0] * z, (v + 0.5 - K[i, 1, 2]) / K[i, 1, 1] * z, z], -1)
        pts.append(cam @ c2w[i, :3, :3].T + c2w[i, :3, 3])
    d, _ = cKDTree(torch.cat(pts).numpy()).query(verts)
    assert len(verts) > 5000
    # A wrong frame or unit puts the median metres away; depth edges and sparse far pixels make the tail.
    assert np.median(d) < 0.02 and np.mean(d < 0.05) > 0.8


def test_eval_recon_cull_seen_ignores_what_no_frame_saw(capsys, tmp_path, sequence) -> None:
    import json

    import trimesh

    ref = tmp_path / "fused.ply"
    assert run(capsys, "fuse", str(sequence), "-o", str(ref), "--voxel", "0.03", "--no-progress")[0] == 0
    # The prediction: the true sphere plus a smaller one inside it, which no camera can see.
    outer = trimesh.creation.icosphere(4, RADIUS).apply_translation(CENTER)
    inner = trimesh.creation.icosphere(3, 0.25).apply_translation(CENTER)
    pred = tmp_path / "pred.ply"
    trimesh.util.concatenate([outer, inner]).export(pred)
    common = ["eval-recon", str(pred), str(ref), "--json", "--set", "num_points=20000", "--set", "cull=true",
              "--set", f"scene={sequence}"]
    code, out, err = run(capsys, *common)
    assert code == 0, err
    frusta = json.loads(out)
    code, out, err = run(capsys, *common, "--set", "cull_seen=true")
    assert code == 0, err
    seen = json.loads(out)
    assert frusta["precision@5cm"] < 0.85  # the hidden sphere counts against the frustum-only protocol
    assert seen["precision@5cm"] > 0.97 and seen["recall@5cm"] > 0.97
    code, _, err = run(capsys, "eval-recon", str(pred), str(ref), "--set", "cull_seen=true")
    assert code == 2 and err.count("\n") == 1 and "cull=true" in err
