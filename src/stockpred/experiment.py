"""The untracked core run: load -> features and target -> prepare -> fit -> predict -> score.

Each step takes the config sections it needs and returns in-memory results: no MLflow, no
Prefect, no files. The tracked pipeline, walk-forward, the synthetic check, the report, predict
and the benchmarks all compose these steps instead of writing the sequence out again.

    from stockpred.config import load_config
    from stockpred import experiment

    config = load_config({"train": {"max_epochs": 3}})  # the volatility task, the default
    outcome = experiment.run(config)
    print(outcome.evaluation.metrics["test/qlike_vs_har"])
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import Logger

from stockpred.config import DataConfig, GateConfig, PipelineConfig
from stockpred.data import load_prices as load_source
from stockpred.features import TARGET, make_features
from stockpred.gates import GateMonitor, diagnostic_indices
from stockpred.memory import MemoryMonitor, ewma_value_curve
from stockpred.models import model_class
from stockpred.prepare import Prepared, prepare
from stockpred.split import TEST, TRAIN, VAL, SplitDates
from stockpred.tasks import ForecastTask, Part, task_for
from stockpred.tasks.base import LSTM
from stockpred.training import FitResult, fit_forecaster
from stockpred.training import predict as predict_windows


def load_prices(
    data: DataConfig, *, start: dt.date | None = None, end: dt.date | None = None
) -> pd.DataFrame:
    """The prices ``data`` describes (from ``start``..``end`` instead, when given): the one place
    that turns a ``DataConfig`` into a ``load_prices`` call."""
    return load_source(
        data.tickers,
        start or data.start,
        end or data.last_date,
        source=data.source,
        cache_dir=data.cache_dir,
        refresh=data.refresh,
        on_bad_rows=data.on_bad_rows,
        max_gap_days=data.max_gap_days,
        path=data.path,
        universe=data.universe,
    )


def feature_frame(prices: pd.DataFrame, config: PipelineConfig) -> pd.DataFrame:
    """The causal features and the task's target (column ``target``) on the prices' index."""
    frame = make_features(prices, config.features)
    frame[TARGET] = task_for(config).target(prices, config)
    return frame


def prepare_frame(
    frame: pd.DataFrame,
    config: PipelineConfig,
    split: SplitDates | None = None,
    close: pd.Series | None = None,
) -> Prepared:
    """Split (``split``, else chronologically by the config), scale on training rows only."""
    transform = task_for(config).target_transform  # e.g. the volatility task: log variance
    return prepare(frame.drop(columns=TARGET), frame[TARGET], config, split, close, transform)


def build(
    prices: pd.DataFrame, config: PipelineConfig, split: SplitDates | None = None
) -> Prepared:
    """Features, target and the prepared arrays of ``prices``, in one call."""
    return prepare_frame(feature_frame(prices, config), config, split, prices["close"])


def gates_for_model(config: PipelineConfig) -> PipelineConfig:
    """``config`` with gate diagnostics off when its model (``model.arch``) has no gates to
    replay, saying so in one line; else ``config`` as it is."""
    if not config.gates.enabled or model_class(config.model.arch).gate_spec is not None:
        return config
    # on stderr, not the logging tree: an imported library leaves the root logger at ERROR
    print(
        f"stockpred: model.arch={config.model.arch} has no gates: training with gate "
        "diagnostics off (gates.enabled=false)",
        file=sys.stderr,
        flush=True,
    )
    return config.with_overrides({"gates.enabled": False})


@dataclass(frozen=True)
class Diagnostics:
    """The gate monitor of a fit, and the row its sample window (the heatmap's) ends at."""

    monitor: GateMonitor
    sample_row: int

    def window(self, prepared: Prepared) -> tuple[np.ndarray, str]:
        """The sample window's price path and label."""
        row = self.sample_row
        label = f"{prepared.tickers[row]} window ending {str(prepared.dates[row])[:10]}"
        return prepared.price_path(row), label


def gate_diagnostics(prepared: Prepared, gates: GateConfig) -> Diagnostics | None:
    """A monitor of evenly spaced validation windows, the same every epoch (None when off)."""
    if not gates.enabled:
        return None
    val = prepared.dataset(VAL)
    diagnostic = diagnostic_indices(len(val), gates.batch_size)
    monitor = GateMonitor(val.__getitems__(diagnostic)[0], artifact_epochs=gates.artifact_epochs)
    return Diagnostics(monitor, int(val.ends[diagnostic[monitor.sample_index]]))


def memory_diagnostics(prepared: Prepared, config: PipelineConfig) -> MemoryMonitor | None:
    """A monitor of the memory the network uses on ``gates.memory_windows`` evenly spaced
    validation windows, with their targets and the task's loss (None when gates or
    ``gates.memory`` are off)."""
    if not (config.gates.enabled and config.gates.memory):
        return None
    val = prepared.dataset(VAL)
    x, y = val.__getitems__(diagnostic_indices(len(val), config.gates.memory_windows))
    return MemoryMonitor(x, y, task_for(config).loss(prepared, config))


def memory_value(prepared: Prepared, config: PipelineConfig) -> tuple[pd.Series, str] | None:
    """The memory-value curve of the run's own target on its training windows, and its loss
    name (None where the task defines no daily proxy)."""
    proxy = task_for(config).memory_proxy(prepared, config)
    if proxy is None:
        return None
    daily, loss = proxy
    _, groups = np.unique(prepared.tickers, return_inverse=True)
    rows = Part.of(prepared, TRAIN).rows
    return ewma_value_curve(daily, prepared.actual, groups, rows, loss), loss


def fit(
    prepared: Prepared,
    config: PipelineConfig,
    *,
    logger: Logger | bool = False,
    callbacks: Sequence[Callback] = (),
    checkpoint_dir: str | None = None,
    resume_from: str | None = None,
) -> FitResult:
    """Train the ``model.arch`` network on the training windows with early stopping on the
    validation windows."""
    return fit_forecaster(
        prepared.dataset(TRAIN, sequence=config.train.loss_steps == "all"),
        prepared.dataset(VAL),
        config.model,
        config.train,
        logger=logger,
        callbacks=callbacks,
        checkpoint_dir=checkpoint_dir,
        resume_from=resume_from,
        loss=task_for(config).loss(prepared, config),
    )


def kept_val_predictions(prepared: Prepared, fitted: FitResult) -> np.ndarray | None:
    """The validation forecasts that training computed at the kept epoch, in target units (None
    where the fit did not keep them): what ``evaluate`` would otherwise predict again."""
    if fitted.val_predictions is None:
        return None
    return prepared.unscale(fitted.val_predictions)


def predict(model: torch.nn.Module, prepared: Prepared, part: int) -> np.ndarray:
    """The model's forecasts for every window of ``part``, in target units."""
    return prepared.unscale(predict_windows(model, prepared.dataset(part)))


@dataclass(frozen=True)
class Evaluation:
    """The test period scored: every model's forecasts, scores, and the flat MLflow metrics."""

    predictions: pd.DataFrame  # date, ticker, actual, one column per model
    scores: dict[str, dict[str, float]]
    metrics: dict[str, float]  # test and validation metrics under their MLflow keys
    params: dict[str, float] = field(default_factory=dict)  # fitted baseline hyperparameters
    task: ForecastTask | None = None
    tags: dict[str, str] = field(default_factory=dict)  # the verdict's and the MCS's names

    def table(self) -> pd.DataFrame:
        """One row per model with the task's relative score."""
        assert self.task is not None
        return self.task.comparison_table(self.scores)


def evaluate(
    prepared: Prepared,
    model: torch.nn.Module,
    config: PipelineConfig,
    *,
    val_predictions: np.ndarray | None = None,
) -> Evaluation:
    """The LSTM and every baseline of the task on the same test windows, scored; and the LSTM's
    validation metrics (``val_predictions``: reused when the caller already has them)."""
    task = task_for(config)
    parts = {
        name: Part.of(prepared, code)
        for name, code in (("train", TRAIN), ("val", VAL), ("test", TEST))
    }
    test = parts["test"]
    if len(test) == 0:
        raise ValueError("the test period holds no complete window; load a longer date range")
    frame = pd.DataFrame(
        {
            "date": prepared.dates[test.rows],
            "ticker": prepared.tickers[test.rows],
            "actual": test.actual,
            LSTM: predict(model, prepared, TEST),
        }
    )
    params: dict[str, float] = {}
    baselines = task.baselines(config)
    for baseline in baselines:
        baseline.fit(parts["train"], parts["val"])
        frame[baseline.name] = baseline.predict(test)
        params.update(baseline.params())
    scores = {m: task.score(frame, m, config) for m in task.models if m in frame}
    metrics = task.flat_metrics(scores)
    metrics.update(task.baseline_metrics(baselines))
    metrics.update(task.extra_metrics(frame, scores, config))
    metrics.update(task.superiority_metrics(frame, config))
    metrics.update(task.verdict_metrics(metrics))
    val = parts["val"]
    predicted = val_predictions if val_predictions is not None else predict(model, prepared, VAL)
    metrics.update(task.validation_metrics(val.actual, predicted))
    return Evaluation(frame, scores, metrics, params, task, task.verdict_tags(metrics))


@dataclass(frozen=True)
class Outcome:
    """A whole untracked run: the data, the fit and the evaluation."""

    prepared: Prepared
    fit: FitResult
    evaluation: Evaluation


def run(config: PipelineConfig, prices: pd.DataFrame | None = None) -> Outcome:
    """The whole sequence untracked, on ``prices`` or the config's own data."""
    prepared = build(load_prices(config.data) if prices is None else prices, config)
    fitted = fit(prepared, config)
    evaluation = evaluate(
        prepared, fitted.model, config, val_predictions=kept_val_predictions(prepared, fitted)
    )
    return Outcome(prepared, fitted, evaluation)
