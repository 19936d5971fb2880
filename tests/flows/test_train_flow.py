"""The training flow end to end under a real Prefect server, read back from a real MLflow store."""

from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client

from flows.train_flow import main, train_flow
from stockpred import tracking
from stockpred.config import PipelineConfig
from tests.flows.conftest import completed_task_names


@pytest.fixture(scope="module")
def flow_run(prefect_server: None, tiny_config: Any) -> dict[str, Any]:
    return train_flow(tiny_config)


@pytest.fixture(scope="module")
def tiny_config() -> PipelineConfig:  # module scope: one flow run serves every test here
    from stockpred.config import load_config
    from tests.conftest import TINY

    return load_config(TINY)


def test_the_run_is_found_by_search_with_the_whole_config_as_params(flow_run, tiny_config) -> None:
    mlflow.set_tracking_uri(tracking.tracking_uri())
    runs = mlflow.search_runs(
        experiment_names=["tests"], filter_string=f"attributes.run_id = '{flow_run['run_id']}'"
    )
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row["status"] == "FINISHED"
    for key, value in tiny_config.flat().items():
        assert row[f"params.{key}"] == ("" if value is None else str(value)), key
    assert row["params.split.train_start"] and row["params.baseline.ridge_alpha"]
    assert row["tags.tickers"] == "^GSPC,^IXIC"
    assert pd.notna(row["metrics.test/rmse"]) and pd.notna(row["metrics.baseline/ridge/test/rmse"])


def test_losses_have_one_point_per_epoch(flow_run) -> None:
    client = MlflowClient(tracking.tracking_uri())
    epochs = int(client.get_run(flow_run["run_id"]).data.metrics["train/epochs"])
    for key in ("train/loss", "val/loss"):
        history = client.get_metric_history(flow_run["run_id"], key)
        assert len(history) == epochs, key
        assert [point.step for point in history] == list(range(epochs)), key  # step = epoch
        assert all(point.value > 0 for point in history)


def test_it_logs_the_model_figure_tables_and_lineage(flow_run) -> None:
    client = MlflowClient(tracking.tracking_uri())
    run_id = flow_run["run_id"]
    top = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.json", "preprocessing.json", "evaluation"} <= top
    evaluation = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert {
        "evaluation/predicted_vs_actual.png",
        "evaluation/test_comparison.json",
        "evaluation/test_predictions.parquet",
    } <= evaluation
    inputs = client.get_run(run_id).inputs.dataset_inputs
    assert inputs and inputs[0].dataset.name.startswith("sample:^GSPC,^IXIC")
    logged = mlflow.get_logged_model(flow_run["model_uri"].removeprefix("models:/"))
    assert logged.experiment_id == client.get_run(run_id).info.experiment_id
    assert logged.artifact_location.startswith((tracking.store_dir() / "artifacts").as_uri())
    model = mlflow.pyfunc.load_model(flow_run["model_uri"])  # the pyfunc from code: no pickle
    logged = mlflow.models.get_model_info(flow_run["model_uri"])
    assert logged.signature is not None
    example = mlflow.models.Model.load(flow_run["model_uri"]).load_input_example(
        mlflow.artifacts.download_artifacts(flow_run["model_uri"])
    )
    assert model.predict(example).shape == (example.shape[0],)


def test_it_publishes_a_markdown_summary_with_the_run_id(flow_run) -> None:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
    texts = [a.data for a in artifacts if a.key == "training-run"]
    assert any(flow_run["run_id"] in text and "| lstm |" in text for text in texts)
    # the decision and a link to the run's MLflow page
    (text,) = [t for t in texts if flow_run["run_id"] in t]
    assert "**registry**: not registered" in text and f"({flow_run['run_url']})" in text
    tags = tracking.run_tags(flow_run["run_id"])
    assert tags["mlflow.source.name"] == "prefect flow train"
    assert tags["mlflow.source.type"] == "LOCAL"  # called, not a deployment's scheduled run


def test_each_stage_ran_as_a_completed_task(flow_run) -> None:
    names = completed_task_names()
    assert {
        "load-data",
        "build-features",
        "prepare-data",
        "train-model",
        "evaluate-model",
        "log-trained-model",
    } <= names


def test_the_command_line_rejects_a_bad_value_before_starting_anything(capsys) -> None:
    assert main(["--window", "1"]) == 2
    err = capsys.readouterr().err
    assert "model.window" in err and "Traceback" not in err


def test_gate_metrics_have_one_point_per_epoch_and_read_back(flow_run) -> None:
    run_id = flow_run["run_id"]
    client = MlflowClient(tracking.tracking_uri())
    epochs = int(client.get_run(run_id).data.metrics["train/epochs"])
    stats = tracking.load_gate_stats(run_id)
    assert sorted(stats["epoch"].unique()) == list(range(epochs))
    assert set(stats["layer"]) == {0, 1}
    # the gates, the cell state, and the per-unit timescale distribution (gates/l{k}/timescale/*)
    assert {"input", "forget", "cell", "output", "cell_state", "timescale"} == set(stats["gate"])
    per_epoch = stats.groupby(["layer", "gate", "stat"]).size()
    assert (per_epoch == epochs).all()
    values = stats.set_index(["epoch", "layer", "gate", "stat"])["value"]
    for gate in ("input", "forget", "output"):
        assert values.xs((gate, "mean"), level=("gate", "stat")).between(0, 1).all()
    assert values.xs(("cell", "mean"), level=("gate", "stat")).between(-1, 1).all()
    sat = values.unstack("stat")
    assert ((sat["sat_left"] + sat["sat_right"]).dropna() <= 1).all()


def test_gate_tables_and_figures_are_artifacts_of_the_run(flow_run) -> None:
    run_id = flow_run["run_id"]
    client = MlflowClient(tracking.tracking_uri())
    last = int(client.get_run(run_id).data.metrics["train/epochs"]) - 1
    files = {a.path for a in client.list_artifacts(run_id, "gates")}
    for epoch in (0, last):
        tag = f"epoch_{epoch:03d}"
        for name in ("units", "saturation", "heatmap", "histograms"):
            suffix = "parquet" if name == "units" else "png"
            assert f"gates/{name}_{tag}.{suffix}" in files
    assert {"gates/trajectories.png", "gates/history.parquet"} <= files
    units = tracking.load_gate_units(run_id)
    assert set(units["epoch"]) == {last}
    assert len(units) == 2 * 4 * 8  # layers x gates x hidden units of the tiny config
    sigmoid = units[units["gate"] != "cell"]
    assert sigmoid["mean"].between(0, 1).all()
    assert units.loc[units["gate"] == "cell", "mean"].between(-1, 1).all()
    assert ((units["sat_left"] + units["sat_right"]) <= 1).all()
    assert set(tracking.load_gate_units(run_id, epoch=0)["epoch"]) == {0}
    with pytest.raises(LookupError, match="not 1234"):
        tracking.load_gate_units(run_id, epoch=1234)


def test_the_flow_resumes_an_interrupted_run_in_the_same_run(prefect_server: None) -> None:
    """``resume``: the run (here one that failed before its first checkpoint) finishes in place,
    with its own config, not the flow's ``config`` parameter."""
    from stockpred import resume
    from stockpred.config import load_config
    from tests.conftest import TINY

    config = load_config(TINY).with_overrides(
        {
            "train.max_epochs": 1,
            "tracking.experiment": "flow-resume",
            "tracking.log_model": False,
            "gates.enabled": False,
            "evaluation.register_model": False,
        }
    )
    with pytest.raises(RuntimeError, match="boom"), tracking.tracked_run(config) as run_id:
        resume.run_dir(run_id).mkdir(parents=True)  # as a SIGKILLed run_training leaves it
        raise RuntimeError("boom")

    # what a resume may change comes with it (--set data.refresh=..., --no-progress); not others
    assert main(["--resume", run_id, "--set", "model.window=12"]) == 2
    assert main(["--resume", run_id, "--no-progress", "--set", "data.refresh=false"]) == 0

    run = tracking.client().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["resume.previous_error"] == "RuntimeError: boom"
    assert run.data.params["model.window"] == str(config.model.window)  # the run's, not default
    assert run.data.metrics["train/epochs"] == 1
