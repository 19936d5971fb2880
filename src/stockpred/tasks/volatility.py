"""The volatility task: forecast the realised variance over the next ``features.horizon`` days.

The target is the mean of the daily variance estimates (``target.estimator``, default Parkinson)
over days t+1..t+h (``stockpred.volatility``); the LSTM learns its log, scaled, with the QLIKE
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
from stockpred.features import DOWNSIDE, variance_feature
from stockpred.figures.common import new_figure
from stockpred.split import TRAIN
from stockpred.tasks.base import LSTM, ForecastTask, Part
from stockpred.tasks.base import fmt_cell as _fmt
from stockpred.volatility import (
    NEEDS_OPEN,
    VARIANCE_FLOOR,
    annual_vol,
    diebold_mariano,
    ewma_variance,
    forward_variance,
    garch_forecasts,
    market_memory,
    ols,
    ols_predict,
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


def raw_feature(prepared: Prepared, feature: str, rows: np.ndarray | None = None) -> np.ndarray:
    """A feature in its own units (unscaled), at ``rows`` or every row."""
    column = prepared.feature_names.index(feature)
    values = prepared.features[:, column] if rows is None else prepared.features[rows, column]
    scaled = np.asarray(values, dtype=np.float64)
    return scaled * prepared.feature_scale[column] + prepared.feature_mean[column]


def _ticker_blocks(prepared: Prepared) -> list[np.ndarray]:
    """Row indices of each ticker (rows are ticker-major and date-ordered)."""
    _, first, counts = np.unique(prepared.tickers, return_index=True, return_counts=True)
    return [np.arange(f, f + c) for f, c in sorted(zip(first, counts, strict=True))]


class _PerRow:
    """A baseline whose forecast for every row of ``prepared`` is computed once in ``fit``."""

    name = ""

    def __init__(self, estimator: str, horizon: int) -> None:
        self.estimator, self.horizon = estimator, horizon
        self.forecast_: np.ndarray | None = None

    def daily(
        self, prepared: Prepared, days: int = 1, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """The target estimator's mean daily variance over ``days`` days ending at each row."""
        return np.exp(raw_feature(prepared, variance_feature(self.estimator, days), rows))

    def predict(self, part: Part) -> np.ndarray:
        assert self.forecast_ is not None, "fit first"
        return np.maximum(self.forecast_[part.rows], VARIANCE_FLOOR)

    def params(self) -> dict[str, float]:
        return {}


class RandomWalk(_PerRow):
    """Tomorrow's variance is today's."""

    name = "rw"

    def fit(self, train: Part, val: Part) -> RandomWalk:
        self.forecast_ = self.daily(train.prepared)
        return self


class Ewma(_PerRow):
    """RiskMetrics: an exponentially weighted mean of the daily variance, lambda fixed."""

    name = "ewma"
    lam = 0.94

    def fit(self, train: Part, val: Part) -> Ewma:
        daily = self.daily(train.prepared)
        out = np.full(len(daily), np.nan)
        for rows in _ticker_blocks(train.prepared):
            out[rows] = ewma_variance(daily[rows], self.lam)
        self.forecast_ = out
        return self

    def params(self) -> dict[str, float]:
        return {"baseline.ewma_lambda": self.lam}


class Har(_PerRow):
    """Corsi's HAR: the target on the 1-, 5- and 22-day means of the daily variance, by OLS;
    ``log``: on logs with the bias correction exp(sigma^2/2); ``extra``: HARX's regressors."""

    def __init__(self, estimator: str, horizon: int, *, log: bool, extra: bool = False) -> None:
        super().__init__(estimator, horizon)
        self.log, self.extra = log, extra
        self.name = "harx" if extra else "log_har" if log else "har"

    def design(self, prepared: Prepared) -> np.ndarray:
        columns = [self.daily(prepared, days) for days in (1, 5, 22)]
        if self.log:
            columns = [np.log(c) for c in columns]
        if self.extra:
            columns.append(raw_feature(prepared, DOWNSIDE))
            columns.append(raw_feature(prepared, variance_feature("squared_return", 5)))
        return np.column_stack(columns)

    def fit(self, train: Part, val: Part) -> Har:
        x = self.design(train.prepared)
        y = np.log(train.actual) if self.log else train.actual
        self.coef_ = ols(x[train.rows], y)
        fitted = ols_predict(self.coef_, x[train.rows])
        ok = np.isfinite(fitted) & np.isfinite(y)
        self.sigma2_ = float(np.var(y[ok] - fitted[ok])) if self.log else 0.0
        prediction = ols_predict(self.coef_, x)
        self.forecast_ = np.exp(prediction + self.sigma2_ / 2) if self.log else prediction
        return self

    def params(self) -> dict[str, float]:
        return {f"baseline.{self.name}_beta{i}": float(c) for i, c in enumerate(self.coef_)}


class Garch(_PerRow):
    """GARCH(1,1)-t (GJR with ``asymmetric``) per ticker on its training returns, then filtered
    forward with the fitted parameters; scaled to the target's level on the training windows."""

    def __init__(self, estimator: str, horizon: int, *, asymmetric: bool) -> None:
        super().__init__(estimator, horizon)
        self.asymmetric = asymmetric
        self.name = "gjr" if asymmetric else "garch"

    def fit(self, train: Part, val: Part) -> Garch:
        prepared = train.prepared
        if not np.isfinite(prepared.close).any():
            raise ValueError(f"the {self.name} baseline needs the close prices in Prepared")
        out = np.full(len(prepared.close), np.nan)
        self.persistence_: dict[str, float] = {}
        for rows in _ticker_blocks(prepared):
            returns = np.diff(np.log(prepared.close[rows]))
            n_train = int((prepared.labels[rows[1:]] == TRAIN).sum())
            if n_train < 100:
                continue  # too short to fit: left NaN (scored as missing)
            forecast, params = garch_forecasts(
                returns, n_train, self.horizon, asymmetric=self.asymmetric
            )
            out[rows[1:]] = forecast
            ticker = str(prepared.tickers[rows[0]])
            self.persistence_[ticker] = (
                params["alpha[1]"] + params.get("gamma[1]", 0.0) / 2 + params["beta[1]"]
            )
        fitted = out[train.rows]
        ok = np.isfinite(fitted)
        self.level_ = float(train.actual[ok].mean() / fitted[ok].mean()) if ok.any() else 1.0
        self.forecast_ = out * self.level_
        return self

    def params(self) -> dict[str, float]:
        return {f"baseline.{self.name}_level": self.level_}


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
        ``stockpred.volatility.market_memory``)."""
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


def volatility_comparison_figure(
    predictions: pd.DataFrame,
    scores: Mapping[str, Mapping[str, float]],
    colors: Mapping[str, str],
    horizon: int,
    max_tickers: int = 3,
) -> Figure:
    """Forecast vs realised annualised volatility over the test period (one row per ticker, the
    LSTM and the baselines), beside a bar chart of each model's QLIKE relative to HAR."""
    tickers = list(dict.fromkeys(predictions["ticker"]))[:max_tickers]
    fig = new_figure(13, 3.2 * len(tickers))
    grid = fig.add_gridspec(len(tickers), 2, width_ratios=(3, 1))
    models = [m for m in scores if m in predictions]
    for i, ticker in enumerate(tickers):
        ax = fig.add_subplot(grid[i, 0])
        part = predictions[predictions["ticker"] == ticker].sort_values("date")
        dates = pd.to_datetime(part["date"])
        ax.plot(dates, 100 * annual_vol(part["actual"]), color="0.2", lw=0.8, label="realised")
        for model in models:
            ax.plot(
                dates,
                100 * annual_vol(part[model]),
                color=colors.get(model),
                lw=1.6 if model == LSTM else 0.8,
                alpha=1.0 if model in (LSTM, "har") else 0.6,
                label=model,
            )
        ax.set_ylabel("annualised vol (%)")
        ax.set_title(f"{ticker}: {horizon}-day realised variance as annualised volatility")
        if i == 0:
            ax.legend(ncol=5, fontsize=7, loc="upper left")
    bars = fig.add_subplot(grid[:, 1])
    har = scores.get("har", {}).get("qlike", float("nan"))
    relative = [scores[m]["qlike"] / har for m in models]
    bars.barh(models, relative, color=[colors.get(m, "0.5") for m in models])
    bars.axvline(1.0, color="0.3", lw=0.8, ls="--")
    bars.invert_yaxis()
    bars.set_xlabel("QLIKE / HAR's (below 1 beats HAR)")
    bars.set_title("test QLIKE relative to HAR")
    return fig
