#!/usr/bin/env bash
# Create .venv and install the harness with the model stack and test tools, from this repo's own files.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
# pip runs quietly; these lines say what is happening meanwhile (the whole install takes a few minutes).
say() { echo "tools/install.sh: $*" >&2; }
if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $PY"
    "$PY" -m venv .venv
fi
say "upgrading pip"
.venv/bin/python -m pip install -q --upgrade pip
say "installing the harness, PaddlePaddle (CPU) and the test tools into .venv (the longest part, ~2 minutes)"
.venv/bin/python -m pip install -q -e ".[models,dev]"
say "installing PaddleSlim (requirements/models.txt, without its dependencies)"
.venv/bin/python -m pip install -q --no-deps -r requirements/models.txt
say "checking the install; afterwards run the tools as .venv/bin/tipc and .venv/bin/python -m pytest"
.venv/bin/python -c "import paddle, paddleslim, harness; from paddleslim import QAT; print('paddle', paddle.__version__, 'and paddleslim QAT import fine')"
