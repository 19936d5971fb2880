"""The Dask task runner: a sweep on a LocalCluster of worker processes, and ingest on a cluster
given by address (``$STOCKPRED_DASK_ADDRESS``).

A monkeypatched fake Yahoo in this process would not reach Dask worker processes, so the ingest
test installs the fake *in each worker* with a Dask ``WorkerPlugin``; the flow's own process has
no fake (and no network), so a cached ticker proves the fetch ran on a worker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from distributed import Client, LocalCluster, WorkerPlugin

from flows.ingest_flow import main as ingest_main
from flows.runners import DASK_ADDRESS_ENV, dask_runner
from flows.sweep_flow import sweep_flow
from stockpred import tracking
from stockpred.config import load_config
from stockpred.data.cache import PriceCache
from tests.conftest import TINY

pytestmark = pytest.mark.slow  # starts Dask clusters of worker processes
UNIVERSE = ["AAA", "BBB", "CCC"]


class FakeYahooInWorkers(WorkerPlugin):
    """Replaces yfinance.download with the fake in every worker process of the cluster."""

    def setup(self, worker: Any) -> None:
        from stockpred.data import yahoo
        from tests.data.fake_yahoo import FakeYahoo

        fake = FakeYahoo(UNIVERSE)
        yahoo._yfinance_download = lambda: fake


@pytest.fixture
def cluster_with_fake_yahoo() -> Iterator[str]:
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        client.register_plugin(FakeYahooInWorkers())
        yield cluster.scheduler_address


def test_ingest_runs_on_the_dask_cluster_at_the_configured_address(
    prefect_server, cluster_with_fake_yahoo, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv(DASK_ADDRESS_ENV, cluster_with_fake_yahoo)
    code = ingest_main(
        [
            "--tickers",
            "AAA",
            "NOPE",
            "BBB",
            "CCC",
            "--start",
            "2020-01-01",
            "--end",
            "2020-06-30",
            "--batch-size",
            "1",
            "--cache-dir",
            str(tmp_path),
            "--dask",
        ]
    )
    assert code == 1  # NOPE is unknown: the flow fails, the others are cached
    assert "3 of 4 tickers cached" in capsys.readouterr().out
    cache = PriceCache(tmp_path)
    assert cache.tickers() == UNIVERSE
    entry = cache.read("AAA")
    assert entry is not None and entry.prices.index[-1] == pd.Timestamp("2020-06-30")


def test_runner_choice() -> None:
    local = dask_runner(n_workers=3)
    assert local.address is None and local.cluster_kwargs["n_workers"] == 3
    assert local.cluster_kwargs["processes"] is True
    assert local.cluster_kwargs["threads_per_worker"] == 1
    assert local.cluster_kwargs["host"] == "127.0.0.1"  # scheduler and workers on loopback
    assert local.cluster_kwargs["dashboard_address"] == "127.0.0.1:0"
    assert dask_runner("tcp://10.0.0.1:8786").address == "tcp://10.0.0.1:8786"
    with pytest.raises(ValueError, match="at least one worker"):
        dask_runner(n_workers=0)


def test_the_local_clusters_dashboard_and_scheduler_listen_on_loopback_only() -> None:
    kwargs = {**dask_runner(n_workers=1).cluster_kwargs, "n_workers": 0}  # no workers: quick
    with LocalCluster(**kwargs) as cluster:
        dashboard = {s.getsockname()[0] for s in cluster.scheduler.http_server._sockets.values()}
        assert dashboard == {"127.0.0.1"}  # not 0.0.0.0, which the printed link hid
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        assert cluster.dashboard_link.startswith("http://127.0.0.1:")


def test_a_sweep_runs_its_trials_in_dask_worker_processes(prefect_server) -> None:
    config = load_config(
        {
            **TINY,
            "train": {**TINY["train"], "max_epochs": 2},
            "tracking": {**TINY["tracking"], "experiment": "tests-dask", "log_model": False},
            "gates": {"enabled": False},
        }
    )
    space = {"params": {"model.hidden_size": [4, 8]}}
    outcome = sweep_flow(config, space, runner="dask", max_parallel=2)
    children = tracking.search_runs(
        "tests-dask", f"tags.`mlflow.parentRunId` = '{outcome['run_id']}'"
    )
    assert sorted(children["params.model.hidden_size"]) == ["4", "8"]
    assert (children["status"] == "FINISHED").all()
    workers = set(children["tags.sweep.worker"])
    assert all(not w.endswith(f":{os.getpid()}") for w in workers)  # trained in other processes
    parent = tracking.load_run_record(outcome["run_id"])
    assert parent["status"] == "FINISHED" and "metrics.best/val/rmse_vs_zero" in parent
    assert outcome["best_run_id"] in set(children["run_id"])
