# The two commands a new user needs: `make demo` and `make test`.
# Both build the pinned environment in .venv first (from requirements.lock).

PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export METERING_STATE_DIR ?= $(CURDIR)/state
export DAGSTER_HOME ?= $(CURDIR)/state/dagster_home

.PHONY: venv demo test dev bench lock clean

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

test: venv
	$(BIN)/python -m pytest -q

dev: venv
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml

# The pipeline at volume (EVENTS, default 1,000,000) against the DuckDB floor, then the emulator's own
# throughput. Results: bench/results/*.json; see docs/BENCHMARK.md.
bench: venv
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/metering bench --events $${EVENTS:-1000000}
	$(BIN)/python bench/emulator_bench.py

lock:
	$(BIN)/pip freeze --exclude-editable | sed '/^-e /d' > requirements.lock.new && mv requirements.lock.new requirements.lock

clean:
	rm -rf state .pytest_cache
