"""``scripts/gpu_check.sh`` on a CPU: the CUDA parts say they are skipped, every tiny preset trains
through the command line and gets a positive time per step and a peak RSS, and a run that fails
or is cut by the budget is a ``failed:`` row and a non-zero exit, not a crash."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _scripts import load_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_check.sh"
DOC = REPO / "docs" / "benchmarks.md"
TINY = {"msdf", "las", "occsdf", "vsd", "avatar"}


def _run_script(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    # No GPU even where there is one (the CPU mode is what CI runs), one thread, temporary
    # folders under tmp_path, and this interpreter rather than a .venv the checkout may lack.
    env = {**os.environ, "SHAPEGEN_PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "TMPDIR": str(tmp_path)}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)


def _table(stdout: str) -> dict[tuple[str, str], list[str]]:
    """(part, preset) -> the cells of the printed Markdown table."""
    rows = [ln.strip().strip("|").split("|") for ln in stdout.splitlines() if ln.startswith("| ") and not ln.startswith("| part ")]
    return {(c[0].strip(), c[1].strip()): [x.strip() for x in c] for c in rows}


def test_quick_cpu_run_times_every_tiny_preset_and_skips_the_cuda_parts(tmp_path: Path) -> None:
    before = DOC.read_bytes() if DOC.exists() else None
    res = _run_script(tmp_path, "--quick", "--no-write")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    table = _table(res.stdout)
    assert table[("tests", "pytest -m cuda")][4] == "skipped: no CUDA"
    assert table[("parity", "raymarch 64x64")][4] == "skipped: no CUDA"
    assert {m for m, p in table if p == "tiny"} == TINY
    for method in TINY:
        _, _, per_step, peak, status, wall = table[(method, "tiny")]
        assert status == "ok", (method, status)
        assert 0 < float(per_step) < float(wall), (method, per_step, wall)
        assert peak.endswith("MiB (peak RSS)") and int(peak.split()[0].replace(",", "")) > 0, (method, peak)
    # The paper-sized presets are listed, each with the reason it did not run.
    paper = {(m, p): cells[4] for (m, p), cells in table.items() if m in TINY and p != "tiny"}
    assert {m for m, _ in paper} == TINY
    assert all(s.startswith("skipped: no CUDA") for s in paper.values()), paper
    assert "- GPU: no GPU" in res.stdout and "--quick --no-write" in res.stdout
    assert (DOC.read_bytes() if DOC.exists() else None) == before  # --no-write


def test_a_budget_too_small_is_a_failed_row_and_status_1(tmp_path: Path) -> None:
    res = _run_script(tmp_path, "--quick", "--no-write", "--budget", "10")
    assert res.returncode == 1, res.stdout[-4000:] + res.stderr[-4000:]
    failed = [cells for cells in _table(res.stdout).values() if cells[4].startswith("failed:")]
    assert failed and all("time" in c[4] or "budget" in c[4] for c in failed), failed
    assert "gpu check:" in res.stderr and "failed" in res.stderr


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    for args in (["--bogus"], ["--budget", "soon"], ["--budget"]):
        res = _run_script(tmp_path, *args)
        assert res.returncode == 2 and res.stderr.startswith("error:") and res.stderr.count("\n") == 1, (args, res.stderr)


def test_a_failing_run_is_one_failed_line_and_the_others_still_run(tmp_path: Path, monkeypatch, capsys) -> None:
    g = load_script("bench_gpu_check")
    monkeypatch.setattr(sys, "path", list(sys.path))  # the report imports the other scripts
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setitem(g.DATA, "bad", (None, ("room", "synth", "-o", "{out}", "--set", "num_views=0")))
    results = tmp_path / "results.jsonl"
    runs = (
        g.Run("nosuch", "tiny", ("train", "--method", "nosuch", "-o", "{out}")),
        g.Run("a", "tiny", ("train", "--method", "msdf", "-o", "{out}", "--set", "data.root={data}"), data="bad"),
        g.Run("b", "tiny", ("train", "--method", "msdf", "-o", "{out}", "--set", "data.root={data}"), data="bad"),
        g.Run("msdf", "paper", ("train",), gpu_only=True),
    )
    g.part_methods(results, g.Clock(300), False, 1, tmp_path / "work", runs=runs)
    status = {r.part: r.status for r in read_rows(g, results)}
    assert status["nosuch"].startswith("failed: error: unknown method 'nosuch'") and "\n" not in status["nosuch"]
    # The data that failed is made once; both runs that need it say why.
    assert status["a"] == status["b"] and status["a"].startswith("failed: shapegen room synth (bad data): error: num_views")
    assert status["msdf"].startswith("skipped: no CUDA")
    assert g.report(results, no_write=True, command="test", budget=300, cuda=False) == 1
    out = capsys.readouterr()
    assert "| nosuch | tiny | - | - | failed: error: unknown method 'nosuch'" in out.out
    assert "3 failed: nosuch tiny; a tiny; b tiny" in out.err


def read_rows(g, results: Path) -> list:
    return g.read_results(results)[0]


def test_a_spent_budget_fails_the_runs_left_without_starting_them(tmp_path: Path) -> None:
    g = load_script("bench_gpu_check")
    results = tmp_path / "results.jsonl"
    g.part_methods(results, g.Clock(0), False, 1, tmp_path / "work", tiny_only=True)
    rows = read_rows(g, results)
    statuses = {(r.part, r.preset): r.status for r in rows}
    assert {m for (m, p), s in statuses.items() if p == "tiny" and s == g.OVER_BUDGET} == TINY
    assert not (tmp_path / "work" / "data").exists()  # nothing was started


@pytest.mark.parametrize(
    ("log", "line"),
    [
        ("Traceback (most recent call last):\n  File x\nValueError: bad\n", "ValueError: bad"),
        ("note: something\nerror: no such folder 'x'; give another\nlater noise\n", "error: no such folder 'x'; give another"),
        ("loss 0.3\ntraining:  50%|#####     | 1/2\rtraining: 100%|##########| 2/2\n", "loss 0.3"),
        ("", "no output"),
    ],
)
def test_one_line_picks_the_line_that_says_what_went_wrong(log: str, line: str) -> None:
    assert load_script("bench_gpu_check").one_line(log) == line
