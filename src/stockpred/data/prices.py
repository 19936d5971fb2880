"""The long price format every source returns, its validation, and the data errors."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
OPTIONAL_COLUMNS = ("open", "high", "low", "volume")  # a source may lack them (close-only data)


class DataError(ValueError):
    """Market data is missing or malformed; the message says what and what to do."""


class UnknownTickerError(DataError):
    """A ticker the chosen source does not have."""


def validate_prices(
    prices: pd.DataFrame,
    on_bad_rows: str = "raise",
    max_gap_days: int | None = 10,
    *,
    required: Sequence[str] = PRICE_COLUMNS,
) -> pd.DataFrame:
    """Check schema and OHLC sanity; return the frame with canonical dtypes, sorted.

    Bad rows (non-finite or non-positive prices, high below open/close, low above them, negative
    or missing volume, duplicated dates) raise a ``DataError`` that counts them and shows the
    first few, or with ``on_bad_rows="drop"`` are dropped with a warning. Gaps longer than
    ``max_gap_days`` business days are reported as warnings.

    Columns not in ``required`` (``close`` always is) may be absent from ``prices``: they come
    back entirely NaN (volume then float64, else int64) and only the present ones are checked,
    e.g. close-only data. ``present_columns`` tells which a validated frame has.
    """
    if on_bad_rows not in ("raise", "drop"):
        raise ValueError(f"on_bad_rows must be 'raise' or 'drop', got {on_bad_rows!r}")
    needed = {"close", *required}
    missing = [c for c in PRICE_COLUMNS if c in needed and c not in prices.columns]
    if missing:
        raise DataError(f"price data lacks column(s) {missing}; expected {list(PRICE_COLUMNS)}")
    present = np.array([c in prices.columns for c in PRICE_COLUMNS])
    if list(prices.index.names) != ["date", "ticker"]:
        raise DataError(f"price index must be (date, ticker), got {list(prices.index.names)}")
    if prices.empty:
        raise DataError("price data is empty")
    dates = pd.DatetimeIndex(prices.index.get_level_values("date"))
    if dates.tz is not None:
        dates = dates.tz_localize(None)
    tickers = prices.index.get_level_values("ticker").astype(str)
    values = np.column_stack([_numbers(prices, c) for c in PRICE_COLUMNS])
    index = pd.MultiIndex.from_arrays(
        [dates.astype("datetime64[ns]"), tickers], names=["date", "ticker"]
    )
    order = np.lexsort((index.codes[1], index.get_level_values(0).asi8))
    if not (order == np.arange(len(order))).all():
        index, values = index[order], values[order]
    out = pd.DataFrame(values, index=index, columns=list(PRICE_COLUMNS))
    bad = bad_row_masks(values, index.duplicated(keep=False), present)
    if bad:
        total = np.logical_or.reduce(list(bad.values()))
        details = "; ".join(
            f"{int(mask.sum())} with {what} (e.g. {_show(out.index[mask][:3])})"
            for what, mask in bad.items()
        )
        if on_bad_rows == "raise":
            raise DataError(
                f"{int(total.sum())} bad row(s) of {len(out)}: {details}. Fix the source, or set "
                "data.on_bad_rows='drop' to drop them with a warning."
            )
        warnings.warn(f"dropped {int(total.sum())} bad row(s): {details}", stacklevel=2)
        out = out[~total]
        if out.empty:
            raise DataError("every row was bad; nothing is left")
    if max_gap_days is not None:
        _warn_gaps(out, max_gap_days)
    if present[4]:
        out["volume"] = out["volume"].astype("int64")
    return out


def _numbers(prices: pd.DataFrame, column: str) -> np.ndarray:
    if column not in prices:
        return np.full(len(prices), np.nan)
    return pd.to_numeric(prices[column], errors="coerce").to_numpy(dtype="float64")


def present_columns(prices: pd.DataFrame) -> tuple[str, ...]:
    """The price columns ``prices`` has values in (absent ones are missing or entirely NaN)."""
    return tuple(c for c in PRICE_COLUMNS if c in prices and prices[c].notna().any())


def bad_row_masks(
    values: np.ndarray, duplicated: np.ndarray, present: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Row masks of each problem in (rows, open/high/low/close/volume) ``values``; only non-empty.

    ``present`` (five booleans, default all) marks the columns the data have; absent ones are
    not checked (the high/low checks then compare with whichever of open and close exist)."""
    have = np.ones(5, dtype=bool) if present is None else np.asarray(present, dtype=bool)
    prices = [i for i in range(4) if have[i]]
    ohlc, volume = values[:, prices], values[:, 4]
    open_close = values[:, [i for i in (0, 3) if have[i]]]
    tol = 1e-6  # Yahoo rounds highs and lows; a relative slack avoids flagging float noise
    no = np.zeros(len(values), dtype=bool)
    with np.errstate(invalid="ignore"):
        high_low = open_close.max(axis=1) * (1 - tol), open_close.min(axis=1) * (1 + tol)
        checks = {
            "all values missing": np.isnan(values[:, have]).all(axis=1),
            "non-finite or non-positive price": ~(np.isfinite(ohlc) & (ohlc > 0)).all(axis=1),
            "high below open/close": values[:, 1] < high_low[0] if have[1] else no,
            "low above open/close": values[:, 2] > high_low[1] if have[2] else no,
            "negative or missing volume": ~(np.isfinite(volume) & (volume >= 0)) if have[4] else no,
            "duplicate (date, ticker)": np.asarray(duplicated, dtype=bool),
        }
    return {what: mask for what, mask in checks.items() if mask.any()}


def _show(index: pd.Index) -> str:
    return ", ".join(f"{d.date()} {t}" for d, t in index)


def _warn_gaps(out: pd.DataFrame, max_gap_days: int) -> None:
    for ticker, part in out.groupby(level="ticker", sort=False):
        dates = part.index.get_level_values("date").to_numpy(dtype="datetime64[D]")
        if len(dates) < 2:
            continue
        gaps = np.busday_count(dates[:-1], dates[1:]) - 1  # business days without a row
        long = np.flatnonzero(gaps > max_gap_days)
        if len(long):
            shown = ", ".join(f"{dates[i]}..{dates[i + 1]}" for i in long[:3])
            warnings.warn(
                f"{ticker}: {len(long)} gap(s) longer than {max_gap_days} business days ({shown})",
                stacklevel=3,
            )


STALE_OPEN_SHARE = 0.5  # a year whose open equals the previous close on more days is stale


def stale_open_years(
    prices: pd.DataFrame, threshold: float = STALE_OPEN_SHARE
) -> dict[str, list[int]]:
    """The calendar years, per ticker, whose open equals the previous close (to 1e-6 relative) on
    more than ``threshold`` of the days: a stale open (e.g. Yahoo's ^GSPC before 2007), which
    makes estimators using the open (Garman-Klass, Rogers-Satchell, Yang-Zhang) wrong. Tickers
    without open prices or without a stale year are left out."""
    out: dict[str, list[int]] = {}
    if "open" not in prices or prices["open"].isna().all():
        return out
    for ticker, part in prices.groupby(level="ticker", sort=False):
        part = part.sort_index(level="date")
        previous = part["close"].shift(1)
        stale = (part["open"] - previous).abs() <= 1e-6 * previous
        stale = stale[previous.notna() & part["open"].notna()]
        if stale.empty:
            continue
        years = pd.DatetimeIndex(stale.index.get_level_values("date")).year
        share = stale.groupby(years).mean()
        bad = [int(y) for y, s in share.items() if s > threshold]
        if bad:
            out[str(ticker)] = bad
    return out


def require_fresh_open(prices: pd.DataFrame, estimator: str, needs_open: bool) -> None:
    """Refuse an estimator that needs the open (``needs_open``) on data whose open is stale."""
    if not needs_open:
        return
    stale = stale_open_years(prices)
    if stale:
        shown = "; ".join(f"{t}: {min(y)}-{max(y)} ({len(y)} year(s))" for t, y in stale.items())
        raise DataError(
            f"estimator {estimator!r} needs the open, but the open equals the previous close on "
            f"most days of {shown}: a stale open. Use target.estimator parkinson or "
            "squared_return (no open), or start after the stale years (e.g. --start 2007-01-01 "
            "for ^GSPC)."
        )
