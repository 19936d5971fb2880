"""The embedded offline sample, two universes of real daily OHLCV:

- ``indices``: ^GSPC and ^IXIC 1999-2018, shipped in ``arch``;
- ``stocks``: AAPL, GOOG, IBM, MSFT, FB 2000-03-01..2013-03-01 (GOOG from 2004-08-19, FB from
  2012-05-18: ragged starts), shipped in ``bokeh-sampledata`` (``stocks.csv.gz``, Quandl WIKI
  prices, public domain per the package's ``licenses/datasets.json``; the package's own code is
  BSD-3-Clause). Its raw open/high/low/close are unadjusted; the adjusted close is used and
  open/high/low are scaled by the same factor. Volume is as recorded (not split-adjusted). The
  data pass validation as shipped: no row is dropped or changed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import pandas as pd

from stockpred.config import SAMPLE_UNIVERSES


def _sp500() -> pd.DataFrame:
    from arch.data import sp500

    return sp500.load()


def _nasdaq() -> pd.DataFrame:
    from arch.data import nasdaq

    return nasdaq.load()


@cache
def _bokeh_stocks() -> dict[str, pd.DataFrame]:
    """The five stocks of bokeh-sampledata, read from its CSV (its module parses at import)."""
    from importlib.resources import files

    with (files("bokeh_sampledata") / "_data" / "stocks.csv.gz").open("rb") as handle:
        raw = pd.read_csv(handle, compression="gzip", parse_dates=["Date"])
    return {
        str(ticker): part.drop(columns="Ticker").set_index("Date").sort_index()
        for ticker, part in raw.groupby("Ticker", sort=False)
    }


def _stock(ticker: str) -> Callable[[], pd.DataFrame]:
    return lambda: _bokeh_stocks()[ticker]


SAMPLE_TICKERS: dict[str, Callable[[], pd.DataFrame]] = {
    "^GSPC": _sp500,
    "^IXIC": _nasdaq,
    **{ticker: _stock(ticker) for ticker in SAMPLE_UNIVERSES["stocks"]},
}


def sample_universe(tickers: list[str] | tuple[str, ...]) -> str | None:
    """The universe the first of ``tickers`` belongs to (None if it is in none)."""
    for name, members in SAMPLE_UNIVERSES.items():
        if tickers and tickers[0] in members:
            return name
    return None


def fetch_sample(ticker: str) -> pd.DataFrame:
    """One ticker's adjusted daily OHLCV, indexed by date, columns open/high/low/close/volume.

    Open, high and low are scaled by the same factor as the adjusted close (for the indices the
    factor is 1, but the rule is the one every source follows).
    """
    raw = SAMPLE_TICKERS[ticker]()
    factor = raw["Adj Close"] / raw["Close"]
    frame = pd.DataFrame(
        {
            "open": raw["Open"] * factor,
            "high": raw["High"] * factor,
            "low": raw["Low"] * factor,
            "close": raw["Adj Close"],
            "volume": raw["Volume"],
        }
    )
    frame.index = pd.DatetimeIndex(frame.index, name="date")
    return frame
