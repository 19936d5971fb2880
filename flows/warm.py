"""Start Prefect's temporary API server while the heavy libraries import, instead of after.

A flow called with no ``PREFECT_API_URL`` first starts a temporary server (a uvicorn subprocess,
about 10 s on 2 cores) and only then runs; the training libraries (torch, Lightning, MLflow's
model flavour, scikit-learn, matplotlib: about as long again) are imported later, inside the
stages. ``warm_start`` does both at once: the server boots in its own process while this one
imports. The flow then finds the server already up (Prefect keeps one per process).
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterable

TRAINING_MODULES = (
    "torch",
    "pytorch_lightning",
    "mlflow.pytorch",
    "stockpred.pipeline",
)


def warm_start(modules: Iterable[str] = TRAINING_MODULES) -> bool:
    """Import ``modules`` while the temporary Prefect server starts; True if it was started here.

    With ``PREFECT_API_URL`` set (a running server, e.g. ``make serve``) it only imports. If the
    early start fails, nothing is lost: the flow call starts the server itself and reports why.
    """
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        _import(modules)
        return False
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    failure: list[BaseException] = []
    server = SubprocessASGIServer()
    # the limit every flow has (flows.server); the imports compete with the server for the CPUs
    timeout = PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()

    def start() -> None:
        try:
            server.start(timeout=timeout)
        except Exception as exc:
            failure.append(exc)
            server.stop()  # no half-started server left behind; the flow starts its own

    thread = threading.Thread(target=start, name="prefect-server-start", daemon=True)
    thread.start()
    _import(modules)
    thread.join()
    if failure:
        logging.getLogger(__name__).debug("early Prefect server start failed: %s", failure[0])
        return False
    return True


def _import(modules: Iterable[str]) -> None:
    for name in modules:
        importlib.import_module(name)
