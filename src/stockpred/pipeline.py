"""``run_training(config)``: the one code path shared by the Prefect flow, the CLI and notebooks.

It is a short sequence of stages. Each stage is a plain function that reads and writes files in
the run's work folder and returns small things (paths, metric dicts), so the Prefect flow can run
each one as a task by passing a ``runner`` that wraps it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from stockpred import tracking
from stockpred.config import PipelineConfig

F = TypeVar("F", bound=Callable[..., Any])
Runner = Callable[[F], F]
MODELS = ("lstm", "zero", "mean", "ridge")


@dataclass(frozen=True)
class RunContext:
    """What every stage needs: the MLflow run, a scratch folder, the config."""

    run_id: str
    workdir: Path
    config: PipelineConfig


@dataclass(frozen=True)
class TrainingResult:
    """Where the run is and how the LSTM did beside the baselines on the test period."""

    run_id: str
    run_name: str
    experiment: str
    tracking_uri: str
    artifact_uri: str
    model_uri: str | None
    metrics: dict[str, float]
    seconds: float
    ui_command: str = field(default="")

    def as_dict(self) -> dict[str, Any]:
        """Plain values, e.g. for a Prefect flow's return value."""
        return asdict(self)

    def summary(self) -> str:
        """The lines printed at the end of a run."""
        rows = [f"{'model':<8}{'RMSE':>10}{'MAE':>10}{'dir.acc':>9}{'vs zero':>9}"]
        zero = self.metrics.get("baseline/zero/test/rmse", float("nan"))
        for model in MODELS:
            prefix = "test" if model == "lstm" else f"baseline/{model}/test"
            rmse = self.metrics.get(f"{prefix}/rmse")
            if rmse is None:
                continue
            rows.append(
                f"{model:<8}{rmse:>10.5f}{self.metrics[f'{prefix}/mae']:>10.5f}"
                f"{self.metrics[f'{prefix}/dir_acc']:>9.3f}{rmse / zero:>9.3f}"
            )
        return "\n".join(
            [
                f"MLflow run   {self.run_name}  (id {self.run_id})",
                f"experiment   {self.experiment}",
                f"tracking     {self.tracking_uri}",
                f"artifacts    {self.artifact_uri}",
                *([f"model        {self.model_uri}"] if self.model_uri else []),
                "",
                "test period, forward log returns (RMSE/MAE in log-return units):",
                *("  " + r for r in rows),
                "",
                "open the MLflow UI (then http://127.0.0.1:5000):",
                f"  {self.ui_command}",
                f"finished in {self.seconds:.0f} s",
            ]
        )


def _direct(stage: F) -> F:
    return stage


def run_training(
    config: PipelineConfig | None = None, *, runner: Runner = _direct
) -> TrainingResult:
    """Load, featurise, split, train, evaluate and log one run; return where it is and its metrics.

    ``runner`` wraps each stage before it is called (the Prefect flow turns stages into tasks).
    A failure in any stage ends the MLflow run as FAILED with the error recorded, and re-raises.
    """
    config = config or PipelineConfig()
    started = time.perf_counter()
    with (
        tracking.tracked_run(config) as run_id,
        tempfile.TemporaryDirectory(prefix="stockpred-run-") as scratch,
    ):
        ctx = RunContext(run_id=run_id, workdir=Path(scratch), config=config)
        prices = runner(load_data)(ctx)
        features = runner(build_features)(ctx, prices)
        prepared = runner(prepare_data)(ctx, features)
        model = runner(train_model)(ctx, prepared)
        metrics = runner(evaluate_model)(ctx, prepared, model)
        model_uri = runner(log_trained_model)(ctx, prepared, model)
    run = tracking.client().get_run(run_id)
    return TrainingResult(
        run_id=run_id,
        run_name=run.info.run_name,
        experiment=config.tracking.experiment,
        tracking_uri=tracking.tracking_uri(),
        artifact_uri=run.info.artifact_uri,
        model_uri=model_uri,
        metrics=metrics,
        seconds=time.perf_counter() - started,
        ui_command=tracking.ui_command(),
    )


def load_data(ctx: RunContext) -> Path:
    """Load the configured prices, record their lineage, and save them as Parquet."""
    from stockpred.data import load_prices

    data = ctx.config.data
    prices = load_prices(
        data.tickers,
        data.start,
        data.end,
        source=data.source,
        cache_dir=data.cache_dir,
        refresh=data.refresh,
        on_bad_rows=data.on_bad_rows,
        max_gap_days=data.max_gap_days,
    )
    path = ctx.workdir / "prices.parquet"
    prices.to_parquet(path)
    name = f"{data.source}:{','.join(data.tickers)}:{data.start}..{data.end}"
    tracking.log_dataset(ctx.run_id, prices.reset_index(), name=name, source=data.source)
    first, last = prices.index.get_level_values("date")[[0, -1]]
    tracking.set_tags(
        ctx.run_id, {"data.rows": str(len(prices)), "data.range": f"{first.date()}..{last.date()}"}
    )
    return path


def build_features(ctx: RunContext, prices_path: Path) -> Path:
    """Compute the causal features and the forward-return target; save them as Parquet."""
    from stockpred.features import make_features, make_target

    prices = pd.read_parquet(prices_path)
    features = make_features(prices, ctx.config.features)
    features["target"] = make_target(prices, ctx.config.features.horizon)
    path = ctx.workdir / "features.parquet"
    features.to_parquet(path)
    return path


def prepare_data(ctx: RunContext, features_path: Path) -> Path:
    """Split chronologically with embargoes, scale with training statistics only, save arrays."""
    from stockpred.prepare import prepare

    frame = pd.read_parquet(features_path)
    prepared = prepare(frame.drop(columns="target"), frame["target"], ctx.config)
    tracking.log_dict(ctx.run_id, prepared.preprocessing(), "preprocessing.json")
    tracking.log_params(ctx.run_id, {f"split.{k}": v for k, v in prepared.split.as_dict().items()})
    return prepared.save(ctx.workdir / "prepared.npz")


def train_model(ctx: RunContext, prepared_path: Path) -> Path:
    """Fit the LSTM (epoch metrics stream into the run) and save the best weights."""
    import torch

    from stockpred.gates import GateMonitor, diagnostic_indices
    from stockpred.prepare import Prepared
    from stockpred.split import TRAIN, VAL
    from stockpred.train import fit_forecaster

    prepared = Prepared.load(prepared_path)
    window = ctx.config.model.window
    train, val = prepared.dataset(TRAIN, window), prepared.dataset(VAL, window)
    tracking.log_params(
        ctx.run_id, {"data.train_windows": len(train), "data.val_windows": len(val)}
    )
    gates = ctx.config.gates
    monitor = None
    if gates.enabled:  # the same evenly spaced validation windows every epoch
        diagnostic = diagnostic_indices(len(val), gates.batch_size)
        monitor = GateMonitor(
            val.__getitems__(diagnostic)[0], artifact_epochs=gates.artifact_epochs
        )
    fit = fit_forecaster(
        train,
        val,
        ctx.config.model,
        ctx.config.train,
        logger=tracking.lightning_logger(ctx.run_id),
        callbacks=[monitor] if monitor else [],
    )
    if monitor is not None:
        from stockpred.gate_plots import gate_artifacts

        row = int(val.ends[diagnostic[monitor.sample_index]])  # the heatmap's window ends here
        label = f"{prepared.tickers[row]} window ending {str(prepared.dates[row])[:10]}"
        for artifact_file, item in gate_artifacts(monitor, prepared.price_path(row, window), label):
            tracking.log_artifact_object(ctx.run_id, item, artifact_file)
    tracking.log_metrics(
        ctx.run_id,
        {
            "train/best_epoch": fit.best_epoch,
            "train/epochs": fit.epochs_trained,
            "val/best_loss": fit.best_val_loss,
        },
    )
    path = ctx.workdir / "model.pt"
    torch.save(fit.model, path)
    return path


def evaluate_model(ctx: RunContext, prepared_path: Path, model_path: Path) -> dict[str, float]:
    """Score the LSTM and the naive baselines on the same test windows; log metrics, table, figure."""
    import torch

    from stockpred.evaluate import (
        comparison_table,
        fit_ridge,
        predicted_vs_actual_figure,
        regression_metrics,
    )
    from stockpred.prepare import Prepared
    from stockpred.split import TEST, TRAIN, VAL
    from stockpred.train import predict

    prepared = Prepared.load(prepared_path)
    model = torch.load(model_path, weights_only=False)
    window = ctx.config.model.window
    parts = {
        name: prepared.dataset(part, window)
        for name, part in (("train", TRAIN), ("val", VAL), ("test", TEST))
    }
    ends = {name: ds.ends.numpy() for name, ds in parts.items()}
    if len(ends["test"]) == 0:
        raise ValueError("the test period holds no complete window; load a longer date range")
    last_row = {name: prepared.features[rows] for name, rows in ends.items()}  # (S, F) at t
    ridge = fit_ridge(
        last_row["train"],
        prepared.target[ends["train"]],
        last_row["val"],
        prepared.target[ends["val"]],
    )
    test_rows = ends["test"]
    predictions = pd.DataFrame(
        {
            "date": prepared.dates[test_rows],
            "ticker": prepared.tickers[test_rows],
            "actual": prepared.actual[test_rows],
            "lstm": prepared.unscale(predict(model, parts["test"])),
            "zero": np.zeros(len(test_rows)),
            "mean": np.full(len(test_rows), prepared.target_mean),
            "ridge": prepared.unscale(ridge.predict(last_row["test"])),
        }
    )
    scores = {m: regression_metrics(predictions["actual"], predictions[m]) for m in MODELS}
    metrics = {}
    for model_name, values in scores.items():
        prefix = "test" if model_name == "lstm" else f"baseline/{model_name}/test"
        metrics.update({f"{prefix}/{k}": v for k, v in values.items()})
    metrics["test/rmse_vs_zero"] = scores["lstm"]["rmse"] / scores["zero"]["rmse"]
    tracking.log_metrics(ctx.run_id, metrics)
    tracking.log_params(
        ctx.run_id, {"data.test_windows": len(test_rows), "baseline.ridge_alpha": ridge.alpha}
    )
    tracking.log_table(ctx.run_id, comparison_table(scores), "evaluation/test_comparison.json")
    predictions_path = ctx.workdir / "test_predictions.parquet"
    predictions.to_parquet(predictions_path, index=False)
    tracking.log_artifact(ctx.run_id, predictions_path, "evaluation")
    figure = predicted_vs_actual_figure(predictions, ctx.config.features.horizon)
    tracking.log_figure(ctx.run_id, figure, "evaluation/predicted_vs_actual.png")
    return metrics


def log_trained_model(ctx: RunContext, prepared_path: Path, model_path: Path) -> str | None:
    """Log the trained model (signature + input example) to the run; returns its model URI."""
    import torch

    from stockpred.prepare import Prepared
    from stockpred.split import TEST

    if not ctx.config.tracking.log_model:
        return None
    prepared = Prepared.load(prepared_path)
    model = torch.load(model_path, weights_only=False)
    example, _ = prepared.dataset(TEST, ctx.config.model.window).__getitems__([0])
    return tracking.log_model(ctx.run_id, model, example.numpy())
