PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_DEMO := $(VENV)/.installed-demo
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: demo test image-test lint bench chaos clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP_DEMO): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[demo]'
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(STAMP_DEMO)

demo: $(STAMP_DEMO)
	$(BIN)/python examples/demo.py

lint: $(STAMP_DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The suite mostly waits (subprocess handlers, HTTP, visibility timeouts), so three
# workers beat two even on a 2-core machine; TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 3

test: lint
	$(BIN)/pytest -q -n $(TEST_WORKERS)

# Builds the base image and the function image of docs/lambda.md, and runs it under AWS's
# Runtime Interface Emulator (AWS_LAMBDA_RIE or aws-lambda-rie on PATH) on a local S3.
# Installs buildah and debootstrap from Debian's packages where missing (as root).
image-test: $(STAMP_DEV)
	sh tests/image/install-tools.sh
	$(BIN)/pytest -q -s tests/image

bench: $(STAMP_DEV)
	$(BIN)/python bench/run.py

# The reliability campaign of RELIABILITY.md (a few minutes; not part of `make test`).
chaos: $(STAMP_DEV)
	$(BIN)/python bench/chaos.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
