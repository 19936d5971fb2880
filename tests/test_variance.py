"""Variance estimators, QLIKE, HAR, EWMA and GARCH against hand-computed or
independent values; stale-open detection."""

import math

import numpy as np
import pandas as pd
import pytest

from stockpred.data.prices import DataError, require_fresh_open, stale_open_years
from stockpred.variance import (
    YANG_ZHANG_K,
    daily_variance,
    ewma_variance,
    forward_variance,
    garch_forecasts,
    har_design,
    ols,
    qlike,
)

OPEN, HIGH, LOW, CLOSE = (
    [100.0, 101.0, 102.0],
    [102.0, 104.0, 103.0],
    [99.0, 100.0, 101.0],
    [101.0, 103.0, 102.0],
)


def _frame(open_=OPEN, high=HIGH, low=LOW, close=CLOSE, ticker="AAA") -> pd.DataFrame:
    dates = pd.bdate_range("2020-01-01", periods=len(close))
    index = pd.MultiIndex.from_arrays([dates, [ticker] * len(close)], names=["date", "ticker"])
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": 1}, index=index
    )


def _rs(i: int) -> float:
    return math.log(HIGH[i] / CLOSE[i]) * math.log(HIGH[i] / OPEN[i]) + math.log(
        LOW[i] / CLOSE[i]
    ) * math.log(LOW[i] / OPEN[i])


def test_each_estimator_matches_its_formula_on_three_rows() -> None:
    frame = _frame()
    ln2 = math.log(2)
    expected = {
        "parkinson": [math.log(HIGH[i] / LOW[i]) ** 2 / (4 * ln2) for i in range(3)],
        "garman_klass": [
            0.5 * math.log(HIGH[i] / LOW[i]) ** 2
            - (2 * ln2 - 1) * math.log(CLOSE[i] / OPEN[i]) ** 2
            for i in range(3)
        ],
        "rogers_satchell": [_rs(i) for i in range(3)],
        "yang_zhang": [np.nan]
        + [
            math.log(OPEN[i] / CLOSE[i - 1]) ** 2
            + YANG_ZHANG_K * math.log(CLOSE[i] / OPEN[i]) ** 2
            + (1 - YANG_ZHANG_K) * _rs(i)
            for i in (1, 2)
        ],
        "squared_return": [np.nan] + [math.log(CLOSE[i] / CLOSE[i - 1]) ** 2 for i in (1, 2)],
    }
    # by hand, row 0: ln(102/99)^2 / (4 ln 2) = 0.02985^2 / 2.7726
    assert expected["parkinson"][0] == pytest.approx(0.029852963**2 / 2.7725887, rel=1e-6)
    assert expected["squared_return"][1] == pytest.approx(math.log(103 / 101) ** 2)
    for estimator, values in expected.items():
        got = daily_variance(frame, estimator, floor=False).to_numpy()
        np.testing.assert_allclose(got, values, rtol=1e-12, err_msg=estimator)
    assert pytest.approx(0.34 / 2.34) == YANG_ZHANG_K


def test_the_target_is_the_mean_daily_variance_of_the_next_h_days() -> None:
    frame = _frame()
    daily = daily_variance(frame, "parkinson").to_numpy()
    target = forward_variance(frame, "parkinson", 2).to_numpy()
    np.testing.assert_allclose(target, [(daily[1] + daily[2]) / 2, np.nan, np.nan])


def test_qlike_by_hand() -> None:
    assert qlike(np.array([1.0, 2.0]), np.array([1.0, 1.0])) == pytest.approx(
        (2 - math.log(2) - 1) / 2
    )
    assert qlike(np.array([3.0]), np.array([3.0])) == 0.0


def test_har_recovers_planted_coefficients() -> None:
    rng = np.random.default_rng(0)
    beta = np.array([0.05, 0.35, 0.3, 0.25])  # intercept, daily, weekly, monthly
    n = 6000
    rv = np.ones(n)
    for t in range(22, n):
        x = [rv[t - 1], rv[t - 5 : t].mean(), rv[t - 22 : t].mean()]
        rv[t] = beta[0] + beta[1:] @ x + rng.normal(0, 0.05)
    design = har_design(rv)[:-1]  # the means ending at t predict rv[t + 1]
    coef = ols(design[100:], rv[101:])
    np.testing.assert_allclose(coef, beta, atol=0.03)


def test_ewma_is_the_riskmetrics_recursion() -> None:
    daily = np.array([4.0, 1.0, np.nan, 2.0])
    lam = 0.94
    s1 = lam * 4.0 + (1 - lam) * 1.0
    np.testing.assert_allclose(ewma_variance(daily, lam), [4.0, s1, s1, lam * s1 + (1 - lam) * 2.0])
    assert np.isnan(ewma_variance(np.array([np.nan, 1.0]))[0])


def test_garch_filtered_forecast_matches_arch_at_the_end_of_training() -> None:
    from arch import arch_model

    rng = np.random.default_rng(1)
    n, n_train, horizon = 1200, 900, 5
    returns, variance = np.empty(n), 1e-4
    previous = 0.0
    for t in range(n):
        variance = 2e-6 + 0.08 * previous**2 + 0.9 * variance
        previous = returns[t] = math.sqrt(variance) * rng.standard_t(6) / math.sqrt(1.5)
    for asymmetric in (False, True):
        forecasts, params = garch_forecasts(returns, n_train, horizon, asymmetric=asymmetric)
        own = arch_model(100 * returns[:n_train], p=1, o=int(asymmetric), q=1, dist="t").fit(
            disp="off"
        )
        expected = own.forecast(horizon=horizon).variance.to_numpy()[-1].mean() * 1e-4
        assert forecasts[n_train - 1] == pytest.approx(expected, rel=1e-6)
        assert params["beta[1]"] == pytest.approx(own.params["beta[1]"])
        assert np.isfinite(forecasts[n_train:]).all()


def test_stale_opens_are_detected_and_refuse_open_estimators() -> None:
    rng = np.random.default_rng(0)
    n = 300
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    fresh_open = close * np.exp(rng.normal(0, 0.003, n))
    stale_open = np.concatenate([[close[0]], close[:-1]])
    stale_open[::5] = fresh_open[::5]  # 80% of days stale
    high = np.maximum(np.maximum(fresh_open, stale_open), close) * 1.01
    low = np.minimum(np.minimum(fresh_open, stale_open), close) * 0.99
    prices = pd.concat(
        [_frame(fresh_open, high, low, close, "OK"), _frame(stale_open, high, low, close, "OLD")]
    ).sort_index()
    assert stale_open_years(prices) == {"OLD": [2020, 2021]}
    with pytest.raises(DataError, match=r"stale open.*parkinson"):
        require_fresh_open(prices, "garman_klass", needs_open=True)
    require_fresh_open(prices, "parkinson", needs_open=False)
    require_fresh_open(prices.xs("OK", level="ticker", drop_level=False), "yang_zhang", True)
