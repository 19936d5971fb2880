"""Walk-forward end to end on a tiny config: nested fold runs, aggregates, artifacts."""

import numpy as np
import pytest

from stockpred import tracking
from stockpred.tasks import TASKS
from stockpred.variance import qlike
from stockpred.walkforward import run_walk_forward, verdict_table


@pytest.mark.slow  # trains per fold
def test_it_retrains_per_fold_and_aggregates(tiny_config) -> None:
    config = tiny_config.with_overrides(
        {
            "evaluation.folds": 2,
            "evaluation.fold_test_fraction": 0.1,
            "train.max_epochs": 2,
            "gates.enabled": False,
            "tracking.experiment": "walk-forward",
        }
    )
    result = run_walk_forward(config)
    client = tracking.client()
    parent = client.get_run(result.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["run.kind"] == "walk_forward"
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    assert sorted(c.data.tags["fold"] for c in children) == ["0", "1"]
    for child in children:
        assert "test/rmse" in child.data.metrics and "baseline/ar/test/rmse" in child.data.metrics
        assert len(client.get_metric_history(child.info.run_id, "val/loss")) == 2
    assert set(result.folds["model"]) == {"lstm", "zero", "mean", "ridge", "ar"}
    lstm = result.folds[result.folds["model"] == "lstm"]["rmse"]
    metrics = parent.data.metrics
    assert np.isclose(metrics["test/rmse_mean"], lstm.mean())
    assert np.isclose(metrics["test/rmse_std"], lstm.std(ddof=1))
    assert np.isclose(metrics["fold/1/test/rmse"], lstm.iloc[1])
    assert "baseline/ridge/test/rmse_vs_zero_mean" in metrics
    zero = result.summary.set_index("model").loc["zero"]
    assert zero["rmse_vs_zero_mean"] == 1.0 and zero["rmse_vs_zero_std"] == 0.0
    files = {a.path for a in client.list_artifacts(result.run_id, "walk_forward")}
    assert {
        "walk_forward/folds.json",
        "walk_forward/summary.json",
        "walk_forward/folds.png",
    } <= files
    # the folds' test blocks are consecutive and after their training parts
    tests = result.folds.drop_duplicates("fold").sort_values("fold")
    assert tests["test_start"].iloc[1] > tests["test_end"].iloc[0]
    assert (tests["train_end"] < tests["val_start"]).all() and (
        tests["val_end"] < tests["test_start"]
    ).all()


def test_a_volatility_walk_forward_pools_the_out_of_sample_forecasts(tiny_config) -> None:
    config = tiny_config.with_overrides(
        {
            "target.kind": "volatility",
            "evaluation.folds": 2,
            "evaluation.fold_test_fraction": 0.1,
            "evaluation.mcs_replications": 200,
            "train.max_epochs": 1,
            "gates.enabled": False,
            "tracking.experiment": "walk-forward-volatility",
        }
    )
    result = run_walk_forward(config)
    predictions = result.predictions
    assert predictions is not None and sorted(predictions["fold"].unique()) == [0, 1]
    # every baseline re-estimated per fold: a fold's forecasts are its own fit's
    assert set(result.folds["model"]) == set(TASKS["volatility"].models)
    pooled = result.pooled
    assert pooled["test/qlike"] == pytest.approx(qlike(predictions["actual"], predictions["lstm"]))
    lstm_folds = result.folds[result.folds["model"] == "lstm"]["qlike"]
    assert min(lstm_folds) <= pooled["test/qlike"] <= max(lstm_folds)
    assert (
        pooled[
            "mcs/qlike/all/p/"
            + max(TASKS["volatility"].models, key=lambda m: pooled[f"mcs/qlike/all/p/{m}"])
        ]
        == 1.0
    )
    best = tracking.run_tags(result.run_id)["pooled.verdict.best_baseline"]
    assert pooled["test/qlike_vs_best"] == pytest.approx(
        pooled["test/qlike"] / pooled[f"baseline/{best}/test/qlike"]
    )
    parent = tracking.client().get_run(result.run_id).data.metrics
    assert parent["pooled/test/qlike"] == pytest.approx(pooled["test/qlike"])
    table = verdict_table(result.folds, pooled, TASKS["volatility"])
    assert table.splitlines()[-1].startswith(f"pooled: LSTM vs the strongest baseline, {best}")
    assert len(table.splitlines()) == 2 + 2 + 3  # title, header, 2 folds, pooled, DM, verdict
