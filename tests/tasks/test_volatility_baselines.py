"""The volatility baselines per series and pooled, against hand-computed fits."""

import logging

import numpy as np
import pytest

from stockpred import experiment
from stockpred.config import load_config
from stockpred.features import variance_feature
from stockpred.split import TEST, TRAIN, VAL
from stockpred.tasks import Part
from stockpred.tasks.volatility.baselines import MIN_SERIES_ROWS, Garch, Har, raw_feature
from stockpred.variance import ols, ols_predict
from tests.tasks.test_volatility import TINY, garch_market

CONFIG = load_config({**TINY, "target": {"kind": "volatility"}})


def _parts(prices):
    prepared = experiment.build(prices, CONFIG)
    return prepared, Part.of(prepared, TRAIN), Part.of(prepared, VAL), Part.of(prepared, TEST)


def _har_design(prepared, rows):
    return np.column_stack(
        [np.exp(raw_feature(prepared, variance_feature("parkinson", d), rows)) for d in (1, 5, 22)]
    )


@pytest.fixture(scope="module")
def two_markets():
    # two series of different levels and persistence, so per-series and pooled fits differ
    prices = garch_market(1200, ("AAA", "BBB"), seed=3)
    high = prices.index.get_level_values("ticker") == "BBB"
    prices.loc[high, ["open", "high", "low", "close"]] **= 1.5  # BBB more volatile
    return _parts(prices)


def test_per_series_har_is_an_ols_per_ticker(two_markets) -> None:
    prepared, train, val, test = two_markets
    har = Har("parkinson", 1, log=False).fit(train, val)
    predicted = har.predict(test)
    for ticker in ("AAA", "BBB"):
        mine = train.rows[prepared.tickers[train.rows] == ticker]
        x, y = _har_design(prepared, mine), prepared.actual[mine]
        ok = np.isfinite(x).all(axis=1) & np.isfinite(y)
        design = np.column_stack([np.ones(ok.sum()), x[ok]])
        by_hand, *_ = np.linalg.lstsq(design, y[ok], rcond=None)  # the textbook OLS
        np.testing.assert_allclose(har.coefs_[ticker], by_hand, rtol=1e-8)
        at = prepared.tickers[test.rows] == ticker
        expected = ols_predict(by_hand, _har_design(prepared, test.rows[at]))
        np.testing.assert_allclose(predicted[at], np.maximum(expected, 1e-8), rtol=1e-8)
    assert har.fallbacks_ == []
    assert not np.allclose(har.coefs_["AAA"], har.coefs_["BBB"])


def test_the_pooled_har_scales_each_ticker_by_its_training_mean(two_markets) -> None:
    prepared, train, val, test = two_markets
    pooled = Har("parkinson", 1, log=False, pooled=True).fit(train, val)
    assert pooled.name == "har_pooled"
    xs, ys, level = [], [], {}
    for ticker in ("AAA", "BBB"):
        mine = train.rows[prepared.tickers[train.rows] == ticker]
        level[ticker] = np.nanmean(prepared.actual[mine])
        xs.append(_har_design(prepared, mine) / level[ticker])
        ys.append(prepared.actual[mine] / level[ticker])
    coef = ols(np.vstack(xs), np.concatenate(ys))
    np.testing.assert_allclose(pooled.coef_, coef, rtol=1e-8)
    at = prepared.tickers[test.rows] == "BBB"
    expected = level["BBB"] * ols_predict(coef, _har_design(prepared, test.rows[at]) / level["BBB"])
    np.testing.assert_allclose(pooled.predict(test)[at], np.maximum(expected, 1e-8), rtol=1e-8)
    # log-HAR pooled: a per-ticker intercept on logs
    log_pooled = Har("parkinson", 1, log=True, pooled=True).fit(train, val)
    assert log_pooled.name == "log_har_pooled" and np.isfinite(log_pooled.predict(test)).all()


def test_a_short_ticker_gets_the_pooled_fit_in_one_line(caplog) -> None:
    long_one = garch_market(1200, ("AAA",), seed=1)
    short = garch_market(1200, ("NEW",), seed=2).iloc[-650:]  # listed late: few training days
    prices = long_one.combine_first(short).sort_index()
    prepared, train, val, test = _parts(prices)
    usable = (prepared.tickers[train.rows] == "NEW").sum()
    assert 0 < usable < MIN_SERIES_ROWS
    with caplog.at_level(logging.WARNING, logger="stockpred.tasks.volatility.baselines"):
        har = Har("parkinson", 1, log=True).fit(train, val)
        garch = Garch("parkinson", 1, asymmetric=False).fit(train, val)
    assert har.fallbacks_ == ["NEW"]
    lines = [r.getMessage() for r in caplog.records if "NEW" in r.getMessage()]
    assert any(
        line.startswith("baseline log_har: ticker NEW has") and "the pooled fit" in line
        for line in lines
    )
    assert any(line.startswith("baseline garch: ticker NEW") for line in lines)
    # the fallback is the plain pooled OLS over every ticker's training windows
    whole = ols(np.log(_har_design(prepared, train.rows)), np.log(prepared.actual[train.rows]))
    np.testing.assert_allclose(har.coefs_["NEW"], whole, rtol=1e-8)
    assert garch.fallbacks_ == ["NEW"] and "NEW" not in garch.levels_
    assert np.isfinite(har.predict(test)).all()
