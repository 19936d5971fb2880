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

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import pandas as pd
from torch import nn

from stockpred.config import PipelineConfig
from stockpred.forecast_tests import (
    MCS_ALPHAS,
    diebold_mariano,
    dm_counts,
    model_confidence_set,
    panel_dm,
)
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


@dataclass(frozen=True)
class Verdict:
    """The LSTM against the strongest baseline on the task's primary test metric."""

    metric: str  # e.g. "qlike"
    label: str  # how the metric reads in a sentence, e.g. "QLIKE"
    best: str  # the strongest baseline's name
    lstm: float
    baseline: float
    t: float  # Diebold-Mariano t of the LSTM's loss minus the best's (negative: LSTM better)
    p: float
    lower_is_better: bool = True

    @property
    def ratio(self) -> float:
        """The LSTM's score over the best baseline's (below 1 is better for a loss)."""
        return self.lstm / self.baseline

    @property
    def outcome(self) -> str:
        """``better``, ``worse`` or ``tie`` (not significant at 5%, or no test)."""
        if not (np.isfinite(self.p) and self.p < 0.05):
            return "tie"
        lstm_lower = self.t < 0
        return "better" if lstm_lower == self.lower_is_better else "worse"

    def sentence(self) -> str:
        """One line: the LSTM vs the strongest baseline, the ratio and the DM test."""
        words = {
            "better": "significantly better",
            "worse": "significantly worse",
            "tie": "no significant difference",
        }
        dm = f"DM t {self.t:+.2f}, p {self.p:.3f}" if np.isfinite(self.t) else "no DM test"
        return (
            f"LSTM vs the strongest baseline, {self.best}: {self.label} {self.lstm:.4g} vs "
            f"{self.baseline:.4g} (ratio {self.ratio:.3f}; {dm}): {words[self.outcome]} at 5%"
        )


class ForecastTask(ABC):
    """One forecasting task; subclasses fill in what is specific to their target."""

    kind: str  # the config's task name
    reference: str  # the baseline relative scores divide by (e.g. "zero")
    relative_metric: str  # the metric divided by the reference's (e.g. "rmse")
    lower_is_better: bool = True  # of ``primary_metric`` and the relative score
    headline: tuple[str, ...]  # scores in summaries and walk-forward tables
    table_scores: tuple[str, ...]  # scores in the per-run tables of the report
    primary_metric: str  # the test score the report's verdict compares models on, e.g. "rmse"
    primary_label: str  # how it reads in a sentence, e.g. "RMSE"
    target_description: str  # what is forecast, in words (the report's header)
    # what the model learns of the target (``Prepared.target_transform``): identity or log
    target_transform: str = "identity"
    ablation_loss_name: str = "mse"  # the loss ``ablation_loss`` computes
    # captions of the evaluation figures (artifact path -> HTML), in the report's order
    figure_captions: ClassVar[Mapping[str, str]] = {}
    # the report's note where the task fits no market-memory model to set beside the network's
    market_memory_note: str | None = None
    # the per-row losses the DM tests and the model confidence set use (the first: DM)
    test_losses: tuple[str, ...] = ("mse",)
    caption_lines: int = 2  # the lines of ``summary_rows`` before the table's header

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

    def ablation_loss(self, actual: np.ndarray, predicted: np.ndarray) -> float:
        """The test loss the ablation compares, in target units (default MSE); rows whose
        target was purged (NaN) are left out."""
        actual, predicted = np.asarray(actual, np.float64), np.asarray(predicted, np.float64)
        ok = np.isfinite(actual) & np.isfinite(predicted)
        return float(np.mean((predicted[ok] - actual[ok]) ** 2))

    @property
    def run_scores(self) -> tuple[str, ...]:
        """The per-model test scores a run table lists: ``table_scores`` and the relative one."""
        return (*self.table_scores, self.relative_name)

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

    def row_losses(self, predictions: pd.DataFrame, model: str, loss: str) -> np.ndarray:
        """(S,) one model's loss ``loss`` (one of ``test_losses``) per row of ``predictions``;
        the squared error by default."""
        if loss != "mse":
            raise ValueError(f"the {self.kind} task has no loss {loss!r}")
        return np.asarray((predictions[model] - predictions["actual"]) ** 2, dtype=np.float64)

    def losses(self, predictions: pd.DataFrame, loss: str) -> pd.DataFrame:
        """``date``, ``ticker`` and one column of per-row losses per model of ``predictions``."""
        out = predictions[["date", "ticker"]].copy()
        for model in self.models:
            if model in predictions:
                out[model] = self.row_losses(predictions, model, loss)
        return out

    def superiority_metrics(
        self, predictions: pd.DataFrame, config: PipelineConfig
    ) -> dict[str, float]:
        """The tests of superior predictive ability (``stockpred.forecast_tests``) on the test
        forecasts: DM of the LSTM's first ``test_losses`` loss against every baseline on the
        per-date mean over tickers (``test/dm_vs_<name>/t``, ``/p``) and, with more than one
        ticker, per ticker (``test/dm_vs_<name>/<ticker>/t``) and their win/tie/loss counts at
        5% (``.../wins``, ``/ties``, ``/losses``); the model confidence set over every model for
        each loss, on the per-date mean and per ticker: each model's MCS p-value
        (``mcs/<loss>/<all|ticker>/p/<model>``, the set at alpha: p >= alpha); and each model's
        primary score per ticker (``test/<metric>/<ticker>``)."""
        horizon = config.features.horizon
        evaluation = config.evaluation
        tickers = list(dict.fromkeys(predictions["ticker"]))
        out: dict[str, float] = {}
        for i, loss in enumerate(self.test_losses):
            frame = self.losses(predictions, loss)
            models = [m for m in self.models if m in frame and np.isfinite(frame[m]).any()]
            if i == 0 and LSTM in models:
                out.update(_dm_metrics(frame, models, tickers, horizon))
            # rows every model forecast, so each date's mean is over the same tickers
            complete = frame.dropna(subset=models)
            scopes = [("all", complete.groupby("date")[models].mean())]
            if len(tickers) > 1:
                for ticker in tickers:  # over the models that forecast this ticker
                    one = frame.loc[frame["ticker"] == ticker, models].dropna(axis=1, how="all")
                    scopes.append((key_part(ticker), one))
            for scope, table in scopes:
                mcs = model_confidence_set(
                    table.reset_index(drop=True),
                    replications=evaluation.mcs_replications,
                    block=evaluation.mcs_block,
                    seed=config.train.seed,
                )
                out.update({f"mcs/{loss}/{scope}/p/{m}": p for m, p in mcs.pvalues.items()})
        if len(tickers) > 1:
            for ticker in tickers:
                one = predictions[predictions["ticker"] == ticker]
                for model in self.models:
                    if model in one and one[model].notna().any():  # e.g. no GARCH for a ticker
                        value = self.score(one, model, config).get(self.relative_metric)
                        if value is not None and np.isfinite(value):
                            key = self.metric_key(
                                model, f"{self.relative_metric}/{key_part(ticker)}"
                            )
                            out[key] = float(value)
        return out

    def verdict(self, metrics: Mapping[str, float]) -> Verdict | None:
        """The LSTM against the strongest baseline on the primary test metric (the best score
        among the baselines), with the logged DM test; None without test scores."""
        metric = self.relative_metric
        lstm = metrics.get(self.metric_key(LSTM, metric))
        scored = {
            name: metrics[key]
            for name in self.baseline_names
            if (key := self.metric_key(name, metric)) in metrics and np.isfinite(metrics[key])
        }
        if lstm is None or not scored:
            return None
        pick = min if self.lower_is_better else max
        best = pick(scored, key=lambda name: scored[name])
        return Verdict(
            metric,
            self.primary_label or metric,
            best,
            float(lstm),
            float(scored[best]),
            float(metrics.get(f"test/dm_vs_{best}/t", float("nan"))),
            float(metrics.get(f"test/dm_vs_{best}/p", float("nan"))),
            self.lower_is_better,
        )

    @property
    def best_name(self) -> str:
        """E.g. ``qlike_vs_best``: the LSTM's primary score over the strongest baseline's."""
        return f"{self.relative_metric}_vs_best"

    def verdict_metrics(self, metrics: Mapping[str, float]) -> dict[str, float]:
        """``test/<metric>_vs_best``: the verdict's ratio, as a metric."""
        verdict = self.verdict(metrics)
        if verdict is None or not np.isfinite(verdict.ratio):
            return {}
        return {self.metric_key(LSTM, self.best_name): verdict.ratio}

    def verdict_tags(self, metrics: Mapping[str, float]) -> dict[str, str]:
        """``verdict.best_baseline`` (the strongest baseline's name), ``verdict.outcome``, and
        the model confidence set's members at each level (``mcs.<loss>.<scope>.<level %>``)."""
        out: dict[str, str] = {}
        verdict = self.verdict(metrics)
        if verdict is not None:
            out["verdict.best_baseline"] = verdict.best
            out["verdict.outcome"] = verdict.outcome
        for (loss, scope), pvalues in mcs_pvalues(metrics).items():
            for alpha in MCS_ALPHAS:
                members = [m for m, p in pvalues.items() if p >= alpha]
                out[f"mcs.{loss}.{scope}.{round(100 * alpha)}"] = ", ".join(members)
        return out

    def comparison_table(self, scores: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
        """One row per model, one column per score, with the relative score."""
        plain = {model: dict(values) for model, values in scores.items()}
        return comparison_table(plain, self.reference, self.relative_metric)

    def colors(self) -> dict[str, str]:
        """One colour per model, the same in every figure: the LSTM C0, the reference grey."""
        out = {model: f"C{i}" for i, model in enumerate(self.models)}
        out[self.reference] = "0.55"
        return out


def key_part(name: str) -> str:
    """A ticker as a part of an MLflow key (which allows letters, digits, ``_-. /:``):
    ``^GSPC`` -> ``GSPC``, ``BRK.B`` stays."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "", name) or "_"


def mcs_pvalues(metrics: Mapping[str, float]) -> dict[tuple[str, str], dict[str, float]]:
    """The model confidence set p-values logged in ``metrics`` by (loss, scope)."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) == 5 and parts[0] == "mcs" and parts[3] == "p":
            out.setdefault((parts[1], parts[2]), {})[parts[4]] = float(value)
    return out


def _dm_metrics(
    frame: pd.DataFrame, models: Sequence[str], tickers: Sequence[str], horizon: int
) -> dict[str, float]:
    """DM of the LSTM against every other model: panel, per ticker, and the counts."""
    out: dict[str, float] = {}
    for name in models:
        if name == LSTM:
            continue
        t, p = panel_dm(frame, LSTM, name, horizon)
        if np.isfinite(t):
            out[f"test/dm_vs_{name}/t"], out[f"test/dm_vs_{name}/p"] = t, p
        if len(tickers) < 2:
            continue
        for ticker in tickers:
            one = frame[frame["ticker"] == ticker]
            t, p = diebold_mariano(one[LSTM].to_numpy(), one[name].to_numpy(), horizon)
            if np.isfinite(t):
                out[f"test/dm_vs_{name}/{key_part(ticker)}/t"] = t
                out[f"test/dm_vs_{name}/{key_part(ticker)}/p"] = p
        wins, ties, lost = dm_counts(frame, LSTM, name, horizon)
        out[f"test/dm_vs_{name}/wins"] = float(wins)
        out[f"test/dm_vs_{name}/ties"] = float(ties)
        out[f"test/dm_vs_{name}/losses"] = float(lost)
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
