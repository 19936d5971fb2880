"""The sweep flow under a real Prefect server: nested trial runs in a real MLflow store."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
)

from flows.sweep_flow import main, sweep_flow
from stockpred import tracking
from stockpred.config import ConfigError, PipelineConfig, load_config
from stockpred.sweep import SweepError
from stockpred.tasks import TASKS
from tests.conftest import TINY

SELECTION_METRIC = TASKS["return"].selection_metric

EXPERIMENT = "tests-sweep"
REGISTERED = "tests-sweep-lstm"
# two trials that train, one whose volatility window is longer than the data (fails at
# run time: it passes validation)
SPACE = {"params": {"features.volatility_window": [5, 10, 5000]}}


def _config(**sections: Any) -> PipelineConfig:
    base = {
        **TINY,
        "train": {**TINY["train"], "max_epochs": 2},
        "tracking": {**TINY["tracking"], "experiment": EXPERIMENT},
        "evaluation": {"registered_name": REGISTERED, "register_model": True},
        "gates": {"enabled": False},
    }
    return load_config({**base, **sections})


@pytest.fixture(scope="module")
def sweep(prefect_server: None) -> dict[str, Any]:
    return sweep_flow(_config(), SPACE)


def _count() -> int:
    try:
        return len(tracking.search_runs(EXPERIMENT))
    except LookupError:  # the experiment does not exist yet
        return 0


def _children(parent: str) -> pd.DataFrame:
    runs = tracking.search_runs(EXPERIMENT, f"tags.`mlflow.parentRunId` = '{parent}'")
    return runs.assign(trial=runs["tags.sweep.trial"].astype(int)).sort_values("trial")


def test_each_trial_is_a_child_run_of_the_parent(sweep) -> None:
    client = MlflowClient(tracking.tracking_uri())
    parent = client.get_run(sweep["run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["run.kind"] == "sweep"
    children = _children(sweep["run_id"])
    assert list(children["trial"]) == [0, 1, 2]
    assert list(children["status"]) == ["FINISHED", "FINISHED", "FAILED"]
    assert list(children["params.features.volatility_window"]) == ["5", "10", "5000"]
    assert (children["tags.run.kind"] == "sweep_trial").all()
    assert children["run_name"].iloc[0] == "trial-0 volatility_window=5"
    assert (
        "have no value on any training date" in children["tags.error"].iloc[2]
    )  # the failure is recorded on its run
    # the failed trial is a row of the flow's table too, with its run and error
    table = pd.DataFrame(sweep["table"])
    assert list(table["status"]) == ["FINISHED", "FINISHED", "FAILED"]
    assert list(table["run_id"]) == list(children["run_id"])
    assert "have no value on any training date" in table["error"].iloc[2] and sweep["failed"] == [2]


def test_the_best_trial_has_the_lowest_validation_metric(sweep) -> None:
    children = _children(sweep["run_id"])
    finished = children[children["status"] == "FINISHED"]
    best = finished.loc[finished[f"metrics.{SELECTION_METRIC}"].idxmin()]
    assert sweep["best_run_id"] == best["run_id"] and sweep["best_trial"] == best["trial"]
    parent = MlflowClient(tracking.tracking_uri()).get_run(sweep["run_id"]).data
    assert parent.metrics[f"best/{SELECTION_METRIC}"] == best[f"metrics.{SELECTION_METRIC}"]
    assert parent.metrics["best/test/rmse"] == best["metrics.test/rmse"]
    assert parent.metrics["best/trial"] == best["trial"]
    assert (
        parent.params["best.features.volatility_window"]
        == best["params.features.volatility_window"]
    )
    assert parent.tags["sweep.best_run_id"] == best["run_id"]
    assert parent.tags["sweep.failed"] == "1"


def test_the_parent_holds_the_space_table_and_figure(sweep) -> None:
    paths = tracking.list_artifact_paths(sweep["run_id"], "sweep")
    assert paths == ["sweep/space.json", "sweep/trials.json", "sweep/trials.png"]
    logged = json.loads(
        tracking.download_artifact(sweep["run_id"], "sweep/trials.json").read_text()
    )
    frame = pd.DataFrame(logged["data"], columns=logged["columns"])
    assert list(frame["trial"]) == [0, 1, 2] and frame["rank"].iloc[:2].tolist() in ([1, 2], [2, 1])
    assert tracking.load_dict(sweep["run_id"], "sweep/space.json")["params"] == {
        "features.volatility_window": [5, 10, 5000]
    }
    assert tracking.download_artifact(sweep["run_id"], "sweep/trials.png").stat().st_size > 10_000


def test_only_the_best_trial_is_registered(sweep) -> None:
    client = MlflowClient(tracking.tracking_uri())
    versions = client.search_model_versions(f"name = '{REGISTERED}'")
    assert [v.run_id for v in versions] == [sweep["best_run_id"]]
    assert client.get_model_version_by_alias(REGISTERED, "champion").run_id == sweep["best_run_id"]


def test_prefect_shows_a_task_per_trial_and_the_table(sweep) -> None:
    with get_client(sync_client=True) as client:
        # this sweep's artifact (other sweeps of the session publish theirs under the same key)
        [artifact] = [
            a
            for a in client.read_artifacts()
            if a.key == "sweep" and f"`{sweep['run_id']}`" in a.data
        ]
        [subflow] = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["sweep-trials"])),
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[artifact.flow_run_id])
            ),
        )
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[subflow.id]))
        )
    assert subflow.state.is_completed()
    trials = {r.name: r.state.type.value for r in runs if r.name.startswith("trial-")}
    assert {trials[f"trial-{n}"] for n in (0, 1)} == {"COMPLETED"}
    assert trials["trial-2"] == "FAILED"
    assert "| 1 | " in artifact.data and "Failed trials" in artifact.data


def test_a_sweep_where_every_trial_fails_fails_with_its_parent(prefect_server) -> None:
    before = _count()
    state = sweep_flow(_config(), {"params": {"model.window": [600, 700]}}, return_state=True)
    assert state.is_failed()
    with pytest.raises(SweepError, match="no trial of 2 finished"):
        state.result()
    runs = tracking.search_runs(EXPERIMENT)
    # windows too long for the data are refused before a trial's run exists (no FAILED trial
    # runs left behind): only the parent was created, and it failed
    assert len(runs) == before + 1
    assert runs.iloc[0]["tags.run.kind"] == "sweep"
    assert runs.iloc[0]["status"] == "FAILED"


def test_a_bad_space_fails_before_anything_runs(prefect_server, capsys) -> None:
    before = _count()
    with pytest.raises(ConfigError, match=r"trial 0 .model.window=3.*ar_order"):
        sweep_flow(_config(), {"params": {"model.window": [3, 10]}})
    common = [
        "--tickers",
        "^GSPC",
        "--start",
        "2012-01-01",
        "--end",
        "2014-12-31",
        "--experiment",
        EXPERIMENT,
    ]
    assert main(["--grid", "model.window=3,10", *common]) == 2
    assert "1 of 2 trials are invalid: trial 0 (model.window=3)" in capsys.readouterr().err
    assert main(["--grid", "model.hiden_size=8,16", *common]) == 2
    assert "unknown setting 'model.hiden_size'" in capsys.readouterr().err
    assert main(["--grid", "model.hidden_size=8,16", "--max-parallel", "2", *common]) == 2
    assert "needs the dask runner" in capsys.readouterr().err
    assert _count() == before  # nothing was tracked
