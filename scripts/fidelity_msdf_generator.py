"""Fidelity check of the Mosaic-SDF generator on a handful of real meshes (no large data set).

Converts a few chairs and tables from ``../shared/data/meshes_chairs_tables`` to M-SDFs, trains a
small class-conditioned generator on them and, every ``--eval-every`` steps, samples shapes of
each class, decodes them and measures the Chamfer-L2 distance (FPS point clouds) to the training
shapes of each class. The check passes once every class's samples lie closer, on average, to
their own class's training shapes than to the other class's. Steps and time are recorded in the
``msdf-fidelity`` section of docs/benchmarks.md.

Conversion: until the representation's full conversion with refinement (issue 4) lands, this
uses its initialisation only: FPS centres over a dense surface sample, one shared scale chosen
so the cubes cover every surface sample (``s = 1.2 max_y min_i ||y - p_i||_inf``), and the exact
signed distance at the grid nodes.

Usage: ``python scripts/fidelity_msdf_generator.py [--per-class 3] [--n 128] [--k 5] [--max-steps 3000]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _benchlib as bl  # noqa: E402

from shapegen.config import load_config, resolve_preset  # noqa: E402
from shapegen.data.msdf_dataset import MSDFDataConfig  # noqa: E402
from shapegen.diffusion.flow_matching import draw_training_batch, flow_matching_loss  # noqa: E402
from shapegen.geometry.generation_eval import farthest_point_sampling  # noqa: E402
from shapegen.geometry.metrics import chamfer_distance_matrix  # noqa: E402
from shapegen.methods.msdf import MSDFConfig, build_for_training, decode_to_mesh, save_msdf  # noqa: E402


def convert(path: Path, n: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mesh -> (M-SDF tensor, FPS surface cloud of 512 points), in the unit cube."""
    from shapegen.geometry.mesh_io import load_mesh, normalize_mesh
    from shapegen.geometry.sampling import sample_surface
    from shapegen.geometry.sdf import MeshSDF

    mesh, _ = normalize_mesh(load_mesh(path), mode="cube", padding=0.9)
    gen = torch.Generator().manual_seed(0)
    dense = sample_surface(mesh, 20_000, generator=gen).points.float()
    centres = dense[farthest_point_sampling(dense, n)]
    cover = torch.cdist(dense, centres, p=float("inf")).min(1).values.max()
    s = float(1.2 * cover)
    g = torch.linspace(-1, 1, k)
    grid = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    nodes = (centres[:, None] + s * grid[None]).reshape(-1, 3)
    values = MeshSDF(mesh)(nodes).reshape(n, -1).float()
    tensor = torch.cat([centres, torch.full((n, 1), s), values], 1)
    return tensor, dense[farthest_point_sampling(dense, 512)]


def cloud_of(tensor: torch.Tensor, k: int, resolution: int) -> torch.Tensor | None:
    from shapegen.geometry.sampling import sample_surface

    mesh = decode_to_mesh(tensor, k, resolution)
    if mesh.num_faces == 0:
        return None
    pts = sample_surface(mesh, 2048, generator=torch.Generator().manual_seed(0)).points.float()
    return pts[farthest_point_sampling(pts, 512)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=3)
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--max-steps", type=int, default=3000)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--samples", type=int, default=3, help="samples per class at each evaluation")
    ap.add_argument("--resolution", type=int, default=48)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    src = bl.shared_data_root() / "meshes_chairs_tables"
    picks = {"chair": sorted(src.glob("ChairNoArms*.obj"))[: args.per_class], "table": sorted(src.glob("Table*.obj"))[: args.per_class]}
    work = Path(tempfile.mkdtemp(prefix="msdf_fidelity_"))
    clouds: dict[str, list[torch.Tensor]] = {}
    t0 = time.perf_counter()
    for cls, files in picks.items():
        for f in files:
            tensor, cloud = convert(f, args.n, args.k)
            save_msdf(tensor, args.k, work / cls / f"{f.stem}.msdf.npz")
            clouds.setdefault(cls, []).append(cloud)
    convert_s = time.perf_counter() - t0
    print(f"converted {sum(map(len, picks.values()))} meshes in {convert_s:.1f} s -> {work}")

    cfg = load_config(MSDFConfig, resolve_preset("tiny", "msdf"), [
        "model.width=128", "model.depth=4", "model.heads=4", "train.lr=5e-4", "train.ema_decay=0.995", "cond_drop=0.1"])
    cfg.data = MSDFDataConfig(root=str(work), batch_size=6)
    torch.manual_seed(0)
    model, dm = build_for_training(cfg)
    data = dm.dataset.tensors
    labels = torch.tensor(dm.dataset.labels)
    opt = torch.optim.AdamW(model.net.parameters(), lr=cfg.train.lr)
    gen = torch.Generator().manual_seed(0)
    rows: list[list[object]] = []
    passed_at = None
    t_train = time.perf_counter()
    for step in range(1, args.max_steps + 1):
        idx = torch.randint(0, data.shape[0], (cfg.data.batch_size,), generator=gen)
        fm = draw_training_batch(model.normalize(data[idx]), cfg.sigma_min, gen)
        drop = torch.rand(idx.shape[0], generator=gen) < cfg.cond_drop
        loss = flow_matching_loss(model.net(fm.xt, fm.t, labels[idx], drop=drop), fm.target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            decay = min(cfg.train.ema_decay, (1 + step) / (10 + step))
            for e, p in zip(model.ema.parameters(), model.net.parameters()):
                e.lerp_(p, 1 - decay)
        if step % args.eval_every:
            continue
        elapsed = time.perf_counter() - t_train
        ok, cells = True, []
        for ci, cls in enumerate(dm.classes):
            samples = model.sample(args.samples, cls=cls, steps=25, solver="midpoint", guidance=2.0, seed=step)
            got = [c for c in (cloud_of(t, args.k, args.resolution) for t in samples) if c is not None]
            if not got:
                ok = False
                cells.append(f"{cls}: no surface")
                continue
            d = {other: float(chamfer_distance_matrix(torch.stack(got), torch.stack(clouds[other])).min(1).values.mean()) for other in dm.classes}
            own, other = d[cls], min(v for c, v in d.items() if c != cls)
            ok &= own < other
            cells.append(f"{cls}: own {own:.4f} / other {other:.4f} ({len(got)}/{args.samples} decoded)")
        rows.append([step, f"{elapsed:.0f}", f"{float(loss):.3f}", "; ".join(cells), "yes" if ok else "no"])
        print(rows[-1], flush=True)
        if ok and passed_at is None:
            passed_at = (step, elapsed)
            break
    body = (
        f"{args.per_class} chairs (ChairNoArms*) and {args.per_class} tables from meshes_chairs_tables, n = {args.n}, k = {args.k}, "
        f"converted with the unrefined initialisation in {convert_s:.0f} s; generator 4 x 128, batch 6, AdamW 5e-4, "
        f"midpoint 25 steps, guidance 2. Chamfer-L2 (512 FPS points) from each class's samples to the nearest "
        f"training shape of each class (mean over samples).\n\n"
        + bl.table(["step", "train s", "loss", "Chamfer to own / nearest other class", "pass"], rows)
        + ("\n\nResult: " + (f"passed at step {passed_at[0]} after {passed_at[1]:.0f} s of training." if passed_at else
                             f"not passed within {args.max_steps} steps."))
    )
    if args.no_write:
        print(body)
    else:
        bl.write_section("msdf-fidelity", "Mosaic-SDF generator: fidelity check on real chairs and tables", body)


if __name__ == "__main__":
    main()
