"""A stand-in for ``yfinance.download`` that returns frames shaped exactly as yfinance 1.x does."""

from __future__ import annotations

import logging
import zlib
from collections import deque
from typing import Any

import numpy as np
import pandas as pd
from yfinance.exceptions import YFRateLimitError

YF_LOG = logging.getLogger("yfinance")


def synthetic_history(
    ticker: str, start: str = "2015-01-01", end: str = "2024-12-31"
) -> pd.DataFrame:
    """Random-walk daily OHLCV for one ticker, with yfinance's column names."""
    rng = np.random.default_rng(zlib.crc32(ticker.encode()))
    dates = pd.bdate_range(start, end, name="Date")
    close = 50 * np.exp(np.cumsum(rng.normal(0.0003, 0.015, len(dates))))
    open_ = close * np.exp(rng.normal(0, 0.004, len(dates)))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, len(dates)))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, len(dates)))
    volume = rng.integers(1_000_000, 5_000_000, len(dates))
    return pd.DataFrame(
        {"Close": close, "High": high, "Low": low, "Open": open_, "Volume": volume}, index=dates
    )


class FakeYahoo:
    """Counts calls; serves a fixed universe; can rate-limit, fail or re-adjust on demand."""

    def __init__(self, tickers: list[str]) -> None:
        self.universe = {t: synthetic_history(t) for t in tickers}
        self.calls: list[dict[str, Any]] = []
        self.failures: deque[str] = deque()  # "raise-rate-limit" | "log-rate-limit" | "offline"
        # tickers whose price request always times out (their timezone is in yfinance's cache)
        self.timing_out: set[str] = set()

    def adjust(self, ticker: str, factor: float, before: str) -> None:
        """Re-adjust history before a date (what Yahoo does after a split or dividend)."""
        frame = self.universe[ticker]
        rows = frame.index < pd.Timestamp(before)
        frame.loc[rows, ["Close", "High", "Low", "Open"]] *= factor

    def __call__(
        self, tickers: list[str] | str, start: str, end: str, **kwargs: Any
    ) -> pd.DataFrame:
        assert kwargs["interval"] == "1d" and kwargs["auto_adjust"] is True
        assert kwargs["multi_level_index"] is True
        tickers = [tickers] if isinstance(tickers, str) else list(tickers)
        self.calls.append({"tickers": tickers, "start": start, "end": end})
        failure = self.failures.popleft() if self.failures else None
        if failure == "raise-rate-limit":
            raise YFRateLimitError()
        columns = pd.MultiIndex.from_product(
            [["Close", "High", "Low", "Open", "Volume"], sorted(t.upper() for t in tickers)],
            names=["Price", "Ticker"],
        )
        if failure in ("log-rate-limit", "offline"):
            message = (
                "YFRateLimitError('Too Many Requests. Rate limited. Try after a while.')"
                if failure == "log-rate-limit"
                else "possibly delisted; no timezone found"
            )
            self._log_failures(tickers, message)
            return pd.DataFrame(
                columns=columns, index=pd.DatetimeIndex([], name="Date"), dtype=float
            )
        parts, unknown, stuck = {}, [], []
        for ticker in tickers:
            if ticker.upper() in self.timing_out:
                stuck.append(ticker.upper())
                continue
            history = self.universe.get(ticker.upper())
            if history is None:
                unknown.append(ticker.upper())
                continue
            # yfinance's end is exclusive
            parts[ticker.upper()] = history.loc[(history.index >= start) & (history.index < end)]
        if unknown:
            self._log_failures(unknown, "possibly delisted; no timezone found")
        if stuck:  # what yfinance 1.7 logs when the request timed out with a warm tz cache
            for ticker in stuck:
                YF_LOG.error(
                    f"${ticker}: possibly delisted; no price data found  (1d {start} -> {end})"
                )
            self._log_failures(
                stuck, f"possibly delisted; no price data found  (1d {start} -> {end})"
            )
        unknown += stuck
        if not parts or all(p.empty for p in parts.values()):
            return pd.DataFrame(
                columns=columns, index=pd.DatetimeIndex([], name="Date"), dtype=float
            )
        frame = pd.concat(parts, axis=1, names=["Ticker", "Price"]).swaplevel(axis=1)
        for ticker in unknown:  # several tickers: the unknown one's columns are all NaN
            for price in ["Close", "High", "Low", "Open", "Volume"]:
                frame[(price, ticker)] = np.nan
        frame.columns.names = ["Price", "Ticker"]
        return frame.sort_index(axis=1, level=0)

    @staticmethod
    def _log_failures(tickers: list[str], message: str) -> None:
        YF_LOG.error("\n%d Failed download%s:", len(tickers), "s" if len(tickers) > 1 else "")
        YF_LOG.error(f"{sorted(tickers)}: {message}")
