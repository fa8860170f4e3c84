#!/usr/bin/env bash
# Lint and type check (configuration in pyproject.toml); `make test` runs it before the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
"$VENV/bin/ruff" check .
"$VENV/bin/mypy"
