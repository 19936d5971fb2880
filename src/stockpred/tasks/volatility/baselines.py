"""The volatility task's baselines, each fitted on the training windows only and predicting
variance on the same windows as the LSTM (see ``stockpred.tasks.volatility.task``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from stockpred.features import DOWNSIDE, variance_feature
from stockpred.split import TRAIN
from stockpred.tasks.base import Part
from stockpred.variance import (
    VARIANCE_FLOOR,
    ewma_variance,
    garch_forecasts,
    ols,
    ols_predict,
)

if TYPE_CHECKING:
    from stockpred.prepare import Prepared


def raw_feature(prepared: Prepared, feature: str, rows: np.ndarray | None = None) -> np.ndarray:
    """A feature in its own units (unscaled), at ``rows`` or every row: from every computed
    feature (``Prepared.baseline_features``), whatever the network's selection."""
    return prepared.baseline_features.raw(feature, rows)


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
