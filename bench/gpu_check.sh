#!/usr/bin/env bash
# The first GPU hour of the Triton kernels in one call (bench/gpu_check.py; docs/triton.md says
# what each figure means): correctness in float32 / bfloat16 / float64 with gradcheck and compile
# times, no host sync and CUDA graph capture, race stress, compute-sanitizer memcheck and
# synccheck, the state-expanded op (errors, fla's simple GLA, memcheck, time against chunked),
# the scan occupancy sweep, the speed table against causal SDPA and chunked, bf16 error against
# n, then the test file when pytest is there. About 11 minutes on one H100/H200
# (--budget-s 660; work not started by then is skipped and marked so in the JSON).
# Writes bench_out/gpu_check.json (or --out PATH), rewritten after each stage. Options pass
# through, e.g. --only correctness,race, --skip pytest, --smoke, --ns 1024,4096.
# Needs only this repository and the machine's own torch and Triton: uses .venv/bin/python when
# there is one, else $PYTHON or python3.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=${PYTHON:-.venv/bin/python}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
exec timeout 720 "$PY" -m bench.gpu_check "$@"
