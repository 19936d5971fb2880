"""Ticker symbols: Yahoo's alphabet, checked before a symbol reaches a request or a file path."""

from __future__ import annotations

import re

# Letters, digits and . - ^ = (e.g. ^GSPC, BRK-B, EURUSD=X, 7203.T); never starts with . - =
TICKER_PATTERN = re.compile(r"^[A-Za-z0-9^][A-Za-z0-9.\-^=]{0,19}$")


def check_ticker(ticker: str) -> str:
    """``ticker`` in upper case if it is a valid Yahoo symbol, else a ``ValueError`` saying why."""
    if not isinstance(ticker, str) or not TICKER_PATTERN.fullmatch(ticker) or ".." in ticker:
        raise ValueError(
            f"malformed ticker {ticker!r}: use a Yahoo symbol of 1-20 letters, digits and . - ^ = "
            "(e.g. AAPL, BRK-B, ^GSPC, EURUSD=X)"
        )
    return ticker.upper()
