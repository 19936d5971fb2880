"""Reading the price cache: 50 tickers x 20 years, through ``load_prices`` and raw, side by side.

Writes a synthetic cache (random walks with volatility clustering, deterministic), then times:
``load_prices(source="yfinance", refresh=False)`` (read + checks + validation + long frame), the
cache files read alone, and one Parquet file holding the same rows (the floor). Median of repeats.

    .venv/bin/python -m benchmarks.cache_read [--tickers 50] [--years 20] [--repeats 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"


def synthetic_prices(ticker_index: int, dates: pd.DatetimeIndex) -> pd.DataFrame:
    """GARCH-like random walk OHLCV, deterministic per ticker."""
    rng = np.random.default_rng(ticker_index)
    n = len(dates)
    shocks = rng.standard_normal(n)
    variance = np.empty(n)
    variance[0] = 1e-4
    returns = np.empty(n)
    for t in range(n):  # volatility clustering: sigma^2_t = w + a r^2_{t-1} + b sigma^2_{t-1}
        if t:
            variance[t] = 2e-6 + 0.08 * returns[t - 1] ** 2 + 0.9 * variance[t - 1]
        returns[t] = np.sqrt(variance[t]) * shocks[t]
    close = 50 * np.exp(np.cumsum(returns))
    open_ = close * np.exp(rng.normal(0, 0.003, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    return pd.DataFrame(
        {
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.integers(10**5, 10**7, n),
        },
        index=dates.rename("date"),
    )


def median_seconds(func: Callable[[], object], repeats: int) -> tuple[float, float, float]:
    """(median, min, max) wall seconds of ``func`` over ``repeats`` calls after one warm-up."""
    func()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickers", type=int, default=50)
    parser.add_argument("--years", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    from stockpred.data import load_prices
    from stockpred.data.cache import CacheEntry, PriceCache

    root = Path(tempfile.mkdtemp(prefix="stockpred-cache-bench-"))
    cache = PriceCache(root)
    dates = pd.bdate_range("2000-01-03", periods=252 * args.years)
    names = [f"T{i:03d}" for i in range(args.tickers)]
    frames = {}
    for i, name in enumerate(names):
        frames[name] = synthetic_prices(i, dates)
        entry = CacheEntry(frames[name], dates[0].date(), dates[-1].date(), "bench", "bench")
        with cache.locked(name):
            cache.write(name, entry)
    single = root / "all.parquet"
    pd.concat(frames, names=["ticker"]).to_parquet(single)
    start, end = dates[0].date(), dates[-1].date()

    def through_load_prices() -> pd.DataFrame:
        return load_prices(
            names,
            start,
            end,
            "yfinance",
            cache_dir=str(root),
            refresh=False,
            today=end + dt.timedelta(days=1),
        )

    rows = len(through_load_prices())
    timings = {
        "load_prices": median_seconds(through_load_prices, args.repeats),
        "cache_files_read": median_seconds(lambda: [cache.read(n) for n in names], args.repeats),
        "one_parquet_file": median_seconds(lambda: pd.read_parquet(single), args.repeats),
    }
    floor = timings["one_parquet_file"][0]
    print(f"{args.tickers} tickers x {args.years} years = {rows:,} rows, median of {args.repeats}")
    for name, (median, low, high) in timings.items():
        print(
            f"  {name:<18} {median:7.3f} s  (min {low:.3f}, max {high:.3f})  "
            f"{median / floor:6.1f}x one file, {rows / median / 1e6:5.2f} M rows/s"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cache_read.json").write_text(
        json.dumps(
            {
                "benchmark": "cache_read",
                "tickers": args.tickers,
                "years": args.years,
                "rows": rows,
                "repeats": args.repeats,
                "seconds": {
                    k: {"median": v[0], "min": v[1], "max": v[2]} for k, v in timings.items()
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
