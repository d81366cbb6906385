# The two commands a newcomer needs: `make demo` and `make test` (see README.md).
# Everything installs itself into .venv from requirements.lock (uv, PyPI only).

PYTHON      ?= python3.11
VENV        := .venv
BIN         := $(VENV)/bin
# Root of everything the pipeline writes (landing, warehouse, quality, published); git-ignored.
XIHU_DATA_DIR ?= $(CURDIR)/data
export XIHU_DATA_DIR

DBT_SOURCES := $(shell find dbt_project -name '*.sql' -o -name '*.yml' -o -name '*.csv' 2>/dev/null | grep -v -e target/ -e logs/)
MANIFEST    := dbt_project/target/manifest.json

.PHONY: install debian-packages demo ui test test-deploy test-faults lint bench shell docs-marts clean

# -qq: pip's errors, not the warnings a machine's pip.conf may add.
$(BIN)/.installed: requirements.lock
	@echo "installing the Python environment: $(VENV) from requirements.lock"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -qq uv==0.13.9
	@$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	@touch $@

install: $(BIN)/.installed

# What some tests run natively (there is no Docker daemon here): Postgres for the real scheduler,
# docker-compose as the compose parser, LibreOffice Calc for the published CSV; Chromium and the CJK fonts
# print the briefing's PDF, which publishing needs (publish/briefing.py). Installed when we are root
# with apt; otherwise those tests skip, naming the install command, and `make demo` says what to install.
DEBIAN_PACKAGES := postgresql docker-compose libreoffice-calc-nogui chromium fonts-noto-cjk
debian-packages:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages for the tests:" $$missing; \
	  out=$$( (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    $$missing) 2>&1 ) || { echo "$$out"; exit 1; }; \
	else \
	  echo "not root with apt: the tests that need" $$missing "skip (apt-get install -y" $$missing")"; \
	fi

# Cosmos renders the DAG's dbt tasks from this manifest, so DAG parsing never runs dbt.
$(MANIFEST): $(BIN)/.installed $(DBT_SOURCES)
	cd dbt_project && ../$(BIN)/dbt parse --profiles-dir . --quiet

# Publishing prints the briefing's PDF with Chromium: the demo needs the Debian packages too.
demo: debian-packages $(MANIFEST)
	$(BIN)/python -m ops.demo --data-dir $(XIHU_DATA_DIR)

# The Airflow UI on the demo's metadata and task logs, at 127.0.0.1:8080 (ops/ui.py).
ui: $(BIN)/.installed
	$(BIN)/python -m ops.ui --data-dir $(XIHU_DATA_DIR)

# sqlfluff compiles the models against the in-memory `lint` target of profiles.yml (never the warehouse).
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd dbt_project && ../$(BIN)/sqlfluff lint models --processes 2

# One pytest worker per core; tests/conftest.py keeps the modules that share a fixture on one worker.
test: lint debian-packages $(MANIFEST)
	$(BIN)/pytest -n auto --dist loadscope

# The real DAG under the real scheduler on Postgres (Debian's postgresql, installed above). Minutes.
test-deploy: debian-packages $(MANIFEST)
	$(BIN)/pytest -m deploy tests/deploy

# The fault matrix: malformed and truncated days, kills in every task, a backfill and two concurrent runs,
# each against a clean run of the same dates (tests/faults/). Minutes.
test-faults: $(MANIFEST)
	$(BIN)/pytest -m faults tests/faults -s

# Ingest and load throughput and memory at district scale, each against DuckDB's read_json floor, then
# make demo's wall time (prints `name: value unit` lines, medians of the runs of one invocation; options:
# python -m ops.bench --help, e.g. --no-demo, --landing-root to load landings fetched before).
bench: $(MANIFEST)
	$(BIN)/python -m ops.bench

# Read-only SQL shell on the current published snapshot.
shell: $(BIN)/.installed
	$(BIN)/python -m publish shell

# The analysts' table of marts (docs/analysts.md), generated from the dbt model descriptions.
docs-marts: $(MANIFEST)
	$(BIN)/python -m publish.catalog --manifest $(MANIFEST)

clean:
	rm -rf dbt_project/target dbt_project/logs .pytest_cache .ruff_cache
