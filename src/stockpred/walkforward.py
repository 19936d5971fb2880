"""Walk-forward evaluation: retrain per fold, score each test block, aggregate mean ± std.

One parent MLflow run (the data, the fold table and figure, the aggregates) with one nested run
per fold (its training curves and every test metric of the LSTM and the baselines).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stockpred import experiment, tracking
from stockpred.config import PipelineConfig
from stockpred.data.lineage import data_record
from stockpred.figures.evaluation import fold_figure
from stockpred.split import SplitDates, walk_forward_splits
from stockpred.tasks import ForecastTask, task_for


@dataclass(frozen=True)
class WalkForwardResult:
    """The parent run, one row per (fold, model), and the mean ± std table."""

    run_id: str
    folds: pd.DataFrame
    summary: pd.DataFrame

    def table(self) -> str:
        """The summary as aligned text."""
        return self.summary.to_string(index=False, float_format=lambda v: f"{v:.4f}")


def run_walk_forward(config: PipelineConfig) -> WalkForwardResult:
    """Walk-forward over ``config.evaluation.folds`` folds of the configured data."""
    evaluation = config.evaluation
    task = task_for(config)
    prices = experiment.load_prices(config.data)  # before any run: a data error leaves none
    task.check_data(prices, config)
    tags = {"run.kind": "walk_forward", "walk_forward.scheme": evaluation.scheme}
    with tracking.tracked_run(config, tags=tags) as parent:
        tracking.log_data_record(parent, data_record(config, prices), prices, config.data.source)
        frame = experiment.feature_frame(prices, config)
        splits = walk_forward_splits(
            frame.index.get_level_values("date"),
            evaluation.folds,
            evaluation.fold_test_fraction,
            config.split.val_fraction,
            config.embargo,
            evaluation.scheme,
        )
        rows = []
        for fold, split in enumerate(splits):
            scores = _run_fold(config, parent, fold, split, frame, prices["close"])
            for model, values in scores.items():
                rows.append({"fold": fold, "model": model, **split.as_dict(), **values})
        folds = pd.DataFrame(rows)
        reference = folds[folds["model"] == task.reference].set_index("fold")[task.relative_metric]
        folds[task.relative_name] = folds[task.relative_metric] / folds["fold"].map(reference)
        summary = summarise(folds, task)
        tracking.log_metrics(parent, _parent_metrics(folds, summary, task))
        tracking.log_table(parent, folds, "walk_forward/folds.json")
        tracking.log_table(parent, summary, "walk_forward/summary.json")
        figure = fold_figure(folds, list(task.models), task.colors(), task.relative_name)
        tracking.log_figure(parent, figure, "walk_forward/folds.png")
    return WalkForwardResult(parent, folds, summary)


def summarise(folds: pd.DataFrame, task: ForecastTask) -> pd.DataFrame:
    """Mean and standard deviation over folds of each model's headline metrics."""
    columns = [task.relative_name, *task.headline]
    grouped = folds.groupby("model", sort=False)[columns]
    mean, std = grouped.mean(), grouped.std(ddof=1)
    out = pd.DataFrame({"model": mean.index})
    for column in columns:
        out[f"{column}_mean"] = mean[column].to_numpy()
        out[f"{column}_std"] = std[column].to_numpy()
    return out


def _run_fold(
    config: PipelineConfig,
    parent: str,
    fold: int,
    split: SplitDates,
    frame: pd.DataFrame,
    close: pd.Series,
) -> dict[str, dict[str, float]]:
    tags = {"mlflow.parentRunId": parent, "run.kind": "walk_forward_fold", "fold": str(fold)}
    with tracking.tracked_run(config, tags=tags, run_name=f"fold-{fold}") as run_id:
        prepared = experiment.prepare_frame(frame, config, split, close)
        tracking.log_params(run_id, {f"split.{k}": v for k, v in split.as_dict().items()})
        fitted = experiment.fit(prepared, config, logger=tracking.lightning_logger(run_id))
        evaluation = experiment.evaluate(prepared, fitted.model, config)
        tracking.log_params(run_id, evaluation.params)
        tracking.log_metrics(run_id, evaluation.metrics)
    return evaluation.scores


def _parent_metrics(
    folds: pd.DataFrame, summary: pd.DataFrame, task: ForecastTask
) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for row in folds.to_dict("records"):
        for name in (*task.headline, task.relative_name):
            value = row[name]
            if np.isfinite(value):
                metrics[f"fold/{row['fold']}/" + task.metric_key(row["model"], name)] = float(value)
    for row in summary.to_dict("records"):
        for key, value in row.items():
            if key != "model" and np.isfinite(value):
                metrics[task.metric_key(row["model"], key)] = float(value)
    return metrics
