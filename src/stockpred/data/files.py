"""The ``files`` source: your own daily prices from Parquet or CSV files.

``path`` is one file or a folder of them (``.parquet``, ``.csv``, ``.csv.gz``). A file with a
``ticker`` column is in long format, one row per (date, ticker); a file without one holds one
ticker, named by the file (``AAPL.csv``, ``^GSPC.parquet``). Columns: ``date``, ``close``
required; ``open``, ``high``, ``low``, ``volume`` optional (close-only data load; the features
that need the others are skipped). Headers are case-insensitive (``Date``, ``Adj Close``), other
columns are ignored, and an ``adj_close`` column, if there is one, replaces ``close`` with
open/high/low scaled by the same factor (the rule of every source). Tickers are upper-cased.

Every problem is a ``DataError`` naming the file, the row (1-based, after the header; CSV lines
are given too) and the column: a missing column, a value that is not a number, a date that does
not parse, a duplicate (date, ticker), a row failing the OHLC checks of ``validate_prices``, an
empty file, a folder without data files, an unknown ticker (the message names some it has).
Tickers may start and end on different dates; each must have rows between start and end.
"""

from __future__ import annotations

import gzip
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pandas.api.types import union_categoricals

from stockpred.data.prices import PRICE_COLUMNS, DataError, UnknownTickerError, bad_row_masks
from stockpred.symbols import check_ticker

ALL = "*"  # tickers ["*"]: every ticker the files hold
SUFFIXES = (".parquet", ".csv", ".csv.gz")
ALIASES = {"symbol": "ticker", "adjclose": "adj_close", "adjusted_close": "adj_close"}
MISSING_TEXT = {"", "nan", "na", "n/a", "null", "none"}  # empty cells, not malformed numbers
# Files are read in blocks, keeping only the requested tickers' rows, so memory follows what is
# asked, not the file: a CSV line longer than a block is refused, as are more rows than MAX_ROWS.
BLOCK_BYTES = 1 << 20
MAX_ROWS = 10_000_000
# A UTC offset after a time of day ("2020-01-02T00:00:00+09:00"): dropped, so a row keeps the
# calendar day it was written for (pyarrow would move it to the UTC day; Parquet keeps it too)
OFFSET = re.compile(r"^(.*\d[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(?:Z|UTC|[+-]\d{2}:?\d{2})$")


@dataclass(frozen=True)
class _File:
    path: Path
    label: str  # as shown in messages
    columns: tuple[str, ...]  # normalised header names
    ticker: str | None  # per-ticker file: its ticker; long format: None
    names: tuple[str, ...] = ()  # header names as written
    # the file's row (0-based) of each row read, when only some were kept
    rows: np.ndarray | None = field(default=None, compare=False)

    @property
    def is_csv(self) -> bool:
        return self.path.name.lower().endswith((".csv", ".csv.gz"))


def load_files(
    path: str | Path,
    tickers: Sequence[str],
    start: pd.Timestamp,
    end: pd.Timestamp,
    on_bad_rows: str = "raise",
) -> pd.DataFrame:
    """The (date, ticker)-indexed prices of ``tickers`` in ``path`` between ``start`` and
    ``end``; columns: close and whichever of open/high/low/volume every file read has."""
    root = Path(path).expanduser()
    files = _discover(root)
    wanted = None if list(tickers) == [ALL] else [t.upper() for t in tickers]
    frames: dict[str, pd.DataFrame] = {}
    origin: dict[str, str] = {}  # ticker -> file label
    per_ticker: dict[str, _File] = {}
    seen: set[str] = set()  # every ticker the long files hold, read or not
    for file in files:
        if file.ticker is not None:
            if file.ticker in per_ticker:
                raise DataError(
                    f"{per_ticker[file.ticker].label} and {file.label} both hold {file.ticker}: "
                    "keep one file per ticker"
                )
            per_ticker[file.ticker] = file
            if wanted is not None and file.ticker not in wanted:
                continue  # not requested: not even read
        frame, holds = _read(file, wanted, on_bad_rows)
        seen.update(holds)
        if frame is None:
            continue  # none of the requested tickers
        for ticker in frame["ticker"].unique():
            if ticker in origin:
                raise DataError(
                    f"{origin[ticker]} and {file.label} both hold ticker {ticker}: keep one "
                    "file per ticker (or one long file)"
                )
            origin[ticker] = file.label
        frames[file.label] = frame
    held = sorted({*origin, *per_ticker, *seen})
    if wanted is not None:
        unknown = [t for t in wanted if t not in held]
        if unknown:
            shown = ", ".join(held[:8]) + (f", ... ({len(held)} in all)" if len(held) > 8 else "")
            raise UnknownTickerError(
                f"{root} has no ticker(s) {unknown}; it holds {shown or 'none'}. Set data.tickers "
                "to some of those (--tickers), or ['*'] for all of them."
            )
    prices = _combine(frames, [f for f in files if f.label in frames])
    return _window(prices, wanted, start, end, root)


def _discover(root: Path) -> list[_File]:
    if not root.exists():
        raise DataError(f"data path {root} does not exist: give a Parquet/CSV file or a folder")
    if root.is_dir():
        paths = sorted(p for p in root.iterdir() if _is_data_file(p))
        if not paths:
            found = sorted(p.name for p in root.iterdir())[:5]
            raise DataError(
                f"folder {root} holds no {', '.join(SUFFIXES)} files"
                + (f" (found {found})" if found else " (it is empty)")
            )
    else:
        if not root.name.lower().endswith(SUFFIXES):
            raise DataError(f"{root}: not a {', '.join(SUFFIXES)} file")
        if not root.is_file():  # a FIFO or a device: reading it would wait or never end
            raise DataError(f"{root} is not a regular file (a FIFO or device?): give a data file")
        paths = [root]
    files = []
    for path in paths:
        label = str(path if path == root else path.relative_to(root.parent))
        names = _header(path, label)
        columns = tuple(_normalise(n) for n in names)
        ticker = None
        if "ticker" not in columns:
            name = path.name[: -len(next(s for s in SUFFIXES if path.name.lower().endswith(s)))]
            try:
                ticker = check_ticker(name).upper()
            except ValueError:
                raise DataError(
                    f"{label}: no ticker column, and the file name {name!r} is not a ticker "
                    "symbol (name per-ticker files AAPL.csv, MSFT.parquet, ...)"
                ) from None
        files.append(_File(path, label, columns, ticker, names))
    return files


def _is_data_file(path: Path) -> bool:
    name = path.name
    return path.is_file() and not name.startswith(".") and name.lower().endswith(SUFFIXES)


def _normalise(name: object) -> str:
    text = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    return ALIASES.get(text, text)


def _header(path: Path, label: str) -> tuple[str, ...]:
    """The header names as written; a first line longer than a block is refused unread."""
    try:
        if path.name.lower().endswith(".parquet"):
            names = pq.read_schema(path).names
            names = [n for n in names if not n.startswith("__index_level_")]
        else:
            opener = gzip.open if path.name.lower().endswith(".gz") else open
            with opener(path, "rb") as handle:
                head = handle.read(BLOCK_BYTES + 1)
            if b"\n" not in head and len(head) > BLOCK_BYTES:
                raise DataError(
                    f"{label}: line 1 is longer than {BLOCK_BYTES // 1024} KiB (no line break): "
                    "expected a CSV file with one row per line"
                )
            names = list(pd.read_csv(path, nrows=0).columns)
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{label} is empty: expected a header row and data rows") from None
    except Exception as exc:
        raise DataError(f"{label} cannot be read ({type(exc).__name__}: {exc})") from exc
    columns = [_normalise(n) for n in names]
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise DataError(f"{label}: column(s) {twice} appear more than once (headers ignore case)")
    return tuple(str(n) for n in names)


def _where(file: _File, row: int) -> str:
    """``file row N`` (1-based data row), with the CSV line."""
    if file.rows is not None:  # the row among those kept -> the row of the file
        row = int(file.rows[row])
    line = f" (line {row + 2})" if file.is_csv else ""
    return f"{file.label} row {row + 1}{line}"


def _read(
    file: _File, wanted: list[str] | None, on_bad_rows: str
) -> tuple[pd.DataFrame | None, set[str]]:
    """One file's rows of ``wanted`` as columns date, ticker, close and the optional price
    columns it has (None if it holds none of them), and every ticker it holds."""
    try:
        table, rows, holds = _scan(file, wanted)
        raw = table.to_pandas(date_as_object=False)
        if any(name is not None for name in raw.index.names):
            raw = raw.reset_index()  # e.g. a saved load_prices frame: (date, ticker) index
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{file.label} cannot be read ({type(exc).__name__}: {exc})") from exc
    if rows is not None:
        if not len(rows) and holds:
            return None, holds
        file = replace(file, rows=rows)
    raw.columns = [_normalise(c) for c in raw.columns]
    need = ["date", "close"] + (["ticker"] if file.ticker is None else [])
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise DataError(
            f"{file.label}: no {', '.join(missing)} column (it has {list(raw.columns)}); expected "
            "date, ticker, close and optionally open, high, low, volume (ticker only in a long "
            "file; headers ignore case)"
        )
    if raw.empty:
        raise DataError(f"{file.label} is empty: it has a header but no rows")
    out = pd.DataFrame({"date": _dates(file, raw["date"])})
    if file.ticker is not None:
        if "ticker" in raw.columns:
            named = raw["ticker"].astype(str).str.strip().str.upper()
            other = np.flatnonzero((named != file.ticker).to_numpy())
            if len(other):
                raise DataError(
                    f"{_where(file, int(other[0]))}: ticker is {named.iloc[other[0]]!r} in a "
                    f"file named for {file.ticker}"
                )
        out["ticker"] = pd.Categorical.from_codes(np.zeros(len(out), dtype="int8"), [file.ticker])
    else:
        out["ticker"] = _tickers(file, raw["ticker"])
    columns = [c for c in PRICE_COLUMNS if c in raw.columns]
    for column in [*columns, *(["adj_close"] if "adj_close" in raw.columns else [])]:
        out[column] = _numbers(file, raw[column], column)
    if "adj_close" in out:
        factor = out.pop("adj_close") / out["close"]
        for column in ("open", "high", "low"):
            if column in out:
                out[column] = out[column] * factor
        out["close"] = out["close"] * factor
    _check_rows(file, out, columns, on_bad_rows)
    return out, holds


def _scan(file: _File, wanted: list[str] | None) -> tuple[pa.Table, np.ndarray | None, set[str]]:
    """The file read block by block keeping the rows of ``wanted`` tickers (all when None or a
    per-ticker file): the table, each kept row's row in the file (None: all kept), the tickers
    the file holds."""
    ticker = next((n for n in file.names if _normalise(n) == "ticker"), None)
    keep = None if wanted is None or file.ticker is not None or ticker is None else wanted
    batches: list[pa.RecordBatch] = []
    rows: list[np.ndarray] = []
    holds: set[str] = set()
    offset = kept = 0
    schema = None
    for batch in _batches(file):
        schema = batch.schema
        if keep is not None and ticker is not None:
            names = pc.utf8_upper(pc.utf8_trim_whitespace(pc.cast(batch[ticker], pa.string())))
            for name in set(pc.unique(names).to_pylist()) - holds:
                _check_held(file, name, offset, names)
                holds.add(name)
            mask = pc.fill_null(pc.is_in(names, value_set=pa.array(keep)), False)
            where = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
            batch = batch.take(pa.array(where))
            rows.append(offset + where)
        else:
            rows.append(offset + np.arange(batch.num_rows))
        offset += batch.num_rows
        kept += batch.num_rows
        if kept > MAX_ROWS:
            raise DataError(
                f"{file.label}: more than {MAX_ROWS:,} rows of the requested tickers: ask for "
                "fewer tickers (data.tickers), or split the file"
            )
        batches.append(batch)
    if schema is None:  # no rows: the header's columns, as text
        schema = pa.schema([(n, pa.string()) for n in file.names])
    table = pa.Table.from_batches(batches, schema=schema)
    every = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    return table, (None if keep is None else every), holds


def _check_held(file: _File, name: str | None, offset: int, names: pa.Array) -> None:
    """A ticker cell of a row not read must still be a ticker: a typo would drop rows."""
    try:
        check_ticker(name or "")
    except ValueError:
        at = (
            pc.index(names, name).as_py()
            if name is not None
            else pc.index(pc.is_null(names), True).as_py()
        )
        what = "ticker is empty" if not name else f"ticker {name!r} is not a ticker symbol"
        where = _where(replace(file, rows=None), offset + int(at))
        raise DataError(f"{where}: {what} (1-20 letters, digits and . - ^ =)") from None


def _batches(file: _File) -> Iterator[pa.RecordBatch]:
    """The file's record batches, one block at a time; CSV cells as text (parsed, with the row
    named on error, by ``_dates`` and ``_numbers``)."""
    if not file.is_csv:
        yield from pq.ParquetFile(file.path).iter_batches(batch_size=65_536)
        return
    try:
        reader = pacsv.open_csv(
            file.path,
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES, use_threads=False),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in file.names}, strings_can_be_null=False
            ),
        )
        yield from reader
    except pa.ArrowInvalid as exc:
        if "straddling" in str(exc):
            raise DataError(
                f"{file.label}: a line is longer than {BLOCK_BYTES // 1024} KiB: expected a CSV "
                "file with one row per line"
            ) from None
        raise DataError(f"{file.label} cannot be read: {_csv_error(file.path, exc)}") from None


def _csv_error(path: Path, error: Exception) -> str:
    """pandas' message for a malformed CSV (it names the line), read in chunks; else ``error``."""
    try:
        for _ in pd.read_csv(path, dtype=str, chunksize=100_000):
            pass
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return f"{type(error).__name__}: {error}"


def _dates(file: _File, column: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        dates = pd.DatetimeIndex(column)
        text = None
    else:
        text = column.astype(str).str.strip().str.replace(OFFSET, r"\1", regex=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "could not infer format": bad rows are named below
            dates = pd.DatetimeIndex(pd.to_datetime(text, errors="coerce"))
    if dates.tz is not None:
        dates = dates.tz_localize(None)
    bad = np.flatnonzero(dates.isna())
    if len(bad):
        value = "" if text is None else text.iloc[bad[0]]
        what = f"date is not a date ({value!r})" if value else "date is empty"
        more = f" (and {len(bad) - 1} more row(s))" if len(bad) > 1 else ""
        raise DataError(f"{_where(file, int(bad[0]))}: {what}{more}; use YYYY-MM-DD")
    return dates.normalize().astype("datetime64[ns]").to_numpy()


def _tickers(file: _File, column: pd.Series) -> pd.Categorical:
    codes, uniques = pd.factorize(column, use_na_sentinel=False)
    names = []
    for code, value in enumerate(uniques):
        name = "" if pd.isna(value) else str(value).strip()
        try:
            names.append(check_ticker(name).upper())
        except ValueError:
            row = int(np.flatnonzero(codes == code)[0])
            what = "ticker is empty" if not name else f"ticker {name!r} is not a ticker symbol"
            raise DataError(
                f"{_where(file, row)}: {what} (1-20 letters, digits and . - ^ =)"
            ) from None
    upper, merged = pd.factorize(pd.Index(names))  # "aapl" and "AAPL" are one ticker
    return pd.Categorical.from_codes(upper[codes], merged)


def _numbers(file: _File, column: pd.Series, name: str) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column):
        return column.to_numpy(dtype="float64", na_value=np.nan)
    text = column.astype(str).str.strip()
    values = pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce")
    values = values.to_numpy(dtype="float64", na_value=np.nan)
    bad = np.flatnonzero(np.isnan(values) & ~text.str.lower().isin(MISSING_TEXT).to_numpy())
    if len(bad):
        more = f" (and {len(bad) - 1} more row(s))" if len(bad) > 1 else ""
        raise DataError(
            f"{_where(file, int(bad[0]))}: {name} is not a number ({text.iloc[bad[0]]!r}){more}"
        )
    return values


def _check_rows(file: _File, frame: pd.DataFrame, columns: list[str], on_bad_rows: str) -> None:
    """Duplicates, and (unless bad rows are to be dropped later) the OHLC checks, by row."""
    days = frame["date"].to_numpy().astype("datetime64[D]").astype("int64")
    codes, uniques = pd.factorize(frame["ticker"])
    key = pd.Series((days - days.min()) * len(uniques) + codes)
    duplicated = key.duplicated(keep=False).to_numpy()
    if duplicated.any():
        first = key[duplicated].iloc[0]
        rows = np.flatnonzero((key == first).to_numpy())
        raise DataError(
            f"{file.label} rows {rows[0] + 1} and {rows[1] + 1}: duplicate (date, ticker) "
            f"({pd.Timestamp(frame['date'].iloc[rows[0]]).date()}, {frame['ticker'].iloc[rows[0]]})"
        )
    if on_bad_rows != "raise":
        return  # validate_prices drops them with a warning
    values = np.column_stack(
        [frame[c].to_numpy() if c in frame else np.full(len(frame), np.nan) for c in PRICE_COLUMNS]
    )
    present = np.array([c in columns for c in PRICE_COLUMNS])
    bad = bad_row_masks(values, np.zeros(len(frame), dtype=bool), present)
    if bad:
        what, mask = next(iter(bad.items()))
        row = int(np.flatnonzero(mask)[0])
        named = [(c, values[row, i]) for i, c in enumerate(PRICE_COLUMNS) if present[i]]
        shown = ", ".join(f"{c}={v:g}" for c, v in named)
        total = int(np.logical_or.reduce(list(bad.values())).sum())
        more = f"; {total - 1} more bad row(s)" if total > 1 else ""
        raise DataError(
            f"{_where(file, row)} ({pd.Timestamp(frame['date'].iloc[row]).date()} "
            f"{frame['ticker'].iloc[row]}): {what} ({shown}){more}. Fix the file, or set "
            "data.on_bad_rows='drop' to drop bad rows with a warning."
        )


def _combine(frames: dict[str, pd.DataFrame], files: list[_File]) -> pd.DataFrame:
    """One long frame; a price column some file lacks is left out of all (with a warning)."""
    if not frames:
        raise DataError("no file holds a requested ticker")
    have = {label: {c for c in PRICE_COLUMNS if c in f} for label, f in frames.items()}
    common = set.intersection(*have.values())
    dropped = sorted(set.union(*have.values()) - common, key=PRICE_COLUMNS.index)
    if dropped:
        lacking = [label for label, cols in have.items() if not set(dropped) <= cols][:3]
        warnings.warn(
            f"{', '.join(lacking)} lack(s) {'/'.join(dropped)}: those columns are left out for "
            "every ticker",
            stacklevel=4,
        )
    keep = ["date", "ticker", *(c for c in PRICE_COLUMNS if c in common)]
    tickers = union_categoricals([f["ticker"].array for f in frames.values()])
    prices = pd.concat([f[keep[2:]] for f in frames.values()], ignore_index=True)
    dates = np.concatenate([f["date"].to_numpy() for f in frames.values()])
    return prices.assign(date=dates, ticker=tickers)[keep]


def _window(
    prices: pd.DataFrame,
    wanted: list[str] | None,
    start: pd.Timestamp,
    end: pd.Timestamp,
    root: Path,
) -> pd.DataFrame:
    if wanted is not None:
        prices = prices[prices["ticker"].isin(wanted)]
    dates = prices["date"]
    inside = prices[(dates >= start) & (dates <= end)]
    spans = prices.groupby("ticker", observed=True)["date"].agg(["min", "max"])
    seen = set(inside["ticker"].unique())
    empty = [t for t in (wanted or list(spans.index)) if t not in seen]
    if empty and (wanted is not None or len(empty) == len(spans)):
        ticker = empty[0]
        raise DataError(
            f"{ticker}: no rows between {start.date()} and {end.date()} in {root}; it covers "
            f"{spans.loc[ticker, 'min'].date()} to {spans.loc[ticker, 'max'].date()}"
            + (f" ({len(empty) - 1} more ticker(s) likewise)" if len(empty) > 1 else "")
        )
    if empty:
        warnings.warn(
            f"{len(empty)} ticker(s) of {root} have no rows between {start.date()} and "
            f"{end.date()} and are left out: {', '.join(empty[:5])}",
            stacklevel=4,
        )
    return inside.set_index(["date", "ticker"])
