# meter2cash — the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
M2C := $(VENV)/bin/m2c
PYTHON ?= python3
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install meter2cash with its development tools

demo: $(STAMP) ## simulate a 1,000-consumer utility for 30 days in its own database (var/demo/)
	$(M2C) demo --reset $(DEMO_ARGS)

test: $(STAMP) ## run the whole test suite (SQLite and PostgreSQL; PostgreSQL mandatory when CI=true)
	$(PY) -m pytest -n 2 --dist loadgroup -q $(PYTEST_ARGS)

lint: $(STAMP) ## ruff, mypy and the import contracts (layers, pure kernels, no cycles)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: $(STAMP) ## apply ruff's formatter and safe fixes
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

bench: $(STAMP) ## run the benchmarks and print their figures
	$(PY) benchmarks/run.py $(BENCH_ARGS)

serve: $(STAMP) ## start the API on http://127.0.0.1:8000 (OpenAPI at /docs)
	$(M2C) db upgrade
	$(M2C) serve

clean: ## remove the virtual environment and local data
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .import_linter_cache

.PHONY: help install demo test lint format bench serve clean
