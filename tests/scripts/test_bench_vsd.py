"""``scripts/bench_vsd.py``: one benchmark child on the tiny preset, trained through ``engine.fit``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_vsd_child_times_every_step_after_the_warmup(tmp_path: Path) -> None:
    cmd = [sys.executable, str(REPO / "scripts" / "bench_vsd.py"), "--child", "--warmup", "1", "--steps", "2", "--threads", "1",
           "--resolution", "16"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert 0 < result["best"] <= result["median"] and result["threads"] == 1
    assert list(tmp_path.iterdir()) == []  # the run's checkpoint went to a temporary folder


def test_vsd_prior_silhouettes_find_the_object_on_either_background():
    import torch
    from _scripts import load_script

    silhouettes = load_script("bench_vsd_prior").silhouettes
    img = torch.ones(2, 3, 8, 8)
    img[0, :, 2:5, 3:6] = torch.tensor([0.6, 0.5, 0.4])[:, None, None]  # a muted object on white
    img[1] = 0.0
    img[1, :, 2:5, 3:6] = torch.tensor([0.5, 0.9, 0.5])[:, None, None]  # a normal map on black
    img[1, :, 0, 0] = 0.05  # within the tolerance of the background
    want = torch.zeros(8, 8)
    want[2:5, 3:6] = 1
    assert torch.equal(silhouettes(img), want.flatten()[None].expand(2, -1))
