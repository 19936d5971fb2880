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
# pip's notices about this machine's local package mirrors are noise for a newcomer
QUIET_PIP := { grep -v -e 'is ignored: it is neither a file nor a directory' || true; }

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_LOGGING_LEVEL ?= INFO
export MPLBACKEND ?= Agg

.PHONY: setup run test lint format ui serve notebooks bench bench-scale bench-gates bench-cache bench-synthetic bench-volatility bench-memory gpu-check

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@echo "== setting up $(VENV) (Python: $$($(PYTHON) --version)) =="
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || \
	  { $(BIN)/pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)" 2>&1 | $(QUIET_PIP); }
	$(BIN)/pip install -q -e ".[dev]" 2>&1 | $(QUIET_PIP)
	$(BIN)/python -c "import stockpred, torch; print('stockpred', stockpred.__version__, '| torch', torch.__version__, '| CUDA', torch.cuda.is_available())"
	touch $@

run: setup  ## train the volatility task on the embedded sample through the Prefect flow (offline; ARGS="--target return" for returns)
	$(BIN)/python -m flows.train_flow --target volatility $(ARGS)

test: lint  ## lint, then the whole test suite with a coverage report of src/stockpred
	$(BIN)/python -m pytest --cov --cov-report=term $(PYTEST_ARGS)

lint: setup  ## ruff (lint + format check) and mypy on src/ (config in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

ui: setup  ## the MLflow UI on mlflow/mlflow.db at http://127.0.0.1:5000 (ARGS="--port 5001" for another port)
	$(BIN)/stockpred ui $(ARGS)

serve: setup  ## a local Prefect server (UI at http://127.0.0.1:4200, SQLite in .prefect/) serving the scheduled deployments; Ctrl-C stops both
	$(BIN)/python -m flows.deploy --local-server $(ARGS)

notebooks: setup  ## JupyterLab on notebooks/, with .venv registered as the kernel "stockpred (.venv)"
	$(BIN)/python -c "import jupyterlab" 2>/dev/null || \
	  { $(BIN)/pip install -q -e ".[notebooks]" 2>&1 | $(QUIET_PIP); }
	$(BIN)/python -m ipykernel install --sys-prefix --name stockpred --display-name "stockpred (.venv)"
	env -u MPLBACKEND $(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=notebooks \
	  $(if $(filter 0,$(shell id -u)),--allow-root) $(ARGS)

bench: setup  ## every stage's cost side by side: one table, results in benchmarks/results/suite.json
	$(BIN)/python -m benchmarks.suite $(ARGS)

bench-scale: setup  ## stockpred train vs a bare PyTorch loop on synthetic universes (ARGS="--tickers 50 200 --days 5000")
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
