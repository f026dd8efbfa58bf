# The two commands of the README:
#   make run   set up .venv and run the daemon on the simulated default config
#   make test  set up .venv and run the whole test suite
# Both create the virtual environment they need on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config/edge-agent.toml

.PHONY: run test lint check clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "edge-agent needs Python 3.11 or newer (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,cloud]'
	@touch $@

# The daemon on simulated sensors; it forwards to the MQTT broker on localhost:1883
# (apt install mosquitto) and buffers everything while there is none.
run: $(BIN)/.installed
	$(BIN)/edge-agent run --config $(CONFIG)

test: $(BIN)/.installed
	$(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy edge_agent drivers cloud

check: test lint

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
