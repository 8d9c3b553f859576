# The two commands of the README (`make run`, `make test`) and what they need.
# Each sets up on first use: a Python virtual environment in .venv and the npm front-end assets.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
ASSETS := webui/static/build/.assets
JS := $(wildcard webui/assets/js/*.js webui/assets/js/*/*.js)
# The one name of the PostgreSQL test database: the tests read it (tests/conftest.py), `make test-postgres`
# and .ci/run pass it on. `make test` is the SQLite run whatever the environment says.
PEP_TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: run test test-postgres assets lint clean bench screens

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

# CSS from Sass, one JavaScript bundle per page in webui/assets/js/pages (bpmn-js), vendor files copied.
$(ASSETS): node_modules/.package-lock.json $(wildcard webui/assets/*.scss) $(JS)
	mkdir -p webui/static/vendor/govuk webui/static/vendor/bpmn-js webui/static/build
	cp -r node_modules/govuk-frontend/dist/govuk/assets node_modules/govuk-frontend/dist/govuk/govuk-frontend.min.js webui/static/vendor/govuk/
	cp node_modules/htmx.org/dist/htmx.min.js webui/static/vendor/
	cp -r node_modules/bpmn-js/dist/assets/. webui/static/vendor/bpmn-js/
	npm run --silent build:css
	npm run --silent build:js
	touch $@

assets: $(ASSETS)

## run: database, processes, demo council; the web app and its scheduler on http://127.0.0.1:5000
screens: $(STAMP) $(ASSETS)  ## each role's main pages at desktop and phone width, under docs/screens/
	$(BIN)/python -m tools.screens

run: $(STAMP) $(ASSETS)
	$(BIN)/pep init
	$(BIN)/pep deploy --as setup@demo.test
	$(BIN)/pep-web demo
	PEP_SECURE_COOKIES=0 $(BIN)/pep-web run

## test: lint, the engine's type check and the whole test suite (SQLite); browser tests use Debian's chromium
test: $(STAMP) $(ASSETS)
	tools/install-chromium.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	PEP_TEST_DATABASE_URL= $(BIN)/pytest

## test-postgres: the suite again against PostgreSQL (PEP_TEST_DATABASE_URL)
test-postgres: $(STAMP) $(ASSETS)
	PEP_TEST_DATABASE_URL=$(PEP_TEST_DATABASE_URL) $(BIN)/pytest

## bench: the simulated council year and the web load run (docs/benchmarks.md); BENCH_DATABASE may be PostgreSQL
BENCH_DATABASE ?= sqlite:///instance/bench.sqlite
BENCH_CHILDREN ?= 1000
bench: $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m benchmarks year --database $(BENCH_DATABASE) --children $(BENCH_CHILDREN)
	$(BIN)/python -m benchmarks web

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) node_modules webui/static/build webui/static/vendor instance .pytest_cache .ruff_cache
