"""``shapegen rig`` end to end on a tiny humanoid, and its one-line errors."""

from __future__ import annotations

import numpy as np
import torch

from shapegen.cli import main
from shapegen.fields.body_prior import BodyPriorConfig, HumanoidPrior
from shapegen.geometry.export import export_mesh
from shapegen.geometry.export_rigged import load_rigged_glb
from shapegen.geometry.extract import evaluate_grid, marching_cubes
from shapegen.geometry.mesh import Mesh
from shapegen.geometry.primitives import box


def test_rig_cli_writes_rigged_glb_and_preview(capsys, tmp_path):
    # A taller body, in centimetres and off the origin: the rig must follow the mesh's frame.
    body = HumanoidPrior(BodyPriorConfig(height=1.85)).template_mesh(40)
    shift = torch.tensor([30.0, 5.0, -20.0])
    src = export_mesh(Mesh(body.vertices * 100 + shift, body.faces), tmp_path / "body.obj")
    out, png = tmp_path / "rigged.glb", tmp_path / "poses.png"
    code = main(["rig", str(src), "-o", str(out), "--preview", str(png), "--config", "tiny"])
    text, err = capsys.readouterr()
    assert code == 0, err
    assert "rigged.glb" in text
    rig = load_rigged_glb(out)
    torch.testing.assert_close(rig.skin.weights.sum(1), torch.ones(rig.mesh.num_vertices))
    lo, hi = rig.mesh.bounds()
    head = rig.skeleton.positions[rig.skeleton.index("head")]
    assert (head > lo).all() and (head < hi).all() and head[1] > lo[1] + 0.8 * (hi[1] - lo[1])
    assert rig.skeleton.positions[rig.skeleton.index("hand_l")][0] > shift[0] + 40  # left = +X, cm
    from PIL import Image

    assert np.asarray(Image.open(png)).shape[:2] == (48, 3 * 48)


def test_rig_cli_bad_inputs_are_one_line(capsys, tmp_path):
    flat = box(half_size=(0.8, 0.3, 0.8))
    grid = ((-1.2, -1.2, -1.2), (1.2, 1.2, 1.2))
    slab = export_mesh(marching_cubes(evaluate_grid(flat, 16, grid), grid), tmp_path / "slab.obj")
    code = main(["rig", str(slab), "-o", str(tmp_path / "out.glb"), "--config", "tiny"])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "humanoid" in err
    code = main(["rig", str(slab), "-o", str(tmp_path / "out.obj")])
    _, err = capsys.readouterr()
    assert code == 2 and ".glb" in err
    code = main(["rig", str(tmp_path / "missing.obj"), "-o", str(tmp_path / "out.glb")])
    _, err = capsys.readouterr()
    assert code == 2 and "missing.obj" in err
    assert not (tmp_path / "out.glb").exists()


def test_rig_cli_face_morphs_in_the_mesh_units(capsys, tmp_path):
    """--set face_morphs=true: the analytic jawOpen lands on the mouth, scaled to the mesh's units."""
    body = HumanoidPrior().template_mesh(40)
    src = export_mesh(Mesh(body.vertices * 100, body.faces), tmp_path / "body.obj")  # centimetres
    out = tmp_path / "rigged.glb"
    code = main(["rig", str(src), "-o", str(out), "--config", "tiny", "--set", "face_morphs=true"])
    assert code == 0, capsys.readouterr().err
    rig = load_rigged_glb(out)
    jaw = rig.morph_targets["jawOpen"]
    moving = jaw.norm(dim=1) > 0.1  # cm
    assert int(moving.sum()) > 0 and 1.0 < float(jaw.norm(dim=1).max()) < 5.0  # a jaw drop of a few cm
    assert float(rig.mesh.vertices[moving][:, 1].min()) > 145.0  # in the head
