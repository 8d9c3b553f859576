# The two commands of the README (`make run`, `make test`) and what they need.
# Each creates its own virtual environment in .venv on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: run test test-postgres lint demo-db clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@

## run: database, processes, demo council, and the timer scheduler on this machine
run: $(STAMP)
	$(BIN)/pep init
	$(BIN)/pep deploy --as setup@demo.test
	$(BIN)/pep scheduler --interval 30

## test: the whole test suite (SQLite)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest

## test-postgres: the suite again against PostgreSQL
test-postgres: $(STAMP)
	PEP_TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
