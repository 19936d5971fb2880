"""Walk-forward evaluation: retrain per fold, score each test block, aggregate mean ± std.

One parent MLflow run (the data, the fold table and figure, the aggregates) with one nested run
per fold (its training curves and every test metric of the LSTM and the baselines). Every
baseline is re-estimated on each fold's training part, like the LSTM. The folds' out-of-sample
forecasts are also concatenated and scored as one (``pooled/...``: each model's scores, the
verdict against the strongest baseline, the DM tests and the model confidence set on them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stockpred import experiment, tracking
from stockpred.config import PipelineConfig
from stockpred.data.lineage import data_record
from stockpred.figures.evaluation import fold_figure
from stockpred.split import SplitDates, walk_forward_splits
from stockpred.tasks import ForecastTask, task_for
from stockpred.tasks.base import LSTM


@dataclass(frozen=True)
class WalkForwardResult:
    """The parent run, one row per (fold, model), the mean ± std table, and the concatenated
    out-of-sample forecasts with their pooled metrics (``pooled/`` + the usual keys)."""

    run_id: str
    folds: pd.DataFrame
    summary: pd.DataFrame
    predictions: pd.DataFrame | None = None  # every fold's test forecasts, with a fold column
    pooled: dict[str, float] = field(default_factory=dict)

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
        rows, forecasts = [], []
        for fold, split in enumerate(splits):
            scores, predictions = _run_fold(config, parent, fold, split, frame, prices["close"])
            forecasts.append(predictions.assign(fold=fold))
            for model, values in scores.items():
                rows.append({"fold": fold, "model": model, **split.as_dict(), **values})
        folds = pd.DataFrame(rows)
        everything = pd.concat(forecasts, ignore_index=True)
        pooled = pooled_metrics(everything, task, config)
        reference = folds[folds["model"] == task.reference].set_index("fold")[task.relative_metric]
        folds[task.relative_name] = folds[task.relative_metric] / folds["fold"].map(reference)
        summary = summarise(folds, task)
        tracking.log_metrics(parent, _parent_metrics(folds, summary, task))
        tracking.log_metrics(parent, {f"pooled/{k}": v for k, v in pooled.items()})
        tags = {f"pooled.{k}": v for k, v in task.verdict_tags(pooled).items()}
        tracking.set_tags(parent, tags)
        tracking.log_artifact_object(parent, everything, "walk_forward/test_predictions.parquet")
        tracking.log_table(parent, folds, "walk_forward/folds.json")
        tracking.log_table(parent, summary, "walk_forward/summary.json")
        figure = fold_figure(folds, list(task.models), task.colors(), task.relative_name)
        tracking.log_figure(parent, figure, "walk_forward/folds.png")
    return WalkForwardResult(parent, folds, summary, everything, pooled)


def pooled_metrics(
    predictions: pd.DataFrame, task: ForecastTask, config: PipelineConfig
) -> dict[str, float]:
    """Every model's scores on the concatenated out-of-sample forecasts of all folds, the DM
    tests and model confidence set on them, and the verdict's ratio (``test/<m>_vs_best``)."""
    frame = predictions.drop(columns="fold", errors="ignore")
    scores = {m: task.score(frame, m, config) for m in task.models if m in frame}
    metrics = task.flat_metrics(scores)
    metrics.update(task.superiority_metrics(frame, config))
    metrics.update(task.verdict_metrics(metrics))
    return metrics


def verdict_table(
    folds: pd.DataFrame, pooled: dict[str, float], task: ForecastTask, top: int = 3
) -> str:
    """The LSTM against the ``top`` strongest baselines (by their pooled score) on the primary
    metric, per fold and pooled, with the pooled DM t of the LSTM against each."""
    metric = task.relative_metric
    scored = {
        m: pooled[task.metric_key(m, metric)]
        for m in task.baseline_names
        if task.metric_key(m, metric) in pooled
    }
    best = sorted(scored, key=lambda m: scored[m], reverse=not task.lower_is_better)[:top]
    models = [LSTM, *best]
    table = folds.pivot(index="fold", columns="model", values=metric)
    head = f"{'fold':<12}" + "".join(f"{m:>16}" for m in models)
    lines = [f"{task.primary_label or metric} per fold (LSTM vs the {top} strongest baselines)"]
    lines.append(head)
    for fold, row in table.iterrows():
        lines.append(
            f"{fold!s:<12}" + "".join(f"{row.get(m, float('nan')):>16.4f}" for m in models)
        )
    pooled_row = [pooled.get(task.metric_key(m, metric), float("nan")) for m in models]
    lines.append(f"{'pooled':<12}" + "".join(f"{v:>16.4f}" for v in pooled_row))
    dm = [pooled.get(f"test/dm_vs_{m}/t", float("nan")) for m in best]
    lines.append(f"{'DM t pooled':<12}{'':>16}" + "".join(f"{t:>16.2f}" for t in dm))
    verdict = task.verdict(pooled)
    if verdict is not None:
        lines.append("pooled: " + verdict.sentence())
    return "\n".join(lines)


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
) -> tuple[dict[str, dict[str, float]], pd.DataFrame]:
    tags = {"mlflow.parentRunId": parent, "run.kind": "walk_forward_fold", "fold": str(fold)}
    with tracking.tracked_run(config, tags=tags, run_name=f"fold-{fold}") as run_id:
        prepared = experiment.prepare_frame(frame, config, split, close)
        tracking.log_params(run_id, {f"split.{k}": v for k, v in split.as_dict().items()})
        fitted = experiment.fit(prepared, config, logger=tracking.lightning_logger(run_id))
        evaluation = experiment.evaluate(prepared, fitted.model, config)
        tracking.log_params(run_id, evaluation.params)
        tracking.log_metrics(run_id, evaluation.metrics)
        tracking.set_tags(run_id, evaluation.tags)
    return evaluation.scores, evaluation.predictions


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
