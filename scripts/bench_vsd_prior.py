"""Text to 3D from the render prior: the prior alone, then VSD against SDS per class.

Measured (``--model``, the shipped ``render-prior`` by default; ``--data`` the renders it was
trained on, ``shapegen data renders -o data/render_prior --config render_prior``):

* prior alone: ``--samples`` DDIM samples (50 steps, guidance 5) per class from the class word,
  each classified by its nearest training render (all classes and looks) by L2 over the 32x32 RGB
  pixels and by L2 over the foreground silhouettes; class accuracy per class;
* whether the prior knows the view suffix (``view_accuracy``): held-out renders denoised from the
  noisy end under each suffix, the least error picks the view. A prior blind to it gives every
  camera the same image to match, and the distilled object looks like one side from all sides;
* VSD (``--particles`` particles, guidance 7.5) and SDS (one particle per seed, guidance 100) on
  ``configs/vsd/cpu.yaml`` with prompt ``a CLASS``, each run as a fresh ``shapegen text-to-3d``
  process (wall time; peak RSS of the child; ``--jobs`` of them at once). Every particle and every
  SDS seed gets ``--steps`` NeRF updates on the preset's schedule: VSD updates one particle per step
  (Algorithm 1), so its run takes ``--particles`` times the steps. Every extracted mesh (a particle, or an SDS seed) is
  centred and scaled to a unit bounding-box diagonal, sampled (2048 points), and classified by
  its Chamfer-nearest held-out procedural shape (``split == test`` of the render set's settings:
  shapes never trained on) of the benchmarked classes; a run without a surface is a miss.
  A second judge ("any yaw") takes the nearest shape over the mesh turned about the up axis in
  ``--yaws`` equal steps, since a chair distilled side-on is still a chair (the procedural
  shapes all face the same way, the distilled ones face where the views' captions put them).
  Diversity: mean pairwise Chamfer-L2 between the meshes of one class (VSD: its particles; SDS:
  its seeds, ``--particles`` of them);
* a sheet of renders (one row per class and guidance) in ``--out``.

A finished run leaves ``RUN.json`` (its settings, time and peak memory) beside its folder, and a
rerun of the same command reuses it, so a killed benchmark resumes where it stopped; ``--fresh``
runs everything again.

    python scripts/bench_vsd_prior.py --data data/render_prior --out runs/bench_vsd_prior
    OMP_NUM_THREADS=1 python scripts/bench_vsd_prior.py --data data/render_prior --jobs 2   # two runs at once on 2 cores
    python scripts/bench_vsd_prior.py ... --prior-only          # the prior's two tables alone (minutes), in their own section

Every torch command of the benchmark runs on the calling process's threads; run it under one
thread for figures comparable with the presets' timings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from shapegen.geometry.metrics import chamfer_distance_matrix

CLASSES = ("chair", "table", "lamp", "mug", "vase")
CPU_PRESET = Path(__file__).resolve().parents[1] / "configs" / "vsd" / "cpu.yaml"


def _normalised_points(vertices: torch.Tensor, faces: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    from shapegen.geometry.mesh import Mesh
    from shapegen.geometry.sampling import sample_surface

    v = vertices.float()
    lo, hi = v.amin(0), v.amax(0)
    v = (v - (lo + hi) / 2) / max(float((hi - lo).norm()), 1e-9)
    return sample_surface(Mesh(v, faces), n, generator=torch.Generator().manual_seed(seed)).points.float()


def yaw_turns(vertices: torch.Tensor, yaws: int) -> list[torch.Tensor]:
    """``vertices`` turned about the up (y) axis by ``2 pi k / yaws``, ``k = 0 .. yaws - 1``."""
    out = []
    for k in range(yaws):
        a = 2 * np.pi * k / yaws
        c, s = float(np.cos(a)), float(np.sin(a))
        turn = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=vertices.dtype)
        out.append(vertices @ turn.T)
    return out


def judge(clouds_per_yaw: torch.Tensor, ref: torch.Tensor, ref_names: list[str]) -> tuple[list[str], list[str]]:
    """Classes of ``(B, Y, N, 3)`` clouds (``Y`` yaw turns, turn 0 as posed): the Chamfer-nearest
    reference as posed, and the nearest over all turns."""
    b, y = clouds_per_yaw.shape[:2]
    d = chamfer_distance_matrix(clouds_per_yaw.flatten(0, 1), ref, pair_chunk=8).view(b, y, -1)
    posed = [ref_names[int(j)] for j in d[:, 0].argmin(1)]
    any_yaw = [ref_names[int(j)] for j in d.amin(1).argmin(1)]
    return posed, any_yaw


def silhouettes(images: torch.Tensor, tol: float = 0.1) -> torch.Tensor:
    """``(N, H*W)`` foreground masks of ``(N, 3, H, W)`` images in [0, 1]: pixels more than ``tol`` from
    the background, white or black by the mean of the border (the render set's looks)."""
    border = torch.cat([images[..., 0, :], images[..., -1, :], images[..., :, 0], images[..., :, -1]], -1).mean((1, 2))
    bg = (border > 0.5).float()[:, None, None, None]
    return ((images - bg).abs().amax(1) > tol).float().flatten(1)


def prior_accuracy(model: str, data: str, classes: list[str], samples: int, seed: int) -> tuple[list[list], np.ndarray]:
    """Rows ``[class, pixel accuracy, silhouette accuracy, confused with, held-out renders' two accuracies]`` of the prior's samples and their sheet (uint8).

    Each sample's class is that of its nearest training render (all eleven classes, all looks): by L2
    over the RGB pixels, and by the L2 (Hamming) distance of the foreground silhouettes, which colour,
    look and the thin parts' share of the pixels sway less."""
    from shapegen.data.render_set import read_render_set
    from shapegen.guidance.prior import load_stable_diffusion
    from shapegen.methods.render_prior import sample_images

    sd = load_stable_diffusion(model)
    images, _, names = read_render_set(data, "train")
    images = images.float().div(255)
    ref, ref_sil = images.flatten(1), silhouettes(images)
    held, _, held_names = read_render_set(data, "test")
    held = held.float().div(255)

    def scores(x: torch.Tensor, cls: str) -> tuple[float, float, list[str]]:
        by_pixels = [names[int(i)] for i in torch.cdist(x.flatten(1), ref).argmin(1)]
        by_outline = [names[int(i)] for i in torch.cdist(silhouettes(x), ref_sil).argmin(1)]
        return float(np.mean([g == cls for g in by_pixels])), float(np.mean([g == cls for g in by_outline])), by_outline

    rows, sheet = [], []
    for cls in classes:
        x = sample_images(sd, [cls] * samples, steps=50, guidance_scale=5.0, seed=seed)
        pixels, outline, got = scores(x, cls)
        ceiling = scores(held[[i for i, n in enumerate(held_names) if n == cls]], cls)
        wrong = sorted({g for g in got if g != cls})
        rows.append([cls, pixels, outline, ", ".join(wrong) or "-", ceiling[0], ceiling[1]])
        sheet.append(torch.cat(list(x.permute(0, 2, 3, 1)), 1))
    grid = (torch.cat(sheet, 0) * 255).round().to(torch.uint8).numpy()
    return rows, np.kron(grid, np.ones((2, 2, 1), np.uint8))


def view_accuracy(model: str, data: str, classes: list[str], per_class: int = 48, seed: int = 0,
                  timesteps: tuple[int, ...] = (300, 500, 700, 900), split: str = "test") -> list[list]:
    """Rows ``[class, renders, suffix accuracy, suffix chance, camera accuracy, camera chance]``: does
    the prior know which side of the object an image shows, from the view suffix of its prompt (what
    tells VSD's prior the camera) and, for a camera-conditioned prior, from the camera itself?

    Each held-out (``split``) render captioned with a view suffix is noised at ``timesteps`` and
    denoised under each of the four suffixes in turn; the suffix with the least error of the
    predicted clean image is the prior's view (a tie is a miss). Chance: the share of the class's most common view.
    A camera-conditioned prior is also given the render's camera and the camera turned by 90, 180
    and 270 degrees about the up axis (its own suffix kept); chance 1/4. (NaN: no camera input.)"""
    from shapegen.data.render_set import read_render_cameras, read_render_set
    from shapegen.guidance.prior import camera_features, is_camera_prior, load_stable_diffusion
    from shapegen.guidance.vsd import VIEW_SUFFIXES
    from shapegen.methods.render_prior import predicted_x0

    sd = load_stable_diffusion(model)
    images, captions, names = read_render_set(data, split)
    cameras = read_render_cameras(data, split)
    suffixes = list(VIEW_SUFFIXES[1:])
    abar = sd.scheduler.alphas_cumprod.float()
    with_camera = is_camera_prior(sd.unet)

    def states(texts: list[str]) -> torch.Tensor:
        ids = sd.tokenizer(texts, padding="max_length", max_length=sd.tokenizer.model_max_length, truncation=True,
                           return_tensors="pt").input_ids
        return sd.text_encoder(ids)[0].float()

    def errors(x0: torch.Tensor, candidates: list[dict], gen: torch.Generator) -> torch.Tensor:
        """``(N, K)`` summed error of the clean image predicted under each candidate's inputs."""
        err = torch.zeros(len(x0), len(candidates))
        for t in timesteps:
            a = abar[t]
            xt = a.sqrt() * x0 + (1 - a).sqrt() * torch.randn(x0.shape, generator=gen)
            for k, inputs in enumerate(candidates):
                out = sd.unet(xt, torch.full((len(x0),), t), **inputs).sample.float()
                x0_hat = predicted_x0(out, xt, a, sd.scheduler.config.prediction_type)
                err[:, k] += (x0_hat - x0).square().mean((1, 2, 3))
        return err

    def hits(err: torch.Tensor, truth: torch.Tensor) -> float:
        """Share of rows whose true candidate has strictly the least error (a tie is a miss)."""
        mine = err.gather(1, truth[:, None])
        others = err.scatter(1, truth[:, None], float("inf"))
        return float((mine[:, 0] < others.amin(1)).float().mean())

    rows = []
    for cls in classes:
        pick = [i for i, (c, n) in enumerate(zip(captions, names)) if n == cls and c.endswith(tuple(suffixes))]
        gen = torch.Generator().manual_seed(seed)
        pick = [pick[int(j)] for j in torch.randperm(len(pick), generator=gen)[:per_class]]
        if not pick:
            rows.append([cls, 0, *[float("nan")] * 4])
            continue
        truth = torch.tensor([next(k for k, s in enumerate(suffixes) if captions[i].endswith(s)) for i in pick])
        bare = [captions[i][: captions[i].rfind(",")] for i in pick]
        x0 = images[pick].float() / 127.5 - 1.0
        az, el = cameras[pick, 0], cameras[pick, 1]
        own = {"class_labels": camera_features(az, el)} if with_camera else {}
        with torch.no_grad():
            err = errors(x0, [{"encoder_hidden_states": states([b + s for b in bare]), **own} for s in suffixes], gen)
            accuracy = hits(err, truth)
            chance = float(torch.bincount(truth, minlength=len(suffixes)).max() / len(truth))
            cam_accuracy = cam_chance = float("nan")
            if with_camera:
                cond = states([captions[i] for i in pick])
                turns = [{"encoder_hidden_states": cond, "class_labels": camera_features(az + 90.0 * k, el)} for k in range(4)]
                cam_accuracy = hits(errors(x0, turns, gen), torch.zeros_like(truth))
                cam_chance = 0.25
        rows.append([cls, len(pick), accuracy, chance, cam_accuracy, cam_chance])
    return rows


def held_out_meshes(data: str, classes: list[str]) -> list[tuple[str, int, object]]:
    """``(class, index, mesh)`` of the held-out (test) procedural shapes of ``classes`` in the
    render set ``data`` (its ``renders.yaml`` settings)."""
    from omegaconf import OmegaConf

    from shapegen.data.procedural import generate, to_mesh
    from shapegen.data.procedural_set import parse_splits, split_of

    settings = OmegaConf.to_container(OmegaConf.load(Path(data) / "renders.yaml"))
    splits = parse_splits(settings["split"])
    return [(cls, i, to_mesh(generate(cls, i, settings["seed"], extent=settings["extent"]), 48))
            for cls in classes for i in range(settings["per_class"]) if split_of(splits, settings["seed"], cls, i) == "test"]


def held_out_shapes(shapes: list[tuple[str, int, object]], points: int, yaws: int = 1) -> tuple[torch.Tensor, list[str]]:
    """``(N, yaws, P, 3)`` point clouds of ``held_out_meshes``' shapes turned as by ``yaw_turns``
    (turn 0: as posed) and their class names."""
    clouds = [torch.stack([_normalised_points(t, mesh.faces, points, i) for t in yaw_turns(mesh.vertices.float(), yaws)])
              for _, i, mesh in shapes]
    return torch.stack(clouds), [cls for cls, _, _ in shapes]


def judge_ceiling(shapes: list[tuple[str, int, object]], classes: list[str], points: int, yaws: int) -> dict[str, list[float]]:
    """The judge on real shapes: each held-out shape classified by its nearest *other* held-out
    shape (leave one out), as posed and over ``yaws`` turns; per class ``[posed, any yaw]`` accuracy
    and ``"all"``."""
    turned, names = held_out_shapes(shapes, points, yaws)
    n = len(names)
    d = chamfer_distance_matrix(turned.flatten(0, 1), turned[:, 0], pair_chunk=8).view(n, yaws, n)
    d[torch.arange(n), :, torch.arange(n)] = float("inf")
    got = [[names[int(j)] for j in dd.argmin(1)] for dd in (d[:, 0], d.amin(1))]
    out = {c: [float(np.mean([g[k] == c for k, t in enumerate(names) if t == c])) for g in got] for c in classes}
    out["all"] = [float(np.mean([g[k] == t for k, t in enumerate(names)])) for g in got]
    return out


def _child_run(prompt: str, out: Path, overrides: list[str], fresh: bool = False) -> dict:
    """``shapegen text-to-3d`` in a fresh process: its wall seconds and its own peak RSS (MiB).

    The result is kept in ``out.json`` and reused by a later call with the same prompt and
    overrides (unless ``fresh``)."""
    record = out.parent / f"{out.name}.json"
    if not fresh and record.is_file():
        kept = json.loads(record.read_text())
        if kept.get("prompt") == prompt and kept.get("overrides") == overrides and kept.get("ok"):
            print(f"reusing {out} ({kept['seconds']:.0f} s)", flush=True)
            return kept
    cmd = [sys.executable, "-m", "shapegen.cli", "text-to-3d", prompt, "--method", "vsd", "--preset", "cpu", "-o", str(out),
           "--no-progress", "--fresh"]
    for o in overrides:
        cmd += ["--set", o]
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.parent / f"{out.name}.log"
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        # wait4 gives this child's own resource usage, so runs in parallel (--jobs) are told apart.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:]
        print(f"note: {prompt} {overrides} failed ({log}): {tail}", flush=True)
    result = {"prompt": prompt, "overrides": overrides, "seconds": seconds, "peak_mib": usage.ru_maxrss / 1024,
              "ok": proc.returncode == 0, "load": list(os.getloadavg())}
    tmp = record.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(record)
    print(f"{out}: {seconds:.0f} s", flush=True)
    return result


def _meshes(out: Path) -> list[Path]:
    parts = sorted(out.glob("particle_*.glb"))
    return parts or ([out / "model.glb"] if (out / "model.glb").is_file() else [])


def distillation(args, classes: list[str], ref: torch.Tensor, ref_names: list[str]) -> tuple[list[list], list[np.ndarray]]:
    """One row per (class, guidance) and one sheet row of renders per (class, guidance)."""
    import trimesh
    from omegaconf import OmegaConf

    from renderers.preview import render_mesh

    # One particle is updated per step (Algorithm 1), so a VSD run of K particles takes K times the
    # steps, with the preset's step milestones scaled alike: every shape, a particle or an SDS seed,
    # gets args.steps updates on the same schedule.
    preset = OmegaConf.load(CPU_PRESET)

    def schedule(steps: int) -> list[str]:
        """``steps`` steps with the preset's annealing and shading milestones scaled to them."""
        scale = steps / preset.steps
        return [f"steps={steps}", f"guidance.anneal_step={round(preset.guidance.anneal_step * scale)}",
                f"shading.start_step={round(preset.shading.start_step * scale)}"]

    k = args.particles
    modes = {
        "VSD": [f"particles={k}", "guidance.mode=vsd", "guidance.guidance_scale=7.5", *schedule(k * args.steps)],
        "SDS": ["particles=1", "guidance.mode=sds", "guidance.guidance_scale=100", *schedule(args.steps)],
    }
    plan = []  # (class, mode, out, overrides), in the order of the table
    for cls in classes:
        for mode, overrides in modes.items():
            runs = [(Path(args.out) / f"{cls}_{mode.lower()}", 0)] if mode == "VSD" else \
                [(Path(args.out) / f"{cls}_{mode.lower()}_seed{s}", s) for s in range(args.particles)]
            for out, seed in runs:
                plan.append((cls, mode, out, [*overrides, f"model={args.model}", f"seed={seed}"]))
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda job: _child_run(f"a {job[0]}", job[2], job[3], args.fresh), plan))
    rows, sheet = [], []
    for cls in classes:
        for mode in modes:
            done = [(job[2], r) for job, r in zip(plan, results) if job[0] == cls and job[1] == mode]
            seconds, peak, turned, tiles, misses = 0.0, 0.0, [], [], 0
            for out, r in done:
                seconds += r["seconds"]
                peak = max(peak, r["peak_mib"])
                meshes = _meshes(out) if r["ok"] else []
                misses += (args.particles if mode == "VSD" else 1) - len(meshes)
                for path in meshes:
                    m = trimesh.load(path, force="mesh")
                    v, f = torch.as_tensor(np.asarray(m.vertices)), torch.as_tensor(np.asarray(m.faces))
                    turned.append(torch.stack([_normalised_points(t, f, ref.shape[1], 0) for t in yaw_turns(v.float(), args.yaws)]))
                    tiles.append(render_mesh(v.float(), f.long(), width=96, height=96))
            hits, hits_yaw, got = 0, 0, []
            if turned:
                posed, any_yaw = judge(torch.stack(turned), ref, ref_names)
                hits, hits_yaw = sum(g == cls for g in posed), sum(g == cls for g in any_yaw)
                got = [f"{a}/{b}" for a, b in zip(posed, any_yaw)]
                clouds = torch.stack(turned)[:, 0]  # as posed
                pair = chamfer_distance_matrix(clouds, clouds)
                k = len(clouds)
                diversity = float(pair.sum() / (k * (k - 1))) if k > 1 else float("nan")
            else:
                diversity = float("nan")
            total = args.particles
            rows.append([cls, mode, f"{hits}/{total}", hits / total, f"{hits_yaw}/{total}", hits_yaw / total, " ".join(got) or "-",
                         diversity, seconds / len(done), peak, misses])
            blank = np.full((96, 96, 3), 255, np.uint8)
            sheet.append(np.concatenate(tiles + [blank] * (total - len(tiles)), 1))
            print(rows[-1], flush=True)
    return rows, sheet


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="the render set the prior was trained on (renders.csv, renders.yaml)")
    p.add_argument("--model", default="render-prior", help="the prior: render-prior or a diffusers folder")
    p.add_argument("--classes", default=",".join(CLASSES))
    p.add_argument("--samples", type=int, default=16, help="prior samples per class")
    p.add_argument("--particles", type=int, default=2, help="VSD particles (and SDS seeds) per class")
    p.add_argument("--steps", type=int, default=1000, help="NeRF updates per shape (cpu.yaml: 1000); a VSD run of K particles takes K times the steps")
    p.add_argument("--points", type=int, default=2048, help="surface points per shape for the Chamfer distances")
    p.add_argument("--out", default="runs/bench_vsd_prior", help="run folders and the sheets")
    p.add_argument("--prior-only", action="store_true", help="only the prior's checks (samples and views)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--yaws", type=int, default=8, help="turns about the up axis tried by the any-yaw judge")
    p.add_argument("--fresh", action="store_true", help="run every text-to-3d process again instead of reusing finished ones")
    p.add_argument("--jobs", type=int, default=1,
                   help="text-to-3d processes at once (give each one thread: OMP_NUM_THREADS=1 with --jobs 2 on 2 cores)")
    p.add_argument("--no-write", action="store_true", help="print the tables without updating docs/benchmarks.md")
    args = p.parse_args()
    if args.yaws < 1 or args.particles < 1 or args.steps < 1 or args.points < 2:
        p.error("--yaws, --particles and --steps take 1 or more, --points 2 or more")
    if not all((Path(args.data) / f).is_file() for f in ("renders.csv", "renders.yaml")):
        p.error(f"{args.data} has no renders.csv and renders.yaml; write them with 'shapegen data renders -o {args.data} --config render_prior'")
    from renderers.preview import save_image
    from shapegen.testing.bench import table, write_section

    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    t0 = time.perf_counter()
    rows, grid = prior_accuracy(args.model, args.data, classes, args.samples, args.seed)
    save_image(out / "prior_samples.png", grid)
    body = (f"Prior `{args.model}` alone: {args.samples} DDIM samples (50 steps, guidance 5) per class from the class word, "
            f"each classified by its nearest training render (all classes and looks) by pixel L2 and by silhouette (foreground "
            f"mask) L2; the last two columns put the held-out (test split) renders of the class through the same checks. "
            f"Sheet: `{out / 'prior_samples.png'}` (rows: "
            f"{', '.join(classes)}). {time.perf_counter() - t0:.0f} s.\n\n"
            + table(["class", "accuracy (pixels)", "accuracy (silhouette)", "confused with (silhouette)", "held-out renders (pixels)",
                     "held-out renders (silhouette)"], rows))
    t0 = time.perf_counter()
    views = view_accuracy(args.model, args.data, classes, seed=args.seed)
    body += ("\n\nDoes the prior know the view? Held-out renders with a view suffix (up to 48 per class), each noised at t = 300, "
             "500, 700, 900 and denoised under each of the four suffixes (front, side, back, overhead); the prior's view is the "
             "suffix with the least error of its predicted clean image (chance: the share of the class's most common view). A "
             "camera-conditioned prior is also given the render's camera and the camera turned by 90, 180, 270 degrees about the "
             "up axis (chance 1/4; NaN: the prior takes no camera). "
             f"{time.perf_counter() - t0:.0f} s.\n\n"
             + table(["class", "renders", "suffix accuracy", "chance", "camera accuracy", "chance"], views))
    if not args.prior_only:
        # The judge always chooses among the benchmark's classes, so a run of fewer classes is scored alike.
        judged = [*CLASSES, *(c for c in classes if c not in CLASSES)]
        shapes = held_out_meshes(args.data, judged)
        ref, ref_names = held_out_shapes(shapes, args.points)
        drows, sheet = distillation(args, classes, ref[:, 0], ref_names)
        ceiling = judge_ceiling(shapes, judged, args.points // 2, args.yaws)
        save_image(out / "distillation.png", np.concatenate(sheet, 0))
        vsd = [r[3] for r in drows if r[1] == "VSD"]
        sds = [r[3] for r in drows if r[1] == "SDS"]
        vsd_yaw = [r[5] for r in drows if r[1] == "VSD"]
        sds_yaw = [r[5] for r in drows if r[1] == "SDS"]
        body += (f"\n\nText to 3D, `configs/vsd/cpu.yaml` with `--model {args.model}`, {args.steps} NeRF updates per shape (a VSD run of "
                 f"{args.particles} particles: {args.particles * args.steps} steps, one particle per step, milestones scaled), prompt `a CLASS`: "
                 f"VSD with {args.particles} particles (guidance 7.5) and SDS with guidance 100 ({args.particles} seeds). "
                 f"Class: Chamfer-nearest of {len(ref_names)} held-out procedural shapes of these classes, as posed and over "
                 f"{args.yaws} turns about the up axis (any yaw; the judged classes per mesh are listed as posed/any yaw); diversity: mean "
                 f"pairwise Chamfer-L2 (unit bounding-box diagonal) of the class's meshes. Time: wall seconds per "
                 f"text-to-3d process, {args.jobs} at once on {os.environ.get('OMP_NUM_THREADS', 'all')} thread(s) each; peak: "
                 f"the largest RSS of the class's processes. Mean class accuracy as posed: VSD {np.mean(vsd):.2f}, "
                 f"SDS {np.mean(sds):.2f}; any yaw: VSD {np.mean(vsd_yaw):.2f}, SDS {np.mean(sds_yaw):.2f}. "
                 f"Sheet: `{out / 'distillation.png'}` (rows: each class's VSD then SDS). The judge on real shapes (each held-out "
                 f"shape by its nearest other one, {args.points // 2} points), as posed / any yaw: all {ceiling['all'][0]:.2f} / "
                 f"{ceiling['all'][1]:.2f}; " + ", ".join(f"{c} {ceiling[c][0]:.2f} / {ceiling[c][1]:.2f}" for c in classes) + ".\n\n"
                 + table(["class", "guidance", "right (posed)", "accuracy (posed)", "right (any yaw)", "accuracy (any yaw)",
                          "judged (posed/any yaw)", "diversity", "s per run", "peak MiB", "no surface"], drows))
    body += f"\n\nLoad average at the start (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}."
    if args.prior_only:  # its own section: checking a prior leaves the distillation table of the shipped one alone
        write_section("vsd_prior_alone", "The render prior alone (samples and views)", body, dry_run=args.no_write)
    else:
        loads = [json.loads(p.read_text()).get("load", [float("nan")])[0] for p in sorted(out.glob("*.json")) if p.name != "summary.json"]
        if loads:
            body += f" 1-min load average at the end of each text-to-3d run (runs reused from an earlier call keep theirs): {min(loads):.2f}-{max(loads):.2f}."
        write_section("vsd_prior", "Text to 3D from the render prior (VSD vs SDS)", body, dry_run=args.no_write)
    (out / "summary.json").write_text(json.dumps({"body": body}, indent=1))


if __name__ == "__main__":
    main()
