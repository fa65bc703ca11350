"""Occ-SDF benchmark: training cost per preset, the hybrid against the SDF-only baseline on the
claim room, the real kitchen against TSDF fusion, and two runs at once.

Timing (default mode, section ``occsdf``): ``--timing-steps`` optimiser steps of each of
``--timing-presets`` (after 2 warm-up steps) on a synthetic room (and, with ``--timing-kitchen``,
on the real kitchen), the median step time, the preset's whole schedule extrapolated from it,
and the process's peak resident memory.

Claim ablation (section ``occsdf-claim``): ``--claim-run VARIANT --claim-seed S`` trains one
variant (:data:`VARIANTS`: hybrid, sdf-only, occupancy-only, feature-rgb-only) for the preset's
whole schedule on the ``claim`` room (``shapegen room synth --config claim``, rendered once into
``--work``) through ``reconstruct`` (checkpoints; the same command resumes) and writes its
metrics; run one process per core. ``--claim-report`` aggregates the finished runs: mean ± std
over seeds of recall on thin / dark / either faces at 1 and 2 cm, F-score, Chamfer-L1, normal
consistency, loss curves, and a figure of the reconstructions beside the ground truth.

Kitchen (``--kitchen [DIR]``, default ``../shared/data/scene_7scenes_redkitchen``; section
``occsdf-kitchen``): the reference is a TSDF fusion (:mod:`shapegen.geometry.tsdf`) of the sensor
depth of every frame at full resolution; Occ-SDF trains ``--kitchen-steps`` steps on every
``--kitchen-stride``-th frame at ``1/--kitchen-downscale`` resolution (sensor depth as the depth
prior, normals from depth; resumable in ``--work``); its SDF mesh and, as a sanity row, the TSDF
of exactly the training frames are compared with the reference, culled to what the frames saw
(and, in one column, to the frusta only), with a turntable GIF.

Threads (``--threads-check``, section ``occsdf-threads``): wall time of ``shapegen reconstruct``
alone and two at once: torch's default threads, shapegen's sharing of the cores, one thread each.

Examples (2-core CPU; one job per core, timings with nothing else running):
    python scripts/bench_occsdf.py --timing-steps 20 --timing-presets tiny fast paper --timing-kitchen
    python scripts/bench_occsdf.py --claim-run hybrid --claim-seed 0 --work runs/occsdf_claim
    python scripts/bench_occsdf.py --claim-report --work runs/occsdf_claim
    python scripts/bench_occsdf.py --kitchen --kitchen-steps 5000 --work runs/occsdf_kitchen
    python scripts/bench_occsdf.py --threads-check
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from shapegen.commands.recon import _cameras_world
from shapegen.data.room_synth import LABEL_DARK, LABEL_THIN, RoomSynthConfig, write_room
from shapegen.data.scenes import load_scene
from shapegen.geometry.mesh_io import load_mesh
from shapegen.geometry.recon_metrics import evaluate_meshes
from shapegen.methods.occsdf import build_for_scene, preset_config
from shapegen.testing.bench import table, write_section

BASELINE = ["loss.occupancy=false", "loss.feature_rgb=false"]
VARIANTS = {
    "hybrid": [],
    "sdf-only": BASELINE,
    "occupancy-only": ["loss.feature_rgb=false"],
    "feature-rgb-only": ["loss.occupancy=false"],
}
"""The claim ablation: Occ-SDF (both additions), the MonoSDF baseline, and each addition alone."""
CLAIM_KEYS = ["recall_thin_or_dark@2cm", "recall_thin_or_dark@1cm", "recall_thin@2cm", "recall_dark@2cm",
              "fscore@5cm", "fscore@2cm", "chamfer_l1", "normal_consistency"]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train(model, steps: int, t_log: list[float] | None = None) -> None:
    opt_cfg = model.configure_optimizers()
    opt, sched = opt_cfg["optimizer"], opt_cfg["lr_scheduler"]["scheduler"]
    for step in range(steps):
        t0 = time.perf_counter()
        loss = model.compute_losses(step)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if t_log is not None:
            t_log.append(time.perf_counter() - t0)


def kitchen(args: argparse.Namespace) -> None:
    """The real-kitchen comparison (module doc); writes the ``occsdf-kitchen`` section."""
    from shapegen.commands.fuse import scene_depth_world
    from shapegen.geometry.tsdf import fuse_depth_maps
    from shapegen.testing.bench import shared_data_root

    root = Path(args.kitchen) if args.kitchen != "default" else shared_data_root() / "scene_7scenes_redkitchen"
    load_start = os.getloadavg()[0]
    voxel, trunc = args.tsdf_voxel, args.tsdf_trunc
    full = load_scene(root, downscale=1, max_depth=args.max_depth)
    depths, K, c2w, colors = scene_depth_world(full)
    n_all, h_all, w_all = depths.shape
    t0 = time.perf_counter()
    ref_vol = fuse_depth_maps(depths, K, c2w, voxel_size=voxel, trunc=trunc, colors=colors)
    fuse_s = time.perf_counter() - t0
    ref = ref_vol.extract_mesh()
    vox_shape = "x".join(map(str, ref_vol.shape))
    print(f"reference TSDF: {n_all} frames in {fuse_s:.1f} s ({n_all / fuse_s:.2f} frames/s), {vox_shape} voxels, {ref.num_faces} faces", flush=True)
    cams = (c2w, K, w_all, h_all)
    del ref_vol, full, colors

    sub = load_scene(root, downscale=args.kitchen_downscale, stride=args.kitchen_stride, max_depth=args.max_depth)
    sd, sK, sc2w, _ = scene_depth_world(sub)
    t0 = time.perf_counter()
    sub_vol = fuse_depth_maps(sd, sK, sc2w, voxel_size=voxel, trunc=trunc)
    sub_fuse_s = time.perf_counter() - t0
    sub_shape = "x".join(map(str, sub_vol.shape))
    sub_mesh = sub_vol.extract_mesh()
    del sub_vol

    def metrics(mesh, seen_only: bool = True) -> dict:
        return evaluate_meshes(mesh, ref, num_points=args.points, cameras=cams, max_depth=args.max_depth,
                               depths=depths if seen_only else None, seed=0).to_dict()

    rows = []
    m = evaluate_meshes(ref, ref, num_points=args.points, cameras=cams, max_depth=args.max_depth, depths=depths, seed=1).to_dict()
    rows.append(["reference against itself (two independent point samples: the ceiling at this sampling density)",
                 f"all {n_all} frames, {w_all}x{h_all}", "-", m, None])
    m = metrics(sub_mesh)
    print("tsdf-subset", {k: round(v, 4) for k, v in m.items() if isinstance(v, float)}, flush=True)
    sub_desc = f"{sub.num_images} frames (every {args.kitchen_stride}th), {sub.width}x{sub.height}"
    rows.append([f"TSDF fusion of the training frames (sanity row; {sub_fuse_s:.0f} s)", sub_desc, "-", m, metrics(sub_mesh, False)])

    import json

    from shapegen.methods.occsdf import reconstruct

    overrides = [*args.overrides, f"train.max_steps={max(1, args.kitchen_steps)}", f"scene.stride={args.kitchen_stride}",
                 f"scene.downscale={args.kitchen_downscale}", f"scene.max_depth={args.max_depth}"]
    cfg = preset_config(args.preset, overrides)
    work = Path(args.work)
    out = work / f"kitchen_{args.kitchen_steps}.ply"
    timing = out.with_suffix(".time.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.is_file():  # resumes the run folder's last checkpoint when one exists
        resumed = (out.with_suffix(".run") / "checkpoints" / "last.ckpt").is_file()
        load0, t1 = os.getloadavg()[0], time.perf_counter()
        reconstruct(root, out, cfg, run_dir=out.with_suffix(".run"), progress=False)
        timing.write_text(json.dumps({"seconds": time.perf_counter() - t1, "resumed": resumed, "load_start": load0,
                                      "load_end": os.getloadavg()[0], "threads": torch.get_num_threads()}))
    tinfo = json.loads(timing.read_text()) if timing.is_file() else {}
    mesh = load_mesh(out, dedupe=False)
    m = metrics(mesh)
    print("occsdf", {k: round(v, 4) for k, v in m.items() if isinstance(v, float)}, tinfo, flush=True)
    sensor_off = any(o.replace(" ", "") in ("loss.sensor_sdf=0", "loss.sensor_sdf=0.0") for o in args.overrides)
    when = (f"{tinfo['seconds'] / 60:.0f} min{' (resumed: this process only)' if tinfo.get('resumed') else ''} at load "
            f"{tinfo['load_start']:.1f}-{tinfo['load_end']:.1f}, {tinfo['threads']} thread") if tinfo else "time not recorded"
    name = (f"Occ-SDF hybrid, {args.preset} preset, {args.kitchen_steps} steps, sensor-depth SDF term "
            f"{'off' if sensor_off else 'on'} ({when}; mesh {cfg.train.mesh_resolution}^3)")
    rows.append([name, sub_desc, f"{cfg.train.rays_per_batch} rays/step", m, metrics(mesh, False)])
    gif = kitchen_turntable(ref, mesh, cams, depths, args.max_depth, Path(__file__).resolve().parents[1] / "docs" / "occsdf_kitchen.gif")

    keys = ["fscore@5cm", "precision@5cm", "recall@5cm", "fscore@2cm", "accuracy", "completeness", "chamfer_l1"]
    fmt = lambda v: "n/a" if v is None or math.isnan(v) else f"{v:.4f}"
    table_rows = [[name, data, batch] + [fmt(mm.get(k)) for k in keys] + [fmt(ff.get("fscore@5cm")) if ff else "-"]
                  for name, data, batch, mm, ff in rows]
    body = (
        f"Kitchen: `{root.name}` ({n_all} frames, 640x480 Kinect v1 depth, ground-truth poses). "
        f"Reference: TSDF fusion of the sensor depth of all {n_all} frames at full resolution, {voxel * 100:g} cm voxels, "
        f"{trunc * 100:g} cm truncation, depth <= {args.max_depth:g} m ({ref.num_faces} faces). Both meshes are sampled with "
        f"{args.points} points and culled to what the {n_all} frames saw (RGB-D protocol of NICE-SLAM / Co-SLAM: inside a "
        f"frustum, within {args.max_depth:g} m, at most 5 cm behind the measured depth); the last column culls to the frusta "
        f"only, which also scores surfaces no frame saw (behind walls, inside cupboards). Distances in metres. "
        f"Load average (1 min) of the shared 2-core machine: {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end.\n\n"
        "### TSDF fusion speed (`shapegen.geometry.tsdf`, pure torch, CPU)\n\n"
        + table(["frames", "resolution", "voxel", "volume (voxels)", "colour", "seconds", "frames/s", "threads"],
                [[n_all, f"{w_all}x{h_all}", f"{voxel * 100:g} cm", vox_shape, "yes", f"{fuse_s:.1f}", f"{n_all / fuse_s:.2f}",
                  torch.get_num_threads()],
                 [sub.num_images, f"{sub.width}x{sub.height}", f"{voxel * 100:g} cm", sub_shape, "no",
                  f"{sub_fuse_s:.1f}", f"{sub.num_images / sub_fuse_s:.2f}", torch.get_num_threads()]])
        + "\n\n### F-score against the TSDF of all frames\n\n"
        + table(["mesh", "training data", "batch", *keys, "fscore@5cm (frusta only)"], table_rows)
        + "\n\nThe depth prior here is the sensor depth the reference fuses (metric, not a monocular prior), so the "
        "reference is not independent of the training signal; the sanity row bounds what fusing exactly the training "
        f"frames gives. Turntable of what the frames saw (reference left, Occ-SDF right): ![kitchen turntable]({gif.name})"
    )
    write_section("occsdf-kitchen", "Occ-SDF hybrid on the real kitchen (7-Scenes redkitchen) against TSDF fusion", body)


def kitchen_turntable(ref, mesh, cams, depths, max_depth: float, path: Path) -> Path:
    """A GIF turning the reference and the reconstruction side by side about the cameras' mean up
    axis (7-Scenes' world frame has no fixed up), both cut to the faces the frames saw (what the
    metrics score; the SDF also closes the unseen space around the room)."""
    from shapegen.geometry.recon_metrics import cull_to_frusta

    c2w, K, w, h = cams
    import numpy as np
    import trimesh

    from renderers.preview import render_turntable, save_animation
    from shapegen.geometry.mesh import Mesh

    up = -c2w[:, :3, 1].mean(0)  # OpenCV cameras: image y points down
    rot = torch.as_tensor(trimesh.geometry.align_vectors(up.double().numpy(), [0.0, 1.0, 0.0])[:3, :3], dtype=torch.float32)
    centre = ref.vertices.mean(0)

    def upright(m):
        seen = cull_to_frusta(m.vertices, c2w, K, w, h, max_depth=max_depth, depths=depths)
        faces = m.faces[seen[m.faces].any(1)]
        return Mesh((m.vertices - centre) @ rot.T, faces)

    kw = {"num_frames": 16, "elevation_deg": 35.0, "width": 320, "height": 240, "fov_deg": 50.0}
    a = render_turntable(*_vf(upright(ref)), **kw)
    b = render_turntable(*_vf(upright(mesh)), distance=_distance(upright(ref), kw), **kw)
    return save_animation(path, [np.concatenate([x, y], 1) for x, y in zip(a, b, strict=True)], fps=8)


def _vf(m):
    return m.vertices, m.faces


def _distance(m, kw) -> float:
    half = math.radians(kw["fov_deg"]) / 2
    radius = float((m.vertices.amax(0) - m.vertices.amin(0)).norm() / 2)
    return 1.05 * radius / math.sin(min(half, math.atan(math.tan(half) * kw["width"] / kw["height"])))


# ------------------------------------------------------------------------------ claim ablation
def claim_room(work: Path) -> Path:
    """The ``claim`` room in ``work/room`` (rendered once; a file lock keeps parallel runs from racing)."""
    import fcntl

    from shapegen.config import load_config, resolve_preset

    work.mkdir(parents=True, exist_ok=True)
    room = work / "room"
    with open(work / ".room.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (room / "gt_labels.npy").is_file():
            write_room(room, load_config(RoomSynthConfig, resolve_preset("claim", "room")))
    return room


def claim_run(args: argparse.Namespace) -> None:
    """Train one variant/seed on the claim room to the end of the preset's schedule (resumable:
    the same command continues from the run's last checkpoint) and write its metrics.json."""
    import json

    import numpy as np

    from shapegen.data.room_synth import LABEL_NAMES
    from shapegen.methods.occsdf import reconstruct

    work = Path(args.work)
    room = claim_room(work)
    name = f"{args.claim_run}_s{args.claim_seed}"
    out = work / "runs" / f"{name}.ply"
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = preset_config(args.preset, [*args.overrides, *VARIANTS[args.claim_run], f"train.seed={args.claim_seed}"])
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    if not out.is_file():
        reconstruct(room, out, cfg, run_dir=work / "runs" / name, progress=False)
    train_s = time.perf_counter() - t0
    gt = load_mesh(room / "gt_mesh.ply", dedupe=False)
    labels = torch.from_numpy(np.load(room / "gt_labels.npy").astype("int64"))
    m = evaluate_meshes(load_mesh(out, dedupe=False), gt, num_points=args.points, thresholds=(0.05, 0.02, 0.01),
                        gt_face_labels=labels, label_names=LABEL_NAMES, cameras=_cameras_world(room), seed=0).to_dict()
    m.update(variant=args.claim_run, seed=args.claim_seed, preset=args.preset, max_steps=cfg.train.max_steps,
             seconds_this_process=train_s, load_start=load0, load_end=os.getloadavg()[0], threads=torch.get_num_threads())
    (work / "runs" / f"{name}.json").write_text(json.dumps(m, indent=1))
    print(name, {k: round(v, 4) for k, v in m.items() if isinstance(v, float)}, flush=True)


def _read_loss(run_dir: Path) -> tuple[list[float], list[float]]:
    import csv

    steps, vals = [], []
    path = run_dir / "loss.csv"
    if path.is_file():
        with open(path) as fh:
            for row in csv.DictReader(fh):
                steps.append(float(row["step"]))
                vals.append(float(row["loss"]))
    return steps, vals


def claim_figure(work: Path, variants: list[str], seed: int, path: Path) -> Path:
    """Ground truth beside the reconstructions of ``variants`` (seed ``seed``), seen from inside the
    room, ceiling removed; thin faces red, dark blue, thin-and-dark purple, and the same colours on
    reconstructed vertices within 5 cm of such a face."""
    import numpy as np

    from renderers.cameras import look_at
    from renderers.preview import render_mesh, save_image
    from shapegen.geometry.mesh import Mesh

    room = work / "room"
    gt = load_mesh(room / "gt_mesh.ply", dedupe=False)
    labels = torch.from_numpy(np.load(room / "gt_labels.npy").astype("int64"))
    palette = torch.tensor([[0.8, 0.8, 0.8], [0.9, 0.15, 0.1], [0.15, 0.35, 0.95], [0.6, 0.1, 0.75]])
    centres = gt.vertices[gt.faces].mean(1)

    def colours(mesh: Mesh) -> torch.Tensor:
        from shapegen.geometry.recon_metrics import nearest_distances

        d, i = nearest_distances(mesh.vertices, centres)
        lab = torch.where(d < 0.05 + 0.05, labels[i], torch.zeros_like(labels[i]))  # centres sit up to ~5 cm from their faces
        return palette[lab & (LABEL_THIN | LABEL_DARK)]

    def cut(mesh: Mesh, cols: torch.Tensor) -> tuple[Mesh, torch.Tensor]:
        keep = mesh.vertices[mesh.faces][..., 1].amin(1) < 2.3  # drop the ceiling
        return Mesh(mesh.vertices, mesh.faces[keep]), cols

    gt_cols = torch.zeros(gt.num_vertices, 3)
    gt_cols[gt.faces.reshape(-1)] = palette[labels.repeat_interleave(3)]
    meshes = [("ground truth", *cut(gt, gt_cols))]
    for v in variants:
        ply = work / "runs" / f"{v}_s{seed}.ply"
        if ply.is_file():
            m = load_mesh(ply, dedupe=False)
            meshes.append((v, *cut(m, colours(m))))
    views = [look_at(torch.tensor([-1.8, 2.2, -1.8]), torch.tensor([0.6, 0.3, 0.6])),
             look_at(torch.tensor([1.8, 2.2, 1.8]), torch.tensor([-0.6, 0.3, -0.6]))]
    rows = []
    for c2w in views:
        tiles = [render_mesh(m.vertices, m.faces, vertex_colors=c, c2w=c2w, fov_deg=80, width=320, height=240) for _, m, c in meshes]
        rows.append(np.concatenate(tiles, 1))
    save_image(path, np.concatenate(rows, 0))
    return path


def claim_verdict(by_variant: dict[str, list[dict]], key: str = "recall_thin_or_dark@2cm") -> str:
    """The claim's test in words: hybrid's mean ``key`` above SDF-only's by more than twice the
    larger of the two standard deviations over seeds (empty without both variants)."""
    h = [r[key] for r in by_variant.get("hybrid", []) if r.get(key) is not None]
    s = [r[key] for r in by_variant.get("sdf-only", []) if r.get(key) is not None]
    if not h or not s:
        return ""
    diff = statistics.mean(h) - statistics.mean(s)
    if min(len(h), len(s)) < 2:
        return (f"Claim test (`{key}`): hybrid - SDF-only = {diff:+.4f} with {len(h)} / {len(s)} seeds; "
                "the spread needs at least two seeds of each, so no verdict yet.")
    spread = max(statistics.stdev(h), statistics.stdev(s))
    holds = diff > 2 * spread
    return (f"Claim test (`{key}`): hybrid - SDF-only = {diff:+.4f}, 2 x the larger std over seeds = {2 * spread:.4f} "
            f"({len(h)} / {len(s)} seeds): the claim {'holds' if holds else 'does not hold'} on this scene.")


def claim_report(args: argparse.Namespace) -> None:
    """Aggregate the runs in ``--work`` (mean ± std over seeds), draw the loss curves and the
    figure, and write the ``occsdf-claim`` section."""
    import json

    from shapegen.engine import write_loss_plot

    work = Path(args.work)
    runs = [json.loads(p.read_text()) for p in sorted((work / "runs").glob("*.json"))]
    if not runs:
        raise SystemExit(f"no finished runs in {work / 'runs'}; run --claim-run first")
    by_variant: dict[str, list[dict]] = {}
    for r in runs:
        by_variant.setdefault(r["variant"], []).append(r)
    order = [v for v in VARIANTS if v in by_variant]

    def ms(vals: list[float]) -> str:
        vals = [v for v in vals if v is not None and math.isfinite(v)]
        if not vals:
            return "n/a"
        return f"{statistics.mean(vals):.4f} ± {statistics.stdev(vals):.4f}" if len(vals) > 1 else f"{vals[0]:.4f}"

    rows = [[v, ", ".join(str(r["seed"]) for r in by_variant[v])] + [ms([r.get(k) for r in by_variant[v]]) for k in CLAIM_KEYS]
            for v in order]
    docs = Path(__file__).resolve().parents[1] / "docs"
    curves = {}
    for v in order:
        for r in by_variant[v]:
            steps, vals = _read_loss(work / "runs" / f"{v}_s{r['seed']}")
            if steps:
                curves[f"{v} s{r['seed']}"] = (steps, vals)
    lines = []
    if curves:
        for v in order:
            sel = {k: c for k, c in curves.items() if k.startswith(v + " ")}
            if sel:
                first = next(iter(sel.values()))
                write_loss_plot(first[0], {k: c[1] for k, c in sel.items()}, docs / f"occsdf_claim_loss_{v}.png",
                                title=f"{v}: training loss (all seeds)")
                lines.append(f"![{v} loss](occsdf_claim_loss_{v}.png)")
    fig = claim_figure(work, [v for v in ("hybrid", "sdf-only") if v in by_variant], min(r["seed"] for r in runs), docs / "occsdf_claim.png")
    # Flatness of the loss at the end: mean of the last 10% against the 10% before it.
    flat = []
    for k, (_steps, vals) in curves.items():
        n = max(1, len(vals) // 10)
        if len(vals) >= 2 * n and n > 0:
            a, b = statistics.mean(vals[-2 * n : -n]), statistics.mean(vals[-n:])
            flat.append(f"{k}: {a:.4f} -> {b:.4f}")
    verdict = claim_verdict(by_variant)
    r0 = runs[0]
    loads = ", ".join(f"{r['load_start']:.1f}/{r['load_end']:.1f}" for r in runs)
    body = (
        f"Claim room (`shapegen room synth --config claim`: {len(by_variant)} variants, preset `{r0['preset']}`, "
        f"{r0['max_steps']} steps each, the whole schedule). Metrics against `gt_mesh.ply` culled to the training frusta, "
        f"{args.points} points per mesh; recall on the GT faces labelled thin (1-3 cm parts), dark (albedo <= 0.03) and "
        "either (`thin_or_dark`). mean ± std over seeds. One torch thread per run, at most two runs at once on the 2-core "
        f"machine (load average at start/end of each run: {loads}).\n\n"
        + table(["variant", "seeds", *CLAIM_KEYS], rows)
        + (f"\n\n{verdict}" if verdict else "")
        + "\n\nLoss at the end of each run (mean of the last 10% of logged steps after the 10% before): "
        + "; ".join(flat) + ".\n\n" + "\n".join(lines)
        + f"\n\n![reconstructions]({fig.name}) (ground truth, then each variant, seed {min(r['seed'] for r in runs)}; "
        "thin red, dark blue, thin and dark purple)"
    )
    write_section("occsdf-claim", "Occ-SDF hybrid vs SDF-only on the claim room (full schedule)", body, dry_run=args.no_write)


# ------------------------------------------------------------------------------ thread policy
def threads_check(args: argparse.Namespace) -> None:
    """Wall time of ``shapegen reconstruct`` runs alone and two at once: torch's default threads,
    shapegen's sharing of the cores between running jobs (:mod:`shapegen.threads`), and one thread
    each; writes ``occsdf-threads``."""
    import subprocess
    import sys

    tmp = Path(tempfile.mkdtemp())
    room = write_room(tmp / "room", RoomSynthConfig(num_views=8, width=48, height=48))
    exe = [sys.executable, "-m", "shapegen.cli", "reconstruct", str(room), "--preset", args.preset,
           "--set", f"train.max_steps={args.threads_steps}", "--set", "train.mesh_resolution=64",
           "--set", "train.preview_every=0", "--set", "train.checkpoint_every=1000000"]
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "SHAPEGEN_THREADS")}
    counter = iter(range(1000))

    def launch(env_extra: dict[str, str]) -> tuple[subprocess.Popen, float]:
        out = tmp / f"r{next(counter)}.ply"
        env = {**base_env, **env_extra}
        return subprocess.Popen([*exe, "-o", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), time.perf_counter()

    def run(n: int, env_extra: dict[str, str]) -> list[float]:
        procs = [launch(env_extra) for _ in range(n)]
        times = []
        for p, t0 in procs:
            _, err = p.communicate()
            if p.returncode != 0:
                raise SystemExit(f"shapegen reconstruct failed: {err.decode()[-500:]}")
            times.append(time.perf_counter() - t0)
        return times

    cores = os.cpu_count() or 1
    cases = [
        ("alone, the shapegen default (cores / running shapegen jobs)", 1, {}),
        ("alone, 1 thread", 1, {"OMP_NUM_THREADS": "1"}),
        (f"two at once, {cores} threads each (torch's default, no sharing)", 2, {"SHAPEGEN_THREADS": str(cores)}),
        ("two at once, the shapegen default (cores / running shapegen jobs)", 2, {}),
        ("two at once, 1 thread each (reference)", 2, {"OMP_NUM_THREADS": "1"}),
    ]
    load0 = os.getloadavg()[0]
    results = {}
    for name, n, env in cases:
        results[name] = run(n, env)
        print(name, [f"{t:.1f}" for t in results[name]], flush=True)
    ref = max(results[cases[-1][0]])
    rows = [[name, n, " / ".join(f"{t:.1f}" for t in results[name]), f"{max(results[name]) / ref:.2f}"] for name, n, _ in cases]
    body = (
        f"`shapegen reconstruct` of a small synthetic room (8 views 48x48), `--preset {args.preset}`, {args.threads_steps} steps, "
        f"a 64^3 mesh; wall time of each process including start-up. {cores} cores; load average {load0:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end (nothing else running).\n\n"
        + table(["case", "processes", "wall s (each)", "slowest / two 1-thread runs"], rows)
    )
    write_section("occsdf-threads", "Two shapegen runs at once: sharing the cores", body, dry_run=args.no_write)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--timing-steps", type=int, default=10)
    ap.add_argument("--timing-presets", nargs="+", help="presets to time (default: --preset)")
    ap.add_argument("--profile", action="store_true", help="also profile --timing-steps steps of --preset (cProfile)")
    ap.add_argument("--timing-kitchen", action="store_true", help="also time the presets on the real kitchen (../shared)")
    ap.add_argument("--views", type=int, default=24)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="extra config overrides for both variants")
    ap.add_argument("--room", help="existing synthetic room folder (default: render one)")
    ap.add_argument("--kitchen", nargs="?", const="default", help="run only the real-kitchen comparison (RGB-D folder; "
                    "default ../shared/data/scene_7scenes_redkitchen) and write the occsdf-kitchen section")
    ap.add_argument("--kitchen-steps", type=int, default=100, help="Occ-SDF training steps on the kitchen")
    ap.add_argument("--kitchen-stride", type=int, default=4, help="train on every n-th kitchen frame")
    ap.add_argument("--kitchen-downscale", type=int, default=4, help="training image downscale (4: 160x120)")
    ap.add_argument("--tsdf-voxel", type=float, default=0.02, help="reference TSDF voxel size (m)")
    ap.add_argument("--tsdf-trunc", type=float, default=0.08, help="reference TSDF truncation (m)")
    ap.add_argument("--max-depth", type=float, default=5.0, help="sensor depth limit and culling range (m)")
    ap.add_argument("--work", default="runs/occsdf_claim", help="claim ablation: folder for the room, runs and metrics")
    ap.add_argument("--claim-run", choices=list(VARIANTS), help="train and evaluate one variant on the claim room (resumable)")
    ap.add_argument("--claim-seed", type=int, default=0, help="seed of --claim-run")
    ap.add_argument("--claim-report", action="store_true", help="aggregate the finished claim runs in --work into docs/benchmarks.md")
    ap.add_argument("--no-write", action="store_true", help="print the section instead of writing docs/benchmarks.md")
    ap.add_argument("--threads-check", action="store_true", help="time shapegen reconstruct alone and two at once (torch's "
                    "default threads, shapegen's core sharing, one thread each) and write the occsdf-threads section")
    ap.add_argument("--threads-steps", type=int, default=150, help="steps per run of --threads-check")
    args = ap.parse_args()
    if args.threads_check:
        threads_check(args)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.claim_run:
        claim_run(args)
        return
    if args.claim_report:
        claim_report(args)
        return
    if args.kitchen:
        kitchen(args)
        return

    t0 = time.perf_counter()
    room = Path(args.room) if args.room else write_room(
        Path(tempfile.mkdtemp()) / "room", RoomSynthConfig(num_views=args.views, width=args.size, height=args.size))
    synth_s = time.perf_counter() - t0
    scene = load_scene(room)
    print(f"room: {room} ({scene.num_images} views {scene.width}x{scene.height}, rendered in {synth_s:.0f} s)", flush=True)

    # ---------------------------------------------------------------- timing
    scenes = [("synthetic room", scene)]
    if args.timing_kitchen:
        from shapegen.testing.bench import shared_data_root

        scenes.append(("kitchen (every 4th frame, 160x120, sensor depth)",
                       load_scene(shared_data_root() / "scene_7scenes_redkitchen", downscale=4, stride=4)))
    rows = []
    load0 = os.getloadavg()[0]
    for scene_name, sc in scenes:
        for preset in args.timing_presets or [args.preset]:
            cfg = preset_config(preset, args.overrides)
            model = build_for_scene(cfg, sc)
            train(model, 2)
            times: list[float] = []
            train(model, args.timing_steps, times)
            per_step = statistics.median(times)
            rows.append([scene_name, preset, cfg.train.rays_per_batch, args.timing_steps, f"{per_step:.3f}",
                         f"{per_step * cfg.train.max_steps / 60:.1f} ({cfg.train.max_steps} steps)", f"{peak_rss_mib():.0f}",
                         torch.get_num_threads()])
            print(rows[-1], flush=True)
    profile = ""
    if args.profile:
        import cProfile
        import io
        import pstats

        model = build_for_scene(preset_config(args.preset, args.overrides), scene)
        train(model, 2)
        prof = cProfile.Profile()
        prof.enable()
        train(model, args.timing_steps)
        prof.disable()
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf)
        total = stats.total_tt
        top = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:8]
        prow = [[f"`{fn[2]}` ({Path(fn[0]).name}:{fn[1]})", f"{tt / total:.0%}", f"{ct / total:.0%}"] for fn, (_, _, tt, ct, _) in top]
        profile = (f"\n\n### Where a {args.preset} step goes (cProfile over {args.timing_steps} steps on the synthetic room)\n\n"
                   + table(["function", "own time", "with callees"], prow))
    made = f"rendered in {synth_s:.0f} s" if not args.room else "an existing folder made by `shapegen room synth`"
    body = (
        f"Synthetic room: {scene.num_images} views at {scene.width}x{scene.height} (`RoomSynthConfig`), {made}. "
        f"Load average (1 min) {load0:.1f} at the start and {os.getloadavg()[0]:.1f} at the end of the timing "
        "(nothing else running; the start value lags behind earlier work).\n\n"
        "### Training cost per preset (CPU)\n\n"
        + table(["scene", "preset", "rays/step", "steps timed", "s/step (median)", "min for the preset's schedule (extrapolated)",
                 "peak RSS MiB (process)", "threads"], rows)
        + "\n\nThe schedule time is the median step time x max_steps, not measured over the whole schedule; "
        "previews and the final mesh add a little."
        + profile
    )
    print(body, flush=True)

    write_section("occsdf", "Occ-SDF hybrid: training cost per preset", body, dry_run=args.no_write)


if __name__ == "__main__":
    main()
