"""Scene-reconstruction metrics (MonoSDF / Occ-SDF protocol) with optional frustum culling.

With ``d(x, Y) = min_{y in Y} |x - y|`` over points sampled on the predicted (P) and
ground-truth (G) surfaces:

- accuracy ``mean_{p in P} d(p, G)``, completeness ``mean_{g in G} d(g, P)``,
  Chamfer-L1 = their average (the convention of :func:`shapegen.geometry.metrics.chamfer_l1`);
- precision / recall at ``t``: share of P within ``t`` of G / of G within ``t`` of P, strict
  ``d < t`` as in :func:`shapegen.geometry.metrics.fscore`; F = 2PR / (P + R);
- normal consistency: mean ``|n_p . n_NN(p)|`` both ways, averaged
  (:func:`shapegen.geometry.metrics.normal_consistency`);
- recall restricted to labelled GT surfaces (thin structures, dark regions of
  :mod:`shapegen.data.room_synth`).

The definitions are those of :mod:`shapegen.geometry.metrics`; nearest neighbours come from a
k-d tree (scipy) instead of chunked ``cdist`` because room meshes are compared with 10^5-10^6
points, where brute force takes minutes on a CPU (tests check both agree).
Culling (Replica protocol) keeps points inside at least one camera frustum, in front of the
camera and within ``max_depth``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from shapegen.errors import ShapegenError
from shapegen.geometry.mesh import Mesh

__all__ = ["ReconMetrics", "cull_to_frusta", "evaluate_meshes", "nearest_distances", "reconstruction_metrics"]


def nearest_distances(x: Float[Tensor, "N 3"], y: Float[Tensor, "M 3"]) -> tuple[Float[Tensor, " N"], Int[Tensor, " N"]]:
    """Distance from each ``x`` to its nearest ``y`` and that neighbour's index (k-d tree, float64)."""
    from scipy.spatial import cKDTree

    if x.shape[0] == 0 or y.shape[0] == 0:
        raise ShapegenError("nearest-neighbour distances need two non-empty point sets (is a mesh empty or culled away?)")
    d, i = cKDTree(y.detach().cpu().double().numpy()).query(x.detach().cpu().double().numpy(), k=1, workers=-1)
    return torch.from_numpy(d).to(x.dtype), torch.from_numpy(np.asarray(i, np.int64))


@dataclass
class ReconMetrics:
    """Reconstruction metrics; distances in the meshes' units (metres for rooms), shares in [0, 1]."""

    accuracy: float
    completeness: float
    chamfer_l1: float
    precision: dict[float, float]
    recall: dict[float, float]
    fscore: dict[float, float]
    normal_consistency: float | None
    num_pred: int
    num_gt: int
    label_recall: dict[str, dict[float, float]] = field(default_factory=dict)
    """Recall at each threshold measured only on GT points of each label name."""

    def to_dict(self) -> dict:
        out = {
            "accuracy": self.accuracy, "completeness": self.completeness, "chamfer_l1": self.chamfer_l1,
            "normal_consistency": self.normal_consistency, "num_pred": self.num_pred, "num_gt": self.num_gt,
        }
        for t in self.fscore:
            tag = f"{t * 100:g}cm"
            out.update({f"precision@{tag}": self.precision[t], f"recall@{tag}": self.recall[t], f"fscore@{tag}": self.fscore[t]})
        for name, rec in self.label_recall.items():
            for t, v in rec.items():
                out[f"recall_{name}@{t * 100:g}cm"] = v
        return out

    def lines(self) -> list[str]:
        """Human-readable lines (distances in cm assuming metres)."""
        d = self.to_dict()
        out = [f"accuracy      {self.accuracy * 100:.2f} cm", f"completeness  {self.completeness * 100:.2f} cm",
               f"Chamfer-L1    {self.chamfer_l1 * 100:.2f} cm"]
        for k, v in d.items():
            if "@" in k:
                out.append(f"{k:<14}{v:.4f}")
        if self.normal_consistency is not None:
            out.append(f"normal consistency {self.normal_consistency:.4f}")
        out.append(f"points: {self.num_pred} predicted, {self.num_gt} ground truth")
        return out


def reconstruction_metrics(
    pred: Float[Tensor, "N 3"],
    gt: Float[Tensor, "M 3"],
    *,
    pred_normals: Float[Tensor, "N 3"] | None = None,
    gt_normals: Float[Tensor, "M 3"] | None = None,
    thresholds: tuple[float, ...] = (0.05, 0.02),
    gt_labels: Int[Tensor, " M"] | None = None,
    label_names: dict[int, str] | None = None,
) -> ReconMetrics:
    """Metrics of the module doc between two point sets (normals optional).

    ``label_names`` maps label masks to names: labels are bit flags, and a GT point counts for a
    mask when its label shares a bit with it (mask 0 selects the unlabelled points)."""
    d_pg, i_pg = nearest_distances(pred, gt)
    d_gp, i_gp = nearest_distances(gt, pred)
    acc, comp = float(d_pg.double().mean()), float(d_gp.double().mean())
    prec, rec, f = {}, {}, {}
    for t in thresholds:
        p = float((d_pg < t).double().mean())
        r = float((d_gp < t).double().mean())
        prec[t], rec[t], f[t] = p, r, (0.0 if p + r == 0 else 2 * p * r / (p + r))
    nc = None
    if pred_normals is not None and gt_normals is not None:
        pn = torch.nn.functional.normalize(pred_normals.double(), dim=-1)
        gn = torch.nn.functional.normalize(gt_normals.double(), dim=-1)
        nc = float(0.5 * ((pn * gn[i_pg]).sum(-1).abs().mean() + (gn * pn[i_gp]).sum(-1).abs().mean()))
    label_recall: dict[str, dict[float, float]] = {}
    if gt_labels is not None:
        for value, name in (label_names or {}).items():
            sel = (gt_labels & value) != 0 if value else gt_labels == 0  # labels are bit flags
            if bool(sel.any()):
                label_recall[name] = {t: float((d_gp[sel] < t).double().mean()) for t in thresholds}
    return ReconMetrics(acc, comp, 0.5 * (acc + comp), prec, rec, f, nc, int(pred.shape[0]), int(gt.shape[0]), label_recall)


def cull_to_frusta(
    points: Float[Tensor, "N 3"],
    c2w: Float[Tensor, "B 4 4"],
    K: Float[Tensor, "B 3 3"],
    width: int,
    height: int,
    *,
    max_depth: float | None = None,
    depths: Float[Tensor, "B H W"] | None = None,
    depth_margin: float = 0.05,
    chunk: int = 1 << 16,
) -> Bool[Tensor, " N"]:
    """True for points inside at least one camera's frustum (OpenCV poses, world frame):
    in front of the camera, projecting inside the image, and closer than ``max_depth``.

    With ``depths`` (each camera's measured z-depth, ``width x height``, 0 where unknown) a point
    must also be seen: not more than ``depth_margin`` behind the measured surface at its pixel,
    which must have a depth (the RGB-D protocol of NICE-SLAM and Co-SLAM: space no frame saw, such
    as the inside of cupboards or behind walls, is not scored)."""
    keep = torch.zeros(points.shape[0], dtype=torch.bool)
    w2c = torch.linalg.inv(c2w.double())
    Kd = K.double()
    if depths is not None and tuple(depths.shape[1:]) != (height, width):
        raise ShapegenError(f"depth maps of {tuple(depths.shape[1:])} pixels for cameras of {height}x{width}")
    for i in range(0, points.shape[0], chunk):
        p = points[i : i + chunk].double()
        cam = torch.einsum("bij,nj->bni", w2c[:, :3, :3], p) + w2c[:, None, :3, 3]
        z = cam[..., 2]
        uv = torch.einsum("bij,bnj->bni", Kd, cam)
        u, v = uv[..., 0] / z.clamp_min(1e-9), uv[..., 1] / z.clamp_min(1e-9)
        ok = (z > 1e-6) & (u >= 0) & (u <= width) & (v >= 0) & (v <= height)
        if max_depth is not None:
            ok &= z <= max_depth
        if depths is not None:
            col = u.floor().long().clamp(0, width - 1)
            row = v.floor().long().clamp(0, height - 1)
            measured = depths[torch.arange(depths.shape[0])[:, None], row, col].double()
            ok &= (measured > 0) & (z <= measured + depth_margin)
        keep[i : i + chunk] = ok.any(0)
    return keep


def evaluate_meshes(
    pred: Mesh,
    gt: Mesh,
    *,
    num_points: int = 200_000,
    thresholds: tuple[float, ...] = (0.05, 0.02),
    gt_face_labels: Int[Tensor, " F"] | None = None,
    label_names: dict[int, str] | None = None,
    cameras: tuple[Tensor, Tensor, int, int] | None = None,
    max_depth: float | None = None,
    depths: Float[Tensor, "B H W"] | None = None,
    depth_margin: float = 0.05,
    seed: int = 0,
) -> ReconMetrics:
    """Sample ``num_points`` area-weighted points with face normals on each mesh, optionally cull
    both to the camera frusta ``cameras = (c2w, K, width, height)`` (and, with the cameras'
    measured ``depths``, to what they saw: :func:`cull_to_frusta`), and compute the metrics.

    Raises:
        ShapegenError: an empty mesh, labels that do not match the GT faces, or nothing left after culling.
    """
    from shapegen.geometry.sampling import sample_surface

    for name, m in (("predicted", pred), ("ground-truth", gt)):
        if m.num_faces == 0:
            raise ShapegenError(f"the {name} mesh has no faces")
    if gt_face_labels is not None and gt_face_labels.shape[0] != gt.num_faces:
        raise ShapegenError(f"{gt_face_labels.shape[0]} face labels for a ground-truth mesh with {gt.num_faces} faces")
    gen = torch.Generator().manual_seed(seed)
    sp = sample_surface(pred.to("cpu"), num_points, generator=gen)
    sg = sample_surface(gt.to("cpu"), num_points, generator=gen)
    labels = None if gt_face_labels is None else gt_face_labels.long()[sg.faces]
    if cameras is not None:
        c2w, K, w, h = cameras
        kp = cull_to_frusta(sp.points, c2w, K, w, h, max_depth=max_depth, depths=depths, depth_margin=depth_margin)
        kg = cull_to_frusta(sg.points, c2w, K, w, h, max_depth=max_depth, depths=depths, depth_margin=depth_margin)
        if not bool(kp.any()) or not bool(kg.any()):
            raise ShapegenError("no surface point lies inside any camera frustum; are the cameras in the meshes' frame?")
        sp_points, sp_normals = sp.points[kp], sp.normals[kp]
        sg_points, sg_normals = sg.points[kg], sg.normals[kg]
        labels = None if labels is None else labels[kg]
    else:
        sp_points, sp_normals, sg_points, sg_normals = sp.points, sp.normals, sg.points, sg.normals
    return reconstruction_metrics(sp_points, sg_points, pred_normals=sp_normals, gt_normals=sg_normals,
                                  thresholds=thresholds, gt_labels=labels, label_names=label_names)
