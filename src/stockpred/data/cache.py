"""A local Parquet cache of daily prices: one file per ticker, written atomically under a lock.

Each file carries what was fetched (the requested date range, when, with which yfinance) in its
Parquet metadata. A write goes to a temporary file in the same folder, is fsynced and renamed over
the old one, so a crash mid-write leaves the previous file intact; a file lock serialises writers
of the same ticker across processes. An unreadable file is reported and moved aside, never used.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock

from stockpred.data.prices import PRICE_COLUMNS, DataError, bad_row_masks
from stockpred.symbols import check_ticker

META_KEY = b"stockpred"
LOCK_TIMEOUT_S = 300


class CorruptCacheError(DataError):
    """A cache file exists but cannot be read or fails validation."""


@dataclass(frozen=True)
class CacheEntry:
    """One ticker's cached prices (date index, OHLCV) and what was fetched to make them."""

    prices: pd.DataFrame
    fetched_from: dt.date  # first requested date
    fetched_through: dt.date  # complete through this date
    fetched_at: str  # UTC ISO time of the last fetch
    yfinance_version: str
    source: str = "yfinance"

    @property
    def last_date(self) -> dt.date:
        """The last date with a row."""
        return self.prices.index.max().date()


class PriceCache:
    """Per-ticker Parquet files under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def path(self, ticker: str) -> Path:
        """The file of ``ticker``; the symbol is validated, never used raw in a path."""
        name = check_ticker(ticker)
        path = self.root / f"{name}.parquet"
        if path.parent != self.root:  # defence in depth; check_ticker already forbids / and ..
            raise ValueError(f"ticker {ticker!r} would escape the cache folder")
        return path

    def tickers(self) -> list[str]:
        """Tickers with a cache file."""
        return sorted(p.stem for p in self.root.glob("*.parquet"))

    @contextmanager
    def locked(self, *tickers: str) -> Iterator[None]:
        """Hold the cross-process locks of ``tickers`` (taken in sorted order: no deadlock)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:
            for name in sorted({check_ticker(t) for t in tickers}):
                lock = FileLock(self.root / f".{name}.lock", timeout=LOCK_TIMEOUT_S)
                stack.enter_context(lock)
            yield

    def read(self, ticker: str) -> CacheEntry | None:
        """The cached entry, None if there is none; ``CorruptCacheError`` if it is unreadable."""
        path = self.path(ticker)
        if not path.exists():
            return None
        try:
            table = pq.read_table(path)
            meta = json.loads((table.schema.metadata or {})[META_KEY])
            prices = _checked(table.to_pandas())
            return CacheEntry(
                prices=prices,
                fetched_from=dt.date.fromisoformat(meta["fetched_from"]),
                fetched_through=dt.date.fromisoformat(meta["fetched_through"]),
                fetched_at=meta["fetched_at"],
                yfinance_version=meta.get("yfinance_version", "unknown"),
                source=meta.get("source", "yfinance"),
            )
        except Exception as exc:  # any failure to read or validate means: do not use it
            raise CorruptCacheError(
                f"cache file {path} is unreadable ({type(exc).__name__}: {exc})"
            ) from exc

    def quarantine(self, ticker: str) -> Path:
        """Move a bad file aside (kept for inspection) so it is re-fetched; returns its new path."""
        path = self.path(ticker)
        target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        os.replace(path, target)
        return target

    def write(self, ticker: str, entry: CacheEntry) -> Path:
        """Atomically replace ``ticker``'s file with ``entry`` (the caller holds ``locked``)."""
        path = self.path(ticker)
        self.root.mkdir(parents=True, exist_ok=True)
        frame = entry.prices[list(PRICE_COLUMNS)].copy()
        frame.index = pd.DatetimeIndex(frame.index, name="date")
        table = pa.Table.from_pandas(frame, preserve_index=True)
        meta = {
            "ticker": check_ticker(ticker),
            "fetched_from": entry.fetched_from.isoformat(),
            "fetched_through": entry.fetched_through.isoformat(),
            "fetched_at": entry.fetched_at,
            "yfinance_version": entry.yfinance_version,
            "source": entry.source,
        }
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()}
        )
        temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            with open(temp, "wb") as handle:
                pq.write_table(table, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        _fsync_dir(self.root)
        self._remove_stale_temps(path)
        return path

    def _remove_stale_temps(self, path: Path, older_than_s: float = 600) -> None:
        # Left by writers killed before their rename; the real file is untouched by them.
        now = time.time()
        for temp in self.root.glob(f".{path.name}.*.tmp"):
            try:
                if now - temp.stat().st_mtime > older_than_s:
                    temp.unlink()
            except FileNotFoundError:
                pass


def _checked(frame: pd.DataFrame) -> pd.DataFrame:
    """The cached frame with canonical dtypes, or ``ValueError`` if any row is bad or out of order."""
    dates = pd.DatetimeIndex(frame.index, name="date").astype("datetime64[ns]")
    if not dates.is_monotonic_increasing or dates.has_duplicates:
        raise ValueError("dates are not unique and increasing")
    values = frame[list(PRICE_COLUMNS)].to_numpy(dtype="float64")
    bad = bad_row_masks(values, np.zeros(len(values), dtype=bool))
    if bad:
        raise ValueError(f"bad rows: {', '.join(f'{int(m.sum())} {w}' for w, m in bad.items())}")
    prices = pd.DataFrame(values[:, :4], index=dates, columns=list(PRICE_COLUMNS[:4]))
    prices["volume"] = values[:, 4].astype("int64")
    return prices


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
