"""Walk-forward evaluation: retrain per fold, score each test block, aggregate mean ± std.

One parent MLflow run (the data, the fold table and figure, the aggregates) with one nested run
per fold (its training curves and every test metric of the LSTM and the baselines).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stockpred import tracking
from stockpred.config import PipelineConfig
from stockpred.pipeline import (
    MODELS,
    RunContext,
    build_features,
    load_data,
    score_predictions,
    test_predictions,
)

SUMMARY_METRICS = ("rmse", "dir_acc", "ic", "sharpe")


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
    from stockpred.split import walk_forward_splits

    evaluation = config.evaluation
    tags = {"run.kind": "walk_forward", "walk_forward.scheme": evaluation.scheme}
    with (
        tracking.tracked_run(config, tags=tags) as parent,
        tempfile.TemporaryDirectory(prefix="stockpred-wf-") as scratch,
    ):
        ctx = RunContext(run_id=parent, workdir=Path(scratch), config=config)
        frame = pd.read_parquet(build_features(ctx, load_data(ctx)))
        splits = walk_forward_splits(
            frame.index.get_level_values("date"), evaluation.folds, evaluation.fold_test_fraction,
            config.split.val_fraction, config.embargo, evaluation.scheme,
        )  # fmt: skip
        rows = []
        for fold, split in enumerate(splits):
            scores = _run_fold(config, parent, fold, split, frame)
            for model, values in scores.items():
                rows.append({"fold": fold, "model": model, **split.as_dict(), **values})
        folds = pd.DataFrame(rows)
        zero = folds[folds["model"] == "zero"].set_index("fold")["rmse"]
        folds["rmse_vs_zero"] = folds["rmse"] / folds["fold"].map(zero)
        summary = summarise(folds)
        tracking.log_metrics(parent, _parent_metrics(folds, summary))
        tracking.log_table(parent, folds, "walk_forward/folds.json")
        tracking.log_table(parent, summary, "walk_forward/summary.json")
        tracking.log_figure(parent, fold_figure(folds), "walk_forward/folds.png")
    return WalkForwardResult(parent, folds, summary)


def summarise(folds: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over folds of each model's headline metrics."""
    columns = ["rmse_vs_zero", *SUMMARY_METRICS]
    grouped = folds.groupby("model", sort=False)[columns]
    mean, std = grouped.mean(), grouped.std(ddof=1)
    out = pd.DataFrame({"model": mean.index})
    for column in columns:
        out[f"{column}_mean"] = mean[column].to_numpy()
        out[f"{column}_std"] = std[column].to_numpy()
    return out


def _run_fold(
    config: PipelineConfig, parent: str, fold: int, split, frame: pd.DataFrame
) -> dict[str, dict[str, float]]:
    from stockpred.prepare import prepare
    from stockpred.split import TRAIN, VAL
    from stockpred.train import fit_forecaster

    tags = {"mlflow.parentRunId": parent, "run.kind": "walk_forward_fold", "fold": str(fold)}
    with tracking.tracked_run(config, tags=tags, run_name=f"fold-{fold}") as run_id:
        prepared = prepare(frame.drop(columns="target"), frame["target"], config, split)
        tracking.log_params(run_id, {f"split.{k}": v for k, v in split.as_dict().items()})
        window = config.model.window
        fit = fit_forecaster(
            prepared.dataset(TRAIN, window), prepared.dataset(VAL, window), config.model,
            config.train, logger=tracking.lightning_logger(run_id),
        )  # fmt: skip
        predictions, fitted = test_predictions(prepared, fit.model, config)
        scores, metrics = score_predictions(predictions, config)
        tracking.log_params(run_id, fitted)
        tracking.log_metrics(run_id, metrics)
    return scores


def _parent_metrics(folds: pd.DataFrame, summary: pd.DataFrame) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for row in folds.itertuples(index=False):
        prefix = f"fold/{row.fold}/" + (
            "test" if row.model == "lstm" else f"baseline/{row.model}/test"
        )
        for name in ("rmse", *SUMMARY_METRICS[1:], "rmse_vs_zero"):
            value = getattr(row, name)
            if np.isfinite(value):
                metrics[f"{prefix}/{name}"] = float(value)
    for row in summary.to_dict("records"):
        prefix = "test" if row["model"] == "lstm" else f"baseline/{row['model']}/test"
        for key, value in row.items():
            if key != "model" and np.isfinite(value):
                metrics[f"{prefix}/{key}"] = float(value)
    return metrics


def fold_figure(folds: pd.DataFrame):  # -> Figure
    """Per fold, each model's RMSE relative to zero and its long/short Sharpe."""
    import matplotlib.pyplot as plt

    models = [m for m in MODELS if m in set(folds["model"])]
    n_folds = folds["fold"].nunique()
    width = 0.8 / len(models)
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.2))
    for panel, (column, label) in zip(axes, (("rmse_vs_zero", "test RMSE / RMSE(zero)"),
                                            ("sharpe", "long/short Sharpe (annualised, net)")),
                                      strict=True):  # fmt: skip
        for i, model in enumerate(models):
            values = folds[folds["model"] == model].sort_values("fold")[column].to_numpy()
            panel.bar(np.arange(n_folds) + i * width, values, width, label=model, color=f"C{i}")
        panel.axhline(1.0 if column == "rmse_vs_zero" else 0.0, color="k", lw=0.8, ls="--")
        panel.set_xticks(np.arange(n_folds) + 0.4 - width / 2,
                         [f"fold {k}" for k in range(n_folds)])  # fmt: skip
        panel.set_ylabel(label)
        panel.set_title(f"{label} per walk-forward fold")
    if folds["rmse_vs_zero"].notna().any():
        values = folds["rmse_vs_zero"]
        spread = max(values.max() - 1, 1 - values.min(), 0.001)
        axes[0].set_ylim(1 - 1.3 * spread, 1 + 1.3 * spread)
    axes[0].legend(fontsize=8, ncols=len(models))
    fig.tight_layout()
    return fig
