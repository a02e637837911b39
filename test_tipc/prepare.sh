#!/usr/bin/env bash
# Drop-in for the TIPC prepare.sh: CONFIG MODE, run from the model repo root; builds the model's data via the harness.
PY="$(dirname "${BASH_SOURCE[0]}")/../.venv/bin/python"
[ -x "$PY" ] || PY=python3
exec "$PY" -m harness prepare "$@"
