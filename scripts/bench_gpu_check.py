"""What to run first whenever a GPU is at hand: the CUDA tests, torch vs nerfacc parity, and the
seconds per step and peak memory of every method's training run, through the public CLI.

``scripts/gpu_check.sh`` drives this script one part at a time (each under ``timeout``), then
asks it for the report; the parts can also be run from here directly (``--part all``).

Parts, in order:

1. ``tests``: ``pytest -m cuda`` (skipped without CUDA).
2. ``parity``: the ray-marching scene of ``scripts/bench_raymarch.py`` rendered through the
   occupancy grid with the torch and the nerfacc backends; the images must agree (skipped
   without CUDA, or without nerfacc).
3. ``methods``: each entry of :data:`RUNS` (one ``shapegen`` command line per method and preset)
   run in a child process for one warm-up step and ``--steps`` timed steps. Seconds per step are
   the median time between consecutive optimiser steps (a global optimiser hook, synchronised on
   CUDA, so every trainer is timed the same way); peak memory is
   ``torch.cuda.max_memory_allocated`` on a GPU and the peak resident set size on a CPU. The
   data the presets need is made first with the package's own generators, at small sizes.
   Without CUDA only the tiny presets run.

A part that fails reports ``failed: <one line>`` in the table; the report exits with status 1
when any row failed.

    python scripts/bench_gpu_check.py                    # all parts, writes the "gpu-check" section
    python scripts/bench_gpu_check.py --quick --no-write # CI: tiny presets, 2 steps, print only
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PARTS = ("tests", "parity", "methods")
PAPER_MODEL = "stabilityai/stable-diffusion-2-1-base"
NO_CUDA = "skipped: no CUDA"
OVER_BUDGET = "failed: not run, the time budget was spent"


def _raymarch_scene():
    """``scripts/bench_raymarch.py`` as a module (loaded from its file; nothing on ``sys.path`` changes)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_raymarch", REPO / "scripts" / "bench_raymarch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------ the method runs
@dataclass(frozen=True)
class Run:
    """One ``shapegen`` training run to time.

    ``argv`` is the command line after ``shapegen``; ``{out}`` (a fresh folder), ``{data}`` (the
    folder made by ``data``), ``{steps}`` (warm-up + timed steps) and ``{every}`` (a checkpoint
    cadence past the end of the run) are filled in.
    """

    method: str
    preset: str
    argv: tuple[str, ...]
    data: str | None = None
    """Key of :data:`DATA` the run reads (made once, before the first run that needs it)."""
    gpu_only: bool = False
    """Paper/default-sized presets: days on a CPU, so skipped without CUDA."""
    model: str | None = None
    """A Hugging Face hub id that must be in the local cache (nothing is downloaded)."""


# Kept to long-standing keys (run length, checkpoint/preview cadence, data root), so changes to the
# commands' other settings do not break the check. Checkpoints are pushed past the end of the run
# (the final one is still written) so the timed steps are training steps, not checkpoint writes.
RUNS: tuple[Run, ...] = (
    Run("msdf", "tiny", ("train", "--method", "msdf", "--config", "tiny", "-o", "{out}", "--set", "data.root={data}",
                         "--set", "train.max_steps={steps}", "--set", "train.checkpoint_every={every}", "--set", "train.preview_every=-1"),
        data="msdf_tiny"),
    Run("las", "tiny", ("train", "--method", "las", "--config", "tiny", "-o", "{out}", "--set", "data.root={data}",
                        "--set", "train.max_steps={steps}", "--set", "train.checkpoint_every={every}", "--set", "train.preview_every=-1"),
        data="las_tiny"),
    Run("occsdf", "tiny", ("reconstruct", "{data}", "-o", "{out}/mesh.glb", "--preset", "tiny", "--no-progress",
                           "--set", "train.max_steps={steps}", "--set", "train.checkpoint_every={every}", "--set", "train.preview_every=0"),
        data="room_tiny"),
    Run("vsd", "tiny", ("text-to-3d", "a wooden chair", "-o", "{out}", "--preset", "tiny", "--tiny-random-prior", "--set", "steps={steps}",
                        "--set", "export.checkpoint_every={every}", "--set", "export.render_every=0", "--set", "export.turntable_frames=1")),
    # The avatar's geometry stage is timed (its optimiser steps first); one texture step follows.
    Run("avatar", "tiny", ("avatar", "a knight in silver armour", "-o", "{out}", "--preset", "tiny", "--no-progress",
                           "--set", "vsd.geometry.steps={steps}", "--set", "vsd.geometry.checkpoint_every={every}",
                           "--set", "vsd.texture.steps=1")),
    Run("msdf", "default", ("train", "--method", "msdf", "--config", "default", "-o", "{out}", "--set", "data.root={data}",
                            "--set", "train.max_steps={steps}", "--set", "train.checkpoint_every={every}", "--set", "train.preview_every=-1"),
        data="msdf_paper", gpu_only=True),
    # Two shapes repeated to fill the preset's batch of 16.
    Run("las", "default", ("train", "--method", "las", "--config", "default", "-o", "{out}", "--set", "data.root={data}", "--set", "data.repeat=8",
                           "--set", "train.max_steps={steps}", "--set", "train.checkpoint_every={every}", "--set", "train.preview_every=-1"),
        data="las_paper", gpu_only=True),
    # The final mesh at 128^3 rather than the preset's 512^3, and small previews: both come after the timed steps.
    Run("occsdf", "paper", ("reconstruct", "{data}", "-o", "{out}/mesh.glb", "--preset", "paper", "--no-progress",
                            "--set", "train.max_steps={steps}", "--set", "train.checkpoint_every={every}", "--set", "train.preview_every=0",
                            "--set", "train.mesh_resolution=128", "--set", "train.preview_resolution=32"),
        data="room_paper", gpu_only=True),
    # Renders switch to the preset's final 512^2 after the warm-up step, so the timed steps are the costly ones.
    Run("vsd", "paper", ("text-to-3d", "a wooden chair", "-o", "{out}", "--preset", "paper", "--set", "steps={steps}",
                         "--set", "render.milestones=[1]", "--set", "export.checkpoint_every={every}", "--set", "export.render_every=0",
                         "--set", "export.turntable_frames=1", "--set", "export.mesh_resolution=64"),
        gpu_only=True, model=PAPER_MODEL),
    Run("avatar", "paper", ("avatar", "a knight in silver armour", "-o", "{out}", "--preset", "paper", "--no-progress",
                            "--set", "vsd.geometry.steps={steps}", "--set", "vsd.geometry.checkpoint_every={every}",
                            "--set", "vsd.texture.steps=1"),
        gpu_only=True, model=PAPER_MODEL),
)

# The data the runs read, made through the CLI: (argv after ``shapegen``, files to copy). ``{work}``
# is the work folder, ``{out}`` this data's folder. Small on purpose: only step costs are measured.
DATA: dict[str, tuple[str | None, tuple[str, ...]]] = {
    # (the data key this one is made from, the command)
    "meshes": (None, ("data", "procedural", "-o", "{out}", "--classes", "chair,table", "--per-class", "1", "--resolution", "24",
                      "--split", "train=1.0", "--workers", "1")),
    "msdf_tiny": ("meshes", ("msdf", "encode", "{src}/train", "-o", "{out}", "--config", "tiny", "--n", "16")),
    "las_tiny": ("meshes", ("las", "prepare", "{src}/train", "-o", "{out}", "--set", "resolution=32", "--set", "sketch_size=64")),
    "room_tiny": (None, ("room", "synth", "-o", "{out}", "--set", "num_views=2", "--set", "width=12", "--set", "height=10",
                         "--set", "max_steps=64")),
    # The paper's n = 1024 grids of 7^3 from few surface samples, copied to fill its batch of 32.
    "msdf_paper": ("meshes", ("msdf", "encode", "{src}/train", "-o", "{out}", "--config", "tiny", "--n", "1024", "--k", "7", "--steps", "1",
                              "--set", "fps_samples=4096", "--set", "num_surface=20000", "--set", "num_near=20000")),
    "las_paper": ("meshes", ("las", "prepare", "{src}/train", "-o", "{out}", "--set", "resolution=128", "--set", "sketch_size=224")),
    "room_paper": (None, ("room", "synth", "-o", "{out}", "--set", "num_views=8")),
}
MSDF_PAPER_SHAPES = 32
"""``data.batch_size`` of configs/msdf/default.yaml (the loader's batch is capped by the data)."""


# ------------------------------------------------------------------------------------- results
@dataclass
class Row:
    """One line of the table."""

    part: str
    preset: str
    status: str
    seconds_per_step: float | None = None
    peak_bytes: int | None = None
    peak_kind: str = ""
    wall: float = 0.0

    def cells(self) -> list[str]:
        """The table cells (a ``|`` in a message would split its cell)."""
        step = f"{self.seconds_per_step:.4g}" if self.seconds_per_step is not None else "-"
        peak = f"{self.peak_bytes / 2**20:,.0f} MiB ({self.peak_kind})" if self.peak_bytes is not None else "-"
        return [self.part, self.preset, step, peak, self.status.replace("|", "/"), f"{self.wall:.1f}"]


def append(results: Path, record: dict) -> None:
    """One JSON line; a part killed by its timeout keeps the rows it finished."""
    with open(results, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def record_row(results: Path, row: Row) -> None:
    append(results, {"row": vars(row)})
    print(f"{row.part} {row.preset}: {' | '.join(row.cells()[2:])}", flush=True)


def one_line(text: str, limit: int = 200) -> str:
    """The line of a child's output that says what went wrong: its ``error:`` line, else the last
    line that is not a progress bar."""
    lines = [ln.strip() for ln in re.split(r"[\r\n]+", text) if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    if errors:
        return errors[-1][:limit]
    lines = [ln for ln in lines if not re.search(r"\d+%\|", ln)]
    return (lines[-1] if lines else "no output")[:limit]


def child_env() -> dict[str, str]:
    """The environment of the child processes: this checkout first on the import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


RUN_CAP_S = 180.0
"""The most one command (a run, the making of its data, the parity renders) may take, so that one
that hangs leaves the budget to the others."""
TESTS_CAP_S = 240.0
"""The most ``pytest -m cuda`` may take (it collects the whole suite first)."""


class Clock:
    """Seconds left of the part's budget."""

    def __init__(self, budget: float) -> None:
        self.end = time.monotonic() + budget

    def left(self) -> float:
        return self.end - time.monotonic()

    def limit(self, cap: float = RUN_CAP_S) -> float:
        """The timeout of the next command: what is left, at most ``cap``."""
        return max(1.0, min(cap, self.left()))


# ----------------------------------------------------------------------------------- 1. tests
def part_tests(results: Path, clock: Clock, cuda: bool) -> None:
    """``pytest -m cuda``; the summary line's counts become the status."""
    if not cuda:
        record_row(results, Row("tests", "pytest -m cuda", NO_CUDA))
        return
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider"]
    try:
        res = subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=clock.limit(TESTS_CAP_S))
        out = res.stdout + res.stderr
        summary = [ln.strip("= ") for ln in out.splitlines() if re.search(r"\d+ (passed|failed|skipped|errors?|deselected)", ln)]
        counts = summary[-1] if summary else one_line(out)
        if res.returncode == 0:
            status = f"ok: {counts}"
        elif res.returncode == 5:
            status = "failed: no cuda-marked tests were collected"
        else:
            status = f"failed: {counts}"
    except subprocess.TimeoutExpired:
        status = f"failed: timed out after {time.monotonic() - t0:.0f} s"
    record_row(results, Row("tests", "pytest -m cuda", status, wall=time.monotonic() - t0))


# ---------------------------------------------------------------------------------- 2. parity
PARITY_SIDE = 64
PARITY_MEAN_OPACITY = 0.02
"""Largest mean |opacity difference| between the two backends' images: nerfacc tests a cell by
its segment, the torch traversal by its sample point, so samples at cell borders differ (the
bound of tests/renderers/test_backends.py)."""


def part_parity(results: Path, clock: Clock, cuda: bool) -> None:
    """The raymarch benchmark's scene through the occupancy grid with both backends, in a child."""
    preset = f"raymarch {PARITY_SIDE}x{PARITY_SIDE}"
    if not cuda:
        record_row(results, Row("parity", preset, NO_CUDA))
        return
    import importlib.util

    if importlib.util.find_spec("nerfacc") is None:
        record_row(results, Row("parity", preset, "skipped: nerfacc is not installed (pip install -e .[cuda])"))
        return
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpu_check_parity_") as tmp:
        out = Path(tmp) / "parity.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--parity-child", str(out)]
        try:
            res = subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=clock.limit())
        except subprocess.TimeoutExpired:
            record_row(results, Row("parity", preset, f"failed: timed out after {time.monotonic() - t0:.0f} s", wall=time.monotonic() - t0))
            return
        if res.returncode != 0 or not out.is_file():
            record_row(results, Row("parity", preset, f"failed: {one_line(res.stdout + res.stderr)}", wall=time.monotonic() - t0))
            return
        got = json.loads(out.read_text())
    wall = time.monotonic() - t0
    record_row(results, Row("parity", f"{preset} torch", "ok", got["torch"]["seconds"], got["torch"]["peak"], "GPU", wall))
    diff = f"mean |d opacity| {got['mean_opacity']:.1e}, max {got['max_opacity']:.1e}, max |d rgb| {got['max_rgb']:.1e}"
    ok = got["mean_opacity"] <= PARITY_MEAN_OPACITY
    status = f"ok: {diff}" if ok else f"failed: {diff} (mean above {PARITY_MEAN_OPACITY})"
    record_row(results, Row("parity", f"{preset} nerfacc", status, got["nerfacc"]["seconds"], got["nerfacc"]["peak"], "GPU", wall))


def parity_child(out: Path, device: str = "cuda", backends: tuple[str, str] = ("torch", "nerfacc")) -> int:
    """Render the raymarch scene with both backends; seconds are per render (best of 3)."""
    import torch

    rm = _raymarch_scene()

    cuda = device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    got: dict = {}
    images = []
    with torch.no_grad():
        vol, _, grid, rays = rm.setup(torch.device(device), PARITY_SIDE)
        for name, backend in zip(("torch", "nerfacc"), backends):
            fn = lambda b=backend: rm.render("grid", vol, grid, rays, rm.STEP, b)
            fn()  # warm-up (nerfacc builds its kernels on first use)
            sync()
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                image = fn()
                sync()
                best = min(best, time.perf_counter() - t0)
            images.append(image)
            got[name] = {"seconds": best, "peak": torch.cuda.max_memory_allocated() if cuda else None}
    diff = (images[0] - images[1]).abs()  # (rays, 4): opacity, then colour
    got.update(mean_opacity=diff[:, 0].mean().item(), max_opacity=diff[:, 0].max().item(), max_rgb=diff[:, 1:].max().item())
    out.write_text(json.dumps(got))
    return 0


# --------------------------------------------------------------------------------- 3. methods
def shapegen_cmd(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "shapegen.cli", *argv]


def make_data(key: str, work: Path, made: dict[str, Path | RuntimeError], clock: Clock) -> Path:
    """The folder of data ``key`` (and the data it is made from), made once per work folder; a
    failure is remembered too, so the runs that need the same data do not try again.

    Raises:
        RuntimeError: one line saying which command failed and why.
    """
    if key not in made:
        try:
            made[key] = _make_data(key, work, made, clock)
        except RuntimeError as exc:
            made[key] = exc
    got = made[key]
    if isinstance(got, RuntimeError):
        raise got
    return got


def _make_data(key: str, work: Path, made: dict[str, Path | RuntimeError], clock: Clock) -> Path:
    src_key, argv = DATA[key]
    src = make_data(src_key, work, made, clock) if src_key else None
    out = work / "data" / key
    filled = [a.format(out=out, src=src, work=work) for a in argv]
    limit = clock.limit()
    try:
        res = subprocess.run(shapegen_cmd(filled), cwd=work, env=child_env(), capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"making the {key} data timed out after {limit:.0f} s") from exc
    if res.returncode != 0:
        raise RuntimeError(f"shapegen {' '.join(filled[:2])} ({key} data): {one_line(res.stdout + res.stderr)}")
    if key == "msdf_paper":
        files = sorted(out.rglob("*.msdf.npz"))
        for i in range(MSDF_PAPER_SHAPES - len(files)):
            f = files[i % len(files)]
            shutil.copy(f, f.with_name(f"copy{i:03d}_{f.name}"))
    return out


def model_cached(model: str) -> bool:
    """Whether a Hugging Face hub id is in the local cache (no network is touched)."""
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(model, local_files_only=True)
        return True
    except Exception:
        return False


def time_run(run: Run, work: Path, made: dict[str, Path | RuntimeError], clock: Clock, steps: int) -> Row:
    """One run of ``run`` in a child process: its seconds per step and peak memory."""
    t0 = time.monotonic()
    row = lambda status, **kw: Row(run.method, run.preset, status, wall=time.monotonic() - t0, **kw)
    if run.model and not model_cached(run.model):
        return row(f"skipped: {run.model} is not in the Hugging Face cache (download it once with `hf download {run.model}`)")
    try:
        data = make_data(run.data, work, made, clock) if run.data else None
    except RuntimeError as exc:
        return row(f"failed: {exc}")
    out = work / "runs" / f"{run.method}_{run.preset}"
    total = steps + 1  # one warm-up step
    argv = [a.format(out=out, data=data, steps=total, every=total + 1) for a in run.argv]
    result = work / "runs" / f"{run.method}_{run.preset}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(result), "--", *argv]
    try:
        res = subprocess.run(cmd, cwd=work, env=child_env(), capture_output=True, text=True, timeout=clock.limit())
    except subprocess.TimeoutExpired:
        return row(f"failed: timed out after {time.monotonic() - t0:.0f} s")
    log = res.stdout + res.stderr
    if res.returncode != 0 or not result.is_file():
        return row(f"failed: {one_line(log)}")
    got = json.loads(result.read_text())
    if got["rc"] != 0:
        return row(f"failed: {one_line(log)}")
    stamps = got["stamps"]
    if len(stamps) < 2:
        return row(f"failed: {len(stamps)} optimiser step(s) seen, expected {total}", peak_bytes=got["peak"], peak_kind=got["peak_kind"])
    per_step = statistics.median(b - a for a, b in itertools.pairwise(stamps))
    return row("ok", seconds_per_step=per_step, peak_bytes=got["peak"], peak_kind=got["peak_kind"])


def part_methods(results: Path, clock: Clock, cuda: bool, steps: int, work: Path, *, tiny_only: bool = False,
                 runs: tuple[Run, ...] = RUNS) -> None:
    """Every run of ``runs`` in order; the GPU-only ones are skipped without CUDA or with ``tiny_only``."""
    made: dict[str, Path | RuntimeError] = {}
    (work / "runs").mkdir(parents=True, exist_ok=True)
    for run in runs:
        if run.gpu_only and not cuda:
            record_row(results, Row(run.method, run.preset, f"{NO_CUDA} (paper-sized presets run on a GPU only)"))
        elif run.gpu_only and tiny_only:
            record_row(results, Row(run.method, run.preset, "skipped: --quick runs the tiny presets only"))
        elif clock.left() < 5:
            record_row(results, Row(run.method, run.preset, OVER_BUDGET))
        else:
            try:
                row = time_run(run, work, made, clock, steps)
            except Exception as exc:  # one row fails, the others still run
                row = Row(run.method, run.preset, f"failed: {type(exc).__name__}: {one_line(str(exc))}")
            record_row(results, row)


def child(result: Path, argv: list[str]) -> int:
    """Run ``shapegen ARGV`` in this process, with a timestamp after every step of the first
    optimiser that steps (one per training step, whatever the trainer), and write
    ``{rc, stamps, peak, peak_kind}`` to ``result``."""
    import resource

    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    cuda = torch.cuda.is_available()
    stamps: list[float] = []
    first: list = []

    def after_step(optimizer, args, kwargs) -> None:
        if not first:
            first.append(optimizer)
        if optimizer is first[0]:
            if cuda:
                torch.cuda.synchronize()  # the step's kernels have finished, not just been queued
            stamps.append(time.perf_counter())

    register_optimizer_step_post_hook(after_step)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    from shapegen.cli import main

    rc = main(argv)
    if cuda:
        peak, kind = torch.cuda.max_memory_allocated(), "GPU"
    else:
        peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "peak RSS"  # ru_maxrss is in KiB on Linux
    result.write_text(json.dumps({"rc": rc, "stamps": stamps, "peak": peak, "peak_kind": kind}))
    return rc


# ---------------------------------------------------------------------------------- the report
def read_results(results: Path) -> tuple[list[Row], dict[str, float]]:
    rows, timers = [], {}
    if results.is_file():
        for line in results.read_text().splitlines():
            rec = json.loads(line)
            if "row" in rec:
                rows.append(Row(**rec["row"]))
            else:
                timers[rec["timer"]] = rec["seconds"]
    return rows, timers


def report(results: Path, *, no_write: bool, command: str, budget: float, cuda: bool, same_as: list[str] | None = None) -> int:
    """The table (printed, and written to the ``gpu-check`` section unless ``no_write``); 1 if a row failed.

    ``same_as``: the arguments of this script that run the same check in one call; the section's
    header names that command rather than the wrapper's report call (its temporary file).
    """
    from shapegen.testing.bench import machine, table, write_section

    rows, timers = read_results(results)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    gpu = "no GPU"
    if cuda:
        import torch

        gpu = torch.cuda.get_device_name(0)
    spent = sum(timers.values())
    body = (
        f"- check: `{command}`\n- GPU: {gpu}\n- load average (1, 5, 15 min) at the end: {load}\n"
        f"- part timers: {', '.join(f'{k} {v:.1f} s' for k, v in timers.items()) or 'none'}; total {spent:.1f} s of a {budget:.0f} s budget\n\n"
        "Seconds per step: median over the timed steps after one warm-up step (the time between consecutive steps of the first "
        "optimiser, synchronised on CUDA), through the `shapegen` command line; parity rows: seconds per 64x64 render. "
        "Peak memory: `torch.cuda.max_memory_allocated` on a GPU, the process's peak resident set size on a CPU.\n\n"
        + table(["part", "preset", "s per step", "peak memory", "status", "wall s"], [r.cells() for r in rows])
    )
    if no_write:
        print(f"machine: {machine()}")
    argv = sys.argv
    sys.argv = [str(Path(__file__).resolve()), *(same_as or [])]  # what write_section records as the command
    try:
        write_section("gpu-check", "GPU check (scripts/gpu_check.sh)", body, dry_run=no_write)
    finally:
        sys.argv = argv
    failed = [r for r in rows if r.status.startswith("failed")]
    if failed:
        print(f"gpu check: {len(failed)} failed: " + "; ".join(f"{r.part} {r.preset}" for r in failed), file=sys.stderr)
    return 1 if failed else 0


# ------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=[*PARTS, "all"], default="all", help="which part to run (default: all, then the report)")
    ap.add_argument("--report", action="store_true", help="only write/print the report of --results")
    ap.add_argument("--record", nargs=2, metavar=("PART", "STATUS"), help="add a row for a part that did not report (the wrapper's timeouts)")
    ap.add_argument("--results", type=Path, help="JSON-lines file the parts add to (default: a temporary file)")
    ap.add_argument("--quick", action="store_true", help="CI mode: tiny presets only, 2 timed steps")
    ap.add_argument("--steps", type=int, help="timed steps after the warm-up step (default 3; --quick: 2)")
    ap.add_argument("--no-write", action="store_true", help="print the table; leave docs/benchmarks.md alone")
    ap.add_argument("--budget", type=float, default=480.0, help="seconds for the parts of this call (default 480); with --report: the budget it names")
    ap.add_argument("--wall", type=float, default=0.0, help="with --record: the part's seconds")
    ap.add_argument("--command", default="bash scripts/gpu_check.sh", help="the command line the report names")
    ap.add_argument("--work", type=Path, help="folder for the data and runs (default: a temporary folder, removed after)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--parity-child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.steps is None:
        args.steps = 2 if args.quick else 3
    if args.steps < 1:
        ap.error("--steps must be at least 1")
    return args


def run_parts(args: argparse.Namespace, results: Path, cuda: bool) -> None:
    """The parts ``--part`` names, in order, each followed by its timer record."""
    clock = Clock(args.budget)
    # The wrapper's timeout ends a part with SIGTERM: exit through the ``finally`` blocks, so the
    # run in progress is killed (subprocess.run does that on the way out) and the work folder removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_check_work_"))
    say = print if args.part == "all" else (lambda *a, **k: None)  # the wrapper prints its own timers
    try:
        for part in PARTS if args.part == "all" else (args.part,):
            t0 = time.monotonic()
            say(f"== {part}", flush=True)
            if part == "tests":
                part_tests(results, clock, cuda)
            elif part == "parity":
                part_parity(results, clock, cuda)
            else:
                part_methods(results, clock, cuda, args.steps, work, tiny_only=args.quick)
            append(results, {"timer": part, "seconds": time.monotonic() - t0})
            say(f"== {part}: {time.monotonic() - t0:.1f} s", flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
        return child(args.child, rest)
    if args.parity_child:
        return parity_child(args.parity_child)
    own_results = args.results is None
    results = args.results or Path(tempfile.mkstemp(prefix="gpu_check_", suffix=".jsonl")[1])
    try:
        if args.record:
            part, status = args.record
            record_row(results, Row(part, "-", status, wall=args.wall))
            append(results, {"timer": part, "seconds": args.wall})
            return 0
        import torch

        cuda = torch.cuda.is_available()
        if not args.report:
            run_parts(args, results, cuda)
            if args.part != "all":
                return 0
        same_as = [*(["--quick"] if args.quick else []), "--steps", str(args.steps), "--budget", f"{args.budget:g}"]
        return report(results, no_write=args.no_write, command=args.command, budget=args.budget, cuda=cuda, same_as=same_as)
    finally:
        if own_results:
            results.unlink(missing_ok=True)

if __name__ == "__main__":
    sys.exit(main())
