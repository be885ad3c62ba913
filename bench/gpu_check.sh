#!/usr/bin/env bash
# The GPU check of the Triton kernels in one call (mixers/bench_gpu.py): correctness against the
# reference in float32 and bfloat16, then timings against chunked and causal SDPA.
# Writes bench_out/gpu_check.json (or --out PATH). Options pass through, e.g. --smoke, --ns.
# Uses .venv/bin/python when there is one, else python3 (GPU machines carry torch and triton).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=${PYTHON:-.venv/bin/python}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
exec timeout 590 "$PY" -m mixers.bench_gpu "$@"
