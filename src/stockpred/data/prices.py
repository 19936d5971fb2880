"""``load_prices``: one long (date, ticker) frame of adjusted daily OHLCV, validated, any source."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from stockpred.data.sample import SAMPLE_TICKERS, fetch_sample

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
SOURCES = ("sample",)


class DataError(ValueError):
    """Market data is missing or malformed; the message says what and what to do."""


class UnknownTickerError(DataError):
    """A ticker the chosen source does not have."""


def load_prices(
    tickers: Sequence[str],
    start: dt.date | str,
    end: dt.date | str,
    source: str = "sample",
) -> pd.DataFrame:
    """Daily adjusted OHLCV for ``tickers`` between ``start`` and ``end`` (both inclusive).

    Returns a long frame indexed by (date, ticker), sorted, with float64 open/high/low/close and
    int64 volume, tz-naive dates. Raises ``DataError`` naming the ticker or range that is missing.
    """
    if source not in SOURCES:
        raise DataError(f"unknown source {source!r}: choose one of {', '.join(SOURCES)}")
    if isinstance(tickers, str):
        tickers = [tickers]
    if not tickers:
        raise DataError("no tickers given: name at least one, e.g. ['^GSPC']")
    start_ts, end_ts = pd.Timestamp(start), pd.Timestamp(end)
    if start_ts >= end_ts:
        raise DataError(f"start {start_ts.date()} must be before end {end_ts.date()}")

    unknown = [t for t in tickers if t not in SAMPLE_TICKERS]
    if unknown:
        raise UnknownTickerError(
            f"the sample source has no ticker(s) {unknown}; it has {sorted(SAMPLE_TICKERS)}. "
            "Use one of those, or a live source for other symbols."
        )
    frames = []
    for ticker in tickers:
        one = fetch_sample(ticker)
        window = one.loc[(one.index >= start_ts) & (one.index <= end_ts)]
        if window.empty:
            raise DataError(
                f"{ticker}: no rows between {start_ts.date()} and {end_ts.date()}; the sample "
                f"covers {one.index.min().date()} to {one.index.max().date()}"
            )
        frames.append(window.assign(ticker=ticker))
    prices = pd.concat(frames).set_index("ticker", append=True).sort_index()
    return validate_prices(prices)


def validate_prices(prices: pd.DataFrame) -> pd.DataFrame:
    """Check schema and OHLC sanity; return the frame with canonical dtypes or raise ``DataError``."""
    missing = [c for c in PRICE_COLUMNS if c not in prices.columns]
    if missing:
        raise DataError(f"price data lacks column(s) {missing}; expected {list(PRICE_COLUMNS)}")
    if list(prices.index.names) != ["date", "ticker"]:
        raise DataError(f"price index must be (date, ticker), got {list(prices.index.names)}")
    if prices.empty:
        raise DataError("price data is empty")
    dates = pd.DatetimeIndex(prices.index.get_level_values("date"))
    if dates.tz is not None:
        dates = dates.tz_localize(None)
    tickers = prices.index.get_level_values("ticker").astype(str)
    out = pd.DataFrame(
        {c: prices[c].to_numpy(dtype="float64") for c in PRICE_COLUMNS[:4]},
        index=pd.MultiIndex.from_arrays(
            [dates.astype("datetime64[ns]"), tickers], names=["date", "ticker"]
        ),
    )
    volume = prices["volume"].to_numpy(dtype="float64")
    ohlc = out.to_numpy()
    problems = {
        "non-finite or non-positive price": ~(np.isfinite(ohlc) & (ohlc > 0)).all(axis=1),
        "high below open/close": out["high"] < out[["open", "close"]].max(axis=1) * (1 - 1e-9),
        "low above open/close": out["low"] > out[["open", "close"]].min(axis=1) * (1 + 1e-9),
        "negative or missing volume": ~(np.isfinite(volume) & (volume >= 0)),
        "duplicate (date, ticker)": out.index.duplicated(keep=False),
    }
    for what, mask in problems.items():
        mask = np.asarray(mask)
        if mask.any():
            rows = out.index[mask][:3].tolist()
            raise DataError(f"{int(mask.sum())} row(s) with {what}, e.g. {rows}")
    out["volume"] = volume.astype("int64")
    return out.sort_index()
