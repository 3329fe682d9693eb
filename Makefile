# The two commands of the README:
#   make demo   set everything up, start the embedded services and run the sync demo
#   make test   set everything up and run the whole test suite against real services
VENV ?= .venv
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTEST_ARGS ?=

.PHONY: setup demo test lint unit bench clean lock

setup:
	bash deploy/setup.sh

demo: setup
	$(VENV)/bin/lakesync demo

# pytest exits 5 when no test ran; make treats any non-zero exit as failure, so that never passes.
test: setup lint
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Lint, format, type and import-contract checks over the whole checkout (configured in pyproject.toml).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo --no-cache

# Lock files with hashes (deploy/requirements/; deploy/README.md, "Dependencies"): after changing a
# pin in pyproject.toml run `make lock` and commit the three files. Unchanged pins stay as they are;
# `make lock LOCK_ARGS=--upgrade` moves every transitive dependency to its newest version.
LOCK = $(VENV)/bin/uv pip compile --generate-hashes --universal --python-version 3.11 --no-header --quiet $(LOCK_ARGS)
CONSUMER_LEAVES_OUT = pyspark delta-spark deltalake pandas
lock: setup
	$(LOCK) pyproject.toml -o deploy/requirements/runtime.txt
	$(VENV)/bin/python deploy/docker/requirements.py pyproject.toml --without $(CONSUMER_LEAVES_OUT) \
		| $(LOCK) - --constraint deploy/requirements/runtime.txt -o deploy/requirements/consumer.txt
	$(LOCK) pyproject.toml --extra dev --extra bench --constraint deploy/requirements/runtime.txt \
		-o deploy/requirements/dev.txt

unit: setup
	$(VENV)/bin/python -m pytest tests/unit $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/python -m bench

clean:
	-$(VENV)/bin/lakesync down
	rm -rf .lakesync
