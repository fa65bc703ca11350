#!/usr/bin/env bash
# Run this first whenever a GPU is at hand (at most 8 minutes on one H100): the CUDA tests,
# torch vs nerfacc parity, and each method's seconds per step and peak memory at its tiny and
# paper presets through the shapegen command line. Writes the "gpu-check" section of
# docs/benchmarks.md. Without CUDA the CUDA parts and the paper presets are skipped, each with a
# line saying so, and the tiny presets still run (a few minutes on a CPU).
#   bash scripts/gpu_check.sh                      # everything, within a 480 s budget
#   bash scripts/gpu_check.sh --quick --no-write   # CI: tiny presets, 2 steps, table printed only
#   bash scripts/gpu_check.sh --budget 600 --steps 5
# Each part runs under `timeout` with what is left of the budget; a part that fails or runs out
# of time is a "failed: ..." row, and the script then exits with status 1 after the report.
# Python: $SHAPEGEN_PYTHON, else .venv/bin/python, else python3. The measuring is done by
# scripts/bench_gpu_check.py.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DRIVER=(scripts/bench_gpu_check.py)
command_line="bash scripts/gpu_check.sh${*:+ $*}"

budget=480
pass=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --budget) budget="${2:-}"; shift 2 || { echo "error: --budget needs a number of seconds" >&2; exit 2; } ;;
    --budget=*) budget="${1#*=}"; shift ;;
    --steps) pass+=(--steps "${2:-}"); shift 2 || { echo "error: --steps needs a number" >&2; exit 2; } ;;
    --steps=*) pass+=(--steps "${1#*=}"); shift ;;
    --quick | --no-write) pass+=("$1"); shift ;;
    -h | --help) sed -n '2,13p' "$0" | cut -c3-; exit 0 ;;
    *) echo "error: unknown option '$1'; see 'bash scripts/gpu_check.sh --help'" >&2; exit 2 ;;
  esac
done
if ! [[ "$budget" =~ ^[0-9]+$ ]] || [ "$budget" -lt 10 ]; then
  echo "error: --budget takes whole seconds, at least 10 (got '$budget')" >&2
  exit 2
fi

if [ -n "${SHAPEGEN_PYTHON:-}" ]; then
  PY="$SHAPEGEN_PYTHON"
elif [ -x .venv/bin/python ]; then
  PY="$ROOT/.venv/bin/python"
else
  PY="$(command -v python3)"
  echo "gpu_check: no .venv (bash scripts/setup.sh makes one); using $PY" >&2
fi

results="$(mktemp "${TMPDIR:-/tmp}/gpu_check_XXXXXX.jsonl")"
trap 'rm -f "$results"' EXIT
start=$SECONDS
for part in tests parity methods; do
  t0=$SECONDS
  left=$((budget - (SECONDS - start)))
  if [ "$left" -lt 5 ]; then
    "$PY" "${DRIVER[@]}" --results "$results" --record "$part" "failed: not run, the ${budget} s budget was spent"
    continue
  fi
  echo "== $part: at most $left s of the $budget s budget"
  # The driver gets a little less than the timeout, so its own per-run limits fire first and
  # name what was cut short; the timeout (its process group: the runs too) is the backstop.
  rc=0
  timeout --kill-after=10 "$left" "$PY" "${DRIVER[@]}" --part "$part" --results "$results" --budget "$((left > 20 ? left - 10 : left))" \
    ${pass[@]+"${pass[@]}"} || rc=$?
  took=$((SECONDS - t0))
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    "$PY" "${DRIVER[@]}" --results "$results" --record "$part" "failed: timed out after $took s" --wall "$took"
  elif [ "$rc" -ne 0 ]; then
    "$PY" "${DRIVER[@]}" --results "$results" --record "$part" "failed: the driver exited with status $rc" --wall "$took"
  fi
  echo "== $part: $took s"
done
rc=0
"$PY" "${DRIVER[@]}" --report --results "$results" --budget "$budget" --command "$command_line" ${pass[@]+"${pass[@]}"} || rc=$?
echo "gpu_check: $((SECONDS - start)) s in all, exit status $rc"
exit "$rc"
