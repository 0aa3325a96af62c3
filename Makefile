# Everything a fresh Debian machine with Python 3.11 needs, as root, from package registries.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
export QT_QPA_PLATFORM ?= offscreen

.PHONY: install run test lint typecheck mta qt bench soak fuzz app clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m compileall -q core gui  # .pyc up front: PYTHONDONTWRITEBYTECODE would recompile at every start

# Opens the window on the real display. The QT_QPA_PLATFORM=offscreen exported above (for
# the tests) is dropped when a display exists and the platform was not chosen by the
# caller; with no display the app runs its bounded sandbox smoke test and exits.
run: install qt
	@if [ "$(origin QT_QPA_PLATFORM)" = "file" ] && [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
		env -u QT_QPA_PLATFORM $(BIN)/mxmailer-gui; \
	else \
		$(BIN)/mxmailer-gui; \
	fi

lint: install
	$(BIN)/ruff check core gui tests bench packaging

typecheck: install
	$(BIN)/mypy --strict core gui

# Real MTAs for the interop tests (Postfix + postgrey, and Dovecot's IMAP server for the
# bounce mailbox; Debian packages). Installing needs root; elsewhere the interop and IMAP
# tests skip and say why (under CI=true they fail instead).
mta:
	@if [ "$$(id -u)" -eq 0 ]; then bash .ci/install-mta.sh; \
	else echo "make: not root, so Postfix/postgrey/Dovecot are not installed; interop and IMAP tests will skip"; fi

# The system libraries Qt loads, and a font (Debian packages; needs root, as above).
qt:
	@if [ "$$(id -u)" -eq 0 ]; then bash .ci/install-qt.sh; \
	else echo "make: not root, so Qt's system libraries are not installed"; fi

test: lint typecheck mta qt
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
	$(BIN)/python bench/gui_responsiveness.py

# Long runs, separate from `make test` (which runs a short version of each).
# The soak: 100,000 recipients over 1,000 misbehaving lab domains (docs/RELIABILITY.md).
soak: install
	$(BIN)/python bench/soak.py

# The fuzzers' long run (hypothesis; MXMAILER_FUZZ=long raises the example counts).
fuzz: install
	MXMAILER_FUZZ=long $(BIN)/pytest -q tests/fuzz

# The app as one folder that runs without Python: dist/mxmailer/mxmailer-gui (the window)
# and dist/mxmailer/mxmailer (the command line); packaging/build_app.py runs PyInstaller
# on packaging/mxmailer.spec, as tests/packaging/test_bundle.py does.
app: install qt
	$(BIN)/python -m pip install --quiet -e '.[app]'
	$(BIN)/python packaging/build_app.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage build dist *.egg-info
