"""Mosaic-SDF representation benchmark: accuracy and speed of mesh -> M-SDF -> mesh.

Writes the ``msdf-representation`` section of docs/benchmarks.md. Per mesh of a fixed subset of
``../shared/data`` (normalised to [-1, 1]^3), with n=1024, k=7 by default:

* accuracy of (ft) the fine-tuned M-SDF, (init) the same M-SDF before fine-tuning and (dense) a
  dense SDF grid with about as many values (71^3 = 357,911 vs 1024 x 347 = 355,328) over
  [-1.05, 1.05]^3, trilinearly interpolated (``grid_field``); each is meshed by sparse
  extraction at ``--resolution`` (M-SDFs only inside their cubes);
* Chamfer-L2 and normal consistency on ``--points`` surface samples per mesh (definitions of
  ``shapegen.geometry.metrics``; nearest neighbours by KD-tree), volumetric IoU on 100k uniform
  points in [-1, 1]^3 (inside = winding number of each mesh > 1/2), SDF-PSNR on 100k near-surface
  points (sigma 0.01): ``10 log10(2^2 / MSE)``, the field itself against the exact signed distance;
* conversion time split into signed-distance queries, the rest of the preparation (sampling,
  FPS, scales) and fine-tuning; decode-to-mesh time of the fine-tuned M-SDF at ``--resolution``.

Results are cached per mesh in ``--cache`` (JSON) so an interrupted run resumes.

Usage: ``python scripts/bench_msdf.py [--meshes N] [--steps S] [--resolution R] [--threads T]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from shapegen.fields.mosaic_sdf_fit import MosaicSDFConvertConfig, finetune, prepare_shape
from shapegen.geometry.extract import extract_mesh, grid_field
from shapegen.geometry.sampling import sample_near_surface, sample_surface, sample_uniform
from shapegen.geometry.sdf import MeshSDF
from shapegen.testing.bench import REPO, shared_data_root, table, write_section

#: The subset, in run order: watertight classics first, then furniture and ShapeNet soups.
SUBSET = [
    "meshes_classic/spot.obj",
    "meshes_classic/bunny_libigl.off",
    "meshes_classic/fandisk.obj",
    "meshes_classic/rocker-arm.obj",
    "meshes_classic/kitten_rsawhney.obj",
    "meshes_classic/cow.obj",
    "meshes_chairs_tables/ChairArms2.obj",
    "meshes_chairs_tables/Table1.obj",
    "meshes_chairs_tables/ChairNoArms1.obj",
    "meshes_classic/teapot.obj",
]
DENSE_SIDE = 71
DENSE_BOX = ((-1.05,) * 3, (1.05,) * 3)


def _nn(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.spatial import cKDTree

    return cKDTree(b).query(a, k=1, workers=-1)


def surface_metrics(pred, gt, num: int, gen: torch.Generator) -> tuple[float, float]:
    """Chamfer-L2 (sum of both directed mean squared distances) and normal consistency."""
    if pred.num_faces == 0:
        return float("inf"), 0.0
    p, g = sample_surface(pred, num, generator=gen), sample_surface(gt, num, generator=gen)
    pp, gp = p.points.double().numpy(), g.points.double().numpy()
    d_pg, i_pg = _nn(pp, gp)
    d_gp, i_gp = _nn(gp, pp)
    cd = float((d_pg**2).mean() + (d_gp**2).mean())
    pn, gn = p.normals.double().numpy(), g.normals.double().numpy()
    nc = 0.5 * (np.abs((pn * gn[i_pg]).sum(1)).mean() + np.abs((gn * pn[i_gp]).sum(1)).mean())
    return cd, float(nc)


def psnr(pred: torch.Tensor, truth: torch.Tensor) -> float:
    mse = float((pred.double() - truth.double()).square().mean())
    return 10 * math.log10(4.0 / max(mse, 1e-30))


def retime_mesh(rel: str, root: Path, args) -> dict:
    """Only the timings of :func:`bench_mesh` (conversion split and decode at ``--resolution``)."""
    cfg = MosaicSDFConvertConfig(n=args.n, k=args.k, steps=args.steps, batch_points=args.batch_points, device="cpu", lr_values=args.lr_values)
    t0 = time.perf_counter()
    res = finetune([prepare_shape(root / rel, cfg, name=rel)], cfg)[0]
    convert_wall = time.perf_counter() - t0
    t = time.perf_counter()
    res.msdf.to_mesh(args.resolution, normalized=True)
    return {"sdf_s": res.stats.sdf_seconds, "prep_s": res.stats.prep_seconds, "finetune_s": res.stats.finetune_seconds,
            "convert_s": convert_wall, "decode_ft_s": time.perf_counter() - t, "load_at_timing": os.getloadavg()[0]}


def bench_mesh(rel: str, root: Path, args, stats: dict) -> dict:
    cfg = MosaicSDFConvertConfig(n=args.n, k=args.k, steps=args.steps, batch_points=args.batch_points, device="cpu", lr_values=args.lr_values)
    path = root / rel
    t0 = time.perf_counter()
    shape = prepare_shape(path, cfg, name=rel)
    res = finetune([shape], cfg)[0]
    convert_wall = time.perf_counter() - t0
    gt = shape.mesh
    gt_sdf = MeshSDF(gt)
    gen = torch.Generator().manual_seed(1)
    near = sample_near_surface(gt, 100_000, 0.01, generator=gen)
    near_truth = gt_sdf(near)
    uni = sample_uniform(100_000, generator=gen)
    occ_truth = gt_sdf(uni) < 0

    # Dense baseline: exact SDF on a 71^3 grid, trilinear, same extraction.
    axis = torch.linspace(DENSE_BOX[0][0], DENSE_BOX[1][0], DENSE_SIDE)
    nodes = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    dense_values = gt_sdf(nodes).reshape(DENSE_SIDE, DENSE_SIDE, DENSE_SIDE)
    dense_fn = grid_field(dense_values, DENSE_BOX)

    out = {"mesh": rel, "watertight": bool(stats.get(rel, {}).get("watertight", False)), "faces": gt.num_faces,
           "sdf_s": res.stats.sdf_seconds, "prep_s": res.stats.prep_seconds, "finetune_s": res.stats.finetune_seconds,
           "convert_s": convert_wall, "load_at_timing": os.getloadavg()[0]}
    for tag, field_obj in (("ft", res.msdf), ("init", res.initial), ("dense", None)):
        t = time.perf_counter()
        if field_obj is None:
            mesh = extract_mesh(dense_fn, args.resolution, DENSE_BOX)
        else:
            mesh = field_obj.to_mesh(args.resolution, normalized=True)
        out[f"decode_{tag}_s"] = time.perf_counter() - t
        with torch.no_grad():
            values = dense_fn(near) if field_obj is None else field_obj(near)
        out[f"psnr_{tag}"] = psnr(values, near_truth)
        out[f"cd_{tag}"], out[f"nc_{tag}"] = surface_metrics(mesh, gt, args.points, torch.Generator().manual_seed(2))
        if mesh.num_faces:
            occ = MeshSDF(mesh)(uni) < 0
            union = int((occ | occ_truth).sum())
            out[f"iou_{tag}"] = 1.0 if union == 0 else int((occ & occ_truth).sum()) / union
        else:
            out[f"iou_{tag}"] = 0.0
        out[f"faces_{tag}"] = mesh.num_faces
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meshes", type=int, default=8, help="first N meshes of the subset")
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--k", type=int, default=7)
    ap.add_argument("--steps", type=int, default=300, help="fine-tuning steps")
    ap.add_argument("--lr-values", type=float, default=MosaicSDFConvertConfig.lr_values, help="Adam learning rate of the grid values")
    ap.add_argument("--batch-points", type=int, default=8192)
    ap.add_argument("--resolution", type=int, default=256, help="extraction resolution for metrics and decode timing")
    ap.add_argument("--points", type=int, default=100_000, help="surface samples per mesh for Chamfer / NC")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    ap.add_argument("--cache", default=str(REPO / "outputs" / "bench_msdf.json"))
    ap.add_argument("--retime", action="store_true",
                    help="re-measure only the conversion and decode times of cached meshes (e.g. on a quiet machine)")
    ap.add_argument("--no-write", action="store_true", help="print, do not write docs/benchmarks.md")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = shared_data_root()
    stats_file = root / "mesh_stats.json"
    stats = {}
    if stats_file.is_file():
        for rec in json.loads(stats_file.read_text()).get("meshes", []):
            stats[rec["path"]] = rec
    cache_path = Path(args.cache)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    key = f"n{args.n}_k{args.k}_s{args.steps}_lr{args.lr_values}_b{args.batch_points}_r{args.resolution}_p{args.points}"
    d = MosaicSDFConvertConfig()
    key += f"_gw{d.grad_weight}_near{d.num_near}_surf{d.num_surface}"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    done = cache.setdefault(key, {})
    for rel in SUBSET[: args.meshes]:
        if rel in done and args.retime:
            print(f"[{time.strftime('%H:%M:%S')}] retime {rel}", flush=True)
            done[rel].update(retime_mesh(rel, root, args))
            cache_path.write_text(json.dumps(cache, indent=1))
            continue
        if rel in done:
            continue
        if not (root / rel).is_file():
            print(f"skip {rel}: not found")
            continue
        print(f"[{time.strftime('%H:%M:%S')}] {rel}", flush=True)
        try:
            done[rel] = bench_mesh(rel, root, args, stats)
        except Exception as exc:  # report and go on
            print(f"  failed: {type(exc).__name__}: {exc}")
            continue
        print("  " + json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in done[rel].items()}), flush=True)
        cache_path.write_text(json.dumps(cache, indent=1))
    rows_data = [done[r] for r in SUBSET[: args.meshes] if r in done]
    if not rows_data:
        sys.exit("no results")
    rows = []
    for r in rows_data:
        rows.append([
            r["mesh"].split("/")[-1], "yes" if r["watertight"] else "no",
            f"{r['cd_ft'] * 1e4:.3f} / {r['cd_init'] * 1e4:.3f} / {r['cd_dense'] * 1e4:.3f}",
            f"{r['nc_ft']:.4f} / {r['nc_init']:.4f} / {r['nc_dense']:.4f}",
            f"{r['iou_ft']:.4f} / {r['iou_init']:.4f} / {r['iou_dense']:.4f}",
            f"{r['psnr_ft']:.1f} / {r['psnr_init']:.1f} / {r['psnr_dense']:.1f}",
            f"{r['sdf_s']:.1f} / {r['prep_s']:.1f} / {r['finetune_s']:.1f}", f"{r['convert_s']:.1f}", f"{r['decode_ft_s']:.1f}",
            f"{r.get('load_at_timing', float('nan')):.1f}",
        ])
    header = ["mesh", "watertight", "Chamfer-L2 x1e4 ft / init / dense", "normal consistency ft / init / dense",
              "vol. IoU ft / init / dense", "SDF-PSNR dB ft / init / dense", "time s: SDF / prep / fine-tune", "convert s",
              f"decode {args.resolution}^3 s", "load avg at timing"]
    beats = sum(r["cd_ft"] < r["cd_dense"] and r["nc_ft"] > r["nc_dense"] for r in rows_data)
    gain = statistics.mean(r["psnr_ft"] - r["psnr_init"] for r in rows_data)
    wt = [r["cd_ft"] for r in rows_data if r["watertight"]]
    med_wt = statistics.median(wt) if wt else float("nan")
    conv = statistics.median(r["convert_s"] for r in rows_data)
    sdf_s = statistics.median(r["sdf_s"] for r in rows_data)
    ft_s = statistics.median(r["finetune_s"] for r in rows_data)
    dec = statistics.median(r["decode_ft_s"] for r in rows_data)
    yes = lambda ok: "met" if ok else "NOT met"
    summary = [
        f"- beats dense on Chamfer and normal consistency: {beats}/{len(rows_data)} meshes "
        f"(target >= 80%: {yes(beats >= 0.8 * len(rows_data))})",
        f"- SDF-PSNR gain from fine-tuning: {gain:+.2f} dB mean (target +6 dB: {yes(gain >= 6)})",
        f"- median Chamfer-L2 on watertight meshes: {med_wt:.3g} (target <= 2e-4: {yes(med_wt <= 2e-4)})",
        f"- median conversion: {conv:.1f} s per shape (SDF queries {sdf_s:.1f} s, fine-tuning {ft_s:.1f} s; target <= 60 s: {yes(conv <= 60)})",
        f"- median decode-to-mesh at {args.resolution}^3: {dec:.1f} s (target <= 5 s at 256^3: {yes(dec <= 5 and args.resolution >= 256)})",
    ]
    body = (
        f"Subset: the first {len(rows_data)} of `{', '.join(SUBSET[: args.meshes])}` (normalised to [-1, 1]^3), "
        f"n={args.n}, k={args.k}, {args.steps} fine-tuning steps of {args.batch_points} points (value lr {args.lr_values:g}, "
        f"gradient weight {d.grad_weight:g}, pools of {d.num_near} near-surface and {d.num_surface} surface points), CPU. Columns `ft / init / dense`: "
        f"fine-tuned M-SDF, the same before fine-tuning, dense {DENSE_SIDE}^3 SDF grid (trilinear) over [-1.05, 1.05]^3; all meshed "
        f"by sparse extraction at {args.resolution}^3. Chamfer-L2 / normal consistency on {args.points} surface samples per mesh; "
        "IoU on 100k uniform points (winding number of each mesh); SDF-PSNR = 10 log10(2^2 / MSE) of the field on 100k "
        "near-surface points (sigma 0.01) against the exact signed distance. Times are wall clock; the last column is the 1-minute "
        "load average when the mesh was timed (2 cores; above 2 means other jobs shared the CPU; `--retime` re-measures "
        "only the times, on a quieter machine).\n\n"
        + table(header, rows) + "\n\n" + "\n".join(summary)
    )
    write_section("msdf-representation", "Mosaic-SDF representation: conversion, decoding, meshing", body, dry_run=args.no_write)


if __name__ == "__main__":
    main()
