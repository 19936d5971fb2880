"""stockpred: causal features, a Lightning LSTM with gate diagnostics, tracked in MLflow.

Importing the package is cheap on purpose (the CLI's ``--help`` must not pull in torch,
lightning, prefect or mlflow); import the submodules you need. ``ARCHITECTURE.md`` at the
repository root maps the layers and where each common change goes.
"""

import os

__version__ = "0.1.0"

# Before MLflow or Prefect is imported anywhere in the process: they report usage over the
# network by default (a closed network, and a user's data, are reasons not to); MLflow also draws
# a progress bar for every artifact download (noise in notebooks and `stockpred predict`).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# A tracking server that stops answering: MLflow's own defaults retry one request for ~8 minutes;
# bounded here per request, and stockpred.tracking retries whole calls for a bounded time.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
