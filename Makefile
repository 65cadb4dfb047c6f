# Kopilka: `make run` serves a demo on :8000, `make test` runs the whole suite.
# Both need only Python 3.11+: PostgreSQL and Valkey are embedded unless
# KOPILKA_DATABASE_URL / KOPILKA_VALKEY_URL point at servers of your own.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# reinstalls only when pyproject.toml changes
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test bench bench-import migrate worker install browser clean

# --dev: sign-in codes are printed in the terminal instead of sent (the local demo only)
run: $(STAMP)
	$(BIN)/kopilka serve --dev

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -p no:cacheprovider

# e.g. make bench BENCH_ARGS="--quick" or BENCH_ARGS="--tills 40 --workers 4" (bench/run.py --help);
# the closed loop, then the open loop at 50 %/80 % of it; BENCH_ARGS="--commit-delay 0,100,1000" adds the group commit sweep
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# `kopilka import` on a generated dirty legacy export, e.g. make bench-import IMPORT_MEMBERS=1000000
IMPORT_MEMBERS ?= 100000
IMPORT_HISTORY ?= 0
bench-import: $(STAMP)
	$(BIN)/python bench/import_bench.py --members $(IMPORT_MEMBERS) --history $(IMPORT_HISTORY)

migrate: $(STAMP)
	$(BIN)/kopilka migrate

worker: $(STAMP)
	$(BIN)/kopilka worker

install: $(STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Kopilka needs Python 3.11+ (set PYTHON=python3.12 or similar)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# Browser tests (tests/e2e) need Chromium. Without browser tests nothing is installed.
# With them and no Chromium, try apt-get; if that is impossible the browser tests skip
# themselves locally, but in CI (CI is set) a missing browser fails the run.
browser:
	@if ! ls tests/e2e/test_*.py >/dev/null 2>&1; then exit 0; fi; \
	if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1; then exit 0; fi; \
	if [ -n "$${CI:-}" ]; then echo "Chromium is needed for tests/e2e and could not be installed" >&2; exit 1; fi; \
	echo "note: no Chromium and apt-get could not install it: browser tests will be skipped" >&2

clean:
	rm -rf $(VENV) .kopilka build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
