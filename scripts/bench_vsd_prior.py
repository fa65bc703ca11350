"""Text to 3D from the render prior: the prior alone, then VSD against SDS per class.

Measured (``--model``, the shipped ``render-prior`` by default; ``--data`` the renders it was
trained on, ``shapegen data renders -o data/render_prior --config render_prior``):

* prior alone: ``--samples`` DDIM samples (50 steps, guidance 5) per class from the class word,
  each classified by its nearest training render (L2 over the 32x32 RGB pixels, all looks);
  class accuracy per class;
* VSD (``--particles`` particles, guidance 7.5) and SDS (one particle per seed, guidance 100) on
  ``configs/vsd/cpu.yaml`` with prompt ``a CLASS``, each run as a fresh ``shapegen text-to-3d``
  process (wall time; peak RSS of the child). Every extracted mesh (a particle, or an SDS seed) is
  centred and scaled to a unit bounding-box diagonal, sampled (2048 points), and classified by
  its Chamfer-nearest held-out procedural shape (``split == test`` of the render set's settings:
  shapes never trained on) of the benchmarked classes; a run without a surface is a miss.
  Diversity: mean pairwise Chamfer-L2 between the meshes of one class (VSD: its particles; SDS:
  its seeds, ``--particles`` of them);
* a sheet of renders (one row per class and guidance) in ``--out``.

    python scripts/bench_vsd_prior.py --data data/render_prior --out runs/bench_vsd_prior
    python scripts/bench_vsd_prior.py --data data/render_prior --classes chair,table,lamp,mug,vase --steps 1000
    python scripts/bench_vsd_prior.py ... --prior-only          # the first table alone (minutes)

Every torch command of the benchmark runs on the calling process's threads; run it under one
thread for figures comparable with the presets' timings.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

CLASSES = ("chair", "table", "lamp", "mug", "vase")


def _normalised_points(vertices: torch.Tensor, faces: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    from shapegen.geometry.mesh import Mesh
    from shapegen.geometry.sampling import sample_surface

    v = vertices.float()
    lo, hi = v.amin(0), v.amax(0)
    v = (v - (lo + hi) / 2) / max(float((hi - lo).norm()), 1e-9)
    return sample_surface(Mesh(v, faces), n, generator=torch.Generator().manual_seed(seed)).points.float()


def prior_accuracy(model: str, data: str, classes: list[str], samples: int, seed: int) -> tuple[list[list], np.ndarray]:
    """Rows ``[class, accuracy, confused with]`` of the prior's samples and their sheet (uint8)."""
    from shapegen.data.render_set import read_render_set
    from shapegen.guidance.prior import load_stable_diffusion
    from shapegen.methods.render_prior import sample_images

    sd = load_stable_diffusion(model)
    images, _, names = read_render_set(data, "train")
    ref = images.float().div(255).flatten(1)
    rows, sheet = [], []
    for cls in classes:
        x = sample_images(sd, [cls] * samples, steps=50, guidance_scale=5.0, seed=seed)
        nearest = torch.cdist(x.flatten(1), ref).argmin(1)
        got = [names[int(i)] for i in nearest]
        wrong = sorted({g for g in got if g != cls})
        rows.append([cls, sum(g == cls for g in got) / samples, ", ".join(wrong) or "-"])
        sheet.append(torch.cat(list(x.permute(0, 2, 3, 1)), 1))
    grid = (torch.cat(sheet, 0) * 255).round().to(torch.uint8).numpy()
    return rows, np.kron(grid, np.ones((2, 2, 1), np.uint8))


def held_out_shapes(data: str, classes: list[str], points: int) -> tuple[torch.Tensor, list[str]]:
    """Point clouds of the held-out (test) procedural shapes of ``classes`` and their class names."""
    from omegaconf import OmegaConf

    from shapegen.data.procedural import generate, to_mesh
    from shapegen.data.procedural_set import parse_splits, split_of

    settings = OmegaConf.to_container(OmegaConf.load(Path(data) / "renders.yaml"))
    splits = parse_splits(settings["split"])
    clouds, names = [], []
    for cls in classes:
        for i in range(settings["per_class"]):
            if split_of(splits, settings["seed"], cls, i) != "test":
                continue
            mesh = to_mesh(generate(cls, i, settings["seed"], extent=settings["extent"]), 48)
            clouds.append(_normalised_points(mesh.vertices, mesh.faces, points, i))
            names.append(cls)
    return torch.stack(clouds), names


def _child_run(prompt: str, out: Path, overrides: list[str]) -> dict:
    """``shapegen text-to-3d`` in a fresh process: wall seconds and the child's peak RSS (MiB)."""
    cmd = [sys.executable, "-m", "shapegen.cli", "text-to-3d", prompt, "--method", "vsd", "--preset", "cpu", "-o", str(out),
           "--no-progress", "--fresh"]
    for o in overrides:
        cmd += ["--set", o]
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if res.returncode != 0:
        print(f"note: {prompt} {overrides} failed: {res.stderr.strip().splitlines()[-1:]}", flush=True)
    # ru_maxrss of the children is the largest so far: a later, smaller child does not lower it.
    return {"seconds": seconds, "peak_mib": max(peak, before) / 1024, "ok": res.returncode == 0}


def _meshes(out: Path) -> list[Path]:
    parts = sorted(out.glob("particle_*.glb"))
    return parts or ([out / "model.glb"] if (out / "model.glb").is_file() else [])


def distillation(args, classes: list[str], ref: torch.Tensor, ref_names: list[str]) -> tuple[list[list], list[np.ndarray]]:
    """One row per (class, guidance) and one sheet row of renders per (class, guidance)."""
    import trimesh

    from renderers.preview import render_mesh
    from shapegen.geometry.metrics import chamfer_distance_matrix

    modes = {
        "VSD": [f"particles={args.particles}", "guidance.mode=vsd", "guidance.guidance_scale=7.5"],
        "SDS": ["particles=1", "guidance.mode=sds", "guidance.guidance_scale=100"],
    }
    rows, sheet = [], []
    for cls in classes:
        for mode, overrides in modes.items():
            runs = [(Path(args.out) / f"{cls}_{mode.lower()}", 0)] if mode == "VSD" else \
                [(Path(args.out) / f"{cls}_{mode.lower()}_seed{s}", s) for s in range(args.particles)]
            seconds, peak, clouds, tiles, misses = 0.0, 0.0, [], [], 0
            for out, seed in runs:
                r = _child_run(f"a {cls}", out, [*overrides, f"model={args.model}", f"seed={seed}", f"steps={args.steps}"])
                seconds += r["seconds"]
                peak = max(peak, r["peak_mib"])
                meshes = _meshes(out) if r["ok"] else []
                misses += (args.particles if mode == "VSD" else 1) - len(meshes)
                for path in meshes:
                    m = trimesh.load(path, force="mesh")
                    v, f = torch.as_tensor(np.asarray(m.vertices)), torch.as_tensor(np.asarray(m.faces))
                    clouds.append(_normalised_points(v, f, ref.shape[1], 0))
                    tiles.append(render_mesh(v.float(), f.long(), width=96, height=96))
            hits = 0
            if clouds:
                d = chamfer_distance_matrix(torch.stack(clouds), ref)
                hits = sum(ref_names[int(j)] == cls for j in d.argmin(1))
                pair = chamfer_distance_matrix(torch.stack(clouds), torch.stack(clouds))
                k = len(clouds)
                diversity = float(pair.sum() / (k * (k - 1))) if k > 1 else float("nan")
            else:
                diversity = float("nan")
            total = args.particles
            rows.append([cls, mode, f"{hits}/{total}", hits / total, diversity, seconds / len(runs), peak, misses])
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
    p.add_argument("--steps", type=int, default=1000, help="NeRF steps per run (configs/vsd/cpu.yaml: 1000)")
    p.add_argument("--points", type=int, default=2048, help="surface points per shape for the Chamfer distances")
    p.add_argument("--out", default="runs/bench_vsd_prior", help="run folders and the sheets")
    p.add_argument("--prior-only", action="store_true", help="only the prior's sample accuracy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-write", action="store_true", help="print the tables without updating docs/benchmarks.md")
    args = p.parse_args()
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
            f"each classified by its nearest training render (pixel L2). Sheet: `{out / 'prior_samples.png'}` (rows: "
            f"{', '.join(classes)}). {time.perf_counter() - t0:.0f} s.\n\n"
            + table(["class", "accuracy", "confused with"], rows))
    if not args.prior_only:
        ref, ref_names = held_out_shapes(args.data, classes, args.points)
        drows, sheet = distillation(args, classes, ref, ref_names)
        save_image(out / "distillation.png", np.concatenate(sheet, 0))
        vsd = [r[3] for r in drows if r[1] == "VSD"]
        sds = [r[3] for r in drows if r[1] == "SDS"]
        body += (f"\n\nText to 3D, `configs/vsd/cpu.yaml` with `--model {args.model}`, {args.steps} NeRF steps, prompt `a CLASS`: "
                 f"VSD with {args.particles} particles (guidance 7.5) and SDS with guidance 100 ({args.particles} seeds). "
                 f"Class: Chamfer-nearest of {len(ref_names)} held-out procedural shapes of these classes; diversity: mean "
                 f"pairwise Chamfer-L2 (unit bounding-box diagonal) of the class's meshes. Time: wall seconds per "
                 f"text-to-3d process; peak: the largest child RSS so far. Mean class accuracy: VSD {np.mean(vsd):.2f}, "
                 f"SDS {np.mean(sds):.2f}. Sheet: `{out / 'distillation.png'}` (rows: each class's VSD then SDS).\n\n"
                 + table(["class", "guidance", "right", "accuracy", "diversity", "s per run", "peak MiB", "no surface"], drows))
    body += f"\n\nLoad average at the start (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}."
    write_section("vsd_prior", "Text to 3D from the render prior (VSD vs SDS)", body, dry_run=args.no_write)
    (out / "summary.json").write_text(json.dumps({"body": body}, indent=1))


if __name__ == "__main__":
    main()
