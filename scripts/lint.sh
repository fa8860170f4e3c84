#!/usr/bin/env bash
# Lint (configuration in pyproject.toml); `make test` runs it before the tests. mypy is configured
# there too (`.venv/bin/mypy`) but not enforced yet: 169 errors to fix first.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
"$VENV/bin/ruff" check .
