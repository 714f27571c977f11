#!/usr/bin/env bash
# The code-health checks CI runs (and .pre-commit-config.yaml runs locally): ruff lint and format,
# the import-linter contracts, mypy on engine/. Rules live in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports
.venv/bin/mypy
