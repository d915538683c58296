# The README's two commands: `make demo` (install what the demo needs, run the main job) and
# `make test` (install everything, run all checks).
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: setup demo test lint typecheck pytest bench docs services clean

setup: $(VENV)/.installed

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# The demo needs only the package, torch and scikit-learn. torch is pinned to the CPU build that lies
# on this machine's disk; the package itself accepts any torch.
$(VENV)/.demo-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[demo]"
	touch $@

# Everything the checks need: every extra and the dev tools, in the same .venv.
$(VENV)/.installed: $(VENV)/.demo-installed
	$(PY) -m pip install -q -e ".[demo,server,agent,hf,lightning,dev]"
	touch $@

demo: $(VENV)/.demo-installed
	$(BIN)/zeus demo

# Databases the tests use for real (PostgreSQL); installed from Debian's packages when missing and root.
services:
	bash scripts/install-services.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

pytest: setup services
	$(BIN)/pytest -q $(PYTEST_ARGS)

test: lint typecheck pytest

bench: setup
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

docs: setup
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache
