#!/usr/bin/env bash
# Create .venv and install the harness with the model stack and test tools, from this repo's own files.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[models,dev]"
.venv/bin/python -m pip install -q --no-deps -r requirements/models.txt
.venv/bin/python -c "import paddle, paddleslim, harness; from paddleslim import QAT; print('paddle', paddle.__version__, 'and paddleslim QAT import fine')"
