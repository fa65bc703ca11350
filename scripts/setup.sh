#!/usr/bin/env bash
# Set up shapegen in ./.venv on a fresh machine.
#   bash scripts/setup.sh              core + dev tools
#   bash scripts/setup.sh blender      also the given extras (comma-separated: blender,diffusion,cuda,...)
# Without an NVIDIA GPU the CPU build of torch is installed first (torch==2.13.0, or the CPU
# wheel index if SHAPEGEN_TORCH_INDEX is set); with one, pip's default CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="dev${1:+,$1}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
if ! python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found, installing the CUDA build of torch"
    python -m pip install -q torch
  elif [ -n "${SHAPEGEN_TORCH_INDEX:-}" ]; then
    echo "setup: no GPU, installing the CPU build of torch from $SHAPEGEN_TORCH_INDEX"
    python -m pip install -q torch --index-url "$SHAPEGEN_TORCH_INDEX"
  else
    echo "setup: no GPU, installing the CPU build of torch (torch==2.13.0)"
    python -m pip install -q torch==2.13.0 || python -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi
python -m pip install -q -e ".[${extras}]"
python -c "import shapegen, renderers, torch; print(f'setup: shapegen {shapegen.__version__}, torch {torch.__version__}, cuda={torch.cuda.is_available()}')"
