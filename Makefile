# The two commands a newcomer needs: `make demo` and `make test` (see README.md).
# Everything installs itself into .venv from requirements.lock (uv, PyPI only).

PYTHON      ?= python3.11
VENV        := .venv
BIN         := $(VENV)/bin
# Root of everything the pipeline writes (landing, warehouse, quality, published); git-ignored.
XIHU_DATA_DIR ?= $(CURDIR)/data
export XIHU_DATA_DIR
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := False
export AIRFLOW__COSMOS__ENABLE_TELEMETRY := False

DBT_SOURCES := $(shell find dbt_project -name '*.sql' -o -name '*.yml' -o -name '*.csv' 2>/dev/null | grep -v -e target/ -e logs/)
MANIFEST    := dbt_project/target/manifest.json

.PHONY: install demo test test-deploy lint bench shell docs-marts clean

$(BIN)/.installed: requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==0.13.9
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	touch $@

install: $(BIN)/.installed

# Cosmos renders the DAG's dbt tasks from this manifest, so DAG parsing never runs dbt.
$(MANIFEST): $(BIN)/.installed $(DBT_SOURCES)
	cd dbt_project && ../$(BIN)/dbt parse --profiles-dir . --quiet

demo: $(MANIFEST)
	$(BIN)/python -m ops.demo --data-dir $(XIHU_DATA_DIR)

# sqlfluff compiles the models against the in-memory `lint` target of profiles.yml (never the warehouse).
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	cd dbt_project && ../$(BIN)/sqlfluff lint models --processes 2

test: lint $(MANIFEST)
	$(BIN)/pytest

# The real DAG under the real scheduler on Postgres (needs Debian's postgresql; CI installs it). Minutes.
test-deploy: $(MANIFEST)
	$(BIN)/pytest -m deploy tests/deploy

# Ingest throughput and memory at district scale (prints `name: value unit` lines).
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
