# jobgraph — every target creates/uses the local virtualenv itself, so a fresh machine
# needs nothing but python3.11 (see README).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed

ENV ?= dev
TEST_RUN_ID ?= default
RUN_ID ?= example
SCENARIOS ?= 1000
SEED ?= 42
OUT ?= results

.PHONY: venv run solve test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

## make run: the main job (see README)
run: $(STAMP)
	$(BIN)/jobgraph solve --sequences sequences --run-id $(RUN_ID) --out $(OUT) --scenarios $(SCENARIOS) --seed $(SEED)

## make test: lint + the whole test suite
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(PY) benchmarks/bench_delay_model.py

clean:
	rm -rf $(VENV) .aws-sam results .pytest_cache
