# `make run` and `make test` are all the set-up a fresh Debian machine needs: `make test`
# installs Chromium with apt when it may (scripts/test-deps) and the tests start a
# throw-away PostgreSQL from a pip wheel when none answers (tests/pgserver.py).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tidings serve --demo

test: $(STAMP) lint
	scripts/test-deps
	$(BIN)/pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/mypy src

# The browser tests write screenshots to build/screenshots/; this replaces the
# committed ones in docs/screenshots/ instead.
screenshots: $(STAMP)
	TIDINGS_UPDATE_SCREENSHOTS=1 $(BIN)/pytest -q tests/e2e/test_browser.py

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) outbox tidings.db*
