# The two commands: `make run` (the whole stack on this machine) and `make test` (the suite);
# `make bench` / `make bench-quick`: the benchmark's full (~25 min) and quick (< 3 min) profiles;
# `make bench-vllm-serve`: vLLM's own load generator against our gateway and stock vLLM (~4 min on an idle machine).
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)
export HF_HUB_OFFLINE := 1

.PHONY: setup run test bench bench-quick bench-vllm-serve

setup:
	@bash scripts/setup.sh

run: setup
	@$(PY) -m stack.run

test: setup
	@bash scripts/lint.sh
	@$(PY) -m pytest tests

bench: setup
	@$(PY) -m bench

bench-quick: setup
	@$(PY) -m bench --quick

bench-vllm-serve: setup
	@$(PY) -m bench.vllm_serve
