"""Causal features and the forward-return target, computed per ticker.

Every feature value at row t is a function of that ticker's rows <= t only (rolling windows and
recursive EMAs run forward in time); tests prove ``f(df)[:i] == f(df[:i])``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stockpred.config import FeatureConfig

TARGET = "target"


def feature_names(config: FeatureConfig) -> list[str]:
    """The feature columns ``make_features`` returns, in order."""
    return [
        *(f"ret_{lag}d" for lag in config.return_lags),
        f"vol_{config.volatility_window}d",
        f"rsi_{config.rsi_window}",
        f"ema_spread_{config.ema_fast}_{config.ema_slow}",
        f"volume_z_{config.volume_window}d",
        "hl_range",
        "oc_return",
    ]


def make_features(prices: pd.DataFrame, config: FeatureConfig | None = None) -> pd.DataFrame:
    """One column per feature on the (date, ticker) index of ``prices``; NaN during warm-up."""
    config = config or FeatureConfig()
    by_ticker = prices.groupby(level="ticker", sort=False, group_keys=False)
    return by_ticker[list(prices.columns)].apply(_ticker_features, config=config).loc[prices.index]


def make_target(prices: pd.DataFrame, horizon: int = 1) -> pd.Series:
    """Forward log return ``log(close[t + horizon] / close[t])`` per ticker; NaN for the last rows."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 trading day, got {horizon}")
    log_close = np.log(prices["close"])
    future = log_close.groupby(level="ticker", sort=False).shift(-horizon)
    return (future - log_close).rename(TARGET)


def _ticker_features(frame: pd.DataFrame, config: FeatureConfig) -> pd.DataFrame:
    # frame: one ticker's rows, in date order
    frame = frame.sort_index(level="date")
    close = frame["close"]
    log_close = np.log(close)
    ret1 = log_close.diff()
    out = {f"ret_{lag}d": log_close.diff(lag) for lag in config.return_lags}
    out[f"vol_{config.volatility_window}d"] = ret1.rolling(config.volatility_window).std()
    out[f"rsi_{config.rsi_window}"] = _rsi(close, config.rsi_window)
    fast = close.ewm(span=config.ema_fast, adjust=False).mean()
    slow = close.ewm(span=config.ema_slow, adjust=False).mean()
    spread = (fast - slow) / close
    # An EMA starting from the first price is biased until it has seen ~span rows.
    spread.iloc[: config.ema_slow - 1] = np.nan
    out[f"ema_spread_{config.ema_fast}_{config.ema_slow}"] = spread
    log_volume = np.log1p(frame["volume"].astype("float64"))
    rolling = log_volume.rolling(config.volume_window)
    std = rolling.std()
    out[f"volume_z_{config.volume_window}d"] = (log_volume - rolling.mean()) / std.where(std > 0)
    out["hl_range"] = np.log(frame["high"] / frame["low"])
    out["oc_return"] = np.log(close / frame["open"])
    return pd.DataFrame(out, index=frame.index)


def _rsi(close: pd.Series, window: int) -> pd.Series:
    """Wilder's relative strength index scaled to [-1, 1] (0 = neutral)."""
    change = close.diff()
    gain = change.clip(lower=0).ewm(alpha=1 / window, adjust=False, min_periods=window).mean()
    loss = (-change).clip(lower=0).ewm(alpha=1 / window, adjust=False, min_periods=window).mean()
    total = gain + loss
    return ((gain - loss) / total.where(total > 0)).fillna(0.0).where(gain.notna())
