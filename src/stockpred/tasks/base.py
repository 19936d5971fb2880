"""What a forecasting task is: its target, its baselines, its metrics and how they are named.

A task (``stockpred.tasks.returns.ReturnTask`` is the first) owns everything that depends on what
is forecast. The pipeline, walk-forward, sweeps, the registry, predict, the report and the figures
ask the task instead of hard-coding names: which models exist (``models``), what each metric is
called in MLflow (``metric_key``), which metric selects and promotes models
(``selection_metric``), the printed table (``summary_rows``) and the evaluation figures.

Baselines are small objects with ``fit(train, val)`` and ``predict(part)`` on the same windows as
the LSTM (``Part``): fitted on the training windows only, predicting in target units.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
from torch import nn

from stockpred.config import PipelineConfig
from stockpred.metrics import comparison_table
from stockpred.split import TEST, TRAIN, VAL

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from stockpred.prepare import Prepared

LSTM = "lstm"
PARTS = {"train": TRAIN, "val": VAL, "test": TEST}


@dataclass(frozen=True)
class Part:
    """The windows of one split part as a baseline sees them: their end rows in ``prepared``."""

    prepared: Prepared
    rows: np.ndarray  # (S,) the end row of each window (the forecast date's row)

    @classmethod
    def of(cls, prepared: Prepared, part: int) -> Part:
        """The windows of ``part`` (TRAIN, VAL or TEST) that the LSTM trains on or is scored on."""
        return cls(prepared, prepared.dataset(part).ends.numpy())

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def last_row(self) -> np.ndarray:
        """(S, F_all) every scaled feature on the forecast date (whatever the network's
        selection: a baseline's forecast does not depend on ``features.include``)."""
        return self.prepared.baseline_features.values[self.rows]

    @property
    def target(self) -> np.ndarray:
        """(S,) the scaled training target (what the LSTM fits)."""
        return self.prepared.target[self.rows]

    @property
    def actual(self) -> np.ndarray:
        """(S,) the target as realised, in target units (NaN where it was purged)."""
        return self.prepared.actual[self.rows]

    def lags(self, feature: str, count: int) -> np.ndarray:
        """(S, count) the scaled feature ``feature`` on the forecast date and ``count - 1`` days
        before it, newest first (inside the window, so nothing later than the forecast date);
        read from every computed feature, whatever the network's selection."""
        table = self.prepared.baseline_features
        return table.scaled(feature, self.rows[:, None] - np.arange(count))


class Baseline(Protocol):
    """A naive forecaster scored beside the LSTM on the same windows."""

    name: str

    def fit(self, train: Part, val: Part) -> Baseline:
        """Fit on the training windows (``val`` only to choose a hyperparameter); returns self."""
        ...

    def predict(self, part: Part) -> np.ndarray:
        """(S,) forecasts in target units for the windows of ``part``."""
        ...

    def params(self) -> dict[str, float]:
        """Fitted hyperparameters worth logging (``baseline.<name>_...``)."""
        ...


class ForecastTask(ABC):
    """One forecasting task; subclasses fill in what is specific to their target."""

    kind: str  # the config's task name
    reference: str  # the baseline relative scores divide by (e.g. "zero")
    relative_metric: str  # the metric divided by the reference's (e.g. "rmse")
    lower_is_better: bool = True
    headline: tuple[str, ...]  # scores in summaries and walk-forward tables
    table_scores: tuple[str, ...]  # scores in the per-run tables of the report

    @property
    def relative_name(self) -> str:
        """E.g. ``rmse_vs_zero``: the task's headline skill score."""
        return f"{self.relative_metric}_vs_{self.reference}"

    @property
    def selection_metric(self) -> str:
        """The validation metric that sweeps select by and the registry promotes by."""
        return f"val/{self.relative_name}"

    @property
    def models(self) -> tuple[str, ...]:
        """The LSTM, then every baseline, in the order tables and figures show them."""
        return (LSTM, *self.baseline_names)

    @property
    @abstractmethod
    def baseline_names(self) -> tuple[str, ...]:
        """The names of ``baselines()``, without fitting anything."""

    @abstractmethod
    def target(self, prices: pd.DataFrame, config: PipelineConfig) -> pd.Series:
        """The forecast target per (date, ticker) as realised (NaN where the future is unknown)."""

    def check_data(self, prices: pd.DataFrame, config: PipelineConfig) -> None:
        """Refuse prices this task cannot use (a ``ValueError`` saying why and what to do),
        before any run is created; nothing to check by default."""
        return None

    @abstractmethod
    def baselines(self, config: PipelineConfig) -> Sequence[Baseline]:
        """Fresh, unfitted baselines."""

    @abstractmethod
    def score(
        self, predictions: pd.DataFrame, model: str, config: PipelineConfig
    ) -> dict[str, float]:
        """Every test score of one model's column of ``predictions`` (date, ticker, actual, ...)."""

    @abstractmethod
    def summary_rows(self, metrics: Mapping[str, float]) -> list[str]:
        """The printed table of a run: a header, then one line per model (and notes)."""

    @abstractmethod
    def figures(
        self,
        predictions: pd.DataFrame,
        scores: Mapping[str, Mapping[str, float]],
        config: PipelineConfig,
    ) -> dict[str, Figure]:
        """Evaluation figures by artifact path (``evaluation/....png``)."""

    @abstractmethod
    def forecast_columns(self, predicted: np.ndarray) -> dict[str, Any]:
        """Columns of a live forecast (``stockpred predict``) for predictions in target units."""

    def loss(self, prepared: Prepared, config: PipelineConfig) -> nn.Module:
        """The LSTM's training loss on the scaled target (``prepared`` holds the target's mean
        and scale, for losses defined in target units)."""
        return nn.MSELoss()

    def memory_proxy(
        self, prepared: Prepared, config: PipelineConfig
    ) -> tuple[np.ndarray, str] | None:
        """The daily quantity an exponential memory of the target averages (every row, from
        ``prepared.baseline_features``) and the loss it is scored with (``qlike`` | ``mse``), for
        the memory-value curve (``stockpred.memory.ewma_value_curve``); None: not defined."""
        return None

    def extra_metrics(
        self,
        predictions: pd.DataFrame,
        scores: Mapping[str, Mapping[str, float]],
        config: PipelineConfig,
    ) -> dict[str, float]:
        """Flat metrics beyond the per-model scores (e.g. benchmarks); none by default."""
        return {}

    def baseline_metrics(self, baselines: Sequence[Baseline]) -> dict[str, float]:
        """Flat metrics read off the fitted baselines (e.g. the persistence a fitted GARCH
        implies); none by default."""
        return {}

    def metric_key(self, model: str, metric: str, part: str = "test") -> str:
        """The MLflow key of a score: ``test/rmse`` for the LSTM, ``baseline/zero/test/rmse``."""
        return metric_key(model, metric, part)

    def flat_metrics(
        self, scores: Mapping[str, Mapping[str, float]], part: str = "test"
    ) -> dict[str, float]:
        """Every finite score under its MLflow key, plus each model's relative score."""
        out: dict[str, float] = {}
        reference = scores.get(self.reference, {}).get(self.relative_metric)
        for model, values in scores.items():
            row = dict(values)
            if reference and self.relative_metric in row:
                row[self.relative_name] = row[self.relative_metric] / reference
            out.update(
                {
                    self.metric_key(model, k, part): float(v)
                    for k, v in row.items()
                    if np.isfinite(v)
                }
            )
        return out

    @abstractmethod
    def validation_metrics(self, actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
        """The LSTM's validation scores; they include ``selection_metric``."""

    def comparison_table(self, scores: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
        """One row per model, one column per score, with the relative score."""
        plain = {model: dict(values) for model, values in scores.items()}
        return comparison_table(plain, self.reference, self.relative_metric)

    def colors(self) -> dict[str, str]:
        """One colour per model, the same in every figure: the LSTM C0, the reference grey."""
        out = {model: f"C{i}" for i, model in enumerate(self.models)}
        out[self.reference] = "0.55"
        return out


def metric_key(model: str, metric: str, part: str = "test") -> str:
    """The MLflow key of a score: ``<part>/<metric>`` for the LSTM,
    ``baseline/<model>/<part>/<metric>`` for a baseline (the one rule, used everywhere)."""
    return f"{part}/{metric}" if model == LSTM else f"baseline/{model}/{part}/{metric}"


def fmt_cell(value: float | None, width: int, digits: int) -> str:
    """A right-aligned number for a summary table, or a dash where a metric is undefined (e.g.
    the IC of a constant forecast)."""
    if value is None or value != value:
        return f"{'-':>{width}}"
    return f"{value:>{width}.{digits}f}"
