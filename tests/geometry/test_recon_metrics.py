"""Scene-reconstruction metrics on hand-made cases."""

from __future__ import annotations

import pytest
import torch

from renderers.cameras import look_at, opengl_to_opencv
from shapegen.errors import ShapegenError
from shapegen.geometry import metrics
from shapegen.geometry.mesh import Mesh
from shapegen.geometry.recon_metrics import cull_to_frusta, evaluate_meshes, reconstruction_metrics


def _square(z: float, size: float = 1.0, x0: float = 0.0) -> Mesh:
    v = torch.tensor([[x0, 0, z], [x0 + size, 0, z], [x0 + size, size, z], [x0, size, z]], dtype=torch.float32)
    return Mesh(v, torch.tensor([[0, 1, 2], [0, 2, 3]]))


def test_shifted_points_give_exact_distances_and_thresholded_scores():
    gt = torch.stack(torch.meshgrid(torch.linspace(0, 1, 41), torch.linspace(0, 1, 41), indexing="ij"), -1).reshape(-1, 2)
    gt = torch.cat([gt, torch.zeros(len(gt), 1)], 1)
    pred = gt + torch.tensor([0.0, 0.0, 0.03])
    m = reconstruction_metrics(pred, gt, thresholds=(0.05, 0.02))
    assert abs(m.accuracy - 0.03) < 1e-6 and abs(m.completeness - 0.03) < 1e-6 and abs(m.chamfer_l1 - 0.03) < 1e-6
    assert m.fscore[0.05] == 1.0 and m.fscore[0.02] == 0.0


def test_half_missing_prediction_halves_recall_keeps_precision():
    gt = torch.cat([torch.rand(2000, 2), torch.zeros(2000, 1)], 1)
    gt[:, 0] *= 2  # [0, 2] x [0, 1]
    pred = gt[gt[:, 0] < 1]
    labels = (gt[:, 0] >= 1).long()  # label 1: the missing half
    m = reconstruction_metrics(pred, gt, thresholds=(0.05,), gt_labels=labels, label_names={0: "kept", 1: "missing"})
    assert m.precision[0.05] == 1.0
    # Exact bounds for these points rather than a spread seen once: every kept point is a
    # prediction (distance 0), and a missing point is within 0.05 of a prediction only if it lies
    # in the strip 1 <= x < 1.05. The kept share itself is binomial: sigma sqrt(0.25 / 2000) = 0.011.
    kept = float((gt[:, 0] < 1).double().mean())
    strip = float(((gt[:, 0] >= 1) & (gt[:, 0] < 1.05)).double().mean())
    assert abs(kept - 0.5) < 0.045 and strip < 0.05
    recall = m.recall[0.05]
    assert kept <= recall <= kept + strip
    assert m.fscore[0.05] == pytest.approx(2 * recall / (1 + recall), rel=1e-9)  # precision 1
    assert m.label_recall["kept"][0.05] == 1.0
    assert m.label_recall["missing"][0.05] <= strip / (1 - kept) + 1e-12


def test_agrees_with_the_brute_force_metrics_module():
    a, b = torch.rand(300, 3), torch.rand(400, 3)
    na, nb = torch.randn(300, 3), torch.randn(400, 3)
    m = reconstruction_metrics(a, b, pred_normals=na, gt_normals=nb, thresholds=(0.1,))
    assert abs(m.chamfer_l1 - float(metrics.chamfer_l1(a, b))) < 1e-6
    f = metrics.fscore(a, b, 0.1)
    assert abs(m.fscore[0.1] - f.fscore) < 1e-9 and abs(m.precision[0.1] - f.precision) < 1e-9
    assert abs(m.normal_consistency - float(metrics.normal_consistency(a, na, b, nb))) < 1e-5


def test_mesh_evaluation_normals_and_culling():
    gt = _square(0.0)
    same = evaluate_meshes(gt, gt, num_points=4000, thresholds=(0.05,))
    assert same.fscore[0.05] > 0.99 and same.normal_consistency > 0.999
    # A prediction with an extra square far away: culling with a camera that sees only the
    # first square restores full precision.
    v = torch.cat([_square(0.0).vertices, _square(0.0, x0=5.0).vertices])
    pred = Mesh(v, torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]]))
    plain = evaluate_meshes(pred, gt, num_points=4000, thresholds=(0.05,))
    # Half the 4000 predicted samples lie on the far square: binomial sigma 0.008, 0.05 is 6 sigma.
    assert abs(plain.precision[0.05] - 0.5) < 0.05
    c2w = opengl_to_opencv(look_at(torch.tensor([0.5, 0.5, 1.0]), torch.tensor([0.5, 0.5, 0.0])))[None]
    K = torch.tensor([[[50.0, 0, 50], [0, 50, 50], [0, 0, 1]]])
    culled = evaluate_meshes(pred, gt, num_points=4000, thresholds=(0.05,), cameras=(c2w, K, 100, 100))
    assert culled.precision[0.05] > 0.99


def test_cull_to_frusta_front_back_and_depth():
    c2w = opengl_to_opencv(look_at(torch.tensor([0.0, 0.0, 2.0]), torch.zeros(3)))[None]
    K = torch.tensor([[[10.0, 0, 10], [0, 10, 10], [0, 0, 1]]])
    pts = torch.tensor([[0.0, 0, 0], [0.0, 0, 3.0], [5.0, 0, 0], [0.0, 0, -10.0]])
    assert cull_to_frusta(pts, c2w, K, 20, 20).tolist() == [True, False, False, True]
    assert cull_to_frusta(pts, c2w, K, 20, 20, max_depth=5.0).tolist() == [True, False, False, False]


def test_cull_to_frusta_with_depth_keeps_only_what_was_seen():
    # The camera at z = 2 looks down -z and measured a wall 2 m away (at z = 0) on its left half
    # and nothing on its right half.
    c2w = opengl_to_opencv(look_at(torch.tensor([0.0, 0.0, 2.0]), torch.zeros(3)))[None]
    K = torch.tensor([[[10.0, 0, 10], [0, 10, 10], [0, 0, 1]]])
    depth = torch.zeros(1, 20, 20)
    depth[0, :, :10] = 2.0
    # On the wall, 3 cm behind it, 50 cm behind it, in front of it, and behind the unmeasured half.
    pts = torch.tensor([[-0.5, 0, 0.0], [-0.5, 0, -0.03], [-0.5, 0, -0.5], [-0.5, 0, 1.0], [0.5, 0, 0.0]])
    seen = cull_to_frusta(pts, c2w, K, 20, 20, depths=depth, depth_margin=0.05)
    assert seen.tolist() == [True, True, False, True, False]
    assert cull_to_frusta(pts, c2w, K, 20, 20).all()
    with pytest.raises(ShapegenError, match="depth maps"):
        cull_to_frusta(pts, c2w, K, 20, 10, depths=depth)


def test_empty_mesh_is_a_one_line_error():
    empty = Mesh(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long))
    with pytest.raises(ShapegenError, match="no faces"):
        evaluate_meshes(empty, _square(0.0))
