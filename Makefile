# Each target sets up what it needs: a local virtual environment on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The OTLP exporters the OpenTelemetry tests export through (over HTTP, and to
# an OTLP/JSON file by entry point); users install whichever exporter they run.
OTLP_EXPORTERS := opentelemetry-exporter-otlp-proto-http opentelemetry-exporter-otlp-json-file

.PHONY: demo test test-vllm lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev,otel,prometheus,parquet]' $(OTLP_EXPORTERS)
	touch $(STAMP)

# The real vLLM 0.22.1 scheduler, for tests/vllm: its own environment, with a CPU build of
# torch and vLLM without its dependencies (it would pull a CUDA torch), plus the few
# packages importing its scheduler needs.
VLLM_VENV := .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.installed

$(VLLM_STAMP): pyproject.toml tests/vllm/requirements-cpu.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/python -m pip install --quiet --upgrade pip
	$(VLLM_BIN)/python -m pip install --quiet torch==2.13.0
	$(VLLM_BIN)/python -m pip install --quiet --no-deps vllm==0.22.1 -r tests/vllm/requirements-cpu.txt
	$(VLLM_BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $(VLLM_STAMP)

demo: $(STAMP)
	$(BIN)/lifecycle-trace demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# PYTHONHASHSEED fixed: vLLM frees requests aborted together in set() order.
test-vllm: $(VLLM_STAMP)
	PYTHONHASHSEED=0 $(VLLM_BIN)/python -m pytest -q tests/vllm

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/run

clean:
	rm -rf $(VENV) $(VLLM_VENV)
