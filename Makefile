# One-command set-up: every target creates/updates the local virtualenv itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?=
BOARD ?= esp32-devkitc-max98357
TARGET ?= sim
ARGS ?=

.PHONY: help venv sysdeps demo test lint bench hil flash clean

help:
	@echo "make demo    boot a simulated node and show its health"
	@echo "make test    lint + unit tests + HIL suites against the sim"
	@echo "make bench   measurements (tables), not part of CI"
	@echo "make hil TARGET=sim|qemu|serial [PORT=/dev/ttyUSB0]"
	@echo "make flash PORT=/dev/ttyUSB0 BOARD=esp32-devkitc-max98357"

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

STUBS := $(VENV)/stubs
$(STUBS)/.installed: requirements-stubs.txt $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --upgrade --target $(STUBS) -r requirements-stubs.txt
	@touch $@

venv: $(STAMP)

sysdeps:
	@bash scripts/sysdeps.sh

demo: venv
	$(PY) -m loaxa.demo

test: venv sysdeps
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest -q $(ARGS)

lint: venv $(STUBS)/.installed
	$(VENV)/bin/ruff check firmware host_tools hil_tests tests
	$(VENV)/bin/mypy host_tools/loaxa
	MYPYPATH=$(STUBS) $(VENV)/bin/mypy --config-file firmware/mypy.ini --custom-typeshed-dir $(STUBS) firmware/loaxa_node

hil: venv
	$(PY) -m pytest -q hil_tests --target $(TARGET) $(if $(PORT),--port $(PORT)) $(ARGS)

bench: venv sysdeps
	$(PY) -m loaxa.bench $(ARGS)

flash: venv
	@test -n "$(PORT)" || { echo "give PORT=/dev/serial/by-path/... (see: .venv/bin/loaxa ports)"; exit 2; }
	$(VENV)/bin/loaxa flash --port $(PORT) --board $(BOARD) $(ARGS)
	$(VENV)/bin/loaxa deploy --port $(PORT)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
