"""Large meshes: ``shapegen info``, ``convert``, ``render`` and ``msdf encode`` from ~114k to ~1.8M faces.

Writes the ``large-mesh`` section of docs/benchmarks.md.

A real mesh (default ``meshes_classic/bunny_rsawhney.obj``: 28,576 faces, watertight) is refined by
midpoint subdivision, 4x the faces per level (114,304 / 457,216 / 1,828,864 faces with the default
three levels), and written as OBJ to a temporary folder (never into the repository). Every verb then
runs as a fresh ``python -m shapegen.cli`` process per size with its default options; the wall time
is taken around the process and the peak memory is that process's own maximum RSS (``os.wait4``).
The same verb on a 12-face box gives the fixed cost (interpreter start-up, imports and work that does
not depend on the mesh); the scaling exponent ``k`` (time ~ faces^k, memory ~ faces^k) is the
least-squares slope in log-log over the sizes, of the raw time and of time and memory above that
fixed cost.

Alternatives, in the same run and on the same files: for ``info``, ``trimesh.load`` (which merges
vertices) plus trimesh's watertight, Euler number, body count, area and volume; for ``convert``,
``trimesh.load(process=False)`` and a GLB export with vertex normals (what ``convert`` writes too).
``render`` and ``msdf encode`` have no installed counterpart to compare with.

``--before REV`` also runs the shapegen verbs with the package as it was at commit ``REV`` of this
repository (extracted with ``git archive`` into the temporary folder) and checks that both versions
write the same output.
The machine is shared: the load average at the start and at the end is recorded.

Run: ``python scripts/bench_large_mesh.py [--levels 3] [--verbs info convert render msdf] [--before REV] [--no-write]``.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shapegen.testing import bench as bl

VERBS = ("info", "convert", "render", "msdf")

#: trimesh equivalents of ``info`` and ``convert`` (argv: input, output).
ALTERNATIVES = {
    "info": (
        "import sys, trimesh\n"
        "m = trimesh.load(sys.argv[1], force='mesh')\n"
        "print(len(m.vertices), len(m.faces), m.bounds.tolist(), m.is_watertight, m.euler_number, m.body_count, m.area,"
        " m.volume if m.is_watertight else None)\n"
    ),
    "convert": (
        "import sys, trimesh\n"
        "m = trimesh.load(sys.argv[1], force='mesh', process=False)\n"
        "m.export(sys.argv[2], include_normals=True)\n"
    ),
}


@dataclass
class Run:
    seconds: float
    peak_mib: float
    output: Path | None


#: Starts the measured command from a small process: a forked child's max RSS starts at its parent's
#: RSS (kept through exec), so forking from this script (torch imported) would inflate every peak.
LAUNCHER = (
    "import os, subprocess, sys, time\n"
    "t0 = time.perf_counter()\n"
    "proc = subprocess.Popen(sys.argv[2:])\n"
    "_, status, usage = os.wait4(proc.pid, 0)\n"
    "seconds = time.perf_counter() - t0\n"
    "code = os.waitstatus_to_exitcode(status)\n"
    "open(sys.argv[1], 'w').write(f'{code} {seconds} {usage.ru_maxrss}')\n"
    "sys.exit(code)\n"
)


def run_process(cmd: list[str], env: dict, cwd: Path, log: Path, timeout: float, output: Path | None = None) -> Run:
    """Run ``cmd`` to completion: its wall time and its own peak RSS (``os.wait4`` in a small launcher)."""
    stats = log.with_suffix(".rusage")
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(stats), *cmd], stdout=fh, stderr=subprocess.STDOUT,
                                env=env, cwd=cwd, start_new_session=True)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
    if proc.returncode != 0:
        tail = log.read_text()[-1500:]
        sys.exit(f"error: {' '.join(cmd)} failed (exit {proc.returncode}, limit {timeout:.0f} s):\n{tail}")
    _, seconds, maxrss = stats.read_text().split()
    return Run(float(seconds), int(maxrss) / 1024, output)  # ru_maxrss is in KiB on Linux


def shapegen_cmd(verb: str, mesh: Path, out_dir: Path, tag: str) -> tuple[list[str], Path]:
    """The CLI call of ``verb`` with its default options, and the file that holds its result."""
    base = [sys.executable, "-m", "shapegen.cli"]
    stem = out_dir / f"{tag}_{verb}"
    if verb == "info":
        return [*base, "info", str(mesh)], stem.with_suffix(".log")  # the report is the output
    if verb == "convert":
        return [*base, "convert", str(mesh), "-o", str(stem) + ".glb"], Path(str(stem) + ".glb")
    if verb == "render":
        return [*base, "render", str(mesh), "-o", str(stem) + ".png"], Path(str(stem) + ".png")
    out = Path(str(stem) + ".msdf.npz")
    return [*base, "msdf", "encode", str(mesh), "-o", str(out)], out


def same_output(a: Path, b: Path) -> bool:
    """Both runs wrote the same result (text report, file bytes, or the same arrays)."""
    if a.suffix == ".log":  # info: the report minus the line naming the file
        return a.read_text().splitlines()[1:] == b.read_text().splitlines()[1:]
    if a.name.endswith(".npz"):
        with np.load(a) as x, np.load(b) as y:
            return x.files == y.files and all(np.array_equal(x[k], y[k]) for k in x.files)
    return a.read_bytes() == b.read_bytes()


def msdf_split(log: Path) -> tuple[float, float] | None:
    """``(signed distance s, fine-tuning s)`` from the line ``msdf encode`` prints, if present."""
    m = re.search(r"signed distance ([0-9.]+) s, fine-tuning ([0-9.]+) s", log.read_text())
    return (float(m.group(1)), float(m.group(2))) if m else None


def fit_exponent(faces: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) against log(faces), over the positive values."""
    pts = [(math.log(f), math.log(v)) for f, v in zip(faces, values) if v > 0]
    if len(pts) < 2:
        return float("nan")
    x, y = np.array(pts).T
    return float(np.polyfit(x, y, 1)[0])


def checkout(rev: str, folder: Path) -> Path:
    """The repository's files at ``rev``, extracted into ``folder`` (no working tree is touched)."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(bl.REPO), "archive", rev], capture_output=True, check=False)
    if archive.returncode != 0:
        sys.exit(f"error: cannot read revision '{rev}': {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def make_meshes(source: Path, levels: int, folder: Path) -> list[tuple[int, Path]]:
    """The 12-face box (fixed cost) and ``levels`` subdivisions of ``source`` as OBJ files."""
    import trimesh

    box = folder / "box.obj"
    trimesh.creation.box().export(box)
    tm = trimesh.load(source, force="mesh", process=False)
    tm.merge_vertices()  # one vertex per position, so subdivision keeps the surface closed
    v, f = tm.vertices, tm.faces
    meshes = [(12, box)]
    for level in range(1, levels + 1):
        v, f = trimesh.remesh.subdivide(v, f)
        path = folder / f"{source.stem}_x{4**level}.obj"
        trimesh.Trimesh(v, f, process=False).export(path)
        meshes.append((len(f), path))
    return meshes


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mesh", default="meshes_classic/bunny_rsawhney.obj", help="mesh under the shared data to subdivide")
    ap.add_argument("--levels", type=int, default=3, help="subdivision levels (4x faces each)")
    ap.add_argument("--verbs", nargs="+", choices=VERBS, default=list(VERBS), help="verbs to measure")
    ap.add_argument("--before", metavar="REV", help="git revision whose package is measured too, for a before/after table")
    ap.add_argument("--before-label", help="what the --before version is, for the section text")
    ap.add_argument("--timeout", type=float, default=900, help="seconds allowed per process")
    ap.add_argument("--keep", type=Path, help="write meshes and outputs here (kept) instead of a temporary folder")
    ap.add_argument("--no-write", action="store_true", help="print the section instead of writing docs/benchmarks.md")
    args = ap.parse_args(argv)
    source = bl.shared_data_root() / args.mesh
    load_start = os.getloadavg()
    rows, fits, alt_rows = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep.resolve() if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        packages = {"after": bl.REPO}
        if args.before:
            packages["before"] = checkout(args.before, work / "before_src")
        meshes = make_meshes(source, args.levels, work)
        sizes = [n for n, _ in meshes[1:]]
        results: dict[tuple[str, str, int], Run] = {}
        for verb in args.verbs:
            for tag, pkg in packages.items():
                env = {**os.environ, "PYTHONPATH": str(pkg)}
                out_dir = work / tag  # same file names for both versions: GLB objects are named after the file
                out_dir.mkdir(exist_ok=True)
                for n, mesh in meshes:
                    cmd, out = shapegen_cmd(verb, mesh, out_dir, str(n))
                    log = out_dir / f"{n}_{verb}.log"
                    print(f"{verb} {tag} {n} faces ...", flush=True)
                    # cwd: `python -m` puts it first on sys.path, so it picks the package version.
                    results[verb, tag, n] = run_process(cmd, env, pkg, log, args.timeout, out)
        alt: dict[tuple[str, int], Run] = {}
        for verb in [v for v in args.verbs if v in ALTERNATIVES]:
            for n, mesh in meshes:
                out = work / f"alt_{n}_{verb}.glb"
                cmd = [sys.executable, "-c", ALTERNATIVES[verb], str(mesh), str(out)]
                print(f"{verb} trimesh {n} faces ...", flush=True)
                alt[verb, n] = run_process(cmd, dict(os.environ), work, work / f"alt_{n}_{verb}.log", args.timeout)
        load_end = os.getloadavg()
        split_rows = []
        for n in [12, *sizes] if "msdf" in args.verbs else []:
            split = msdf_split(work / "after" / f"{n}_msdf.log")
            if split is not None:
                total = results["msdf", "after", n].seconds
                split_rows.append([f"{n:,}", round(total, 1), round(split[0], 1), round(split[1], 1),
                                   round(total - split[0] - split[1], 1)])

        for verb in args.verbs:
            for n in sizes:
                r = results[verb, "after", n]
                row = [verb, f"{n:,}", round(r.seconds, 2), round(r.peak_mib)]
                if args.before:
                    b = results[verb, "before", n]
                    same = same_output(b.output, r.output)
                    row += [round(b.seconds, 2), round(b.peak_mib), f"{b.seconds / r.seconds:.2f}x", "yes" if same else "NO"]
                rows.append(row)
            for tag in packages:
                t0, m0 = results[verb, tag, 12].seconds, results[verb, tag, 12].peak_mib
                t = [results[verb, tag, n].seconds for n in sizes]
                m = [results[verb, tag, n].peak_mib for n in sizes]
                fits.append([verb, tag, f"{t0:.2f} s / {m0:.0f} MiB", f"{fit_exponent(sizes, t):.2f}",
                             f"{fit_exponent(sizes, [x - t0 for x in t]):.2f}", f"{fit_exponent(sizes, [x - m0 for x in m]):.2f}"])
            if verb in ALTERNATIVES:
                for n in sizes:
                    a, r = alt[verb, n], results[verb, "after", n]
                    alt_rows.append([verb, f"{n:,}", round(r.seconds, 2), round(a.seconds, 2), f"{r.seconds / a.seconds:.2f}",
                                     round(r.peak_mib), round(a.peak_mib), f"{r.peak_mib / a.peak_mib:.2f}"])
                a0 = alt[verb, 12]
                ta = [alt[verb, n].seconds for n in sizes]
                ma = [alt[verb, n].peak_mib for n in sizes]
                fits.append([verb, "trimesh", f"{a0.seconds:.2f} s / {a0.peak_mib:.0f} MiB", f"{fit_exponent(sizes, ta):.2f}",
                             f"{fit_exponent(sizes, [x - a0.seconds for x in ta]):.2f}",
                             f"{fit_exponent(sizes, [x - a0.peak_mib for x in ma]):.2f}"])

    header = ["verb", "faces", "s", "peak MiB"]
    if args.before:
        header += ["before s", "before MiB", "speed-up", "same output"]
    loads = (f"{load_start[0]:.2f} / {load_start[1]:.2f} / {load_start[2]:.2f} at the start, "
             f"{load_end[0]:.2f} / {load_end[1]:.2f} / {load_end[2]:.2f} at the end")
    body = "\n".join([
        (f"Input: `{args.mesh}` ({sizes[0] // 4:,} faces) refined by midpoint subdivision to "
         f"{', '.join(f'{n:,}' for n in sizes)} faces, read from OBJ. Each verb is a fresh process with its default "
         "options (`convert` writes GLB, `render` a 512x512 PNG, `msdf encode` the default preset: n=1024, k=7, "
         "300 steps); peak memory is that process's max RSS. Fixed cost: the same verb on a 12-face box. "
         f"`OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}`. Load average (1/5/15 min): {loads}."),
        "",
        bl.table(header, rows),
        "",
        ("Scaling exponents k (least-squares slope of log value against log faces over the sizes above; "
         "1 = linear). *Raw* fits the whole wall time; *above fixed* subtracts the 12-face run first."),
        "",
        bl.table(["verb", "code", "fixed cost (12 faces)", "k time, raw", "k time, above fixed", "k memory, above fixed"], fits),
        "",
        ("The peak of `render` and `msdf encode` is the larger of a phase that does not depend on the mesh (the "
         "512x512 raster and its bounded fragment chunks; the M-SDF fine-tuning) and the mesh-dependent loading, so "
         "their memory exponent above the fixed cost is not the growth of one phase: it stays low while the fixed "
         "phase is the larger one and jumps where loading overtakes it. The mesh-dependent part is the loader's, "
         "which `info` and `convert` show alone. Time exponents a little above 1 at these sizes come from sorting "
         "(n log n) and from memory rather than from any step's algorithm: arrays above glibc's mmap threshold "
         "(32 MB, about 1M faces for an F x 3 int64 array) get fresh pages at every allocation, and first-touching "
         "them costs more per element than the arithmetic; trimesh's own OBJ reader shows the same exponent."),
    ])
    if args.before:
        sha = subprocess.run(["git", "-C", str(bl.REPO), "rev-parse", "--short", args.before], capture_output=True,
                             text=True, check=True).stdout.strip()
        what = f" ({args.before_label})" if args.before_label else ""
        body = body.replace("\n\n", f"\n\n*before*: the same verbs with the package at commit {sha}{what}.\n\n", 1)
    if alt_rows:
        body += "\n\nAgainst trimesh on the same files (ratio = shapegen / trimesh; below 1 favours shapegen):\n\n" + bl.table(
            ["verb", "faces", "shapegen s", "trimesh s", "time ratio", "shapegen MiB", "trimesh MiB", "memory ratio"], alt_rows)
    if split_rows:
        body += ("\n\n`msdf encode`, where the time goes (its own report): the fine-tuning (fixed: n k^3 values, "
                 "300 steps of 8192 points) does not depend on the mesh; the signed-distance queries (a fixed number "
                 "of points) grow only with the BVH depth; *other* is start-up, loading, normalising and sampling.\n\n")
        body += bl.table(["faces", "total s", "signed distance s", "fine-tuning s", "other s"], split_rows)
    bl.write_section("large-mesh", "Large meshes: info, convert, render and msdf encode up to ~1.8M faces", body, dry_run=args.no_write)


if __name__ == "__main__":
    main()
