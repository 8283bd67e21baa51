# Each target sets up what it needs: a local virtual environment on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The OTLP exporters the OpenTelemetry tests export through (over HTTP, and to
# an OTLP/JSON file by entry point); users install whichever exporter they run.
OTLP_EXPORTERS := opentelemetry-exporter-otlp-proto-http opentelemetry-exporter-otlp-json-file

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev,otel,prometheus,parquet]' $(OTLP_EXPORTERS)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lifecycle-trace demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/run

clean:
	rm -rf $(VENV)
