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

.PHONY: help venv sysdeps demo test lint bench hil flash clean catalogues

help:
	@echo "make demo    a commune in a minute: head-end, three sim nodes, a broadcast, a refusal, an emergency"
	@echo "make test    lint, the qemu subset (skips without QEMU), unit tests + HIL suites against the sim"
	@echo "make bench   measurements (tables), not part of CI"
	@echo "make hil TARGET=sim|qemu|serial [PORT=/dev/ttyUSB0]"
	@echo "make flash PORT=/dev/ttyUSB0 BOARD=esp32-devkitc-max98357"
	@echo "make catalogues   re-extract messages into the translation catalogues"

$(STAMP): requirements.txt $(wildcard requirements/*.txt) constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

STUBS := $(VENV)/stubs
$(STUBS)/.installed: requirements-stubs.txt $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --upgrade --target $(STUBS) -r requirements-stubs.txt
	@touch $@

# Translations: the .po files are the source (committed), the .mo files are
# built here for every target, so a fresh clone speaks Vietnamese (docs/i18n.md).
LOCALE := host_tools/loaxa/locale
PO := $(wildcard $(LOCALE)/*/LC_MESSAGES/loaxa.po)
MO := $(PO:.po=.mo)
%.mo: %.po | $(STAMP)
	@$(VENV)/bin/pybabel -q compile -D loaxa -i $< -o $@

venv: $(STAMP) $(MO)

catalogues: venv
	$(VENV)/bin/pybabel -q extract -F babel.cfg -k N_ --no-default-keywords -c TRANSLATORS: \
	  --add-location=file --sort-by-file --project loaxa --copyright-holder "the loaxa authors" \
	  --msgid-bugs-address "" -o $(LOCALE)/loaxa.pot host_tools/loaxa
	$(VENV)/bin/pybabel -q update -D loaxa -i $(LOCALE)/loaxa.pot -d $(LOCALE) -w 100 \
	  --ignore-pot-creation-date
	@$(MAKE) --no-print-directory $(MO)

sysdeps:
	@bash scripts/sysdeps.sh

demo: venv sysdeps
	$(PY) -m loaxa.demo

# The qemu stage runs the tests marked qemu on the emulated ESP32 (docs/hil.md);
# without QEMU they skip, and pytest's "nothing collected" (5) is no failure. It
# runs before the main suite, so the run's last summary line counts every test.
test: venv sysdeps
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest -q hil_tests --target qemu -m qemu -p no:cacheprovider --timeout 1200 $(QEMU_ARGS) \
	  || [ $$? -eq 5 ]
	$(PY) -m pytest -q $(ARGS)

lint: venv $(STUBS)/.installed
	$(VENV)/bin/ruff check firmware host_tools hil_tests tests
	$(VENV)/bin/mypy host_tools/loaxa
	MYPYPATH=$(STUBS) $(VENV)/bin/mypy --config-file firmware/mypy.ini --custom-typeshed-dir $(STUBS) firmware/loaxa_node

hil: venv
	$(PY) -m pytest -q hil_tests --target $(TARGET) $(if $(PORT),--port $(PORT)) $(ARGS)

bench: venv
	@bash scripts/sysdeps.sh bench
	$(PY) -m loaxa.bench $(ARGS)

flash: venv
	@test -n "$(PORT)" || { echo "give PORT=/dev/serial/by-path/... (see: .venv/bin/loaxa ports)"; exit 2; }
	$(VENV)/bin/loaxa flash --port $(PORT) --board $(BOARD) $(ARGS)
	$(VENV)/bin/loaxa deploy --port $(PORT)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
