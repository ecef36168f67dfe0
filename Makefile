# tokenpipe — the two commands the README promises, and helpers.
#   make demo   run the pipeline end to end on this machine (local broker + embedded ClickHouse)
#   make test   start the local broker, run every test, stop the broker
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
KAFKA_PORT ?= 9092
PYTEST_ARGS ?=

.PHONY: venv demo test lint unit bench schemas broker-start broker-stop clean

$(BIN)/tokenpipe: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(BIN)/tokenpipe

venv: $(BIN)/tokenpipe

demo: venv
	TOKENPIPE_KAFKA_BOOTSTRAP=127.0.0.1:$(KAFKA_PORT) $(BIN)/tokenpipe demo

# The broker is started here (not by the fixtures) so it is always stopped, even
# when pytest is killed: the trap runs on any exit.
test: venv lint
	KAFKA_PORT=$(KAFKA_PORT) bash -c 'set -euo pipefail; \
	  trap "deploy/kafka/kafka.sh stop" EXIT; \
	  deploy/kafka/kafka.sh start; \
	  TOKENPIPE_KAFKA_BOOTSTRAP=127.0.0.1:$(KAFKA_PORT) $(BIN)/pytest $(PYTEST_ARGS)'

unit: venv
	$(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy pipeline schemas dashboards

schemas: venv
	$(BIN)/python -m schemas.generate

bench: venv
	$(BIN)/python bench/bench_pricing.py
	$(BIN)/python bench/bench_counting.py
	KAFKA_PORT=$(KAFKA_PORT) bash -c 'set -euo pipefail; trap "deploy/kafka/kafka.sh stop" EXIT; \
	  deploy/kafka/kafka.sh start; \
	  TOKENPIPE_KAFKA_BOOTSTRAP=127.0.0.1:$(KAFKA_PORT) $(BIN)/python bench/bench_pipeline.py; \
	  TOKENPIPE_KAFKA_BOOTSTRAP=127.0.0.1:$(KAFKA_PORT) $(BIN)/python bench/bench_control.py'

broker-start:
	KAFKA_PORT=$(KAFKA_PORT) deploy/kafka/kafka.sh start

broker-stop:
	KAFKA_PORT=$(KAFKA_PORT) deploy/kafka/kafka.sh stop

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
