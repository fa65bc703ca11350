#!/usr/bin/env bash
# Set up (with the blender extra for the export tests, the diffusion extra (diffusers, transformers,
# peft) for the tiny random Stable Diffusion and CLIP tests, and the cuda extra: nerfacc, whose CPU
# functions the torch renderer is checked against) and run the default test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh blender,cuda,diffusion
# Lint first (rules in pyproject.toml): a finding fails the run before the tests start.
.venv/bin/ruff check --quiet .
if [ "$#" -eq 0 ]; then set -- -m "not slow"; fi
exec .venv/bin/python -m pytest -q "$@"
