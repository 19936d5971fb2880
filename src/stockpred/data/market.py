"""Keep the Parquet cache in step with Yahoo: fetch once, refresh only new days, survive outages.

For each ticker ``sync`` plans the smallest fetch: nothing when the cache already covers the
request; the days after the last cached date plus 60 days of overlap otherwise; the whole
history when the ticker is new, the request reaches further back, the overlap disagrees with the
cache (a split or dividend re-adjusted the history) or the last full fetch is over 30 days old.
Tickers that need the same range are downloaded together in batches, under their locks, from what
the files hold once the locks are taken. A network failure falls back to the cache with a warning
saying how stale it is.
"""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pandas as pd

from stockpred.data.cache import CacheEntry, CacheWriteError, CorruptCacheError, PriceCache
from stockpred.data.prices import PRICE_COLUMNS, DataError, validate_prices
from stockpred.data.yahoo import FetchError, RateLimitedError, TickerFetchError, YahooSource
from stockpred.symbols import check_ticker

log = logging.getLogger(__name__)
# Calendar days re-fetched before the last cached date and compared with the cache: a split or a
# dividend Yahoo records (often days or weeks late) re-adjusts every earlier price, so a change
# seen anywhere in the overlap triggers a full refetch. About 40 trading days; one request anyway.
OVERLAP_DAYS = 60
FULL_REFETCH_DAYS = 30  # a refresh re-fetches the whole history when the last full one is older
TOLERANCE = 1e-6  # relative price difference in the overlap that means "history changed"


class NoDataError(DataError):
    """Yahoo returned no rows for a ticker."""


@dataclass(frozen=True)
class SyncResult:
    """What happened to one ticker's cache file."""

    ticker: str
    status: str  # cached | fetched | refreshed | refetched | stale | failed
    rows_fetched: int = 0
    rows_cached: int = 0
    first: str = ""
    last: str = ""
    message: str = ""
    cause: str = ""  # what failed for a whole batch (e.g. Yahoo unreachable), if anything

    @property
    def ok(self) -> bool:
        """Whether the cache now holds usable rows for the ticker."""
        return self.status != "failed"


@dataclass(frozen=True)
class _Plan:
    ticker: str
    entry: CacheEntry | None
    start: dt.date
    end: dt.date
    kind: str  # fetched | refreshed | refetched


def sync(
    tickers: Sequence[str],
    start: dt.date,
    end: dt.date,
    cache: PriceCache,
    source: YahooSource | None = None,
    *,
    refresh: bool = True,
    on_bad_rows: str = "raise",
    today: dt.date | None = None,
    entries: dict[str, CacheEntry] | None = None,
) -> list[SyncResult]:
    """Bring each ticker's cache up to ``start``..``end``; one result per ticker, never raising
    for a single ticker's failure (its result says what went wrong). ``entries``, if given,
    receives each usable ticker's cache entry, so a caller need not read the files again."""
    entries = {} if entries is None else entries
    source = source or YahooSource()
    today = today or dt.date.today()
    # Today's bar is still moving until the close: cache complete days only.
    through = min(pd.Timestamp(end).date(), today - dt.timedelta(days=1))
    start = pd.Timestamp(start).date()
    results: dict[str, SyncResult] = {}
    groups: dict[tuple[dt.date, dt.date], list[_Plan]] = defaultdict(list)
    for ticker in dict.fromkeys(check_ticker(t) for t in tickers):
        try:  # a first, unlocked look, to group the tickers; re-read under the lock below
            entry = _read_or_quarantine(cache, ticker)
        except CacheWriteError as exc:
            results[ticker] = SyncResult(ticker, "failed", message=str(exc))
            continue
        if entry is not None:
            entries[ticker] = entry  # replaced below if it gets refreshed
        plan = _plan(ticker, entry, start, through, refresh, today)
        if isinstance(plan, SyncResult):
            results[ticker] = plan
        else:
            groups[(plan.start, plan.end)].append(plan)
    for (first, last), plans in groups.items():
        group = _Group(first, last, start, through, today, on_bad_rows)
        try:
            with cache.locked(*[p.ticker for p in plans]):
                results.update(_sync_group(group, plans, cache, source, entries))
        except CacheWriteError as exc:  # no lock (held too long, folder unwritable)
            for plan in plans:
                results.setdefault(plan.ticker, SyncResult(plan.ticker, "failed", message=str(exc)))
    return [results[check_ticker(t)] for t in dict.fromkeys(tickers)]


@dataclass(frozen=True)
class _Group:
    first: dt.date  # the range fetched for the group's tickers
    last: dt.date
    start: dt.date  # what the caller asked for
    through: dt.date
    today: dt.date
    on_bad_rows: str


def _sync_group(
    group: _Group,
    plans: list[_Plan],
    cache: PriceCache,
    source: YahooSource,
    entries: dict[str, CacheEntry],
) -> dict[str, SyncResult]:
    """Fetch and write one group of tickers; the caller holds their locks."""
    results: dict[str, SyncResult] = {}
    # Another process may have written these files since they were planned (two ingests of the
    # same tickers): re-read and re-plan under the lock, or a stale view would replace its rows.
    ready, alone = [], []
    for plan in plans:
        try:
            current = _read_or_quarantine(cache, plan.ticker, holding_lock=True)
        except CacheWriteError as exc:
            results[plan.ticker] = SyncResult(plan.ticker, "failed", message=str(exc))
            continue
        if _same(current, plan.entry):
            ready.append(plan)
            continue
        if current is None:
            entries.pop(plan.ticker, None)
        else:
            entries[plan.ticker] = current
        again = _plan(plan.ticker, current, group.start, group.through, True, group.today)
        if isinstance(again, SyncResult):
            results[plan.ticker] = again  # the other process already fetched it
        elif (again.start, again.end) == (group.first, group.last):
            ready.append(again)
        else:
            alone.append(again)
    fetched, errors = source.fetch_each([p.ticker for p in ready], group.first, group.last)
    for plan in alone:
        rows, failed = source.fetch_each([plan.ticker], plan.start, plan.end)
        fetched.update(rows)
        errors.update(failed)
    for plan in ready + alone:
        error = errors.get(plan.ticker)
        if error is not None:
            results[plan.ticker] = _fall_back(plan, str(error), group.today, error)
            continue
        try:
            results[plan.ticker] = _apply(plan, fetched[plan.ticker], cache, source, group, entries)
        except FetchError as exc:
            results[plan.ticker] = _fall_back(plan, str(exc), group.today, exc)
        except DataError as exc:  # bad rows, no rows, or this ticker's file could not be written
            results[plan.ticker] = SyncResult(plan.ticker, "failed", message=str(exc))
    return results


def _same(current: CacheEntry | None, planned: CacheEntry | None) -> bool:
    """Whether the file still holds what was planned from (no other writer came in between)."""
    if current is None or planned is None:
        return current is planned
    fields = ("fetched_at", "fetched_from", "fetched_through", "last_date", "full_fetch_on")
    same = all(getattr(current, f) == getattr(planned, f) for f in fields)
    return same and len(current.prices) == len(planned.prices)


def read_cached(
    tickers: Sequence[str],
    start: dt.date,
    end: dt.date,
    cache: PriceCache,
    entries: dict[str, CacheEntry] | None = None,
) -> pd.DataFrame:
    """Cached rows of ``tickers`` between ``start`` and ``end`` as one long (date, ticker) frame
    (``entries`` already read are used instead of the files)."""
    frames = []
    for ticker in tickers:
        entry = (entries or {}).get(check_ticker(ticker)) or cache.read(ticker)
        if entry is None:
            raise DataError(f"{ticker} is not in the price cache {cache.root}")
        rows = entry.prices.loc[pd.Timestamp(start) : pd.Timestamp(end)]
        if rows.empty:
            raise DataError(
                f"{ticker}: the cache has {entry.prices.index.min().date()} to {entry.last_date}, "
                f"nothing between {pd.Timestamp(start).date()} and {pd.Timestamp(end).date()}"
            )
        frames.append(rows.assign(ticker=check_ticker(ticker)).set_index("ticker", append=True))
    return pd.concat(frames).sort_index()


def describe_failures(failed: Sequence[SyncResult]) -> str:
    """One readable line for many failures: tickers with the same cause and message grouped."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for result in failed:
        groups[(result.cause, result.message.rstrip("."))].append(result.ticker)
    parts = []
    for (cause, message), tickers in groups.items():
        parts.append(f"{', '.join(tickers)}: " + (f"{cause}; {message}" if cause else message))
    return " | ".join(parts)


def _read_or_quarantine(
    cache: PriceCache, ticker: str, holding_lock: bool = False
) -> CacheEntry | None:
    try:
        return cache.read(ticker)
    except CorruptCacheError as exc:
        if holding_lock:  # a second lock of the same file in this process would wait for itself
            moved = cache.quarantine(ticker)
        else:
            with cache.locked(ticker):
                moved = cache.quarantine(ticker)
        message = f"{exc}; moved to {moved.name} and re-fetching"
        warnings.warn(message, stacklevel=3)
        log.warning(message)
        return None


def _plan(
    ticker: str,
    entry: CacheEntry | None,
    start: dt.date,
    through: dt.date,
    refresh: bool,
    today: dt.date,
) -> _Plan | SyncResult:
    if entry is not None and entry.fetched_from <= start and entry.fetched_through >= through:
        return _result(ticker, "cached", entry.prices, fetched=0)
    if not refresh:
        if entry is None:
            return SyncResult(
                ticker,
                "failed",
                message=(
                    f"{ticker} is not cached and refreshing is off: run the ingest flow first, "
                    "or allow refresh"
                ),
            )
        return _fall_back(
            _Plan(ticker, entry, start, through, "refreshed"), "refresh is off", today
        )
    if entry is None:
        return _Plan(ticker, None, start, through, "fetched")
    if start < entry.fetched_from:
        return _Plan(ticker, entry, start, max(through, entry.fetched_through), "refetched")
    if entry.full_fetch_on is None or (today - entry.full_fetch_on).days > FULL_REFETCH_DAYS:
        # A revision older than the overlap (a dividend Yahoo recorded late) shows only in a full
        # fetch; one request per ticker a month bounds how long such a revision can go unseen.
        last = max(through, entry.fetched_through)
        return _Plan(ticker, entry, entry.fetched_from, last, "refetched")
    overlap_from = entry.last_date - dt.timedelta(days=OVERLAP_DAYS)
    return _Plan(ticker, entry, overlap_from, through, "refreshed")


def _apply(
    plan: _Plan,
    rows: pd.DataFrame,
    cache: PriceCache,
    source: YahooSource,
    group: _Group,
    entries: dict[str, CacheEntry],
) -> SyncResult:
    rows = rows.loc[: pd.Timestamp(plan.end)]
    if plan.kind == "refreshed":
        assert plan.entry is not None
        cached = plan.entry.prices
        overlap = cached.loc[pd.Timestamp(plan.start) :]
        if rows.empty and not overlap.empty:
            # Days we know had trades came back empty: Yahoo is unreachable or dropped the symbol.
            raise FetchError(f"Yahoo returned no rows for {plan.ticker}, not even cached days")
        if _disagrees(overlap, rows):
            full = _Plan(plan.ticker, None, plan.entry.fetched_from, plan.end, "refetched")
            fresh = source.fetch([plan.ticker], full.start, full.end)[plan.ticker]
            return _apply(full, fresh, cache, source, group, entries)
        new = rows.loc[rows.index > cached.index.max()]
        merged = pd.concat([cached, new])
        first = plan.entry.fetched_from
        full_fetch_on = plan.entry.full_fetch_on
    else:
        if rows.empty:
            raise NoDataError(
                f"Yahoo returned no rows for {plan.ticker} between {plan.start} and {plan.end}: "
                "the symbol may be misspelled or delisted, or there is no connection (yfinance "
                "reports both alike). Check the symbol and your connection, or use "
                "source='sample' to work offline."
            )
        new, merged, first, full_fetch_on = rows, rows, plan.start, group.today
    checked = validate_prices(
        merged.assign(ticker=plan.ticker).set_index("ticker", append=True), group.on_bad_rows
    ).droplevel("ticker")
    entry = CacheEntry(
        prices=checked,
        fetched_from=first,
        fetched_through=plan.end,
        fetched_at=pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        yfinance_version=_yfinance_version(),
        full_fetch_on=full_fetch_on,
    )
    cache.write(plan.ticker, entry)
    entries[plan.ticker] = entry
    return _result(plan.ticker, plan.kind, checked, fetched=len(new))


def _disagrees(cached: pd.DataFrame, fetched: pd.DataFrame) -> bool:
    common = cached.index.intersection(fetched.index)
    if common.empty:
        return False
    columns = list(PRICE_COLUMNS[:4])
    old = cached.loc[common, columns].to_numpy(dtype=float)
    new = fetched.loc[common, columns].to_numpy(dtype=float)
    return bool(np.nanmax(np.abs(new - old) / np.abs(old)) > TOLERANCE)


def _fall_back(
    plan: _Plan, reason: str, today: dt.date, error: Exception | None = None
) -> SyncResult:
    if plan.entry is None:
        if isinstance(error, TickerFetchError):  # the rest of its batch came: not the connection
            advice = "nothing is cached: the other tickers were fetched; fetch this one again later"
        elif isinstance(error, RateLimitedError):
            advice = "nothing is cached: Yahoo is limiting requests; wait a few minutes, then retry"
        else:
            advice = (
                "nothing is cached: check your connection, or use source='sample' to work offline"
            )
        return SyncResult(plan.ticker, "failed", cause=reason, message=advice)
    age = (today - plan.entry.last_date).days
    message = (
        f"{plan.ticker}: could not refresh ({reason}); using the cache through "
        f"{plan.entry.last_date} ({age} days old)"
    )
    warnings.warn(message, stacklevel=3)
    log.warning(message)
    return _result(plan.ticker, "stale", plan.entry.prices, fetched=0, message=message)


def _result(
    ticker: str, status: str, prices: pd.DataFrame, fetched: int, message: str = ""
) -> SyncResult:
    return SyncResult(
        ticker=ticker,
        status=status,
        rows_fetched=fetched,
        rows_cached=len(prices),
        first=str(prices.index.min().date()),
        last=str(prices.index.max().date()),
        message=message,
    )


def _yfinance_version() -> str:
    try:
        return version("yfinance")
    except PackageNotFoundError:
        return "unknown"


def ingest(
    tickers: Sequence[str],
    start: dt.date,
    end: dt.date,
    cache_dir: str | None = None,
    *,
    batch_size: int = 20,
    min_pause: float = 0.5,
    today: dt.date | None = None,
) -> list[SyncResult]:
    """Fetch ``tickers`` into the cache (the ingest flow's and ``stockpred fetch``'s one step).

    Malformed symbols and per-ticker failures come back as ``failed`` results; the rest proceed.
    """
    from stockpred.paths import cache_dir as resolve_cache_dir

    valid, results = [], {}
    for ticker in tickers:
        try:
            valid.append(check_ticker(ticker))
        except ValueError as exc:
            results[ticker] = SyncResult(ticker, "failed", message=str(exc))
    if valid:
        source = YahooSource(batch_size=batch_size, min_pause=min_pause)
        cache = PriceCache(resolve_cache_dir(cache_dir))
        for result in sync(valid, start, end, cache, source, today=today):
            results[result.ticker] = result
    return [results.get(t) or results[check_ticker(t)] for t in tickers]
