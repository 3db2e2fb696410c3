# Two commands for a fresh Debian / Ubuntu / Raspberry Pi OS machine with Python 3.11+:
#   make demo   - set up .venv and run the end-to-end demo
#   make test   - set up .venv, install Mosquitto and chromium if missing, run every test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# apt-get needs root: use sudo when we are not root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint bench bench-reliability bench-tinydb schemas mosquitto chromium clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "dho-gateway needs Python 3.11 or newer (found $$($(PYTHON) --version))"; exit 1; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

mosquitto:
	@command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || \
		{ echo "installing mosquitto from Debian's packages"; \
		  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q mosquitto; }

# The pages' browser tests drive Debian's chromium through Playwright (never a browser download).
chromium:
	@[ -x /usr/bin/chromium ] || \
		{ echo "installing chromium from Debian's packages"; \
		  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

demo: $(STAMP)
	$(BIN)/dho-gateway demo

test: $(STAMP) mosquitto chromium
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python ../shared/tools/check_layers.py . 2>/dev/null || $(BIN)/python -c 'print("layer check: ../shared not found")'

bench: $(STAMP)
	$(BIN)/python bench/outbox.py
	$(BIN)/python bench/zoning.py
	$(BIN)/python bench/ble.py
	$(BIN)/python bench/web.py

# The longer runs behind docs/decisions/: 1,000 kill -9 trials, and tinydb against SQLite.
bench-reliability: $(STAMP)
	$(BIN)/python bench/outbox_kill.py --trials 1000

bench-tinydb: $(STAMP)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/tinydb_vs_sqlite.py

schemas: $(STAMP)
	$(BIN)/dho-gateway schemas --out docs/schemas

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
