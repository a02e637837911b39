#!/usr/bin/env bash
# Drop-in for the TIPC script: CONFIG MODE [GPU_IDS] [options], run from the model repo root, via the Python harness.
PY="$(dirname "${BASH_SOURCE[0]}")/../.venv/bin/python"
[ -x "$PY" ] || PY=python3
exec "$PY" -m harness run "$@"
