# Two commands for a fresh Debian / Ubuntu / Raspberry Pi OS machine with Python 3.11+:
#   make demo   - set up .venv and run the end-to-end demo
#   make test   - set up .venv, install Mosquitto and PostgreSQL if missing (start it), run every test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# apt-get needs root: use sudo when we are not root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint bench bench-fleet bench-reliability bench-tinydb schemas mosquitto postgres clean

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

demo: $(STAMP)
	$(BIN)/dho-gateway demo

test: $(STAMP) mosquitto postgres
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python ../shared/tools/check_layers.py . 2>/dev/null || $(BIN)/python -c 'print("layer check: ../shared not found")'

bench: $(STAMP)
	$(BIN)/python bench/outbox.py
	$(BIN)/python bench/zoning.py
	$(BIN)/python bench/ble.py

# The central side at fleet scale (docs/central.md): needs PostgreSQL and Mosquitto, ~10 minutes.
bench-fleet: $(STAMP) mosquitto postgres
	$(BIN)/python bench/fleet.py --gateways 2000

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
