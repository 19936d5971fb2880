"""A local Parquet cache of daily prices: one file per ticker, written atomically under a lock.

Each file carries what was fetched (the requested date range, when, with which yfinance) in its
Parquet metadata. A write goes to a temporary file in the same folder, is fsynced and renamed over
the old one, so a crash mid-write leaves the previous file intact; a file lock serialises writers
of the same ticker across processes. An unreadable file is reported and moved aside, never used.
Every filesystem failure (a read-only or full disk, a cache path that is a file, a lock held too
long) is a ``CacheWriteError`` naming the path and what to do, never a raw ``OSError``.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import socket
import stat
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from stockpred.data.prices import PRICE_COLUMNS, DataError, bad_row_masks
from stockpred.symbols import check_ticker

META_KEY = b"stockpred"
# Seconds to wait for another process's lock of a ticker. A healthy holder keeps it for one batch
# download (seconds); longer means a stuck or hung process, which is better reported than awaited.
LOCK_TIMEOUT_S = 60.0


class CorruptCacheError(DataError):
    """A cache file exists but cannot be read or fails validation."""


class CacheWriteError(DataError):
    """The cache folder cannot be written (read-only, full, not a folder); names the path."""


class CacheLockError(CacheWriteError):
    """Another process held a ticker's lock longer than ``LOCK_TIMEOUT_S``."""


def describe_os_error(exc: OSError, path: Path) -> str:
    """One line: what went wrong with ``path`` and what to do about it."""
    code = exc.errno
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        what = "is not writable (read-only or permission denied)"
        todo = "make it writable, or choose another folder with --cache-dir / data.cache_dir"
    elif code in (errno.ENOSPC, errno.EDQUOT):
        what = "cannot be written: the disk is full (or over quota)"
        todo = "free some space, or choose another folder with --cache-dir / data.cache_dir"
    elif code in (errno.ENOTDIR, errno.EEXIST):
        what = "is not a folder (a file is in the way)"
        todo = "move that file away, or choose another folder with --cache-dir / data.cache_dir"
    else:
        what = f"failed ({exc.strerror or exc})"
        todo = "check the folder and its disk, or choose another with --cache-dir / data.cache_dir"
    return f"price cache {path} {what}: {todo}"


@dataclass(frozen=True)
class CacheEntry:
    """One ticker's cached prices (date index, OHLCV) and what was fetched to make them."""

    prices: pd.DataFrame
    fetched_from: dt.date  # first requested date
    fetched_through: dt.date  # complete through this date
    fetched_at: str  # UTC ISO time of the last fetch
    yfinance_version: str
    source: str = "yfinance"
    full_fetch_on: dt.date | None = None  # when the whole history was last fetched (None: unknown)

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
        """Hold the cross-process locks of ``tickers`` (taken in sorted order: no deadlock);
        ``CacheLockError`` after ``LOCK_TIMEOUT_S`` seconds, ``CacheWriteError`` if the folder
        cannot hold lock files."""
        self._make_root()
        with ExitStack() as stack:
            for name in sorted({check_ticker(t) for t in tickers}):
                path = self.root / f".{name}.lock"
                try:
                    stack.enter_context(FileLock(path, timeout=LOCK_TIMEOUT_S))
                except Timeout:
                    holder = _read_holder(path)
                    raise CacheLockError(
                        f"the cache lock {path} was held by another process"
                        f"{f' ({holder})' if holder else ''} for over {LOCK_TIMEOUT_S:g} s: wait "
                        "for it to finish, or end it if it is stuck, then run again"
                    ) from None
                except OSError as exc:
                    raise CacheWriteError(describe_os_error(exc, path)) from exc
                _write_holder(path)
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
                full_fetch_on=_date_or_none(meta.get("full_fetch_on")),
            )
        except Exception as exc:  # any failure to read or validate means: do not use it
            raise CorruptCacheError(
                f"cache file {path} is unreadable ({type(exc).__name__}: {exc})"
            ) from exc

    def quarantine(self, ticker: str) -> Path:
        """Move a bad file aside (kept for inspection) so it is re-fetched; returns its new path."""
        path = self.path(ticker)
        target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            os.replace(path, target)
        except OSError as exc:
            raise CacheWriteError(describe_os_error(exc, path)) from exc
        return target

    def write(self, ticker: str, entry: CacheEntry) -> Path:
        """Atomically replace ``ticker``'s file with ``entry`` (the caller holds ``locked``)."""
        path = self.path(ticker)
        self._make_root()
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
            "full_fetch_on": entry.full_fetch_on.isoformat() if entry.full_fetch_on else None,
        }
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()}
        )
        temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            try:
                with open(temp, "wb") as handle:
                    pq.write_table(table, handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, path)
            finally:
                temp.unlink(missing_ok=True)
            _fsync_dir(self.root)
        except OSError as exc:  # the previous file, if any, is intact: the rename did not happen
            raise CacheWriteError(describe_os_error(exc, path)) from exc
        self._remove_stale_temps(path)
        return path

    def _make_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # e.g. FileExistsError: the cache path is a file
            raise CacheWriteError(describe_os_error(exc, self.root)) from exc

    def _remove_stale_temps(self, path: Path, older_than_s: float = 600) -> None:
        # Left by writers killed before their rename; the real file is untouched by them.
        now = time.time()
        for temp in self.root.glob(f".{path.name}.*.tmp"):
            try:
                if now - temp.stat().st_mtime > older_than_s:
                    temp.unlink()
            except OSError:  # already gone, or not ours to remove: harmless either way
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


def _date_or_none(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def _write_holder(lock: Path) -> None:
    # Best effort: who holds the lock, so a process that times out waiting can name it. Written
    # to a fresh file (O_EXCL | O_NOFOLLOW) renamed over the note: a rename replaces a symlink
    # planted under the note's name instead of writing through it into its target.
    note = lock.with_suffix(".holder")
    temp = note.with_name(f"{note.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    text = (
        f"pid {os.getpid()} on {socket.gethostname()} since "
        f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}"
    )
    with suppress(OSError):
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
        try:
            os.rename(temp, note)  # POSIX: replaces the name (a symlink too), atomically
        finally:
            with suppress(FileNotFoundError):
                temp.unlink()


def _read_holder(lock: Path) -> str:
    # Never through a symlink, nor from a FIFO or a device (O_NONBLOCK, a regular file only)
    try:
        fd = os.open(lock.with_suffix(".holder"), os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, 200).decode(errors="replace").strip()
    except OSError:
        return ""
    finally:
        os.close(fd)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
