"""Helpers for the benchmark scripts in ``scripts/``: timing, the machine line, and writing docs/benchmarks.md.

Each benchmark owns one section of ``docs/benchmarks.md`` between HTML comment markers, so
scripts can be re-run independently without clobbering each other's tables. The scripts run as
``python scripts/bench_NAME.py`` from a source checkout installed in editable mode
(``pip install -e .``), so :data:`REPO` is that checkout.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from shapegen.io import atomic_path

#: The source checkout this package is imported from (shapegen/testing/bench.py -> the root).
REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "benchmarks.md"


def shared_data_root() -> Path:
    """The real meshes and scenes: ``$SHAPEGEN_SHARED_DATA``, else ``shared/data`` beside the checkout; exits if absent."""
    env = os.environ.get("SHAPEGEN_SHARED_DATA")
    root = Path(env) if env else REPO.parent / "shared" / "data"
    if not root.is_dir():
        sys.exit(f"error: ../shared/data not found at {root}; set SHAPEGEN_SHARED_DATA to its path")
    return root


def machine() -> str:
    """One line describing this machine (CPU model, cores, GPU if any, torch version)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}, Python {platform.python_version()}"


def timeit(fn: Callable[[], object], repeat: int = 3, warmup: int = 1) -> float:
    """Best wall time of ``repeat`` calls in seconds (after ``warmup`` calls), syncing CUDA."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def run_child(cmd: list[str]) -> dict:
    """Run one measurement in a fresh interpreter (its own threads and peak memory) and return the
    JSON object on the last line of its output; exits with the end of its stderr when it fails."""
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.exit(f"error: benchmark child failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table."""
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, title: str, body: str, *, dry_run: bool = False) -> None:
    """Replace (or append) the section ``name`` of docs/benchmarks.md with ``body``.

    The section header records the machine, the exact command and the date. ``dry_run`` (the
    scripts' ``--no-write``) only prints ``body``.
    """
    if dry_run:
        print(body)
        return
    if not (REPO / "pyproject.toml").is_file():
        sys.exit(f"error: shapegen is not imported from a source checkout ({REPO}); install one with 'pip install -e .' to write {DOC.name}")
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    block = (
        f"<!-- begin {name} -->\n## {title}\n\n"
        f"- machine: {machine()}\n- command: `{command}`\n- date: {stamp}\n\n{body.strip()}\n<!-- end {name} -->"
    )
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\nTables written by `scripts/bench_*.py`; re-run a script to refresh its section.\n"
    pattern = re.compile(rf"<!-- begin {re.escape(name)} -->.*?<!-- end {re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    with atomic_path(DOC) as tmp:
        tmp.write_text(text)
    print(block)

