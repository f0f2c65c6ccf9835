PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install up lint test test-faults bench clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "infrawatch needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

## Run the whole system on embedded defaults (nats-server, PostgreSQL, this host as device "local").
up: install
	$(BIN)/infrawatch up

## Lint: ruff over the code, tests and benchmarks; mypy over shared/, services/ and schema/
## (strict on shared/ and the watcher's config parsers and redaction).
lint: install
	$(BIN)/ruff check shared services schema tests bench
	$(BIN)/mypy

## Run the tests against real servers started by the fixtures.
test: install
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "no tests ran: failing"; exit 1; fi; exit $$rc

## Run the fault suite alone (also part of `make test`): kills, restarts, full disks, bad hosts.
test-faults: install
	$(BIN)/python -m pytest -p no:cacheprovider -m faults $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "no tests ran: failing"; exit 1; fi; exit $$rc

## Run every benchmark (each starts its own servers); figures go to bench/results.json, printed
## as one table at the end. BENCH_ARGS: --quick, --only NAME,..., --skip NAME,...,
## --args 'NAME=--opt value' (see bench/run.py); BENCH_WRITER_ARGS: extra writer_ingest options.
bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS) $(if $(BENCH_WRITER_ARGS),--args 'writer_ingest=$(BENCH_WRITER_ARGS)')

clean:
	rm -rf $(VENV) .infrawatch
