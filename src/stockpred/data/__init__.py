"""Market data: ``load_prices`` returns validated daily OHLCV in one long format for every source."""

from stockpred.data.load import SOURCES, load_prices
from stockpred.data.prices import PRICE_COLUMNS, DataError, UnknownTickerError, validate_prices

__all__ = [
    "PRICE_COLUMNS",
    "SOURCES",
    "DataError",
    "UnknownTickerError",
    "load_prices",
    "validate_prices",
]
