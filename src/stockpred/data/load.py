"""``load_prices``: one long (date, ticker) frame of adjusted daily OHLCV, validated, any source."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd

from stockpred.data.prices import DataError, UnknownTickerError, validate_prices
from stockpred.data.sample import SAMPLE_TICKERS, fetch_sample

SOURCES = ("sample", "yfinance")


def load_prices(
    tickers: Sequence[str] | str,
    start: dt.date | str,
    end: dt.date | str,
    source: str = "sample",
    *,
    cache_dir: str | None = None,
    refresh: bool = True,
    on_bad_rows: str = "raise",
    max_gap_days: int | None = 10,
    yahoo: object | None = None,
    today: dt.date | None = None,
) -> pd.DataFrame:
    """Daily adjusted OHLCV for ``tickers`` between ``start`` and ``end`` (both inclusive).

    Returns a long frame indexed by (date, ticker), sorted, with float64 open/high/low/close and
    int64 volume, tz-naive dates. ``source="sample"`` is the embedded offline data;
    ``source="yfinance"`` reads the Parquet cache under ``cache_dir`` and first fetches what it
    lacks from Yahoo (unless ``refresh`` is off). Raises ``DataError`` saying what is missing.
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
    if source == "yfinance":
        prices = _from_yahoo(tickers, start_ts.date(), end_ts.date(), cache_dir, refresh,
                             on_bad_rows, yahoo, today)  # fmt: skip
    else:
        prices = _from_sample(tickers, start_ts, end_ts)
    return validate_prices(prices, on_bad_rows, max_gap_days)


def _from_sample(tickers: Sequence[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    unknown = [t for t in tickers if t not in SAMPLE_TICKERS]
    if unknown:
        # a few names, then a count: 500 unknown tickers must still read as one short line
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise UnknownTickerError(
            f"the sample source has no ticker(s) {unknown[:5]}{more}; it has "
            f"{sorted(SAMPLE_TICKERS)}. "
            "Use one of those, or source='yfinance' for other symbols."
        )
    frames = []
    for ticker in tickers:
        one = fetch_sample(ticker)
        window = one.loc[(one.index >= start) & (one.index <= end)]
        if window.empty:
            raise DataError(
                f"{ticker}: no rows between {start.date()} and {end.date()}; the sample "
                f"covers {one.index.min().date()} to {one.index.max().date()}"
            )
        frames.append(window.assign(ticker=ticker))
    return pd.concat(frames).set_index("ticker", append=True)


def _from_yahoo(
    tickers: Sequence[str],
    start: dt.date,
    end: dt.date,
    cache_dir: str | None,
    refresh: bool,
    on_bad_rows: str,
    yahoo: object | None,
    today: dt.date | None,
) -> pd.DataFrame:
    from stockpred.data.cache import CacheEntry, PriceCache
    from stockpred.data.market import describe_failures, read_cached, sync
    from stockpred.data.yahoo import YahooSource
    from stockpred.paths import cache_dir as resolve_cache_dir

    cache = PriceCache(resolve_cache_dir(cache_dir))
    source = yahoo if isinstance(yahoo, YahooSource) else YahooSource()
    entries: dict[str, CacheEntry] = {}
    results = sync(tickers, start, end, cache, source, refresh=refresh, on_bad_rows=on_bad_rows,
                   today=today, entries=entries)  # fmt: skip
    failed = [r for r in results if not r.ok]
    if failed:
        raise DataError(
            f"{len(failed)} of {len(results)} ticker(s) failed: {describe_failures(failed)}"
        )
    return read_cached([r.ticker for r in results], start, end, cache, entries)
