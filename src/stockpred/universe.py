"""A synthetic stock universe for the ``files`` source: ``stockpred synth`` and benchmarks.

Each ticker's daily log return is ``mu + beta * m_t + e_t``: ``m_t`` a market factor common to
all tickers and ``e_t`` idiosyncratic noise, both GARCH(1,1) (volatility clusters) with
Student-t shocks. Prices are OHLCV as a market prints them: the open is the previous close
times an overnight gap (part of the day's return), high >= max(open, close), low <=
min(open, close), and an integer volume that rises with |return|. Dates are business days;
with ``ragged`` tickers list at different dates (the first keeps the full history).
Everything is drawn from one seeded generator, vectorised across tickers: the same arguments
give the same frame (and the same file bytes), 500 tickers x 5,000 days in about a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

LAYOUTS = ("long", "per-ticker")
FORMATS = ("parquet", "csv")
LONG_FILE = "prices"  # the long layout's file name: prices.parquet / prices.csv


def ticker_names(count: int) -> list[str]:
    """``S000``, ``S001``, ...: as many digits as the count needs (at least three)."""
    width = max(3, len(str(count - 1)))
    return [f"S{i:0{width}d}" for i in range(count)]


def synthetic_universe(
    tickers: int = 500,
    days: int = 5000,
    seed: int = 0,
    *,
    ragged: bool = False,
    start: str = "2000-01-03",
) -> pd.DataFrame:
    """Daily OHLCV of ``tickers`` synthetic stocks over ``days`` business days from ``start``,
    indexed by (date, ticker) and sorted like ``load_prices`` returns it (float64 prices,
    int64 volume). ``ragged``: each ticker after the first starts at a random date in the first
    half of the period."""
    if tickers < 1 or days < 2:
        raise ValueError(f"need at least 1 ticker and 2 days, got {tickers} and {days}")
    rng = np.random.default_rng(seed)
    n, t_len = tickers, days
    # per-ticker parameters
    beta = rng.uniform(0.5, 1.5, n)
    mu = rng.normal(0.0002, 0.0002, n)  # daily drift, ~5% a year on average
    idio_vol = rng.uniform(0.15, 0.45, n) / np.sqrt(252)  # long-run daily volatility
    alpha = rng.uniform(0.03, 0.10, n)
    persistence = rng.uniform(0.90, 0.985, n)
    first_close = np.exp(rng.normal(np.log(50), 0.8, n))
    base_volume = np.exp(rng.normal(np.log(1e6), 1.0, n))
    # shocks, unit variance Student-t(6)
    dof = 6.0
    scale = np.sqrt((dof - 2) / dof)
    market_z = rng.standard_t(dof, t_len) * scale
    idio_z = rng.standard_t(dof, (t_len, n)) * scale
    market = _garch(market_z[:, None], 0.16 / np.sqrt(252), np.array([0.08]), np.array([0.97]))
    idio = _garch(idio_z, idio_vol, alpha, persistence)
    returns = mu + beta * market + idio  # (days, tickers)
    sigma = np.sqrt((beta * 0.16 / np.sqrt(252)) ** 2 + idio_vol**2)  # typical daily volatility
    log_close = np.log(first_close) + np.cumsum(returns, axis=0)
    close = np.exp(log_close)
    previous = np.exp(np.vstack([np.log(first_close)[None, :], log_close[:-1]]))
    gap = 0.3 * returns + rng.normal(0.0, 0.2, (t_len, n)) * sigma  # overnight part of the move
    open_ = previous * np.exp(gap)
    wick = np.abs(rng.normal(0.0, 0.5, (2, t_len, n))) * sigma
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    surprise = np.abs(returns - mu) / sigma
    noise = rng.normal(0.0, 0.3, (t_len, n))
    volume = np.rint(base_volume * np.exp(0.4 * surprise + noise)).astype("int64")
    dates = pd.bdate_range(start, periods=t_len).astype("datetime64[ns]")  # as load_prices
    names = ticker_names(n)
    columns = {"open": open_, "high": high, "low": low, "close": close, "volume": volume}
    keep = np.ones((t_len, n), dtype=bool)
    if ragged and n > 1:
        first = np.concatenate([[0], rng.integers(0, t_len // 2, n - 1)])
        keep = np.arange(t_len)[:, None] >= first[None, :]
    rows, cols = np.nonzero(keep)  # date-major: sorted by (date, ticker)
    index = pd.MultiIndex.from_arrays(
        [dates[rows], pd.Index(names)[cols]], names=["date", "ticker"]
    )
    return pd.DataFrame({k: v[rows, cols] for k, v in columns.items()}, index=index)


def _garch(
    z: np.ndarray, long_run: np.ndarray | float, alpha: np.ndarray, persistence: np.ndarray
) -> np.ndarray:
    """GARCH(1,1) noise from unit shocks ``z`` (days, series): sigma2_t = omega + alpha e2_{t-1}
    + b sigma2_{t-1} with b = persistence - alpha and omega fixing the long-run variance."""
    variance_lr = np.broadcast_to(np.asarray(long_run, dtype="float64") ** 2, z.shape[1:])
    b = persistence - alpha
    omega = variance_lr * (1 - persistence)
    out = np.empty_like(z)
    variance = variance_lr.copy()
    previous = np.zeros(z.shape[1])
    for t in range(z.shape[0]):
        variance = omega + alpha * previous**2 + b * variance
        previous = out[t] = np.sqrt(variance) * z[t]
    return out


def write_universe(
    prices: pd.DataFrame, out: str | Path, layout: str = "long", fmt: str = "parquet"
) -> list[Path]:
    """Write ``prices`` under the folder ``out`` for the ``files`` source: one long file
    (``prices.parquet``/``.csv``: date, ticker, open, high, low, close, volume) or one file per
    ticker (``S000.parquet``, ...; date, open, high, low, close, volume). Returns the paths."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    folder = Path(out).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    flat = prices.reset_index()
    if fmt == "csv":  # 6 decimals (rounding is monotone: high/low still bound open/close)
        flat = flat.round({c: 6 for c in ("open", "high", "low", "close")})
    if layout == "long":
        return [_write(flat, folder / f"{LONG_FILE}.{fmt}", fmt)]
    flat = flat.sort_values(["ticker", "date"], kind="stable", ignore_index=True)
    table = _table(flat.drop(columns="ticker"))
    tickers = flat["ticker"].to_numpy()
    bounds = np.flatnonzero(tickers[1:] != tickers[:-1]) + 1
    starts, ends = np.concatenate([[0], bounds]), np.concatenate([bounds, [len(flat)]])
    return [
        _write_table(table.slice(a, b - a), folder / f"{tickers[a]}.{fmt}", fmt)
        for a, b in zip(starts, ends, strict=True)
    ]


def _table(frame: pd.DataFrame) -> pa.Table:
    """Dates as date32 (``2000-01-03`` in CSV), no pandas index."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    where = table.schema.get_field_index("date")
    return table.set_column(where, "date", table["date"].cast(pa.date32()))


def _write(frame: pd.DataFrame, path: Path, fmt: str) -> Path:
    return _write_table(_table(frame), path, fmt)


def _write_table(table: pa.Table, path: Path, fmt: str) -> Path:
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="none"))
    return path
