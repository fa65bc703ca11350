"""Mesh rasterisation throughput: the differentiable renderer vs the CPU preview renderer.

Meshes from ``../shared/data/meshes_classic`` (skipped if absent): ``stanford-bunny.obj``
(69k faces) and ``bunny_rsawhney.obj`` split once at edge midpoints (114k faces), normalised
to the unit cube, one view at 30 degrees azimuth / 20 elevation, 40 degrees field of view.
Rows, all on the same tensors in the same run (best of ``--repeat`` after one warm-up):

* ``preview.render_mesh``: the existing non-differentiable shaded preview (torch).
* ``rasterize visibility``: :func:`renderers.rasterize.rasterize` (face ids, differentiable
  barycentrics and depth), per backend.
* ``render_gbuffers fwd``: mask, anti-aliased alpha, depth, normals, face normals, colours.
* ``render_gbuffers fwd+bwd``: the same plus the backward pass of a mask + colour loss
  with respect to vertex positions and colours.

Triangles/s counts all faces of the mesh per second, pixels/s all image pixels.

    python scripts/bench_rasterize.py --threads 1      # writes the "rasterize" section
    python scripts/bench_rasterize.py --no-write --sizes 256
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import torch

from renderers.cameras import Intrinsics
from renderers.preview import orbit_camera, render_mesh
from renderers.rasterize import face_neighbors, rasterize, render_gbuffers, warp_import_error
from shapegen.devices import choose_device
from shapegen.testing.bench import shared_data_root, table, timeit, write_section


def load_meshes(root: Path) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    import trimesh

    out = []
    for name, split in (("stanford-bunny.obj", False), ("bunny_rsawhney.obj", True)):
        path = root / name
        if not path.exists():
            print(f"skip {name}: not found under {root}")
            continue
        tm = trimesh.load(path, force="mesh", process=False)
        v, f = tm.vertices, tm.faces
        if split:
            v, f = trimesh.remesh.subdivide(v, f)
            name = f"{name} (split once)"
        v = torch.tensor(v, dtype=torch.float32)
        lo, hi = v.amin(0), v.amax(0)
        v = (v - (lo + hi) / 2) / float((hi - lo).max())
        out.append((name, v, torch.tensor(f, dtype=torch.long)))
    return out


def bench_mesh(
    name: str,
    v: torch.Tensor,
    f: torch.Tensor,
    size: int,
    device: torch.device,
    backends: list[str],
    repeat: int,
    fov: float = 40.0,
) -> list[list[object]]:
    """Table rows for one mesh at one image size."""
    nb = face_neighbors(f).to(device)
    vd, fd = v.to(device), f.to(device)
    colors = torch.rand_like(vd)
    # Same framing as render_mesh's auto-fit: bounding sphere in view with a 5% margin.
    radius = float((v.amax(0) - v.amin(0)).norm() / 2)
    distance = 1.05 * radius / math.sin(math.radians(fov) / 2)
    c2w = orbit_camera(torch.zeros(3), distance, 30.0, 20.0).to(device)
    k = Intrinsics.from_fov(fov, size, size)
    rows = []

    def add(label: str, backend: str, fn) -> None:
        t = timeit(fn, repeat=repeat)
        mtri, mpix = len(f) / t / 1e6, size * size / t / 1e6
        rows.append([name, len(f), f"{size}^2", label, backend, t * 1e3, mtri, mpix])
        print(rows[-1], flush=True)

    if device.type == "cpu":
        add(
            "preview.render_mesh (shaded, no grad)",
            "torch",
            lambda: render_mesh(v, f, c2w=c2w, width=size, height=size, fov_deg=fov),
        )
    for be in backends:

        def fwd_bwd(be: str = be) -> None:
            vg, cg = vd.clone().requires_grad_(), colors.clone().requires_grad_()
            out = render_gbuffers(vg, fd, c2w, k, attributes=cg, neighbors=nb, backend=be)
            (out.alpha.square().mean() + out.attributes.square().mean()).backward()

        add("rasterize visibility", be, lambda be=be: rasterize(vd, fd, c2w, k, backend=be))
        add(
            "render_gbuffers fwd",
            be,
            lambda be=be: render_gbuffers(
                vd, fd, c2w, k, attributes=colors, neighbors=nb, backend=be
            ),
        )
        add("render_gbuffers fwd+bwd", be, fwd_bwd)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    root = shared_data_root()
    meshes = load_meshes(root / "meshes_classic")
    if not meshes:
        sys.exit(f"no meshes under {root / 'meshes_classic'}; nothing to benchmark")
    device = choose_device(args.device)
    backends = ["torch"] + (["warp"] if warp_import_error() is None else [])
    if warp_import_error() is not None:
        print(f"warp backend skipped: {warp_import_error()}")
    rows: list[list[object]] = []
    for name, v, f in meshes:
        for size in args.sizes:
            rows += bench_mesh(name, v, f, size, device, backends, args.repeat)
    body = table(["mesh", "faces", "image", "what", "backend", "ms", "Mtri/s", "Mpix/s"], rows)
    body += (
        f"\n\nBest of {args.repeat} after a warm-up; one view. The Warp backend replaces only"
        " visibility (face ids); barycentrics, interpolation, anti-aliasing and gradients are"
        " torch in every row. Warp runs a CPU launch on one thread; torch uses"
        f" {torch.get_num_threads()} threads. This CPU is shared with other jobs, so absolute"
        f" times are noisy (load average {load:.1f} on {os.cpu_count()} cores when the run started);"
        " compare rows of one run."
    )
    write_section("rasterize", f"Mesh rasterisation throughput ({device.type})", body, dry_run=args.no_write)


if __name__ == "__main__":
    main()
