# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Tested pins come from constraints.txt (torch==2.13.0, the CPU build); pyproject.toml declares ranges.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pogm demo

# One worker process per core (pytest-xdist), each test file in one worker (module fixtures run once).
test: $(STAMP)
	POGM_DATA=$${POGM_DATA:-../shared/data} $(BIN)/python -m pytest -q -n auto --dist loadfile

clean:
	rm -rf $(VENV) build src/*.egg-info
