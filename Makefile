# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: demo test check lint bench clean help

help:
	@echo "make demo   - install and run the main job end to end (SQLite + local capture SMTP)"
	@echo "make test   - install what the tests need (Chromium, Postfix) and run lint + the whole suite (what CI runs)"
	@echo "make check  - the fast lane (~1.5 min): lint + the tests not marked slow, SQLite, two processes"
	@echo "make lint   - ruff + mypy --strict on mailer/ and tests/"
	@echo "make bench  - benchmarks (numbers, not pass/fail)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mailer needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Browser tests drive Debian's Chromium through Playwright (its own browser download does
# not work offline).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "install Chromium at $(CHROMIUM) for the browser tests"; exit 1; }
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	$(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

# The relay end-to-end test (tests/test_postfix_relay.py) runs a private instance of
# Debian's Postfix on loopback ports; the package's own daemon is left as installed.
POSTFIX := /usr/sbin/postfix
$(POSTFIX):
	@command -v apt-get >/dev/null || { echo "install Postfix at $(POSTFIX) for the relay test"; exit 1; }
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	$(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null

demo: $(STAMP)
	$(BIN)/mailer --config config.example.toml demo

lint: $(STAMP)
	$(BIN)/ruff check mailer tests bench
	$(BIN)/ruff format --check mailer tests bench
	$(BIN)/mypy mailer tests

test: $(STAMP) $(CHROMIUM) $(POSTFIX) lint
	$(BIN)/python -m pytest -q

# The edit-test loop (~1.5 min here): the tests not marked `slow` (browser, kill -9 crash
# tests, subprocess-heavy and big-volume ones) on SQLite, two processes; `make test` runs
# everything on both databases (what CI runs).
check: $(STAMP) lint
	$(BIN)/python -m pytest -q -n 2 -m "not slow and not postgres"

bench: $(STAMP)
	$(BIN)/python bench/render_bench.py
	$(BIN)/python bench/send_bench.py --recipients 10000 --backend both --workers 1 2

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
