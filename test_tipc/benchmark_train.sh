#!/usr/bin/env bash
# Drop-in for TIPC's benchmark script: CONFIG benchmark_train [PARAMS such as dynamic_bs8_fp32_DP_N1C1], via the harness.
PY="$(dirname "${BASH_SOURCE[0]}")/../.venv/bin/python"
[ -x "$PY" ] || PY=python3
exec "$PY" -m harness benchmark "$@"
