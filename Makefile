# Two commands for a fresh Debian / Ubuntu / Raspberry Pi OS machine with Python 3.11+:
#   make demo   - set up .venv and run the end-to-end demo
#   make test   - set up .venv, install Mosquitto, PostgreSQL (and start it), chromium and dbus if missing, run every test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_STAMP := $(VENV)/.demo-stamp
# apt-get needs root: use sudo when we are not root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# uv installs the same packages several times faster than pip: used when it is on the PATH.
UV := $(shell command -v uv 2>/dev/null)
INSTALL := $(if $(UV),$(UV) pip install --python $(BIN)/python,$(BIN)/pip install --progress-bar off)

.PHONY: demo test lint bench bench-chaos bench-fleet bench-reliability bench-tinydb bench-history bench-memory schemas mosquitto postgres chromium dbus clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "dho-gateway needs Python 3.11 or newer (found $$($(PYTHON) --version))"; exit 1; }
	$(if $(UV),,@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q python3-venv; })
	@echo "make: creating $(VENV) with $(if $(UV),uv,$(PYTHON) -m venv)"
	$(if $(UV),$(UV) venv -q --seed --python $(PYTHON) $(VENV),$(PYTHON) -m venv $(VENV))

# Everything for tests and lint (pytest, ruff, mypy, the bumble simulators).
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "make: installing dho-gateway with the dev extra (tests, lint, simulators)$(if $(UV), with uv)"
	$(INSTALL) -q -e '.[dev]'
	@touch $@

# Only what `dho-gateway demo` needs (the embedded broker on top of the gateway's own packages): a fresh
# clone shows its first reading sooner. Nothing to do when the dev extra is installed already.
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	@if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then :; else \
		echo "make: installing dho-gateway and the demo's packages$(if $(UV), with uv) (first run only)..."; \
		$(if $(UV),,echo "make: (uv is not on the PATH: pip is used; with uv this step takes seconds)";) \
		PYTHONUNBUFFERED=1 $(INSTALL) -e '.[demo]' 2>&1 | grep --line-buffered -E '^(Collecting|Installing|Successfully|Resolved|Prepared|Installed|ERROR|error)' \
			|| true; \
		$(BIN)/python -c 'import gateway, amqtt' || { echo "make: the installation failed (see above)"; exit 1; }; \
	fi
	@touch $@

mosquitto:
	@command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || \
		{ echo "installing mosquitto from Debian's packages"; \
		  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q mosquitto; }

# The BlueZ glue (pairing agent, bond removal) is tested over a private D-Bus against a fake BlueZ.
dbus:
	@command -v dbus-daemon >/dev/null 2>&1 || \
		{ echo "installing dbus from Debian's packages"; \
		  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dbus; }

# The central side's tests need PostgreSQL on 127.0.0.1:5432, user postgres, trust auth. Started if it is
# down; installed from Debian's packages if absent (then local TCP trust for the postgres user is added).
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || { \
	  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then \
	    echo "installing postgresql from Debian's packages"; \
	    $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q postgresql && \
	    hba=$$(ls -d /etc/postgresql/*/main | sort -V | tail -1)/pg_hba.conf && \
	    $(SUDO) sed -i '1i host all postgres 127.0.0.1/32 trust' $$hba; \
	  fi; \
	  version=$$(ls /etc/postgresql | sort -V | tail -1); \
	  $(SUDO) pg_ctlcluster --skip-systemctl-redirect $$version main start || \
	    $(SUDO) pg_ctlcluster --skip-systemctl-redirect $$version main reload || true; \
	  for i in $$(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	  pg_isready -h 127.0.0.1 -p 5432 || echo "PostgreSQL is NOT running: the central tests that need it will fail"; }

# The pages' browser tests drive Debian's chromium through Playwright (never a browser download).
chromium:
	@[ -x /usr/bin/chromium ] || \
		{ echo "installing chromium from Debian's packages"; \
		  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

demo: $(DEMO_STAMP)
	$(BIN)/dho-gateway demo

test: $(STAMP) mosquitto postgres chromium dbus
	$(BIN)/pytest

# The layer rules between packages live in the shared design folder beside the checkout; the rules
# between the rooms inside gateway/ are the project's own (tools/check_rooms.py).
LAYERS := $(firstword $(wildcard ../shared/tools/check_layers.py ../../shared/tools/check_layers.py))

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python tools/check_rooms.py .
	$(if $(LAYERS),$(BIN)/python $(LAYERS) .,@echo "layer check: no shared/tools/check_layers.py beside this checkout: skipped")

bench: $(STAMP) mosquitto
	$(BIN)/python bench/outbox.py
	$(BIN)/python bench/zoning.py
	$(BIN)/python bench/ble.py
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/plans.py
	$(BIN)/python bench/web.py

# The central side at fleet scale (docs/central.md): needs PostgreSQL and Mosquitto, ~10 minutes.
bench-fleet: $(STAMP) mosquitto postgres
	$(BIN)/python bench/fleet.py --gateways 2000

# The longer runs behind docs/decisions/: 1,000 kill -9 trials, and tinydb against SQLite.
bench-reliability: $(STAMP)
	$(BIN)/python bench/outbox_kill.py --trials 1000

bench-history: $(STAMP)  # start-up and RSS of `run` with 1M stored readings vs empty (about 5 minutes)
	$(BIN)/python bench/outbox_history.py --readings 1000000

# RSS and idle wake-ups of `run` with the pages, empty and with 1M stored readings, against `import gateway`
# (the filled outbox is kept in .bench-memory/ and reused: filling 1M takes minutes)
bench-memory: $(STAMP) mosquitto
	$(BIN)/python bench/memory.py --readings 1000000 --data .bench-memory

# The whole path under random faults (kill -9, broker down, worker killed, refusal): silent must be 0 (~3 minutes).
bench-chaos: $(STAMP) mosquitto
	$(BIN)/python bench/chaos.py --seed 1 --readings 120 --faults 12 --seconds 240

bench-tinydb: $(STAMP)
	$(INSTALL) -q -e '.[bench]'
	$(BIN)/python bench/tinydb_vs_sqlite.py

schemas: $(STAMP)
	$(BIN)/dho-gateway schemas --out docs/schemas

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .bench-memory
