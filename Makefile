# Mashpipe: one command each. `make run` and `make test` are the README's quick start.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test check lint format bench openapi docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Start the server on the embedded default (SQLite file ./mashpipe.db) with the example pipelines loaded.
run: $(STAMP)
	@mkdir -p .mashpipe
	@test -s .mashpipe/dev-api-key || $(BIN)/python -c "import secrets; print('mp_dev_' + secrets.token_urlsafe(24))" > .mashpipe/dev-api-key
	MASHPIPE_BOOTSTRAP_KEY=$$(cat .mashpipe/dev-api-key) MASHPIPE_EXAMPLES_DIR=$${MASHPIPE_EXAMPLES_DIR:-examples} \
		$(BIN)/mashpipe serve --banner

## Install and run the whole test suite.
test: $(STAMP)
	$(BIN)/python -m pytest -q

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app connectors

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m bench

openapi: $(STAMP)
	$(BIN)/mashpipe openapi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
