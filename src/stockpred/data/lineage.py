"""What a run records of the prices it was trained on: a short name, rows, range and a digest of
every value (so a resume can tell the same data from revised ones)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from stockpred.config import PipelineConfig


@dataclass(frozen=True)
class DataRecord:
    """What a run records of its prices: a short dataset name, rows, date range, digest."""

    name: str
    rows: str
    range: str
    digest: str

    def tags(self) -> dict[str, str]:
        """The run's ``data.*`` tags."""
        return {"data.rows": self.rows, "data.range": self.range, "data.digest": self.digest}


def data_record(config: PipelineConfig, prices: pd.DataFrame) -> DataRecord:
    """The record of ``prices`` loaded for ``config``; the name stays short for any universe."""
    data = config.data
    tickers = list(dict.fromkeys(prices.index.get_level_values("ticker")))  # as loaded ("*")
    ordered = [t for t in data.tickers if t in tickers] or tickers
    shown = ",".join(ordered) if len(tickers) <= 10 else f"{len(tickers)} tickers"
    dates = prices.index.get_level_values("date")
    first, last = dates.min(), dates.max()
    return DataRecord(
        # the data's own dates, not the config's: files of 2012-2018 asked for 1999-2018
        name=f"{data.source}:{shown}:{first.date()}..{last.date()}",
        rows=str(len(prices)),
        range=f"{first.date()}..{last.date()}",
        digest=prices_digest(prices),
    )


def prices_digest(prices: pd.DataFrame) -> str:
    """A digest of every row and value of the prices, dates and tickers included."""
    hashed = pd.util.hash_pandas_object(prices, index=True).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]
