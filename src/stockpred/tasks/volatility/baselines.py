"""The volatility task's baselines, each fitted on the training windows only and predicting
variance on the same windows as the LSTM (see ``stockpred.tasks.volatility.task``)."""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)

# fewer usable training windows than this (a year of days) and a series gets the pooled fit
MIN_SERIES_ROWS = 250
MIN_GARCH_RETURNS = 100  # fewer training returns than this and GARCH is not fitted


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
    ``log``: on logs with the bias correction exp(sigma^2/2); ``extra``: HARX's regressors.

    Fitted per series by default (one OLS per ticker on its own training windows, as in the
    literature); a ticker with fewer than ``MIN_SERIES_ROWS`` usable training windows gets the
    pooled fit instead, said in one warning line and kept in ``fallbacks_``. ``pooled``: one
    panel OLS over every ticker's training windows, each ticker's variances divided by its own
    training mean target first (a per-ticker scale; on logs, a per-ticker intercept), so no
    series' level dominates the fit (``har_pooled``, ...)."""

    def __init__(
        self, estimator: str, horizon: int, *, log: bool, extra: bool = False, pooled: bool = False
    ) -> None:
        super().__init__(estimator, horizon)
        self.log, self.extra, self.pooled = log, extra, pooled
        name = "harx" if extra else "log_har" if log else "har"
        self.name = f"{name}_pooled" if pooled else name
        self.fallbacks_: list[str] = []

    def design(self, prepared: Prepared) -> np.ndarray:
        columns = [self.daily(prepared, days) for days in (1, 5, 22)]
        if self.log:
            columns = [np.log(c) for c in columns]
        if self.extra:
            columns.append(raw_feature(prepared, DOWNSIDE))
            columns.append(raw_feature(prepared, variance_feature("squared_return", 5)))
        return np.column_stack(columns)

    def _response(self, actual: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(actual) if self.log else np.asarray(actual, dtype=np.float64)

    def _fit_rows(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        """OLS coefficients on rows (x, y), and the residual variance for a log model's
        bias correction (0 for a level model)."""
        coef = ols(x, y)
        fitted = ols_predict(coef, x)
        ok = np.isfinite(fitted) & np.isfinite(y)
        return coef, float(np.var(y[ok] - fitted[ok])) if self.log and ok.any() else 0.0

    def _forecast(self, coef: np.ndarray, sigma2: float, x: np.ndarray) -> np.ndarray:
        prediction = ols_predict(coef, x)
        return np.exp(prediction + sigma2 / 2) if self.log else prediction

    def fit(self, train: Part, val: Part) -> Har:
        prepared = train.prepared
        x, y = self.design(prepared), self._response(prepared.actual)
        out = np.full(len(x), np.nan)
        self.coefs_: dict[str, np.ndarray] = {}
        self.fallbacks_ = []
        blocks = _ticker_blocks(prepared)
        if self.pooled:
            self._fit_pooled(train, x, y, blocks, out)
        else:
            coef, sigma2 = self._fit_rows(x[train.rows], y[train.rows])
            for rows in blocks:
                ticker = str(prepared.tickers[rows[0]])
                mine = train.rows[prepared.tickers[train.rows] == ticker]
                usable = int((np.isfinite(x[mine]).all(axis=1) & np.isfinite(y[mine])).sum())
                if usable < MIN_SERIES_ROWS:
                    log.warning(
                        "baseline %s: ticker %s has %d usable training windows (< %d): it "
                        "gets the pooled fit over every ticker instead of its own",
                        self.name,
                        ticker,
                        usable,
                        MIN_SERIES_ROWS,
                    )
                    self.fallbacks_.append(ticker)
                    self.coefs_[ticker] = coef
                    out[rows] = self._forecast(coef, sigma2, x[rows])
                    continue
                own, own_sigma2 = self._fit_rows(x[mine], y[mine])
                self.coefs_[ticker] = own
                out[rows] = self._forecast(own, own_sigma2, x[rows])
        self.coef_ = np.mean(list(self.coefs_.values()), axis=0)
        self.forecast_ = out
        return self

    def _fit_pooled(
        self,
        train: Part,
        x: np.ndarray,
        y: np.ndarray,
        blocks: list[np.ndarray],
        out: np.ndarray,
    ) -> None:
        """One OLS over every ticker's training windows, each ticker's variances scaled by its
        own training mean target (on logs: shifted by its log), written into ``out``."""
        prepared = train.prepared
        level = np.ones(len(x))  # the per-row scale: its ticker's training mean target
        overall = float(np.nanmean(train.actual))
        for rows in blocks:
            ticker = prepared.tickers[rows[0]]
            mine = train.actual[prepared.tickers[train.rows] == ticker]
            mine = mine[np.isfinite(mine)]
            level[rows] = mine.mean() if len(mine) else overall
        if self.log:
            shift = np.log(level)  # every regressor is a log variance
            xs, ys = x - shift[:, None], y - shift
        else:
            xs, ys = x / level[:, None], y / level
        self.coef_, sigma2 = self._fit_rows(xs[train.rows], ys[train.rows])
        scaled = self._forecast(self.coef_, sigma2, xs)
        out[:] = scaled * level
        for rows in blocks:
            self.coefs_[str(prepared.tickers[rows[0]])] = self.coef_

    def params(self) -> dict[str, float]:
        """The coefficients (per series: their mean over tickers)."""
        return {f"baseline.{self.name}_beta{i}": float(c) for i, c in enumerate(self.coef_)}


class Garch(_PerRow):
    """GARCH(1,1)-t (GJR with ``asymmetric``) per ticker on its training returns, then filtered
    forward with the fitted parameters; scaled to the target's level per ticker: its training
    mean target over its GARCH's (range estimators understate close-to-close variance, by a
    different factor per series). A ticker with too few training windows for its own level gets
    the pooled level (every ticker's), said in one warning line and kept in ``fallbacks_``."""

    def __init__(self, estimator: str, horizon: int, *, asymmetric: bool) -> None:
        super().__init__(estimator, horizon)
        self.asymmetric = asymmetric
        self.name = "gjr" if asymmetric else "garch"
        self.fallbacks_: list[str] = []

    def fit(self, train: Part, val: Part) -> Garch:
        prepared = train.prepared
        if not np.isfinite(prepared.close).any():
            raise ValueError(f"the {self.name} baseline needs the close prices in Prepared")
        out = np.full(len(prepared.close), np.nan)
        self.persistence_: dict[str, float] = {}
        self.fallbacks_ = []
        blocks = _ticker_blocks(prepared)
        for rows in blocks:
            returns = np.diff(np.log(prepared.close[rows]))
            n_train = int((prepared.labels[rows[1:]] == TRAIN).sum())
            ticker = str(prepared.tickers[rows[0]])
            if n_train < MIN_GARCH_RETURNS:
                log.warning(
                    "baseline %s: ticker %s has %d training returns (< %d): not fitted, its "
                    "forecasts are missing",
                    self.name,
                    ticker,
                    n_train,
                    MIN_GARCH_RETURNS,
                )
                continue  # scored as missing
            forecast, params = garch_forecasts(
                returns, n_train, self.horizon, asymmetric=self.asymmetric
            )
            out[rows[1:]] = forecast
            self.persistence_[ticker] = (
                params["alpha[1]"] + params.get("gamma[1]", 0.0) / 2 + params["beta[1]"]
            )
        fitted = out[train.rows]
        ok = np.isfinite(fitted) & np.isfinite(train.actual)
        self.level_ = float(train.actual[ok].mean() / fitted[ok].mean()) if ok.any() else 1.0
        self.levels_: dict[str, float] = {}
        scale = np.full(len(out), self.level_)
        for rows in blocks:
            ticker = str(prepared.tickers[rows[0]])
            mine = ok & (prepared.tickers[train.rows] == ticker)
            if ticker not in self.persistence_:
                continue
            if mine.sum() < MIN_SERIES_ROWS:
                log.warning(
                    "baseline %s: ticker %s has %d training windows (< %d) for its own level: "
                    "it gets the pooled level %.3f",
                    self.name,
                    ticker,
                    int(mine.sum()),
                    MIN_SERIES_ROWS,
                    self.level_,
                )
                self.fallbacks_.append(ticker)
                continue
            own = float(train.actual[mine].mean() / fitted[mine].mean())
            self.levels_[ticker] = own
            scale[rows] = own
        self.forecast_ = out * scale
        return self

    def params(self) -> dict[str, float]:
        """The pooled level (the fallback), and the mean of the per-ticker levels."""
        out = {f"baseline.{self.name}_level_pooled": self.level_}
        if self.levels_:
            out[f"baseline.{self.name}_level"] = float(np.mean(list(self.levels_.values())))
        return out
