"""The volatility task: forecast the realised variance over the next ``features.horizon`` days.

The target is the mean of the daily variance estimates (``target.estimator``, default Parkinson)
over days t+1..t+h (``stockpred.variance``); the LSTM learns its log, scaled, with the QLIKE
loss v e^{-z} - ... in log-variance space (``target.loss: mse``: MSE on log variance), and its
forecasts come back as variance (``exp``). Baselines, each fitted on the training windows only and
predicting variance on the same windows as the LSTM:

- ``rw``: the random walk, the forecast date's daily variance;
- ``ewma``: RiskMetrics (lambda 0.94) on the daily variance estimates (the target's estimator, so
  its level matches the target's);
- ``har`` (Corsi 2009): OLS of the target on the 1-, 5- and 22-day means of the daily variance;
- ``log_har``: the same on logs, with the lognormal bias correction exp(sigma^2/2);
- ``harx``: log-HAR plus the 5-day downside semivariance and the 5-day mean squared return;
- ``garch``, ``gjr``: GARCH(1,1) and GJR-GARCH(1,1) with Student-t errors (``arch``) fitted on
  each ticker's training returns and filtered forward with the parameters fixed; their h-day
  close-to-close variance is multiplied by each ticker's training ratio of the target's mean to
  theirs (``baseline.<name>_level``), since range estimators understate close-to-close variance;
- ``har_pooled``, ``log_har_pooled``, ``harx_pooled``: the panel HAR models, one OLS over every
  ticker with a per-ticker scale (intercept on logs).

Every model except the pooled ones is fitted per series (each ticker on its own training
windows; a ticker too short for its own fit gets the pooled one, in a warning line).

Scores: QLIKE (the primary one; ``qlike_vs_har`` relative to HAR, ``qlike_vs_best`` relative to
the strongest baseline, named by the tag ``verdict.best_baseline``), MSE of the variance and of
log variance, the Mincer-Zarnowitz R^2, the RMSE and mean of the annualised volatility in %; the
Diebold-Mariano test of the LSTM's QLIKE against every baseline (``test/dm_vs_<name>/t``, ``/p``;
losses averaged over tickers per date; per ticker and win/tie/loss counts with several) and the
model confidence set on QLIKE and on MSE of log variance (``ForecastTask.superiority_metrics``).
Models are selected by ``val/qlike``. The market's memory as the fitted baselines say it is logged
beside (``market/garch_half_life_days``, ``market/har_weight_22d``, ...: ``baseline_metrics``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from stockpred.config import PipelineConfig
from stockpred.data.prices import require_fresh_open
from stockpred.features import variance_feature
from stockpred.forecast_tests import panel_dm
from stockpred.tasks.base import LSTM, ForecastTask, mcs_pvalues
from stockpred.tasks.base import fmt_cell as _fmt
from stockpred.tasks.volatility.baselines import Ewma, Garch, Har, RandomWalk
from stockpred.tasks.volatility.figures import mcs_figure, volatility_comparison_figure
from stockpred.variance import (
    NEEDS_OPEN,
    annual_vol,
    forward_variance,
    market_memory,
    qlike,
    qlike_losses,
    variance_metrics,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from stockpred.prepare import Prepared

BASELINES = (
    "rw",
    "ewma",
    "har",
    "log_har",
    "harx",
    "garch",
    "gjr",
    "har_pooled",
    "log_har_pooled",
    "harx_pooled",
)


class QLikeLoss(nn.Module):
    """QLIKE on log variance in the scaled model space: z = y_hat s + m, log v = y s + m,
    loss = mean(v e^{-z} + z - log v - 1) = mean(e^d - d - 1) with d = log v - z (>= 0, 0 when
    the forecast is exact; the constant does not change the gradient)."""

    def __init__(self, mean: float, scale: float) -> None:
        super().__init__()
        self.mean, self.scale = float(mean), float(scale)

    def forward(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        d = (target - predicted) * self.scale  # log v - z: the means cancel
        d = d.clamp(max=30.0)  # e^30: a wild early prediction must not overflow float32
        return (torch.exp(d) - d - 1.0).mean()


class VolatilityTask(ForecastTask):
    """Forward realised variance; skill is QLIKE relative to HAR."""

    kind = "volatility"
    reference = "har"
    relative_metric = "qlike"
    headline = ("qlike", "mse_log", "mz_r2", "vol_rmse_pct")
    table_scores = ("qlike", "mse", "mse_log", "mz_r2")
    test_losses = ("qlike", "mse_log")
    caption_lines = 3
    primary_metric = "qlike"
    primary_label = "QLIKE"
    target_description = "the realised variance over the forecast horizon"
    target_transform = "log"  # the target is a variance; the model learns its log
    ablation_loss_name = "qlike"
    figure_captions: ClassVar[Mapping[str, str]] = {
        "evaluation/comparison.png": (
            "<b>Forecast against realised volatility on the test period.</b> Left, per ticker: "
            "the realised variance of the forecast horizon as annualised volatility (black), the "
            "LSTM's forecast and that ticker's best baseline. Right: every model's test QLIKE "
            "relative to the strongest baseline's (below 1 beats it), best first."
        ),
    }

    def ablation_loss(self, actual: np.ndarray, predicted: np.ndarray) -> float:
        """QLIKE of the variance forecasts; purged (NaN) rows left out."""
        actual, predicted = np.asarray(actual, np.float64), np.asarray(predicted, np.float64)
        ok = np.isfinite(actual) & np.isfinite(predicted)
        return qlike(actual[ok], predicted[ok])

    @property
    def selection_metric(self) -> str:
        """The LSTM's own validation QLIKE (lower is better): HAR is not fitted on validation."""
        return "val/qlike"

    @property
    def baseline_names(self) -> tuple[str, ...]:
        return BASELINES

    def check_data(self, prices: pd.DataFrame, config: PipelineConfig) -> None:
        estimator = config.target.estimator
        if not config.features.variance:
            raise ValueError(
                "the volatility task's baselines read the variance features: leave "
                "features.variance unset (or true) with target.kind volatility"
            )
        require_fresh_open(prices, estimator, estimator in NEEDS_OPEN)

    def target(self, prices: pd.DataFrame, config: PipelineConfig) -> pd.Series:
        self.check_data(prices, config)
        return forward_variance(prices, config.target.estimator, config.features.horizon)

    def baselines(self, config: PipelineConfig) -> Sequence[Any]:
        estimator, horizon = config.target.estimator, config.features.horizon
        return [
            RandomWalk(estimator, horizon),
            Ewma(estimator, horizon),
            Har(estimator, horizon, log=False),
            Har(estimator, horizon, log=True),
            Har(estimator, horizon, log=True, extra=True),
            Garch(estimator, horizon, asymmetric=False),
            Garch(estimator, horizon, asymmetric=True),
            Har(estimator, horizon, log=False, pooled=True),
            Har(estimator, horizon, log=True, pooled=True),
            Har(estimator, horizon, log=True, extra=True, pooled=True),
        ]

    def memory_proxy(
        self, prepared: Prepared, config: PipelineConfig
    ) -> tuple[np.ndarray, str] | None:
        """The target estimator's daily variance (an EWMA of it is RiskMetrics), by QLIKE."""
        feature = variance_feature(config.target.estimator)
        if feature not in prepared.baseline_features.names:
            return None
        return np.exp(prepared.baseline_features.raw(feature)), "qlike"

    def loss(self, prepared: Prepared, config: PipelineConfig) -> nn.Module:
        if config.target.loss == "mse":
            return nn.MSELoss()  # on the scaled log variance
        return QLikeLoss(prepared.target_mean, prepared.target_scale)

    def score(
        self, predictions: pd.DataFrame, model: str, config: PipelineConfig
    ) -> dict[str, float]:
        ok = predictions[model].notna()
        return variance_metrics(predictions["actual"][ok], predictions[model][ok])

    def row_losses(self, predictions: pd.DataFrame, model: str, loss: str) -> np.ndarray:
        """QLIKE, or the squared error of log variance (``mse_log``), per row."""
        actual, forecast = predictions["actual"].to_numpy(), predictions[model].to_numpy()
        if loss == "qlike":
            return qlike_losses(actual, forecast)
        if loss == "mse_log":
            return np.asarray((np.log(forecast) - np.log(actual)) ** 2, dtype=np.float64)
        return super().row_losses(predictions, model, loss)

    def baseline_metrics(self, baselines: Sequence[Any]) -> dict[str, float]:
        """The market's memory as the fitted HAR and GARCH say it (``market/...``, see
        ``stockpred.variance.market_memory``)."""
        fitted = {b.name: b for b in baselines}
        har, garch = fitted.get("har"), fitted.get("garch")
        out = market_memory(getattr(har, "coef_", None), getattr(garch, "persistence_", None) or {})
        for baseline in baselines:  # tickers that got the pooled fit for want of history
            if hasattr(baseline, "fallbacks_"):
                key = self.metric_key(baseline.name, "fallback_tickers", "fit")
                out[key] = float(len(baseline.fallbacks_))
        return out

    def validation_metrics(self, actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
        return {
            self.selection_metric: qlike(actual, predicted),
            "val/mse_log": float(np.mean((np.log(predicted) - np.log(actual)) ** 2)),
        }

    def summary_rows(self, metrics: Mapping[str, float]) -> list[str]:
        rows = [
            "test period (QLIKE on the realised variance, lower is better; volatility annualised",
            "in %; DM t: Diebold-Mariano of the LSTM's QLIKE vs the model, negative = LSTM",
            "better; MZ R2: Mincer-Zarnowitz):",
            f"{'model':<15}{'QLIKE':>9}{'vs HAR':>8}{'vol RMSE':>10}{'mean vol':>10}"
            f"{'MZ R2':>8}{'DM t':>8}",
        ]
        har = metrics.get(self.metric_key(self.reference, "qlike"), float("nan"))
        for model in self.models:
            value = metrics.get(self.metric_key(model, "qlike"))
            if value is None:
                continue
            m = {
                k: metrics.get(self.metric_key(model, k)) for k in ("vol_rmse_pct", "mean_vol_pct")
            }
            dm = metrics.get(f"test/dm_vs_{model}/t")
            rows.append(
                f"{model:<15}{value:>9.4f}{value / har:>8.3f}{_fmt(m['vol_rmse_pct'], 10, 2)}"
                f"{_fmt(m['mean_vol_pct'], 10, 2)}"
                f"{_fmt(metrics.get(self.metric_key(model, 'mz_r2')), 8, 3)}{_fmt(dm, 8, 2)}"
            )
        return rows

    def figures(
        self,
        predictions: pd.DataFrame,
        scores: Mapping[str, Mapping[str, float]],
        config: PipelineConfig,
    ) -> dict[str, Figure]:
        out = {
            "evaluation/comparison.png": volatility_comparison_figure(
                predictions, scores, self.colors(), config.features.horizon
            )
        }
        # the same seeded bootstrap as the logged p-values, so the figure shows those
        by_loss: dict[str, dict[str, dict[str, float]]] = {}
        for (loss, scope), pvalues in mcs_pvalues(
            self.superiority_metrics(predictions, config)
        ).items():
            by_loss.setdefault(loss, {})[scope] = pvalues
        for loss, scopes in by_loss.items():
            out[f"evaluation/mcs_{loss}.png"] = mcs_figure(scopes, loss)
        return out

    def colors(self) -> dict[str, str]:
        """As the base's, skipping C7 (grey, like the reference HAR)."""
        palette = [f"C{i}" for i in range(10) if i != 7]
        out = {model: palette[i % len(palette)] for i, model in enumerate(self.models)}
        out[self.reference] = "0.55"
        return out

    def forecast_columns(self, predicted: np.ndarray) -> dict[str, Any]:
        variance = np.asarray(predicted, dtype=np.float64)
        # annualised volatility in %, as every summary and table of this task shows it
        return {"predicted_variance": variance, "annual_vol_pct": 100.0 * annual_vol(variance)}


def dm_tests(
    predictions: pd.DataFrame, horizon: int, model: str = LSTM
) -> dict[str, tuple[float, float]]:
    """Diebold-Mariano (t, p) of ``model``'s QLIKE against every other model column, on the
    per-date mean loss over tickers (negative t: ``model`` has the lower loss)."""
    others = [c for c in predictions.columns if c not in ("date", "ticker", "actual", model)]
    losses = pd.DataFrame({"date": predictions["date"]})
    for column in (model, *others):
        losses[column] = qlike_losses(predictions["actual"], predictions[column])
    return {name: panel_dm(losses, model, name, horizon) for name in others}
