# The two commands of the README. Both set up what is missing, then run.
VENV := .venv
VLAB := $(VENV)/bin/vlab
PYTEST := $(VENV)/bin/pytest

.PHONY: setup run test unit clean

setup:
	@bash scripts/setup.sh

run: setup
	$(VLAB) run

test: setup
	$(PYTEST) $(PYTEST_ARGS)

unit: setup
	$(PYTEST) tests/unit $(PYTEST_ARGS)

clean: setup
	$(VLAB) clean
