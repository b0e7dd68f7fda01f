# The two commands of the README. Both set up what is missing, then run.
VENV := .venv
VLAB := $(VENV)/bin/vlab
PYTEST := $(VENV)/bin/pytest

RUFF := $(VENV)/bin/ruff

.PHONY: setup run test unit lint clean

setup:
	@bash scripts/setup.sh

run: setup
	$(VLAB) run

# The linter and the format check come first: they take a second and a
# style slip should not wait behind the integration tests.
lint: setup
	$(RUFF) check .
	$(RUFF) format --check .

test: setup lint
	$(PYTEST) $(PYTEST_ARGS)

unit: setup
	$(PYTEST) tests/unit $(PYTEST_ARGS)

clean: setup
	$(VLAB) clean
