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
  close-to-close variance is multiplied by the training ratio of the target's mean to theirs
  (``baseline.<name>_level``), since range estimators understate close-to-close variance.

Scores: QLIKE (the primary one; ``qlike_vs_har`` relative to HAR), MSE of the variance and of
log variance, the Mincer-Zarnowitz R^2, the RMSE and mean of the annualised volatility in %, and
the Diebold-Mariano test of the LSTM's QLIKE against every baseline (``test/dm_vs_<name>/t``,
``/p``; losses averaged over tickers per date). Models are selected by ``val/qlike``. The
market's memory as the fitted baselines say it is logged beside (``market/garch_half_life_days``,
``market/har_weight_22d``, ...: ``baseline_metrics``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from stockpred.config import PipelineConfig
from stockpred.data.prices import require_fresh_open
from stockpred.features import variance_feature
from stockpred.tasks.base import LSTM, ForecastTask
from stockpred.tasks.base import fmt_cell as _fmt
from stockpred.tasks.volatility.baselines import Ewma, Garch, Har, RandomWalk
from stockpred.tasks.volatility.figures import volatility_comparison_figure
from stockpred.variance import (
    NEEDS_OPEN,
    annual_vol,
    diebold_mariano,
    forward_variance,
    market_memory,
    qlike,
    qlike_losses,
    variance_metrics,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from stockpred.prepare import Prepared

BASELINES = ("rw", "ewma", "har", "log_har", "harx", "garch", "gjr")


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

    def extra_metrics(
        self,
        predictions: pd.DataFrame,
        scores: Mapping[str, Mapping[str, float]],
        config: PipelineConfig,
    ) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, (t, p) in dm_tests(predictions, config.features.horizon).items():
            if np.isfinite(t):
                out[f"test/dm_vs_{name}/t"], out[f"test/dm_vs_{name}/p"] = t, p
        return out

    def baseline_metrics(self, baselines: Sequence[Any]) -> dict[str, float]:
        """The market's memory as the fitted HAR and GARCH say it (``market/...``, see
        ``stockpred.variance.market_memory``)."""
        fitted = {b.name: b for b in baselines}
        har, garch = fitted.get("har"), fitted.get("garch")
        return market_memory(
            getattr(har, "coef_", None), getattr(garch, "persistence_", None) or {}
        )

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
            f"{'model':<9}{'QLIKE':>9}{'vs HAR':>8}{'vol RMSE':>10}{'mean vol':>10}"
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
                f"{model:<9}{value:>9.4f}{value / har:>8.3f}{_fmt(m['vol_rmse_pct'], 10, 2)}"
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
        return {
            "evaluation/comparison.png": volatility_comparison_figure(
                predictions, scores, self.colors(), config.features.horizon
            )
        }

    def colors(self) -> dict[str, str]:
        """As the base's, skipping C7 (grey, like the reference HAR)."""
        palette = [f"C{i}" for i in range(10) if i != 7]
        out = {model: palette[i % len(palette)] for i, model in enumerate(self.models)}
        out[self.reference] = "0.55"
        return out

    def forecast_columns(self, predicted: np.ndarray) -> dict[str, Any]:
        variance = np.asarray(predicted, dtype=np.float64)
        return {"predicted_variance": variance, "predicted_annual_vol": annual_vol(variance)}


def dm_tests(
    predictions: pd.DataFrame, horizon: int, model: str = LSTM
) -> dict[str, tuple[float, float]]:
    """Diebold-Mariano (t, p) of ``model``'s QLIKE against every other model column, on the
    per-date mean loss over tickers (negative t: ``model`` has the lower loss)."""
    others = [c for c in predictions.columns if c not in ("date", "ticker", "actual", model)]
    losses = pd.DataFrame({"date": predictions["date"]})
    for column in (model, *others):
        losses[column] = qlike_losses(predictions["actual"], predictions[column])
    by_date = losses.groupby("date").mean()
    return {
        name: diebold_mariano(by_date[model].to_numpy(), by_date[name].to_numpy(), horizon)
        for name in others
    }
