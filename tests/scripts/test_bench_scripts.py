"""The benchmark scripts import their helpers from the package (no sys.path edits) and share one doc writer."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from shapegen.testing import bench

REPO = Path(__file__).resolve().parents[2]
# The two demo-model trainers are on their way out, replaced by `shapegen train --config demo`.
SCRIPTS = sorted(p for p in (REPO / "scripts").glob("*.py") if not p.name.startswith("train_"))


def test_scripts_do_not_edit_sys_path_or_import_private_helpers():
    assert SCRIPTS
    for script in SCRIPTS:
        text = script.read_text()
        assert not re.search(r"sys\.path\.(insert|append)|sys\.path\s*[+=\[]", text), script.name
        assert not re.search(r"^\s*(import|from) _(?!_)\w*", text, re.M), script.name
    assert not list((REPO / "scripts").glob("_*.py"))


def test_a_script_runs_from_the_repository_root():
    out = subprocess.run([sys.executable, "scripts/bench_raymarch.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("usage: bench_raymarch.py"), out.stderr


def test_bench_repo_is_this_checkout():
    assert bench.REPO == REPO and bench.DOC == REPO / "docs" / "benchmarks.md"


def test_write_section_replaces_its_own_section_only(tmp_path, monkeypatch, capsys):
    doc = tmp_path / "docs" / "benchmarks.md"
    monkeypatch.setattr(bench, "DOC", doc)
    monkeypatch.setattr(bench, "machine", lambda: "test machine")
    bench.write_section("a", "Section A", "| x |\n|---|\n| 1 |")
    bench.write_section("b", "Section B", "first b")
    bench.write_section("a", "Section A", "second a")
    text = doc.read_text()
    assert text.startswith("# Benchmarks")
    assert text.count("<!-- begin a -->") == 1 and "second a" in text and "| 1 |" not in text
    assert text.index("<!-- begin a -->") < text.index("<!-- begin b -->") and "first b" in text
    assert "- machine: test machine" in text
    assert sorted(p.name for p in doc.parent.iterdir()) == ["benchmarks.md"]  # no temporary left
    capsys.readouterr()
    bench.write_section("c", "Section C", "dry", dry_run=True)
    assert "<!-- begin c -->" not in doc.read_text() and capsys.readouterr().out.strip() == "dry"


def test_shared_data_root_exits_with_one_line_when_absent(tmp_path, monkeypatch):
    monkeypatch.setenv("SHAPEGEN_SHARED_DATA", str(tmp_path / "missing"))
    with pytest.raises(SystemExit, match="set SHAPEGEN_SHARED_DATA"):
        bench.shared_data_root()
    monkeypatch.setenv("SHAPEGEN_SHARED_DATA", str(tmp_path))
    assert bench.shared_data_root() == tmp_path


def test_run_child_returns_the_last_json_line_and_exits_on_failure():
    ok = [sys.executable, "-c", "print('warming up'); print('{\"median\": 1.5}')"]
    assert bench.run_child(ok) == {"median": 1.5}
    bad = [sys.executable, "-c", "import sys; sys.exit('child broke')"]
    with pytest.raises(SystemExit, match="benchmark child failed:\nchild broke"):
        bench.run_child(bad)
