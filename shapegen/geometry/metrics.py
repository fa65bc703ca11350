"""Reconstruction and generation metrics over point clouds and meshes (torch, any device).

Definitions (``d(x, Y) = min_{y in Y} ||x - y||_2``, Euclidean; ``P`` prediction, ``G`` ground truth):

- Chamfer-L1 (Occupancy Networks, Mescheder et al. 2019, Sec. 4):
  ``CD_L1 = 1/2 (mean_{p in P} d(p, G) + mean_{g in G} d(g, P))`` -- the *average* of the two
  directed mean distances, in mesh units.
- Chamfer-L2 (PointFlow, Yang et al. 2019, Eq. 9; used by 3DShape2VecSet for MMD/COV/1-NNA):
  ``CD_L2 = mean_{p in P} d(p, G)^2 + mean_{g in G} d(g, P)^2`` -- the *sum* of the two directed
  mean squared distances, in squared units.
- F-score at threshold ``t`` (Tatarchenko et al. 2019): precision = share of ``P`` with
  ``d(p, G) < t``, recall = share of ``G`` with ``d(g, P) < t``, ``F = 2 P R / (P + R)``.
- Normal consistency (Occupancy Networks): mean of ``|n_p . n_{NN(p)}|`` over both directions,
  averaged; 1 for identical oriented or unoriented surfaces.
- Volumetric IoU: ``|A and B| / |A or B|`` of two occupancies on shared sample points.
- Generation metrics over sets ``S_g`` (generated) and ``S_r`` (reference) of point clouds, with
  ``D`` the Chamfer-L2 distance (PointFlow Sec. 5 / 3DShape2VecSet Sec. 7):
  COV = share of reference clouds that are the nearest reference of some generated cloud;
  MMD = mean over reference clouds of the distance to their nearest generated cloud;
  1-NNA = leave-one-out accuracy of the 1-nearest-neighbour classifier on ``S_g u S_r``
  (0.5 is ideal for independent samples of the same distribution; 1 means fully separable;
  values below 0.5, down to 0 for ``S_g = S_r``, indicate memorisation).

Everything is chunked so that at most ``chunk`` x ``M`` distances exist at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from shapegen.errors import ShapegenError

#: Rows of the pairwise-distance matrix computed at once.
CHUNK = 4096


def nearest_neighbors(
    x: Float[Tensor, "N 3"], y: Float[Tensor, "M 3"], *, chunk: int = CHUNK
) -> tuple[Float[Tensor, " N"], Int[Tensor, " N"]]:
    """Euclidean distance from each ``x`` to its nearest ``y``, and that neighbour's index."""
    if x.shape[0] == 0 or y.shape[0] == 0:
        raise ShapegenError("nearest-neighbour distances need two non-empty point sets")
    dists, idx = [], []
    for i in range(0, x.shape[0], chunk):
        d = torch.cdist(x[i : i + chunk].double(), y.double())
        m, j = d.min(dim=1)
        dists.append(m)
        idx.append(j)
    return torch.cat(dists).to(x.dtype), torch.cat(idx)


def chamfer_l1(pred: Float[Tensor, "N 3"], gt: Float[Tensor, "M 3"]) -> Float[Tensor, ""]:
    """Chamfer-L1: average of the two directed mean Euclidean NN distances (OccNet convention)."""
    return 0.5 * (nearest_neighbors(pred, gt)[0].mean() + nearest_neighbors(gt, pred)[0].mean())


def chamfer_l2(pred: Float[Tensor, "N 3"], gt: Float[Tensor, "M 3"]) -> Float[Tensor, ""]:
    """Chamfer-L2: sum of the two directed mean squared NN distances (PointFlow convention)."""
    return nearest_neighbors(pred, gt)[0].square().mean() + nearest_neighbors(gt, pred)[0].square().mean()


@dataclass
class FScore:
    """F-score at a distance threshold, with its precision and recall (all in [0, 1])."""

    fscore: float
    precision: float
    recall: float
    threshold: float


def fscore(pred: Float[Tensor, "N 3"], gt: Float[Tensor, "M 3"], threshold: float = 0.01) -> FScore:
    """F-score at ``threshold`` (Tatarchenko et al. 2019); ``d < threshold`` counts as a match."""
    precision = float((nearest_neighbors(pred, gt)[0] < threshold).double().mean())
    recall = float((nearest_neighbors(gt, pred)[0] < threshold).double().mean())
    f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return FScore(f, precision, recall, float(threshold))


def normal_consistency(
    pred: Float[Tensor, "N 3"], pred_normals: Float[Tensor, "N 3"], gt: Float[Tensor, "M 3"], gt_normals: Float[Tensor, "M 3"]
) -> Float[Tensor, ""]:
    """Mean absolute cosine between each point's normal and its nearest neighbour's, both ways averaged."""
    unit = lambda n: n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    pn, gn = unit(pred_normals), unit(gt_normals)
    _, j = nearest_neighbors(pred, gt)
    _, i = nearest_neighbors(gt, pred)
    return 0.5 * ((pn * gn[j]).sum(-1).abs().mean() + (gn * pn[i]).sum(-1).abs().mean())


def iou(occ_a: Bool[Tensor, " N"], occ_b: Bool[Tensor, " N"]) -> float:
    """Volumetric IoU of two occupancies on the same points (1.0 when both are empty)."""
    a, b = occ_a.bool(), occ_b.bool()
    union = (a | b).sum().item()
    return 1.0 if union == 0 else (a & b).sum().item() / union


def mesh_iou(mesh_a, mesh_b, points: Float[Tensor, "N 3"], *, backend: str = "auto") -> float:
    """Volumetric IoU of two meshes on shared points (inside = winding number above 1/2).

    Use uniform points in a box enclosing both meshes (see
    :func:`shapegen.geometry.sampling.sample_uniform`); the estimate's standard error shrinks
    as ``1 / sqrt(N)``.
    """
    from shapegen.geometry.sdf import signed_distance

    return iou(signed_distance(points, mesh_a, backend=backend) < 0, signed_distance(points, mesh_b, backend=backend) < 0)


# =========================================================================== set-level metrics
def chamfer_distance_matrix(
    set_a: Float[Tensor, "B N 3"], set_b: Float[Tensor, "C M 3"], *, pair_chunk: int = 64
) -> Float[Tensor, "B C"]:
    """Chamfer-L2 between every cloud of ``set_a`` and every cloud of ``set_b``.

    Computed for about ``pair_chunk`` cloud pairs at a time (memory ``pair_chunk * N * M``
    distances; lower it for large clouds).
    """
    if set_a.ndim != 3 or set_b.ndim != 3:
        raise ValueError("point-cloud sets must be B x N x 3 tensors")
    nb, nc = set_a.shape[0], set_b.shape[0]
    out = torch.empty(nb, nc, dtype=torch.float64, device=set_a.device)
    cols = max(1, min(nc, pair_chunk))
    b_rows = max(1, pair_chunk // cols)
    for i in range(0, nb, b_rows):
        a = set_a[i : i + b_rows].double()  # b N 3
        for j in range(0, nc, cols):
            b = set_b[j : j + cols].double()  # c M 3
            d = torch.cdist(a[:, None].expand(-1, b.shape[0], -1, -1).reshape(-1, *a.shape[1:]),
                            b[None].expand(a.shape[0], -1, -1, -1).reshape(-1, *b.shape[1:])).square()
            cd = d.min(dim=2).values.mean(-1) + d.min(dim=1).values.mean(-1)
            out[i : i + a.shape[0], j : j + b.shape[0]] = cd.reshape(a.shape[0], b.shape[0])
    return out


@dataclass
class GenerationMetrics:
    """COV, MMD (Chamfer-L2) and 1-NNA of a generated set against a reference set."""

    cov: float
    mmd: float
    nna: float


def coverage(d_gen_ref: Float[Tensor, "B C"]) -> float:
    """COV: share of reference clouds (columns) that are the nearest one of some generated cloud."""
    return d_gen_ref.argmin(dim=1).unique().numel() / d_gen_ref.shape[1]


def minimum_matching_distance(d_gen_ref: Float[Tensor, "B C"]) -> float:
    """MMD: mean over reference clouds (columns) of the distance to the closest generated cloud."""
    return float(d_gen_ref.min(dim=0).values.mean())


def one_nna(d_gen_gen: Float[Tensor, "B B"], d_ref_ref: Float[Tensor, "C C"], d_gen_ref: Float[Tensor, "B C"]) -> float:
    """1-NNA: leave-one-out 1-NN classification accuracy on the union of both sets.

    Ties are broken towards the lower index of the stacked matrix ``[[Dgg, Dgr], [Drg, Drr]]``
    (generated clouds first), as in PointFlow's ``knn``.
    """
    nb, nc = d_gen_gen.shape[0], d_ref_ref.shape[0]
    m = torch.cat([torch.cat([d_gen_gen, d_gen_ref], 1), torch.cat([d_gen_ref.T, d_ref_ref], 1)], 0).clone()
    m.fill_diagonal_(float("inf"))
    labels = torch.cat([torch.zeros(nb, dtype=torch.bool), torch.ones(nc, dtype=torch.bool)]).to(m.device)
    nn = m.argmin(dim=1)
    return float((labels[nn] == labels).double().mean())


def generation_metrics(gen: Float[Tensor, "B N 3"], ref: Float[Tensor, "C M 3"]) -> GenerationMetrics:
    """COV, MMD and 1-NNA with the Chamfer-L2 distance (PointFlow / 3DShape2VecSet protocol)."""
    d_gr = chamfer_distance_matrix(gen, ref)
    return GenerationMetrics(
        cov=coverage(d_gr),
        mmd=minimum_matching_distance(d_gr),
        nna=one_nna(chamfer_distance_matrix(gen, gen), chamfer_distance_matrix(ref, ref), d_gr),
    )
