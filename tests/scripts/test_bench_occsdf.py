"""``scripts/bench_occsdf.py``: the claim ablation's verdict."""

from __future__ import annotations

from _scripts import load_script


def _runs(variant: str, values: list[float]) -> list[dict]:
    return [{"variant": variant, "seed": i, "recall_thin_or_dark@2cm": v} for i, v in enumerate(values)]


def test_claim_verdict_needs_a_gain_above_twice_the_larger_spread():
    verdict = load_script("bench_occsdf").claim_verdict
    # gain 0.10, larger std 0.01: holds
    assert "claim holds" in verdict({"hybrid": _runs("hybrid", [0.29, 0.30, 0.31]), "sdf-only": _runs("sdf-only", [0.20, 0.20, 0.20])})
    # same gain, but one variant's seeds spread by 0.1: does not hold
    text = verdict({"hybrid": _runs("hybrid", [0.20, 0.30, 0.40]), "sdf-only": _runs("sdf-only", [0.20, 0.20, 0.20])})
    assert "does not hold" in text and "+0.1000" in text
    # hybrid below SDF-only: does not hold
    assert "does not hold" in verdict({"hybrid": _runs("hybrid", [0.1, 0.1]), "sdf-only": _runs("sdf-only", [0.2, 0.21])})
    # one seed each: no verdict; one variant missing: nothing
    assert "no verdict yet" in verdict({"hybrid": _runs("hybrid", [0.3]), "sdf-only": _runs("sdf-only", [0.2, 0.2])})
    assert verdict({"hybrid": _runs("hybrid", [0.3, 0.3])}) == ""
