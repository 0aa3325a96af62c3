# Everything a fresh Debian machine with Python 3.11 needs, as root, from package registries.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
export QT_QPA_PLATFORM ?= offscreen

.PHONY: install run test lint typecheck mta bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'

run: install
	$(BIN)/mxmailer --help

lint: install
	$(BIN)/ruff check core gui tests bench

typecheck: install
	$(BIN)/mypy --strict core

# Real MTAs for the interop tests (Postfix + postgrey, Debian packages). Installing needs
# root; elsewhere the interop tests skip and say why (under CI=true they fail instead).
mta:
	@if [ "$$(id -u)" -eq 0 ]; then bash .ci/install-mta.sh; \
	else echo "make: not root, so Postfix/postgrey are not installed; interop tests will skip"; fi

test: lint typecheck mta
	$(BIN)/pytest --cov=core --cov-branch --cov-report=term tests
	@echo "core/smtp coverage (statements and branches; the bar is 95%):"
	$(BIN)/coverage report --include='core/smtp/*' --fail-under=95

bench: install
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/smtp_throughput.py
	$(BIN)/python bench/engine_throughput.py
	$(BIN)/python bench/import_speed.py
	$(BIN)/python bench/message_build.py
	$(BIN)/python bench/dkim_sign.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage build *.egg-info
