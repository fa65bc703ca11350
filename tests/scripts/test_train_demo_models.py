"""``scripts/train_demo_models.py`` (Mosaic-SDF part) end to end on a tiny budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from shapegen.methods.msdf import MSDFGenerator

REPO = Path(__file__).resolve().parents[2]


def test_msdf_demo_script_end_to_end(tmp_path: Path) -> None:
    out, work = tmp_path / "model", tmp_path / "work"
    cmd = [sys.executable, str(REPO / "scripts" / "train_demo_models.py"), "--per-class", "2", "--held-out", "1", "--baseline", "1",
           "--n", "16", "--mesh-resolution", "24", "--minutes", "1", "--samples", "1", "--decode-resolution", "24",
           "--work", str(work), "--out", str(out), "--no-bench", "--skip-las",
           "--set", "train.max_steps=6", "train.log_every=2", "model.width=32", "model.depth=1", "value_components=4"]
    run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["steps"] == 6 and metrics["train"]["value_components"] == 4
    assert set(metrics["eval"]["classes"]) == {"chair", "lamp", "mug", "shelf", "table"}
    assert 0.0 <= metrics["eval"]["fidelity"] <= 1.0
    card = (out / "MODEL_CARD.md").read_text()
    assert f"**{metrics['eval']['fidelity'] * 100:.0f}%**" in card and "value_components = 4" in card
    # The shipped file is weights only and loads as users load it, basis included.
    model = MSDFGenerator.load_from_checkpoint(str(out / "msdf_demo.ckpt"), map_location="cpu")
    assert model.ema is None and model.dim == 8 and model.value_basis.shape == (125, 4)
    assert model.sample(1, cls="mug", steps=2).shape == (1, 16, 129)
    # The converted data stays in --work, where the next run reuses it.
    assert sorted(p.parent.name for p in (work / "msdf").glob("*/*.msdf.npz")).count("mug") == 2
