from pathlib import Path

import mlflow
import pytest

from stockpred import tracking
from stockpred.config import PipelineConfig
from stockpred.paths import PROJECT_ENV, project_root


def test_the_default_store_is_sqlite_under_the_project_not_the_cwd(
    isolated_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert tracking.tracking_uri() == f"sqlite:///{isolated_store / 'mlflow' / 'mlflow.db'}"
    assert "--host 127.0.0.1" in tracking.ui_command()
    assert str(isolated_store / "mlflow" / "artifacts") in tracking.ui_command()


def test_without_an_override_the_project_is_this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROJECT_ENV)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # mlflow.set_tracking_uri sets it
    checkout = Path(__file__).resolve().parents[2]
    assert project_root() == checkout
    assert tracking.tracking_uri() == f"sqlite:///{checkout / 'mlflow' / 'mlflow.db'}"


def test_mlflow_tracking_uri_overrides_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking.tracking_uri() == "http://127.0.0.1:5999"
    assert not tracking.is_local_store(tracking.tracking_uri())


def test_experiments_keep_artifacts_in_the_project_store(isolated_store: Path) -> None:
    exp = tracking.client().get_experiment(tracking.experiment_id("artifacts-here"))
    assert exp.artifact_location == (isolated_store / "mlflow/artifacts/artifacts-here").as_uri()


def test_a_run_that_raises_ends_failed_with_the_error_recorded() -> None:
    config = PipelineConfig().with_overrides({"tracking.experiment": "failing"})
    with pytest.raises(RuntimeError, match="boom"), tracking.tracked_run(config) as run_id:
        raise RuntimeError("boom")
    run = tracking.client().get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == "RuntimeError: boom"
    assert run.data.params["model.window"] == "60"
    artifacts = {a.path for a in tracking.client().list_artifacts(run_id)}
    assert {"error.txt", "config.json"} <= artifacts


def test_a_run_that_completes_ends_finished_with_tags() -> None:
    config = PipelineConfig().with_overrides({"tracking.experiment": "ok"})
    with tracking.tracked_run(config, tags={"purpose": "test"}) as run_id:
        assert tracking.client().get_run(run_id).info.status == "RUNNING"
        tracking.log_metrics(run_id, {"test/rmse": 0.5})
    run = tracking.client().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["tickers"] == "^GSPC,^IXIC"
    assert run.data.tags["purpose"] == "test"
    assert run.data.metrics["test/rmse"] == 0.5


def test_the_lightning_logger_writes_into_the_run_without_ending_it() -> None:
    config = PipelineConfig().with_overrides({"tracking.experiment": "logger"})
    with tracking.tracked_run(config) as run_id:
        logger = tracking.lightning_logger(run_id)
        logger.log_metrics({"train/loss": 1.0}, step=0)
        logger.finalize("success")
        assert mlflow.get_run(run_id).info.status == "RUNNING"
    assert mlflow.get_run(run_id).data.metrics["train/loss"] == 1.0


def test_a_run_carries_mlflow_source_tags_and_its_experiment_is_for_model_training() -> None:
    from stockpred.tracking.lifecycle import source_name

    config = PipelineConfig().with_overrides({"tracking.experiment": "source-tags"})
    with tracking.tracked_run(config) as run_id:
        tracking.set_description(run_id, "**registry**: not registered")
    run = tracking.get_run(run_id)
    tags = run.data.tags
    assert tags["mlflow.source.name"] == "pytest" and tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.note.content"] == "**registry**: not registered"
    if tracking.git_commit():
        assert tags["mlflow.source.git.commit"] == tracking.git_commit()
    experiment = tracking.client().get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert source_name(["/venv/bin/stockpred", "train", "--register"]) == "stockpred train"
    assert source_name(["/repo/flows/train_flow.py"]) == "flows/train_flow.py"
    assert source_name(["/venv/ipykernel_launcher.py", "-f", "k.json"]) == "notebook"
    assert tracking.run_url("3", "abc", "http://mlflow:5000/") == (
        "http://mlflow:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
    )


def test_gate_stats_read_back_the_per_layer_statistics_only() -> None:
    config = PipelineConfig().with_overrides({"tracking.experiment": "gate-stats"})
    with tracking.tracked_run(config) as run_id:
        tracking.log_metrics(
            run_id, {"gates/l0/forget/mean": 0.5, "gates/ablation/lt_2/delta_loss": 0.1}, step=3
        )
    stats = tracking.load_gate_stats(run_id)
    assert stats.to_dict("records") == [
        {"epoch": 3, "layer": 0, "gate": "forget", "stat": "mean", "value": 0.5}
    ]


def test_table_artifacts_keep_four_significant_digits() -> None:
    import json

    import pandas as pd

    table = pd.DataFrame(
        {"model": ["lstm", "har"], "qlike": [0.3812345678912, float("nan")], "mse": [1.23456e-5, 2]}
    )
    config = PipelineConfig().with_overrides({"tracking.experiment": "tables"})
    with tracking.tracked_run(config) as run_id:
        tracking.log_table(run_id, table, "evaluation/table.json")
    logged = json.loads(tracking.download_artifact(run_id, "evaluation/table.json").read_text())
    rows = [dict(zip(logged["columns"], row, strict=True)) for row in logged["data"]]
    assert rows[0] == {"model": "lstm", "qlike": 0.3812, "mse": 1.235e-05}
    assert rows[1]["mse"] == 2.0 and rows[1]["qlike"] is None  # NaN stays missing (null)


def test_the_runs_table_link_sorts_by_the_headline_best_first() -> None:
    from stockpred.pipeline import headline_key
    from stockpred.tasks import TASKS

    key = headline_key(TASKS["volatility"])
    assert key == "headline/lstm_vs_har_qlike"
    url = tracking.runs_url("7", key, ascending=True, uri="sqlite:///x.db")
    # seen in MLflow 3.17's UI (headless Chromium): "Sort: headline/lstm_vs_har_qlike"
    assert url == (
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
        "&orderByKey=metrics.%60headline%2Flstm_vs_har_qlike%60&orderByAsc=true"
    )
    remote = tracking.runs_url("7", "val/ic", ascending=False, uri="http://host:5000/")
    assert (
        remote.startswith("http://host:5000/#/experiments/7/runs?") and "orderByAsc=false" in remote
    )
