"""The return task: forecast the forward log return over ``features.horizon`` trading days.

Baselines (each fitted on the training windows only): zero (the random walk), the training mean,
ridge on the forecast date's features (penalty chosen on validation) and AR(p) on the window's
last p one-day returns. Scores: RMSE and MAE, direction with its Wilson interval, information
coefficients, and the long/flat and long/short sign strategies net of costs. Models are selected
and promoted by ``val/rmse_vs_zero``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from stockpred.config import PipelineConfig
from stockpred.features import make_target
from stockpred.figures.evaluation import comparison_figure, predicted_vs_actual_figure
from stockpred.metrics import (
    information_coefficients,
    regression_metrics,
    strategy_returns,
    strategy_stats,
    wilson_interval,
)
from stockpred.tasks.base import LSTM, ForecastTask
from stockpred.tasks.base import fmt_cell as _fmt
from stockpred.tasks.returns.baselines import (
    ONE_DAY_RETURN,
    AutoRegression,
    Mean,
    RidgeOnFeatures,
    Zero,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from stockpred.prepare import Prepared


class ReturnTask(ForecastTask):
    """Forward log returns; skill is RMSE relative to the zero forecast."""

    kind = "return"
    reference = "zero"
    relative_metric = "rmse"
    headline = ("rmse", "dir_acc", "ic", "sharpe")
    table_scores = ("rmse", "mae", "dir_acc")
    primary_metric = "rmse"
    primary_label = "RMSE"
    target_description = "the log return over the forecast horizon"
    figure_captions: ClassVar[Mapping[str, str]] = {
        "evaluation/comparison.png": (
            "<b>The LSTM beside its baselines on the test period.</b> Left: test RMSE relative to "
            "the zero-return forecast (below the dashed line at 1 beats predicting no move). "
            "Middle: directional accuracy with 95% Wilson intervals (0.5 is a coin flip). Right: "
            "wealth of the sign strategies net of costs, against buy-and-hold."
        ),
        "evaluation/predicted_vs_actual.png": (
            "<b>Forecasts against outcomes, per ticker.</b> Realised forward returns (grey, left "
            "axis) and the LSTM's forecasts (blue, on their own right axis: they are a small "
            "fraction of the realised moves); right, the scatter of forecast against outcome "
            "with its correlation."
        ),
    }
    market_memory_note = (
        "This run forecasts returns, so no volatility model was fitted and there is no "
        "market persistence to set beside the network's memory: train with "
        "<code>--target volatility</code> (<code>target.kind: volatility</code>) for "
        "GARCH's half-life and HAR's weights."
    )

    @property
    def baseline_names(self) -> tuple[str, ...]:
        return ("zero", "mean", "ridge", "ar")

    def target(self, prices: pd.DataFrame, config: PipelineConfig) -> pd.Series:
        return make_target(prices, config.features.horizon)

    def memory_proxy(
        self, prepared: Prepared, config: PipelineConfig
    ) -> tuple[np.ndarray, str] | None:
        """The one-day return (an EWMA of it is a momentum signal), scored by MSE."""
        if ONE_DAY_RETURN not in prepared.baseline_features.names:
            return None
        return prepared.baseline_features.raw(ONE_DAY_RETURN), "mse"

    def baselines(self, config: PipelineConfig) -> Sequence[Any]:
        out: list[Any] = [Zero(), Mean(), RidgeOnFeatures()]
        if 1 in config.features.return_lags:  # the AR reads the one-day return feature
            out.append(AutoRegression(config.evaluation.ar_order))
        return out

    def score(
        self, predictions: pd.DataFrame, model: str, config: PipelineConfig
    ) -> dict[str, float]:
        horizon, cost = config.features.horizon, config.evaluation.cost_bps
        metrics = regression_metrics(predictions["actual"], predictions[model])
        hits = int(((predictions[model] > 0) == (predictions["actual"] > 0)).sum())
        metrics["dir_acc_low"], metrics["dir_acc_high"] = wilson_interval(hits, len(predictions))
        metrics.update(information_coefficients(predictions, model))
        for rule in ("long_flat", "long_short"):
            returns = strategy_returns(predictions, model, rule, horizon, cost)
            metrics.update({f"{rule}/{k}": v for k, v in strategy_stats(returns, horizon).items()})
        metrics["sharpe"] = metrics["long_short/sharpe"]
        return metrics

    def extra_metrics(
        self,
        predictions: pd.DataFrame,
        scores: Mapping[str, Mapping[str, float]],
        config: PipelineConfig,
    ) -> dict[str, float]:
        horizon, cost = config.features.horizon, config.evaluation.cost_bps
        hold = strategy_stats(
            strategy_returns(predictions, LSTM, "buy_hold", horizon, cost), horizon
        )
        return {f"benchmark/buy_hold/test/{k}": v for k, v in hold.items() if np.isfinite(v)}

    def validation_metrics(self, actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
        rmse = float(np.sqrt(np.mean((predicted - actual) ** 2)))
        zero = float(np.sqrt(np.mean(actual**2)))
        return {"val/rmse": rmse, self.selection_metric: rmse / zero}

    def summary_rows(self, metrics: Mapping[str, float]) -> list[str]:
        rows = [
            "test period (RMSE in log-return units; Sharpe of the long/short sign strategy,",
            "annualised, net of costs; IC = Pearson correlation of forecast and outcome):",
            f"{'model':<8}{'RMSE':>10}{'vs zero':>9}{'dir.acc':>9}{'IC':>8}{'Sharpe':>8}",
        ]
        zero = metrics.get(self.metric_key(self.reference, "rmse"), float("nan"))
        for model in self.models:
            rmse = metrics.get(self.metric_key(model, "rmse"))
            if rmse is None:
                continue
            m = {k: metrics.get(self.metric_key(model, k)) for k in ("dir_acc", "ic", "sharpe")}
            rows.append(
                f"{model:<8}{rmse:>10.5f}{rmse / zero:>9.3f}{_fmt(m['dir_acc'], 9, 3)}"
                f"{_fmt(m['ic'], 8, 3)}{_fmt(m['sharpe'], 8, 2)}"
            )
        hold = metrics.get("benchmark/buy_hold/test/sharpe")
        if hold is not None:
            rows.append(f"{'buy&hold':<8}{'':>10}{'':>9}{'':>9}{'':>8}{hold:>8.2f}")
        return rows

    def figures(
        self,
        predictions: pd.DataFrame,
        scores: Mapping[str, Mapping[str, float]],
        config: PipelineConfig,
    ) -> dict[str, Figure]:
        horizon, cost = config.features.horizon, config.evaluation.cost_bps
        table = self.comparison_table(scores)
        return {
            "evaluation/predicted_vs_actual.png": predicted_vs_actual_figure(predictions, horizon),
            "evaluation/comparison.png": comparison_figure(
                predictions, table, horizon, cost, self.colors(), self.reference
            ),
        }

    def forecast_columns(self, predicted: np.ndarray) -> dict[str, Any]:
        return {
            "predicted_log_return": predicted,
            "direction": np.where(predicted > 0, "up", "down"),
        }
