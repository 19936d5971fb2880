"""The embedded stocks universe (bokeh-sampledata): five real stocks, ragged, valid, offline."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from stockpred.config import SAMPLE_UNIVERSES, PipelineConfig, load_config
from stockpred.data import UnknownTickerError, load_prices

STOCKS = ["AAPL", "GOOG", "IBM", "MSFT", "FB"]


def test_the_stocks_load_offline_with_ragged_starts_and_pass_validation() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no bad rows dropped, no long gaps
        prices = load_prices(STOCKS, "1999-01-01", "2018-12-31", source="sample")
    spans = prices.index.to_frame(index=False).groupby("ticker")["date"].agg(["min", "max", "size"])
    assert sorted(spans.index) == sorted(STOCKS)
    assert spans.loc["AAPL", "min"] == pd.Timestamp("2000-03-01")
    assert spans.loc["GOOG", "min"] == pd.Timestamp("2004-08-19")
    assert spans.loc["FB", "min"] == pd.Timestamp("2012-05-18")
    assert (spans["max"] == pd.Timestamp("2013-03-01")).all()
    assert spans.loc["IBM", "size"] == 3270 and spans.loc["FB", "size"] == 196
    assert prices.notna().all().all()


def test_open_high_low_are_scaled_by_the_adjusted_close_factor() -> None:
    prices = load_prices("AAPL", "2000-03-01", "2000-03-02")
    first = prices.iloc[0]  # raw: open 118.56, high 132.06, close 130.31, adj close 4.1866...
    factor = first["close"] / 130.31
    assert first["open"] == pytest.approx(118.56 * factor)
    assert first["high"] == pytest.approx(132.06 * factor)
    assert first["close"] < 10  # the adjusted close, not the 2000 quote
    assert first["volume"] == 9616100


def test_the_stocks_universe_is_explicit_in_the_config() -> None:
    stocks = PipelineConfig().with_overrides({"data.universe": "stocks"}).data
    assert stocks.tickers == SAMPLE_UNIVERSES["stocks"] == tuple(STOCKS)
    back = PipelineConfig().with_overrides({"data.universe": "stocks"})
    assert back.with_overrides({"data.universe": "indices"}).data.tickers == ("^GSPC", "^IXIC")
    assert (
        load_config({"data": {"universe": "stocks", "tickers": None}}).data.tickers
        == stocks.tickers
    )
    two = load_config({"data": {"universe": "stocks", "tickers": ["ibm", "MSFT"]}}).data
    assert two.tickers == ("IBM", "MSFT")


def test_asking_for_an_index_in_the_stocks_universe_or_mixing_is_a_clear_error() -> None:
    from stockpred.config import ConfigError

    with pytest.raises(
        ConfigError, match=r"stocks universe has no \['\^GSPC'\].*data.universe=ind"
    ):
        load_config({"data": {"universe": "stocks", "tickers": ["^GSPC", "AAPL"]}})
    with pytest.raises(ConfigError, match=r"indices universe has no \['AAPL'\].*universe=stocks"):
        load_config({"data": {"tickers": ["AAPL"]}})
    with pytest.raises(UnknownTickerError, match=r"no ticker\(s\) \['\^GSPC'\] in its stocks"):
        load_prices(["AAPL", "^GSPC"], "2010-01-01", "2011-01-01")
    yahoo = {"universe": "stocks", "source": "yfinance", "tickers": ["^GSPC"]}
    other_sources = load_config({"data": yahoo})
    assert other_sources.data.tickers == ("^GSPC",)  # the universe binds the sample only


def test_the_all_universe_pools_the_indices_and_the_stocks() -> None:
    config = load_config({"data": {"universe": "all", "start": "2000-03-01", "end": "2013-03-01"}})
    assert config.data.tickers == (*SAMPLE_UNIVERSES["indices"], *SAMPLE_UNIVERSES["stocks"])
    data = config.data
    prices = load_prices(list(data.tickers), data.start, data.end, source="sample", universe="all")
    sizes = prices.groupby(level="ticker").size()
    assert sizes["^GSPC"] == sizes["IBM"] == 3270 and sizes["FB"] == 196
