"""Where the project's files live: the project folder, the MLflow store, the price cache."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ENV = "STOCKPRED_HOME"
CACHE_ENV = "STOCKPRED_CACHE_DIR"


def project_root() -> Path:
    """The project folder: ``$STOCKPRED_HOME``, else this checkout, else the working directory."""
    if os.environ.get(PROJECT_ENV):
        return Path(os.environ[PROJECT_ENV]).resolve()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "src" / "stockpred").is_dir():
        return checkout
    return Path.cwd().resolve()


def cache_dir(configured: str | Path | None = None) -> Path:
    """The price cache: the configured folder, else ``$STOCKPRED_CACHE_DIR``, else data/cache."""
    if configured:
        return Path(configured).expanduser().resolve()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser().resolve()
    return project_root() / "data" / "cache"


def checkpoints_dir() -> Path:
    """Training checkpoints of tracked runs, one folder per MLflow run id (git-ignored):
    ``<project>/mlflow/checkpoints``. Kept on this machine whatever the tracking URI."""
    return project_root() / "mlflow" / "checkpoints"
