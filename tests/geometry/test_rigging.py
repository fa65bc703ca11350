"""Rigging by transfer: weights, posing, limb separation, morph targets, and the GLB round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shapegen.errors import ShapegenError
from shapegen.fields.body_prior import HumanoidPrior
from shapegen.geometry.export_rigged import export_rigged_glb, load_rigged_glb
from shapegen.geometry.mesh import Mesh
from shapegen.geometry.rigging import (
    RiggedMesh,
    TransferConfig,
    axis_angle_matrix,
    linear_blend_skinning,
    rig_analytic_template,
    transfer_rig,
)

MOUTH = torch.tensor([0.0, 1.57, 0.11])


@pytest.fixture(scope="module")
def rigs():
    prior = HumanoidPrior()
    template = rig_analytic_template(prior, resolution=56)
    near = ((template.mesh.vertices - MOUTH).norm(dim=1) < 0.04).float()
    template.morph_targets["jawOpen"] = near[:, None] * torch.tensor([0.0, -0.01, 0.0])
    other = rig_analytic_template(prior, resolution=72)  # same body, different vertices
    return prior, template, other, transfer_rig(template, other.mesh)


def test_weights_normalised_and_self_consistent(rigs):
    prior, template, other, moved = rigs
    j = prior.num_joints
    torch.testing.assert_close(moved.skin.weights.sum(1), torch.ones(other.mesh.num_vertices))
    assert moved.skin.weights.shape[1] == 4 and (moved.skin.weights >= 0).all()
    same = transfer_rig(template, template.mesh)  # onto itself: exactly the template's weights
    assert ((same.skin.dense(j) - template.skin.dense(j)).abs().sum(1) < 1e-4).float().mean() > 0.95
    # Onto a re-meshed copy: close to the procedural weights computed there directly.
    l1 = (moved.skin.dense(j) - other.skin.dense(j)).abs().sum(1)
    assert (l1 < 0.2).float().mean() > 0.95


def test_limbs_do_not_bleed(rigs):
    prior, _, _other, moved = rigs
    parts = moved.vertex_parts()
    dense = moved.skin.dense(prior.num_joints)
    arm_l = [i for i, p in enumerate(prior.parts) if p == "arm_l"]
    torso_or_right = torch.tensor([p in ("torso", "arm_r", "leg_l", "leg_r") for p in parts])
    assert dense[torso_or_right][:, arm_l].max() == 0


def test_elbow_follows_its_arm(rigs):
    _prior, _, other, moved = rigs
    sk = moved.skeleton
    fa, hand = sk.index("forearm_l"), sk.index("hand_l")
    rot = torch.eye(3).repeat(sk.num_joints, 1, 1)
    rot[fa] = axis_angle_matrix((0.0, 0.0, 1.0), 90.0)  # bend the left elbow upwards
    posed = sk.forward_kinematics(rot)
    v = other.mesh.vertices
    out = linear_blend_skinning(v, moved.skin, sk, posed)
    # Posing keeps the elbow joint where it is and moves the wrist joint.
    torch.testing.assert_close(posed[fa, :3, 3], sk.positions[fa])
    assert (posed[hand, :3, 3] - sk.positions[hand]).norm() > 0.2
    # Vertices just past the elbow stay near the posed forearm bone (within its radius + slack).
    elbow, wrist = posed[fa, :3, 3], posed[hand, :3, 3]
    region = ((v - sk.positions[fa]).norm(dim=1) < 0.07) & (v[:, 0] > sk.positions[fa][0] + 0.02)
    assert region.sum() > 5
    p = out[region]
    ba = wrist - elbow
    h = (((p - elbow) @ ba) / (ba @ ba)).clamp(0, 1)
    assert (p - elbow - h[:, None] * ba).norm(dim=1).max() < 0.07
    # The torso and the right arm do not move.
    still = torch.tensor([x in ("torso", "arm_r", "leg_r") for x in moved.vertex_parts()])
    assert (out[still] - v[still]).norm(dim=1).max() < 1e-5


def test_jaw_delta_stays_at_the_mouth(rigs):
    _, _, other, moved = rigs
    delta = moved.morph_targets["jawOpen"]
    moving = delta.norm(dim=1) > 1e-4
    assert moving.sum() > 3
    # Support: the template's 4 cm region plus about one template grid cell (3.4 cm at 56^3).
    assert (other.mesh.vertices[moving] - MOUTH).norm(dim=1).max() < 0.09
    assert (other.mesh.vertices[delta.norm(dim=1) > 0.005] - MOUTH).norm(dim=1).max() < 0.06


def test_glb_round_trip_keeps_skin_and_morphs(rigs, tmp_path):
    _, _, _, moved = rigs
    path = export_rigged_glb(moved, tmp_path / "rig.glb")
    back = load_rigged_glb(path)
    torch.testing.assert_close(back.mesh.vertices, moved.mesh.vertices)
    assert torch.equal(back.mesh.faces, moved.mesh.faces)
    assert back.skeleton.names == moved.skeleton.names and back.skeleton.parents == moved.skeleton.parents
    torch.testing.assert_close(back.skeleton.rest_transforms, moved.skeleton.rest_transforms, atol=1e-6, rtol=0)
    assert torch.equal(back.skin.joints, moved.skin.joints)
    torch.testing.assert_close(back.skin.weights, moved.skin.weights)
    assert list(back.morph_targets) == ["jawOpen"]
    torch.testing.assert_close(back.morph_targets["jawOpen"], moved.morph_targets["jawOpen"])
    doc_ok = path.read_bytes()[:4] == b"glTF"
    assert doc_ok and not list(tmp_path.glob(".*"))  # atomic: no temporary left behind


def test_bad_inputs_are_one_line_errors(rigs, tmp_path):
    _, _, _, moved = rigs
    with pytest.raises(ShapegenError, match=r"\.glb"):
        export_rigged_glb(moved, tmp_path / "rig.obj")
    wrong = RiggedMesh(moved.mesh, moved.skeleton, moved.skin, {"x": torch.zeros(3, 3)})
    with pytest.raises(ShapegenError, match="vertices"):
        export_rigged_glb(wrong, tmp_path / "bad.glb")
    assert not (tmp_path / "bad.glb").exists()
    assert np.isfinite(moved.skin.weights.numpy()).all()


def test_analytic_jaw_open_opens_down_at_the_mouth_and_transfers():
    """The analytic template's own jawOpen: the chin moves down, the rest of the body stays, and
    transfer onto another tessellation keeps the motion at the mouth."""
    prior = HumanoidPrior()
    template = rig_analytic_template(prior, resolution=56, face_morphs=True)
    jaw = template.morph_targets["jawOpen"]
    v = template.mesh.vertices
    moving = jaw.norm(dim=1) > 1e-3
    assert int(moving.sum()) > 0
    assert float(jaw[moving][:, 1].max()) < 0  # every moving vertex goes down
    assert float((v[moving] - MOUTH).norm(dim=1).max()) < 0.15  # the lower face: not the skull top (0.18 away)
    assert float(v[moving][:, 2].min()) > 0.0 and float(v[moving][:, 1].max()) < 1.58  # front, below the mouth line
    assert float(jaw[v[:, 1] < 1.45].abs().max()) == 0.0  # below the head nothing moves
    other = rig_analytic_template(prior, resolution=72)
    moved = transfer_rig(template, other.mesh).morph_targets["jawOpen"]
    far = (other.mesh.vertices - MOUTH).norm(dim=1) > 0.15
    assert float(moved[far].norm(dim=1).max()) < 2e-3 and float(moved.norm(dim=1).max()) > 0.01



def test_closest_point_transfer_interpolates_on_the_template_surface(rigs):
    """A vertex on a template edge's midpoint gets the mean of the edge's weights (same body part):
    exact with barycentric closest-point transfer, only approximate with k-NN averaging."""
    import trimesh

    prior, template, _other, _moved = rigs
    j = prior.num_joints
    v, f = trimesh.remesh.subdivide(template.mesh.vertices.numpy(), template.mesh.faces.numpy())
    fine = Mesh(torch.as_tensor(v, dtype=torch.float32), torch.as_tensor(f))
    edges = torch.as_tensor(np.array(template.mesh.to_trimesh().edges_unique))
    parts = template.vertex_parts()
    same = torch.tensor([parts[a] == parts[b] for a, b in edges.tolist()])
    dense = template.skin.dense(j)
    expected = ((dense[edges[:, 0]] + dense[edges[:, 1]]) / 2)[same]
    mid = (template.mesh.vertices[edges[:, 0]] + template.mesh.vertices[edges[:, 1]]) / 2
    idx = torch.cdist(mid[same], fine.vertices).argmin(1)
    errors = {}
    for method in ("closest_point", "knn"):
        got = transfer_rig(template, fine, TransferConfig(method=method, top_k=j)).skin.dense(j)[idx]
        errors[method] = (got - expected).abs().sum(1)
    assert (errors["closest_point"] < 1e-3).float().mean() > 0.97
    assert errors["closest_point"].mean() < 0.25 * errors["knn"].mean()
