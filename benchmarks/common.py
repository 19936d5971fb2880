"""Shared helpers: deterministic synthetic markets, paired timing, results on disk."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"


def synthetic_market(tickers: int, days: int, seed: int = 0) -> pd.DataFrame:
    """Long (date, ticker) OHLCV: GARCH(1,1)-like random walks (volatility clustering), vectorised
    across tickers so generating 500 x 5,000 rows takes well under a second."""
    rng = np.random.default_rng(seed)
    shocks = rng.standard_normal((days, tickers))
    variance = np.full(tickers, 1e-4)
    returns = np.empty((days, tickers))
    previous = np.zeros(tickers)
    for t in range(days):  # sigma^2_t = w + a r^2_{t-1} + b sigma^2_{t-1}
        variance = 2e-6 + 0.08 * previous**2 + 0.9 * variance
        previous = returns[t] = np.sqrt(variance) * shocks[t]
    close = 50 * np.exp(np.cumsum(returns, axis=0))
    open_ = close * np.exp(rng.normal(0, 0.003, close.shape))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, close.shape))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, close.shape))
    volume = rng.integers(10**5, 10**7, close.shape)
    dates = pd.bdate_range("2000-01-03", periods=days)
    names = [f"T{i:03d}" for i in range(tickers)]
    index = pd.MultiIndex.from_product([dates, names], names=["date", "ticker"])
    columns = {"open": open_, "high": high, "low": low, "close": close, "volume": volume}
    return pd.DataFrame({k: v.reshape(-1) for k, v in columns.items()}, index=index)


def timed(func: Callable[[], Any]) -> float:
    """Wall seconds of one call."""
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def save(name: str, result: dict[str, Any]) -> Path:
    """Write ``results/<name>.json``."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    return path
