"""Task runners for the flows: threads in this process, or Dask (a LocalCluster or a cluster).

``dask_runner()`` starts a temporary ``distributed.LocalCluster`` of worker *processes* (one thread
each) for the flow run and shuts it down after; with an address (the argument, or
``$STOCKPRED_DASK_ADDRESS``) it connects to a running Dask scheduler instead, e.g. one started with
``dask scheduler`` and ``dask worker tcp://host:8786`` on other machines.

What a Dask worker needs: task arguments and results travel pickled (configs, paths, small
dicts: fine); every worker imports ``flows`` and ``stockpred``, so each machine needs this project
installed in the same environment; paths (the price cache, the MLflow SQLite store) must mean the
same on every worker. On a LocalCluster they do (same machine); on a real cluster use a shared
filesystem, or a tracking server (``MLFLOW_TRACKING_URI=http://...``) and a shared cache folder.
Dask's nanny starts workers with ``OMP_NUM_THREADS=1``, so N workers use about N cores.
"""

from __future__ import annotations

import os
from typing import Any

DASK_ADDRESS_ENV = "STOCKPRED_DASK_ADDRESS"
LOOPBACK = "127.0.0.1"


def dask_address(address: str | None = None) -> str | None:
    """The scheduler to use: ``address``, else ``$STOCKPRED_DASK_ADDRESS``, else None (local)."""
    return address or os.environ.get(DASK_ADDRESS_ENV) or None


def dask_runner(address: str | None = None, n_workers: int = 2) -> Any:
    """A ``DaskTaskRunner``: on the scheduler at ``address`` (or ``$STOCKPRED_DASK_ADDRESS``),
    else on a temporary LocalCluster of ``n_workers`` processes with one thread each."""
    from prefect_dask import DaskTaskRunner

    if n_workers < 1:
        raise ValueError(f"a Dask LocalCluster needs at least one worker (got {n_workers})")
    address = dask_address(address)
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": n_workers,
            "threads_per_worker": 1,
            "processes": True,
            # loopback only: the dashboard and the scheduler run code on request, and a
            # LocalCluster serves this machine alone; any free port (the link is logged)
            "host": LOOPBACK,
            "dashboard_address": f"{LOOPBACK}:0",
        },
    )
