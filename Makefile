# make demo  — create .venv, install, run the whole lifecycle on the demo data
# make test  — create .venv, install, run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= modelyard-demo

BENCH_VENV  := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing modelyard and its dependencies into $(VENV) (log: $(VENV)/install.log)…"
	@$(BIN)/python -m pip install --disable-pip-version-check -q -U pip > $(VENV)/install.log 2>&1
	@$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev,postgres,ray,xgboost]' >> $(VENV)/install.log 2>&1 \
		|| { tail -n 30 $(VENV)/install.log; exit 1; }
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/modelyard quickstart --dir $(DEMO)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Peers are installed in a venv of their own so their pins never touch ours.
$(BENCH_STAMP):
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	@$(BENCH_VENV)/bin/python -m pip install --disable-pip-version-check -q 'mlflow>=3,<4'
	@touch $(BENCH_STAMP)

bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python bench/tracking.py
	$(BIN)/python bench/ingest_memory.py
	$(BIN)/python bench/evaluate_scale.py
	$(BIN)/python bench/serving.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(DEMO) .pytest_cache .mypy_cache .ruff_cache
