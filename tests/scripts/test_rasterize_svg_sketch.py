"""``scripts/rasterize_svg_sketch.py``: the hand-drawn SVG sketches become the shipped PNGs; bad input is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "rasterize_svg_sketch.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_shipped_hand_sketches_are_the_rasterised_svgs(tmp_path: Path) -> None:
    for svg in sorted((REPO / "assets" / "sketches").glob("hand_*.svg")):
        copy = tmp_path / svg.name
        copy.write_text(svg.read_text())
        assert _run(str(copy)).returncode == 0
        made = np.asarray(Image.open(copy.with_suffix(".png")).convert("L"))
        shipped = np.asarray(Image.open(svg.with_suffix(".png")).convert("L"))
        assert made.shape == shipped.shape and np.array_equal(made, shipped), svg.name


def test_strokes_land_where_the_points_say(tmp_path: Path) -> None:
    svg = tmp_path / "line.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><g stroke-width="2">'
                   '<polyline points="10,32 54,32"/></g></svg>')
    assert _run(str(svg)).returncode == 0
    ink = np.asarray(Image.open(svg.with_suffix(".png")).convert("L")) < 128
    assert ink[32, 12:52].all() and not ink[10].any() and not ink[:, 60].any()


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    r = _run(str(tmp_path / "none.svg"))
    assert r.returncode != 0 and r.stderr.strip().startswith("error:") and "\n" not in r.stderr.strip()
    bad = tmp_path / "bad.svg"
    bad.write_text('<svg xmlns="http://www.w3.org/2000/svg"><circle r="3"/></svg>')
    r = _run(str(bad))
    assert "unsupported SVG element <circle>" in r.stderr and not bad.with_suffix(".png").exists()
