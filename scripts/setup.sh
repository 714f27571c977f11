#!/usr/bin/env bash
# Create .venv and install CEST Studio with the app and test extras (idempotent; quick when done).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.cest-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    # The CPU build of torch (a plain `torch` would pull a multi-GB CUDA build).
    python -m pip install -q torch==2.13.0 || python -m pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
    python -m pip install -q -e ".[app,test]"
    touch "$stamp"
fi
