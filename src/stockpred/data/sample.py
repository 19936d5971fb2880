"""The embedded offline sample: real ^GSPC and ^IXIC daily OHLCV 1999-2018 shipped in ``arch``."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd


def _sp500() -> pd.DataFrame:
    from arch.data import sp500

    return sp500.load()


def _nasdaq() -> pd.DataFrame:
    from arch.data import nasdaq

    return nasdaq.load()


SAMPLE_TICKERS: dict[str, Callable[[], pd.DataFrame]] = {"^GSPC": _sp500, "^IXIC": _nasdaq}


def fetch_sample(ticker: str) -> pd.DataFrame:
    """One ticker's adjusted daily OHLCV, indexed by date, columns open/high/low/close/volume.

    Open, high and low are scaled by the same factor as the adjusted close (for these indices the
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
