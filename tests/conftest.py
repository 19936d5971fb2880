"""Shared fixtures: an isolated MLflow store per session and a tiny, fast pipeline config."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("MPLBACKEND", "Agg")

from stockpred.config import PipelineConfig, load_config

TINY = {
    # the return task, said explicitly (the default is volatility): these tests are about the run,
    # and the return task's baselines fit in a blink
    "target": {"kind": "return"},
    "data": {"tickers": ["^GSPC", "^IXIC"], "start": "2012-01-01", "end": "2014-12-31"},
    "model": {"window": 10, "hidden_size": 8, "num_layers": 2, "dropout": 0.0},
    "train": {"max_epochs": 3, "batch_size": 64, "patience": 2, "progress_bar": False},
    "tracking": {"experiment": "tests", "report": False},
}


@pytest.fixture(scope="session", autouse=True)
def isolated_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test writes to a throwaway project folder, never to the real mlflow/."""
    home = tmp_path_factory.mktemp("stockpred-home")
    saved = {k: os.environ.get(k) for k in ("STOCKPRED_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["STOCKPRED_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def tiny_config() -> PipelineConfig:
    """A config that trains in a few seconds on two tickers over three years."""
    return load_config(TINY)
