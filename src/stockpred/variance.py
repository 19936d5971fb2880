"""Volatility: daily variance estimators from OHLC, the forward realised-variance target, and the
statistics of variance forecasts (QLIKE, Mincer-Zarnowitz, HAR, EWMA, GARCH); the tests comparing
forecasts (Diebold-Mariano, the model confidence set) are in ``stockpred.forecast_tests``.

Every daily estimator returns the variance of one day's log return, per ticker, from that day's
(and, for the overnight gap, the previous day's) prices only:

- ``parkinson`` (1980): ln(H/L)^2 / (4 ln 2); needs high and low only (no open).
- ``garman_klass`` (1980): 0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2.
- ``rogers_satchell`` (1991): ln(H/C) ln(H/O) + ln(L/C) ln(L/O) (drift-robust).
- ``yang_zhang`` (2000), daily form: the overnight gap ln(O_t/C_{t-1})^2 + k ln(C/O)^2
  + (1 - k) RS, with k = 0.34 / (1.34 + (n + 1)/(n - 1)) in the limit of a long window
  (n -> inf: k = 0.34 / 2.34); undemeaned, since one day has no sample mean to remove.
- ``squared_return``: the close-to-close ln(C_t/C_{t-1})^2.

Parkinson, Garman-Klass and Rogers-Satchell ignore the overnight gap, so they understate the
close-to-close variance; estimators needing the open are wrong where the open is stale (see
``stockpred.data.prices.stale_open_years``). Daily values are floored at ``VARIANCE_FLOOR`` so
their logs stay finite on days without a range (a holiday row, a stale quote).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

VARIANCE_FLOOR = 1e-8  # daily variance (0.01% daily volatility): logs stay finite
TRADING_DAYS = 252
RISKMETRICS_LAMBDA = 0.94
HAR_LAGS = (1, 5, 22)
YANG_ZHANG_K = 0.34 / 2.34
LN2 = math.log(2.0)

# each estimator and the price columns it needs
ESTIMATOR_NEEDS: dict[str, tuple[str, ...]] = {
    "parkinson": ("high", "low"),
    "garman_klass": ("open", "high", "low", "close"),
    "rogers_satchell": ("open", "high", "low", "close"),
    "yang_zhang": ("open", "high", "low", "close"),
    "squared_return": ("close",),
}
ESTIMATORS = tuple(ESTIMATOR_NEEDS)
NEEDS_OPEN = tuple(e for e, needs in ESTIMATOR_NEEDS.items() if "open" in needs)


def _parkinson(o: pd.Series, h: pd.Series, lo: pd.Series, c: pd.Series) -> pd.Series:
    return np.log(h / lo) ** 2 / (4 * LN2)


def _garman_klass(o: pd.Series, h: pd.Series, lo: pd.Series, c: pd.Series) -> pd.Series:
    return 0.5 * np.log(h / lo) ** 2 - (2 * LN2 - 1) * np.log(c / o) ** 2


def _rogers_satchell(o: pd.Series, h: pd.Series, lo: pd.Series, c: pd.Series) -> pd.Series:
    return np.log(h / c) * np.log(h / o) + np.log(lo / c) * np.log(lo / o)


def _yang_zhang(o: pd.Series, h: pd.Series, lo: pd.Series, c: pd.Series) -> pd.Series:
    overnight = np.log(o / c.shift(1)) ** 2
    open_close = np.log(c / o) ** 2
    return (
        overnight + YANG_ZHANG_K * open_close + (1 - YANG_ZHANG_K) * _rogers_satchell(o, h, lo, c)
    )


def _squared_return(o: pd.Series, h: pd.Series, lo: pd.Series, c: pd.Series) -> pd.Series:
    return np.log(c / c.shift(1)) ** 2


_ESTIMATORS: dict[str, Callable[[pd.Series, pd.Series, pd.Series, pd.Series], pd.Series]] = {
    "parkinson": _parkinson,
    "garman_klass": _garman_klass,
    "rogers_satchell": _rogers_satchell,
    "yang_zhang": _yang_zhang,
    "squared_return": _squared_return,
}


def daily_variance_one(frame: pd.DataFrame, estimator: str, floor: bool = True) -> pd.Series:
    """One ticker's daily variance estimates (date-ordered rows of open/high/low/close)."""
    if estimator not in _ESTIMATORS:
        raise ValueError(f"unknown variance estimator {estimator!r}; one of {list(ESTIMATORS)}")
    cols = [
        frame[c].astype("float64") if c in frame else pd.Series(np.nan, index=frame.index)
        for c in ("open", "high", "low", "close")
    ]
    values = _ESTIMATORS[estimator](*cols)
    return values.clip(lower=VARIANCE_FLOOR) if floor else values


def daily_variance(prices: pd.DataFrame, estimator: str, floor: bool = True) -> pd.Series:
    """Daily variance estimates per (date, ticker) of a long price frame, per ticker."""
    parts = []
    for _, frame in prices.groupby(level="ticker", sort=False):
        parts.append(daily_variance_one(frame.sort_index(level="date"), estimator, floor))
    return pd.concat(parts).loc[prices.index].rename(estimator)


def forward_variance(prices: pd.DataFrame, estimator: str, horizon: int) -> pd.Series:
    """The realised variance over days t+1..t+h: the mean of the daily estimates, per ticker;
    NaN where the horizon runs past the data."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 trading day, got {horizon}")
    daily = daily_variance(prices, estimator)
    by_ticker = daily.groupby(level="ticker", sort=False)
    mean = by_ticker.transform(lambda s: s.rolling(horizon).mean().shift(-horizon))
    return mean.rename("target")


def annual_vol(variance: np.ndarray | pd.Series) -> np.ndarray:
    """Annualised volatility sqrt(252 v) of a daily variance."""
    return np.sqrt(TRADING_DAYS * np.asarray(variance, dtype=np.float64))


# --- losses and tests of forecasts -------------------------------------------------------------


def qlike_losses(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """QLIKE(v, f) = v/f - ln(v/f) - 1 per row (0 for a perfect forecast; Patton 2011)."""
    ratio = np.asarray(actual, dtype=np.float64) / np.asarray(forecast, dtype=np.float64)
    return ratio - np.log(ratio) - 1.0


def qlike(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Mean QLIKE loss."""
    return float(np.mean(qlike_losses(actual, forecast)))


def mincer_zarnowitz_r2(actual: np.ndarray, forecast: np.ndarray) -> float:
    """R^2 of the regression of the realised variance on the forecast (with an intercept)."""
    actual, forecast = np.asarray(actual, float), np.asarray(forecast, float)
    if len(actual) < 3 or np.std(forecast) == 0 or np.std(actual) == 0:
        return float("nan")
    return float(np.corrcoef(actual, forecast)[0, 1] ** 2)


def variance_metrics(actual: np.ndarray, forecast: np.ndarray) -> dict[str, float]:
    """QLIKE, MSE of the variance, MSE of log variance, Mincer-Zarnowitz R^2, and the mean
    forecast and RMSE in annualised volatility (%)."""
    actual, forecast = np.asarray(actual, float), np.asarray(forecast, float)
    return {
        "qlike": qlike(actual, forecast),
        "mse": float(np.mean((forecast - actual) ** 2)),
        "mse_log": float(np.mean((np.log(forecast) - np.log(actual)) ** 2)),
        "mz_r2": mincer_zarnowitz_r2(actual, forecast),
        "vol_rmse_pct": float(
            100 * np.sqrt(np.mean((annual_vol(forecast) - annual_vol(actual)) ** 2))
        ),
        "mean_vol_pct": float(100 * np.mean(annual_vol(forecast))),
    }


# --- baselines' building blocks -------------------------------------------------------------


def har_design(daily: np.ndarray, lags: tuple[int, ...] = HAR_LAGS) -> np.ndarray:
    """(N, len(lags)) the trailing means of a daily series over each lag, ending at each row
    (NaN during warm-up): the HAR regressors."""
    series = pd.Series(np.asarray(daily, dtype=np.float64))
    return np.column_stack([series.rolling(lag).mean().to_numpy() for lag in lags])


def ols(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares coefficients [intercept, slopes...] of y on x (rows with NaN dropped)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x).all(axis=1) & np.isfinite(y)
    design = np.column_stack([np.ones(int(ok.sum())), x[ok]])
    coef, *_ = np.linalg.lstsq(design, y[ok], rcond=None)
    return np.asarray(coef)


def ols_predict(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Predictions of ``ols`` coefficients on ``x``."""
    return np.asarray(coef[0] + np.asarray(x, float) @ coef[1:])


def ewma_variance(daily: np.ndarray, lam: float = RISKMETRICS_LAMBDA) -> np.ndarray:
    """RiskMetrics: s_t = lam s_{t-1} + (1 - lam) d_t, started at the first finite d; s_t is the
    forecast for t+1 (and, flat, for every later day). NaN before the first finite value; a
    missing d_t leaves s unchanged."""
    daily = np.asarray(daily, dtype=np.float64)
    out = np.full(len(daily), np.nan)
    state = np.nan
    for t, value in enumerate(daily):
        if np.isfinite(value):
            state = value if not np.isfinite(state) else lam * state + (1 - lam) * value
        out[t] = state
    return out


def garch_forecasts(
    returns: np.ndarray, n_train: int, horizon: int, *, asymmetric: bool = False
) -> tuple[np.ndarray, dict[str, float]]:
    """GARCH(1,1)-t (GJR with ``asymmetric``) fitted on the first ``n_train`` returns, then
    filtered forward over all of them with the fitted parameters fixed: (N,) the mean variance
    forecast over t+1..t+h made at each row t, in squared log-return units, and the parameters.

    Returns are scaled by 100 for the optimiser (arch's advice) and the variance back by 1e-4.
    """
    from arch import arch_model  # a heavy import, needed by the volatility task only

    scaled = 100.0 * np.asarray(returns, dtype=np.float64)
    o = int(asymmetric)
    fitted = arch_model(scaled[:n_train], mean="Constant", p=1, o=o, q=1, dist="t").fit(
        disp="off", show_warning=False
    )
    filtered = arch_model(scaled, mean="Constant", p=1, o=o, q=1, dist="t").fix(fitted.params)
    forecast = filtered.forecast(horizon=horizon, start=0, reindex=True)
    variance = forecast.variance.to_numpy().mean(axis=1) * 1e-4
    return variance, {str(k): float(v) for k, v in fitted.params.items()}


def half_life(persistence: float) -> float:
    """Trading days for a variance shock to halve when it decays by ``persistence`` (GARCH's
    alpha + beta) a day: ln 0.5 / ln(persistence); inf at or above 1 (no mean reversion), NaN
    for a persistence that is not in (0, 1]."""
    if not persistence > 0.0:  # also NaN
        return float("nan")
    return float(np.log(0.5) / np.log(persistence)) if persistence < 1.0 else float("inf")


def market_memory(
    har_coef: Sequence[float] | None, garch_persistence: Mapping[str, float]
) -> dict[str, float]:
    """How long the market remembers volatility, as the fitted baselines say (``market/...``).

    ``har_coef``: HAR's [intercept, b1, b5, b22] (target on the 1-, 5- and 22-day means of the
    daily variance): the weight on each term and the 22-day term's share of the three weights.
    ``garch_persistence``: alpha + beta of GARCH(1,1) per ticker: their median, its half-life
    ln 0.5 / ln(alpha + beta) and e-folding time -1 / ln(alpha + beta) in trading days (the
    latter is what the LSTM's tau = -1 / ln(mean f) measures). Non-finite values are left out.
    """
    out: dict[str, float] = {}
    if har_coef is not None and len(har_coef) >= 4:
        weights = np.asarray(har_coef[1:4], dtype=np.float64)
        for days, weight in zip((1, 5, 22), weights, strict=True):
            out[f"market/har_weight_{days}d"] = float(weight)
        total = float(weights.sum())
        if total > 0:
            out["market/har_share_22d"] = float(weights[2] / total)
    values = np.array([v for v in garch_persistence.values() if np.isfinite(v)], dtype=np.float64)
    if len(values):
        persistence = float(np.median(values))
        out["market/garch_persistence"] = persistence
        out["market/garch_half_life_days"] = half_life(persistence)
        out["market/garch_timescale_days"] = half_life(persistence) / np.log(2.0)
        out["market/garch_tickers"] = float(len(values))
    return {k: v for k, v in out.items() if np.isfinite(v)}
