# The two commands of the README:
#   make demo   set everything up, start the embedded services and run the sync demo
#   make test   set everything up and run the whole test suite against real services
VENV ?= .venv
PYTEST_ARGS ?=

.PHONY: setup demo test lint unit bench clean

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

unit: setup
	$(VENV)/bin/python -m pytest tests/unit $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/python -m bench

clean:
	-$(VENV)/bin/lakesync down
	rm -rf .lakesync
