# make demo  — create .venv, install, run the whole lifecycle on the demo data
# make test  — create .venv, install, run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= modelyard-demo

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing modelyard and its dependencies into $(VENV) (log: $(VENV)/install.log)…"
	@$(BIN)/python -m pip install --disable-pip-version-check -q -U pip > $(VENV)/install.log 2>&1
	@$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev,postgres,ray]' >> $(VENV)/install.log 2>&1 \
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

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .mypy_cache .ruff_cache
