# Tempoflow task runner. Only Python 3.11+ is needed: everything else comes from PyPI.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test test-unit conformance lint format bench clean schemas

EXAMPLE_PLUGIN := examples/plugin/tempoflow-example-plugin

# The example action plugin is installed too: the suite proves entry-point discovery with it.
$(STAMP): pyproject.toml $(EXAMPLE_PLUGIN)/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps -e $(EXAMPLE_PLUGIN)
	touch $(STAMP)

dev: $(STAMP)  ## run the whole stack (Temporal + UI, PostgreSQL, worker, API)
	$(BIN)/tempoflow dev

# Two pytest workers, each with its own PostgreSQL and Temporal dev server; whole files go
# to one worker (module fixtures start once). The 10,000-item loop then runs beside the
# rest of the suite instead of before it. PYTEST_WORKERS=0 runs in one process (--pdb).
PYTEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(PYTEST_WORKERS)),-n 0,-n $(PYTEST_WORKERS) --dist loadfile)

test: $(STAMP)  ## run the whole suite against real, self-started servers
	$(BIN)/python -m pytest $(XDIST) --durations=12 $(PYTEST_ARGS)

test-unit: $(STAMP)  ## the pure tests only (no server), well under a minute
	$(BIN)/python -m pytest -m "not integration" $(PYTEST_ARGS)

conformance: $(STAMP)  ## the JSONata reference suite through our expression engine
	@$(BIN)/python -m tests.conformance.harness | grep -v "^Proc not found"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

schemas: $(STAMP)  ## regenerate schemas/definition.json and schemas/bundle.v1.json from the models
	$(BIN)/python -m tempoflow.definition.schema_export schemas/definition.json
	$(BIN)/python -m tempoflow.bundle > schemas/bundle.v1.json

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)  ## every benchmark; each prints a JSON line last (charts need the bench extra)
	@$(BIN)/python -c "import matplotlib" 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[bench]'
	@for script in $(filter-out bench/_%,$(wildcard bench/*.py)); do \
		echo "== $$script"; $(BIN)/python $$script $(BENCH_ARGS) || exit 1; \
	done

clean:
	rm -rf $(VENV) .tempoflow .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
