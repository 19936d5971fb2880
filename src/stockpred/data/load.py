"""``load_prices``: one long (date, ticker) frame of adjusted daily OHLCV, validated, any source.

Each source is a loader in ``LOADERS``: a function of one ``LoadRequest`` returning its raw long
frame (indexed by date and ticker; open/high/low/volume may be absent), which ``load_prices``
validates the same way for every source. A new source is a module with such a function,
registered here, and its name added to ``DataConfig.source``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from stockpred.config import SAMPLE_UNIVERSES
from stockpred.data.prices import DataError, UnknownTickerError, validate_prices
from stockpred.data.sample import fetch_sample, sample_universe


@dataclass(frozen=True)
class LoadRequest:
    """What ``load_prices`` asks a source for; each source reads the fields it uses."""

    tickers: tuple[str, ...]
    start: pd.Timestamp
    end: pd.Timestamp
    cache_dir: str | None = None
    refresh: bool = True
    on_bad_rows: str = "raise"
    yahoo: object | None = None
    today: dt.date | None = None
    path: str | None = None
    universe: str | None = None


Loader = Callable[[LoadRequest], pd.DataFrame]


def _from_sample(request: LoadRequest) -> pd.DataFrame:
    tickers, start, end = request.tickers, request.start, request.end
    universe = request.universe or sample_universe(tickers) or "indices"
    if universe not in SAMPLE_UNIVERSES:
        raise DataError(f"unknown sample universe {universe!r}: {', '.join(SAMPLE_UNIVERSES)}")
    members = SAMPLE_UNIVERSES[universe]
    unknown = [t for t in tickers if t not in members]
    if unknown:
        elsewhere = {t: u for u, m in SAMPLE_UNIVERSES.items() for t in unknown if t in m}
        hint = (
            f" ({', '.join(f'{t} is in {u}' for t, u in list(elsewhere.items())[:5])})"
            if elsewhere
            else ""
        )
        # a few names, then a count: 500 unknown tickers must still read as one short line
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise UnknownTickerError(
            f"the sample source has no ticker(s) {unknown[:5]}{more} in its {universe} universe; "
            f"it has {sorted(members)}{hint}. Use one universe's tickers, or source='yfinance' "
            "or 'files' for other symbols."
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


def _from_yahoo(request: LoadRequest) -> pd.DataFrame:
    from stockpred.data.cache import CacheEntry, PriceCache
    from stockpred.data.market import describe_failures, read_cached, sync
    from stockpred.data.yahoo import YahooSource
    from stockpred.paths import cache_dir as resolve_cache_dir

    start, end = request.start.date(), request.end.date()
    cache = PriceCache(resolve_cache_dir(request.cache_dir))
    source = request.yahoo if isinstance(request.yahoo, YahooSource) else YahooSource()
    entries: dict[str, CacheEntry] = {}
    results = sync(
        request.tickers,
        start,
        end,
        cache,
        source,
        refresh=request.refresh,
        on_bad_rows=request.on_bad_rows,
        today=request.today,
        entries=entries,
    )
    failed = [r for r in results if not r.ok]
    if failed:
        raise DataError(
            f"{len(failed)} of {len(results)} ticker(s) failed: {describe_failures(failed)}"
        )
    return read_cached([r.ticker for r in results], start, end, cache, entries)


def _from_files(request: LoadRequest) -> pd.DataFrame:
    from stockpred.data.files import load_files

    if not request.path:
        raise DataError("source 'files' needs a path: a Parquet/CSV file or a folder of them")
    return load_files(
        request.path, request.tickers, request.start, request.end, on_bad_rows=request.on_bad_rows
    )


LOADERS: dict[str, Loader] = {"sample": _from_sample, "yfinance": _from_yahoo, "files": _from_files}
SOURCES = tuple(LOADERS)


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
    path: str | None = None,
    universe: str | None = None,
) -> pd.DataFrame:
    """Daily adjusted OHLCV for ``tickers`` between ``start`` and ``end`` (both inclusive).

    Returns a long frame indexed by (date, ticker), sorted, with float64 open/high/low/close and
    int64 volume, tz-naive dates. ``source="sample"`` is the embedded offline data (``universe``
    indices or stocks; by default the one of the first ticker); ``source="yfinance"`` reads the
    Parquet cache under ``cache_dir`` and first fetches what it lacks from Yahoo (unless
    ``refresh`` is off); ``source="files"`` reads your own file(s) at ``path`` (``tickers``
    ``["*"]``: all of them). A source without open/high/low/volume (close-only files) gives those
    columns entirely NaN (volume then float64). Raises ``DataError`` saying what is missing.
    """
    loader = LOADERS.get(source)
    if loader is None:
        raise DataError(f"unknown source {source!r}: choose one of {', '.join(SOURCES)}")
    if isinstance(tickers, str):
        tickers = [tickers]
    if not tickers:
        raise DataError("no tickers given: name at least one, e.g. ['^GSPC']")
    start_ts, end_ts = pd.Timestamp(start), pd.Timestamp(end)
    if start_ts >= end_ts:
        raise DataError(f"start {start_ts.date()} must be before end {end_ts.date()}")
    request = LoadRequest(
        tickers=tuple(tickers),
        start=start_ts,
        end=end_ts,
        cache_dir=cache_dir,
        refresh=refresh,
        on_bad_rows=on_bad_rows,
        yahoo=yahoo,
        today=today,
        path=path,
        universe=universe,
    )
    prices = loader(request)
    return validate_prices(prices, on_bad_rows, max_gap_days, required=("close",))
