"""Benchmark rigging by transfer: time for a ~100k-vertex humanoid and self-consistency.

Meshes: the analytic humanoid's marching-cubes template (``--template-resolution``) is the
rig source. The 100k-vertex target is an independently extracted body (``--target-resolution``)
subdivided (midpoint, no smoothing) until it has at least ``--vertices`` vertices, so its
vertices never coincide with the template's.

Numbers:
    - template build (SDF grid + marching cubes + procedural weights) and rigging time of
      :func:`shapegen.methods.avatar.rig_humanoid` (alignment, transfer, no I/O) on the target;
    - self-consistency: the fraction of vertices whose transferred weights differ from the
      template's own procedural weights evaluated at the same points (L1 distance of the dense
      weight rows; thresholds 0.1 and 0.2), both template -> template and template -> target.

Run: ``python scripts/bench_rigging.py [--vertices 100000] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _benchlib import table, write_section

from shapegen.fields.body_prior import HumanoidPrior
from shapegen.geometry.mesh import Mesh
from shapegen.geometry.rigging import procedural_skin_weights, rig_analytic_template, transfer_rig
from shapegen.methods.avatar import RigConfig, rig_humanoid


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vertices", type=int, default=100_000)
    ap.add_argument("--template-resolution", type=int, default=96)
    ap.add_argument("--target-resolution", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
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
        ["template build (SDF grid + MC + procedural weights)", f"{args.template_resolution}^3 grid, {template.mesh.num_vertices} vertices", t_template, "", ""],
        ["rig_humanoid (align + transfer, top-4)", f"{target.num_vertices} vertices, {target.num_faces} faces", t_rig, tgt_10, tgt_20],
        ["procedural weights evaluated directly (reference)", f"{target.num_vertices} vertices", t_direct, "", ""],
        ["transfer template -> template", f"{template.mesh.num_vertices} vertices", "", self_10, self_20],
    ]
    body = table(["step", "mesh", "seconds", "fraction L1 > 0.1", "fraction L1 > 0.2"], rows)
    body += (
        f"\n\nThreads: {args.threads} (torch), load average {load:.1f} on a shared machine. "
        "Fractions: vertices whose transferred weights differ from the analytic template's own procedural "
        "weights at the same points (L1 over the dense weight row). The 100k target is a marching-cubes body "
        f"at {args.target_resolution}^3 subdivided without smoothing, so its vertices never coincide with the template's."
    )
    if args.no_write:
        print(body)
    else:
        write_section("rigging", "Rigging by transfer (analytic humanoid template)", body)


if __name__ == "__main__":
    main()
