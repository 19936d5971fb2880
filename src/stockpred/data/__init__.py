"""Market data: ``load_prices`` returns validated daily OHLCV in one long format for every source."""

from stockpred.data.prices import (
    PRICE_COLUMNS,
    DataError,
    UnknownTickerError,
    load_prices,
    validate_prices,
)

__all__ = ["PRICE_COLUMNS", "DataError", "UnknownTickerError", "load_prices", "validate_prices"]
