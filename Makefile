# The two commands: `make run` (the whole stack on this machine) and `make test` (the suite).
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)
export HF_HUB_OFFLINE := 1

.PHONY: setup run test

setup:
	@bash scripts/setup.sh

run: setup
	@$(PY) -m stack.run

test: setup
	@$(PY) -m pytest tests
