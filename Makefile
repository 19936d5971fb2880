# The README's commands. `make run` and `make test` each set up .venv first when needed.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU build of torch by default (it lies on disk here). For CUDA: make run TORCH_INDEX=<PyTorch's
# wheel index for your CUDA version>, or install torch into .venv yourself before `make run`.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
ARGS ?=
PYTEST_ARGS ?=
# the exact versions the suite passed with (torch left out: its build, CPU or CUDA, is yours)
CONSTRAINTS ?= constraints.txt
# pip's notices about this machine's local package mirrors are noise for a newcomer
QUIET_PIP := { grep -v -e 'is ignored: it is neither a file nor a directory' || true; }

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_LOGGING_LEVEL ?= INFO
export MPLBACKEND ?= Agg
export NO_MKDOCS_2_WARNING := 1

.PHONY: setup run test test-fast lint format docs lock ui serve notebooks bench bench-scale bench-gates bench-cache bench-synthetic bench-volatility bench-memory gpu-check

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	@echo "== setting up $(VENV) (Python: $$($(PYTHON) --version)) =="
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || \
	  { $(BIN)/pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)" 2>&1 | $(QUIET_PIP); }
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e ".[dev]" 2>&1 | $(QUIET_PIP)
	$(BIN)/python -c "import stockpred, torch; print('stockpred', stockpred.__version__, '| torch', torch.__version__, '| CUDA', torch.cuda.is_available())"
	touch $@

run: setup  ## train the volatility task (the default) on the embedded sample through the Prefect flow (offline; ARGS="--target return" for returns)
	$(BIN)/python -m flows.train_flow $(ARGS)

test: lint  ## lint, then the whole test suite with a coverage report of src/stockpred
	$(BIN)/python -m pytest --cov --cov-report=term $(PYTEST_ARGS)

test-fast: setup  ## the inner loop: every test not marked slow (no servers, kernels, subprocesses or long training), no lint
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: setup  ## ruff (lint + format check), mypy on src/ and the layer contract (import-linter; config in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

docs: setup  ## build the docs site into site/ offline, warnings as errors (reference pages generated from the code)
	$(BIN)/mkdocs build --strict

# Not `setup`: it records what .venv holds now. Upgrade what you want in .venv, run `make test`,
# then `make lock` and commit constraints.txt. torch, its CUDA packages and stockpred stay out.
lock:  ## rewrite constraints.txt from the exact versions in .venv (after `make test` passed with them)
	test -x $(BIN)/pip || { echo "no $(VENV): run make setup first"; exit 1; }
	{ echo "# The exact versions \`make test\` passed with; \`make setup\` installs them, \`make lock\` rewrites"; \
	  echo "# this file from .venv. torch (and its nvidia-*/triton packages) is left out: CPU or CUDA is yours."; \
	  $(BIN)/pip freeze --exclude-editable | grep -v -i -E '^(torch|triton|nvidia-[a-z0-9-]+|stockpred)==| @ '; \
	} > $(CONSTRAINTS).tmp
	mv $(CONSTRAINTS).tmp $(CONSTRAINTS)
	@echo "wrote $(CONSTRAINTS): $$(grep -c '==' $(CONSTRAINTS)) packages"

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

ui: setup  ## the MLflow UI on mlflow/mlflow.db at http://127.0.0.1:5000 (ARGS="--port 5001" for another port)
	$(BIN)/stockpred ui $(ARGS)

serve: setup  ## a local Prefect server (UI at http://127.0.0.1:4200, SQLite in .prefect/) serving the scheduled deployments; Ctrl-C stops both
	$(BIN)/python -m flows.deploy --local-server $(ARGS)

notebooks: setup  ## JupyterLab on notebooks/, with .venv registered as the kernel "stockpred (.venv)"
	$(BIN)/python -c "import jupyterlab" 2>/dev/null || \
	  { $(BIN)/pip install -q -c $(CONSTRAINTS) -e ".[notebooks]" 2>&1 | $(QUIET_PIP); }
	$(BIN)/python -m ipykernel install --sys-prefix --name stockpred --display-name "stockpred (.venv)"
	env -u MPLBACKEND $(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=notebooks \
	  $(if $(filter 0,$(shell id -u)),--allow-root) $(ARGS)

bench: setup  ## every stage's cost side by side: one table, results in benchmarks/results/suite.json
	$(BIN)/python -m benchmarks.suite $(ARGS)

bench-scale: setup  ## stockpred train vs a bare PyTorch loop at the real sizes: 50/200/500 tickers x 5000 days, steps capped at 500 (hours on 2 cores; ARGS="--tickers 4 24 --days 1000" for a quick look)
	$(BIN)/python -m benchmarks.scale $(ARGS)

bench-gates: setup  ## gate diagnostics' cost (with/without, median of pairs; ablation once), then the shuffled-target and planted-memory controls
	$(BIN)/python -m benchmarks.gate_overhead --repeats 3 --epochs 2
	$(BIN)/python -m benchmarks.gate_controls --epochs 3 --seeds 3 --days 3000

bench-cache: setup  ## reading 50 tickers x 20 years from the Parquet price cache
	$(BIN)/python -m benchmarks.cache_read --tickers 50 --years 20 --repeats 7

bench-synthetic: setup  ## the known-optimum check at full size (AR(1) and noise, 3 seeds)
	$(BIN)/python -m benchmarks.synthetic_optimum --days 8000 --seeds 3

bench-memory: setup  ## planted-memory recovery: arms A-D x inits x beta, controls, one verdict line per criterion (ARGS="--series 16 --days 1500 --epochs 6" for a reduced grid)
	$(BIN)/python -m benchmarks.memory $(ARGS)

bench-volatility: setup  ## the volatility task on the sample: LSTM and baselines' QLIKE vs HAR and DM t per index (horizons 1, 5; 3 seeds)
	$(BIN)/python -m benchmarks.volatility --seeds 3 $(ARGS)

gpu-check: setup  ## on a GPU: throughput of the default LSTM (bf16, pinned memory) and the gate replay vs cuDNN
	$(BIN)/python benchmarks/gpu_check.py $(ARGS)
