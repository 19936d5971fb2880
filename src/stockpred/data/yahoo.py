"""The live source: daily OHLCV from Yahoo via yfinance, with retries, backoff and a rate limit.

yfinance's ``download`` swallows per-ticker errors and only logs them; ``YahooSource`` reads those
log records back and turns rate limits and transport failures into exceptions it can retry. A batch
that still fails is retried ticker by ticker, so one bad ticker fails alone, not its whole batch.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import pandas as pd

from stockpred.data.prices import DataError

log = logging.getLogger(__name__)
Download = Callable[..., pd.DataFrame]
YF_COLUMNS = {"Open": "open", "High": "high", "Low": "low", "Close": "close", "Volume": "volume"}
_RATE_LIMIT_MARKERS = ("YFRateLimitError", "Too Many Requests", "Rate limited")
_NETWORK_MARKERS = (
    "Could not resolve host",
    "Failed to perform",
    "Connection",
    "Timeout",
    "timed out",
    "curl: (",
)
# What yfinance 1.x logs when the price request itself failed (timed out, refused, cut off) after
# the ticker's timezone came from its tz cache: PriceHistory.history swallows the exception,
# finds no JSON and raises YFPricesMissingError -> "possibly delisted; no price data found  (1d
# <start> -> <end>)". A symbol Yahoo does not know never gets there: its timezone lookup fails
# first ("no timezone found"), and a known but delisted one gets Yahoo's own reason ("No data
# found, symbol may be delisted") without the "possibly delisted" guess. So this text means: no
# answer, retry; a valid symbol whose range simply has no trading day ends, after the retries,
# as a FetchError too (our refreshes always overlap cached trading days, so that is rare).
_NO_ANSWER_MARKERS = ("possibly delisted; no price data found",)
ISOLATE_GIVE_UP = 2  # tickers fetched alone, all failing, before the rest of the batch is given up


class FetchError(DataError):
    """Yahoo could not be reached (after retries); the message says what to do."""


class RateLimitedError(FetchError):
    """Yahoo kept answering 'Too Many Requests'."""


class TickerFetchError(FetchError):
    """One ticker failed on its own, where others of its batch were fetched."""


class _Pacer:
    """At least ``pause`` seconds between the starts of two requests, across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0.0

    def wait(self, pause: float, sleep: Callable[[float], None]) -> None:
        with self._lock:
            delay = self._last + pause - time.monotonic()
            if delay > 0:
                sleep(delay)
            self._last = time.monotonic()


_PACER = _Pacer()  # one per process: concurrent Prefect tasks share Yahoo's rate limit


@dataclass
class YahooSource:
    """Fetch adjusted daily OHLCV for many tickers in batches, politely and with retries."""

    download: Download | None = None  # yfinance.download's signature; injected in tests
    batch_size: int = 20
    retries: int = 3
    backoff: float = 2.0  # seconds before the first retry, doubled each time
    max_backoff: float = 60.0
    jitter: float = 0.5  # +- fraction of each backoff, so parallel clients spread out
    min_pause: float = 0.5  # seconds between requests
    sleep: Callable[[float], None] = time.sleep
    calls: int = field(default=0, init=False)

    def fetch(
        self, tickers: Sequence[str], start: dt.date, end: dt.date
    ) -> dict[str, pd.DataFrame]:
        """Rows of ``start``..``end`` (inclusive) per ticker; an empty frame where Yahoo had none."""
        out: dict[str, pd.DataFrame] = {}
        for first in range(0, len(tickers), self.batch_size):
            batch = list(tickers[first : first + self.batch_size])
            raw = self._with_retries(batch, start, end)
            out.update(normalise(raw, batch))
        return out

    def fetch_each(
        self, tickers: Sequence[str], start: dt.date, end: dt.date
    ) -> tuple[dict[str, pd.DataFrame], dict[str, FetchError]]:
        """Like ``fetch``, but a batch that fails (after its retries) is fetched again ticker by
        ticker: the good ones come back as rows, each bad one as its own ``FetchError``."""
        rows: dict[str, pd.DataFrame] = {}
        errors: dict[str, FetchError] = {}
        for first in range(0, len(tickers), self.batch_size):
            batch = list(tickers[first : first + self.batch_size])
            try:
                rows.update(normalise(self._with_retries(batch, start, end), batch))
            except FetchError as exc:
                if len(batch) == 1:
                    errors[batch[0]] = exc
                    continue
                log.info(
                    "batch of %d failed (%s); fetching its tickers one by one", len(batch), exc
                )
                self._isolate(batch, start, end, exc, rows, errors)
        return rows, errors

    def _isolate(
        self,
        batch: list[str],
        start: dt.date,
        end: dt.date,
        batch_error: FetchError,
        rows: dict[str, pd.DataFrame],
        errors: dict[str, FetchError],
    ) -> None:
        alone: dict[str, FetchError] = {}
        for done, ticker in enumerate(batch):
            if done >= ISOLATE_GIVE_UP and len(alone) == done:
                # Each one fails alone too: Yahoo is down or limiting us, not one bad ticker.
                alone.update({t: batch_error for t in batch[done:]})
                break
            try:
                rows.update(normalise(self._with_retries([ticker], start, end), [ticker]))
            except FetchError as exc:
                alone[ticker] = exc
        if len(alone) == len(batch):  # nothing came: the errors are about Yahoo, not the tickers
            errors.update(alone)
            return
        for ticker, failure in alone.items():
            errors[ticker] = TickerFetchError(str(failure))
            errors[ticker].__cause__ = failure

    def _with_retries(self, batch: list[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            _PACER.wait(self.min_pause, self.sleep)
            try:
                return self._download(batch, start, end)
            except (RateLimitedError, FetchError) as exc:
                if attempt == self.retries:
                    raise type(exc)(f"{exc}, {self.retries + 1} attempts") from exc
                spread = 1 + random.uniform(-self.jitter, self.jitter)
                self.sleep(min(delay, self.max_backoff) * spread)
                delay *= 2
        raise AssertionError("unreachable")

    def _download(self, batch: list[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        download = self.download or _yfinance_download()
        self.calls += 1
        with _yfinance_errors() as errors, warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="yfinance")  # its pandas deprecations
            try:
                raw = download(
                    batch,
                    start=pd.Timestamp(start).strftime("%Y-%m-%d"),
                    end=(pd.Timestamp(end) + pd.Timedelta(days=1)).strftime("%Y-%m-%d"),
                    interval="1d",
                    auto_adjust=True,
                    multi_level_index=True,
                    actions=False,
                    progress=False,
                    threads=True,
                )
            except Exception as exc:
                _raise_classified(f"{type(exc).__name__}: {exc}", batch)
                raise FetchError(f"yfinance failed for {batch}: {exc!r}") from exc
        for message in errors:
            _raise_classified(message, batch)
        return raw


def _yfinance_download() -> Download:
    import yfinance

    return yfinance.download


def _raise_classified(message: str, batch: list[str]) -> None:
    if any(marker in message for marker in _RATE_LIMIT_MARKERS):
        raise RateLimitedError(f"Yahoo rate-limited the request for {', '.join(batch)}")
    if any(marker in message for marker in _NO_ANSWER_MARKERS):
        # yfinance logs "$AAA: ..." per ticker, then "['AAA', 'BBB']: ..." in its summary
        named = re.match(r"\s*(?:\[([^\]]*)\]|\$(\S+)):", message)
        who = (named.group(1) or named.group(2)).replace("'", "") if named else ", ".join(batch)
        raise FetchError(
            f"Yahoo sent no price data for {who} (yfinance: 'possibly delisted; no price data "
            "found', which it also says when the request timed out)"
        )
    if any(marker in message for marker in _NETWORK_MARKERS):
        curl = re.search(r"curl: \(\d+\) [^(]*", message)  # e.g. "Could not resolve host: ..."
        detail = (curl.group(0) if curl else message.strip()[:160]).strip()
        raise FetchError(f"could not reach Yahoo ({detail})")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _yfinance_errors() -> Iterator[list[str]]:
    """Collect what yfinance logs at ERROR during the block (its per-ticker failures)."""
    logger = logging.getLogger("yfinance")
    handler = _Collect()
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def normalise(raw: pd.DataFrame | None, tickers: Sequence[str]) -> dict[str, pd.DataFrame]:
    """yfinance's (Price, Ticker) frame -> per ticker: date index, open/high/low/close/volume.

    Rows that are all NaN (a ticker's non-trading days in a multi-ticker download) are dropped;
    a ticker with no rows gets an empty frame.
    """
    out = {}
    for ticker in tickers:
        frame = _ticker_columns(raw, ticker)
        frame = frame.rename(columns=YF_COLUMNS)[list(YF_COLUMNS.values())]
        frame = frame.dropna(how="all")
        index = pd.DatetimeIndex(frame.index)
        if index.tz is not None:
            index = index.tz_localize(None)
        frame.index = index.normalize().astype("datetime64[ns]").rename("date")
        out[ticker] = frame.sort_index()
    return out


def _ticker_columns(raw: pd.DataFrame | None, ticker: str) -> pd.DataFrame:
    empty = pd.DataFrame(
        columns=list(YF_COLUMNS), index=pd.DatetimeIndex([], name="Date"), dtype=float
    )
    if raw is None or raw.empty:
        return empty
    if isinstance(raw.columns, pd.MultiIndex):
        level = "Ticker" if "Ticker" in raw.columns.names else raw.columns.nlevels - 1
        symbols = raw.columns.get_level_values(level)
        if ticker.upper() not in set(symbols):
            return empty
        frame = raw.xs(ticker.upper(), axis=1, level=level)
    else:
        frame = raw
    missing = [c for c in YF_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"{ticker}: yfinance returned no {missing} columns (got {list(frame.columns)})"
        )
    return frame[list(YF_COLUMNS)].astype(float)
