# The two commands a new user needs: `make demo` and `make test` (README).
# Both build the pinned environment in .venv first (from requirements.lock).

PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export METERING_STATE_DIR ?= $(CURDIR)/state
export DAGSTER_HOME ?= $(METERING_STATE_DIR)/dagster_home

.PHONY: venv demo test check-imports dev docs bench lock clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PY) >/dev/null || { echo "needs $(PY) on PATH"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $(STAMP)

demo: venv
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/metering demo

test: venv chromium
	$(BIN)/python -m pytest -q

# Headless Chromium for the browser tests (tests/browser/): Debian's `chromium` from the PATH, or installed from
# Debian's repository (with sudo when not root). A failed install stops here: the browser tests never skip.
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null && exit 0; \
	echo "installing Debian's chromium for the browser tests (apt-get)"; \
	if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null \
	  || { $$sudo apt-get update >/dev/null && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null; } \
	  || { echo "could not install chromium (apt-get install -y --no-install-recommends chromium); the browser tests need it"; exit 1; }; \
	command -v chromium >/dev/null || { echo "chromium installed but not on the PATH"; exit 1; }

# The edit-test loop: the unit and component tests, under 3 minutes. Leaves out the tests marked `slow` (full
# `metering run` or demo subprocesses, the fault soak, the benchmark), which `make test` and CI run.
.PHONY: test-fast
test-fast: venv chromium
	$(BIN)/python -m pytest -q -m "not slow"

# No import cycle among the package's modules and no import from a layer above (docs/ARCHITECTURE.md, "Layers").
check-imports: venv
	$(BIN)/python scripts/check_imports.py

# Python: ruff's lint rules and its formatting (pyproject.toml); SQL: sqlfluff on the dbt models (.sqlfluff),
# whose dbt templater opens a scratch warehouse of its own, never the state folder's.
.PHONY: lint
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@d=$$(mktemp -d); METERING_STATE_DIR=$$d $(BIN)/sqlfluff lint dbt_project/models; s=$$?; rm -rf $$d; exit $$s

dev: venv
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml

# dbt's documentation of every model, with the columns and row counts of the last completed run, built from a
# copy of the reader copy (a run is never held up, and nothing reaches the network). Serve it or open the file.
DOCS := $(METERING_STATE_DIR)/dbt_docs
docs: venv
	@if [ -e "$(METERING_STATE_DIR)/reader.duckdb" ]; then src="$(METERING_STATE_DIR)/reader.duckdb"; \
	elif [ -e "$(METERING_STATE_DIR)/warehouse.duckdb" ]; then src="$(METERING_STATE_DIR)/warehouse.duckdb"; \
	else echo "no warehouse in $(METERING_STATE_DIR) yet: run make demo (or metering run) first"; exit 1; fi; \
	mkdir -p "$(DOCS)" && cp "$$src" "$(DOCS)/warehouse.duckdb"
	cd dbt_project && METERING_STATE_DIR="$(DOCS)" ../$(BIN)/dbt docs generate --quiet --static --target-path "$(DOCS)/target"
	@echo "dbt docs: open $(DOCS)/target/static_index.html in a browser, or serve them:"
	@echo "  cd dbt_project && ../$(BIN)/dbt docs serve --target-path $(DOCS)/target --port 8080 --no-browser"

# The pipeline at volume (EVENTS, default 1,000,000) against the DuckDB floor, then the emulator's own
# throughput; SPARK=1 also times the dbt build on Spark. Results: bench/results/*.json; see docs/BENCHMARK.md.
bench: venv
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/metering bench --events $${EVENTS:-1000000} $${SPARK:+--spark}
	$(BIN)/python bench/emulator_bench.py

lock:
	$(BIN)/pip freeze --exclude-editable | sed '/^-e /d' > requirements.lock.new && mv requirements.lock.new requirements.lock

# Removes the state folder only when it is the demo's (it carries the demo's marker): a folder with your
# own data, or a ledger that has billed a real Stripe account, is yours to remove.
clean:
	rm -rf .pytest_cache
	@if [ -e state/.metering-demo ]; then rm -rf state && echo "removed the demo's state/"; \
	elif [ -e state ]; then echo "kept state/: it is not the demo's (no state/.metering-demo); remove it yourself if you mean to"; fi
