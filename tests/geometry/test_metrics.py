"""Metrics on hand-made cases with known values."""

from __future__ import annotations

import pytest
import torch
import trimesh

from shapegen.geometry import metrics as M
from shapegen.geometry.mesh import Mesh


def test_chamfer_identical_and_shifted():
    x = torch.rand(500, 3)
    assert M.chamfer_l1(x, x).item() == 0.0 and M.chamfer_l2(x, x).item() == 0.0
    # Two single points 0.3 apart: L1 averages the directions, L2 sums the squares.
    a, b = torch.zeros(1, 3), torch.tensor([[0.3, 0.0, 0.0]])
    assert M.chamfer_l1(a, b).item() == pytest.approx(0.3)
    assert M.chamfer_l2(a, b).item() == pytest.approx(2 * 0.09)
    # A grid of spacing 1 shifted by 0.1 along x: every NN distance is 0.1 in both directions.
    g = torch.stack(torch.meshgrid(*[torch.arange(5.0)] * 3, indexing="ij"), -1).reshape(-1, 3)
    s = g + torch.tensor([0.1, 0.0, 0.0])
    assert M.chamfer_l1(g, s).item() == pytest.approx(0.1, abs=1e-6)
    assert M.chamfer_l2(g, s).item() == pytest.approx(0.02, abs=1e-6)


def test_chamfer_asymmetric_sets():
    # pred = {0, 1}, gt = {0}: pred->gt distances (0, 1) mean 0.5; gt->pred 0.
    pred = torch.tensor([[0.0, 0, 0], [1.0, 0, 0]])
    gt = torch.zeros(1, 3)
    assert M.chamfer_l1(pred, gt).item() == pytest.approx(0.25)
    assert M.chamfer_l2(pred, gt).item() == pytest.approx(0.5)
    f = M.fscore(pred, gt, threshold=0.5)
    assert (f.precision, f.recall) == (0.5, 1.0) and f.fscore == pytest.approx(2 / 3)


def test_chunking_matches_unchunked():
    x, y = torch.rand(300, 3), torch.rand(200, 3)
    d_full, i_full = M.nearest_neighbors(x, y)
    d_chunk, i_chunk = M.nearest_neighbors(x, y, chunk=7)
    assert torch.equal(i_full, i_chunk) and torch.allclose(d_full, d_chunk)
    ref = torch.cdist(x.double(), y.double()).min(1).values.float()
    assert torch.allclose(d_full, ref, atol=1e-6)


def test_normal_consistency():
    x = torch.rand(200, 3)
    n = torch.nn.functional.normalize(torch.randn(200, 3), dim=-1)
    assert M.normal_consistency(x, n, x, -n).item() == pytest.approx(1.0)  # orientation-free
    perp = torch.nn.functional.normalize(torch.cross(n, torch.randn(200, 3), dim=-1), dim=-1)
    assert M.normal_consistency(x, n, x, perp).item() == pytest.approx(0.0, abs=1e-6)


def test_iou():
    a = torch.tensor([1, 1, 0, 0], dtype=torch.bool)
    b = torch.tensor([1, 0, 1, 0], dtype=torch.bool)
    assert M.iou(a, b) == pytest.approx(1 / 3)
    assert M.iou(a, a) == 1.0 and M.iou(a, ~a) == 0.0


def test_mesh_iou_of_offset_boxes():
    """Two unit cubes overlapping by half: IoU = 0.5 / 1.5 = 1/3."""
    a = Mesh.from_trimesh(trimesh.creation.box(extents=(1, 1, 1)))
    b = Mesh.from_trimesh(trimesh.creation.box(extents=(1, 1, 1)).apply_translation([0.5, 0, 0]))
    g = torch.Generator().manual_seed(0)
    p = torch.rand(4000, 3, generator=g) * torch.tensor([2.0, 1.0, 1.0]) - torch.tensor([0.5, 0.5, 0.5])
    # About 3000 of the 4000 points fall in the union, a third of those in the intersection:
    # binomial sigma sqrt((1/3) (2/3) / 3000) = 0.0086, so 0.035 is 4 sigma.
    assert M.mesh_iou(a, b, p, backend="torch") == pytest.approx(1 / 3, abs=0.035)


def _clouds(n_sets: int, n_points: int, seed: int) -> torch.Tensor:
    """Random spheres of radius in [0.3, 1]: one distribution of shapes."""
    g = torch.Generator().manual_seed(seed)
    p = torch.nn.functional.normalize(torch.randn(n_sets, n_points, 3, generator=g), dim=-1)
    return p * (0.3 + 0.7 * torch.rand(n_sets, 1, 1, generator=g))


def test_distance_matrix_matches_pairwise_chamfer():
    a, b = _clouds(5, 40, 0), _clouds(7, 30, 1)
    d = M.chamfer_distance_matrix(a, b, pair_chunk=3)
    for i in range(5):
        for j in range(7):
            assert d[i, j].item() == pytest.approx(M.chamfer_l2(a[i], b[j]).item(), rel=1e-5)


def test_generation_metrics_goldens():
    ref = _clouds(40, 64, 0)
    same = M.generation_metrics(ref, ref)
    assert same.cov == 1.0 and same.mmd < 1e-12
    assert same.nna == 0.0  # every cloud's nearest neighbour is its copy in the other set
    other = M.generation_metrics(_clouds(40, 64, 1), ref)  # independent draw, same distribution
    assert abs(other.nna - 0.5) < 0.15
    far = M.generation_metrics(ref + 10.0, ref)  # separable sets
    assert far.nna == 1.0
    assert far.mmd > 99.0  # each nearest generated cloud is ~10 away: CD_L2 >= 2 * 9^2
    collapsed = M.generation_metrics(ref[:1].expand(40, -1, -1), ref)  # mode collapse
    assert collapsed.cov == 1 / 40
