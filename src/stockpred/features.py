"""Causal features and the forward-return target, computed per ticker.

Every feature value at row t is a function of that ticker's rows <= t only (rolling windows and
recursive EMAs run forward in time); tests prove ``f(df)[:i] == f(df[:i])``.

Features whose price columns the data lack (close-only data: no open/high/low/volume, or those
columns entirely NaN) are skipped with a warning naming them; the close-based ones always exist.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from stockpred.config import FeatureConfig
from stockpred.data.prices import PRICE_COLUMNS, present_columns
from stockpred.variance import ESTIMATOR_NEEDS, VARIANCE_FLOOR, daily_variance_one

VARIANCE_MEANS = (5, 22)  # the HAR's weekly and monthly means of each daily variance
DOWNSIDE = "dsv_5d"  # log 5-day downside semivariance (mean of r^2 on down days, else 0)

TARGET = "target"
FEATURE_SETS = ("all", "daily")  # named sets of features.include / features.exclude


def _needs(config: FeatureConfig) -> dict[str, tuple[str, ...]]:
    """Each feature, in order, and the price columns it is computed from."""
    return {
        **{f"ret_{lag}d": ("close",) for lag in config.return_lags},
        f"vol_{config.volatility_window}d": ("close",),
        f"rsi_{config.rsi_window}": ("close",),
        f"ema_spread_{config.ema_fast}_{config.ema_slow}": ("close",),
        f"volume_z_{config.volume_window}d": ("volume",),
        "hl_range": ("high", "low"),
        "oc_return": ("open", "close"),
        **(_variance_needs() if config.variance else {}),
    }


def variance_feature(estimator: str, days: int = 1) -> str:
    """The name of the log mean daily variance of ``estimator`` over ``days`` days."""
    return f"lv_{estimator}" if days == 1 else f"lv_{estimator}_{days}d"


def _variance_needs() -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for estimator, needs in ESTIMATOR_NEEDS.items():
        for days in (1, *VARIANCE_MEANS):
            out[variance_feature(estimator, days)] = needs
    out[DOWNSIDE] = ("close",)
    return out


def feature_names(config: FeatureConfig, columns: Sequence[str] = PRICE_COLUMNS) -> list[str]:
    """The feature columns ``make_features`` returns, in order, for prices with ``columns``
    (default all of OHLCV; ``present_columns(prices)`` gives those of a frame)."""
    have = set(columns)
    return [name for name, needs in _needs(config).items() if have.issuperset(needs)]


def daily_features(config: FeatureConfig, columns: Sequence[str] = PRICE_COLUMNS) -> list[str]:
    """The same-day quantities among ``feature_names``: each a function of that day's prices and
    the previous close only (one-day return, range, open-to-close, each daily variance), so any
    memory beyond a day must be built by the network itself."""
    same_day = {"ret_1d", "hl_range", "oc_return"}
    same_day |= {variance_feature(estimator) for estimator in ESTIMATOR_NEEDS}
    return [name for name in feature_names(config, columns) if name in same_day]


def feature_set(name: str, config: FeatureConfig, columns: Sequence[str]) -> list[str] | None:
    """The features of the named set ``name`` (``all``, ``daily``), None if it is not a set."""
    if name == "all":
        return feature_names(config, columns)
    if name == "daily":
        return daily_features(config, columns)
    return None


def select_features(config: FeatureConfig, computed: Sequence[str]) -> list[str]:
    """The network's inputs among the ``computed`` features: ``config.include`` minus
    ``config.exclude`` (names or sets), in ``computed`` order; a ``ValueError`` naming any
    unknown name and what is allowed, or saying the selection is empty."""
    known = feature_names(config)  # every name this config can compute (all OHLCV columns)
    available = list(computed)
    chosen: dict[str, set[str]] = {"include": set(), "exclude": set()}
    for field, names in (("include", config.include), ("exclude", config.exclude)):
        unknown = [n for n in names if n not in FEATURE_SETS and n not in known]
        if unknown:
            raise ValueError(
                f"features.{field} names unknown feature(s) {unknown}: use the sets "
                f"{list(FEATURE_SETS)} or feature names {known}"
            )
        for name in names:
            members = feature_set(name, config, PRICE_COLUMNS)  # then kept if computed
            chosen[field].update(members if members is not None else [name])
    selected = [n for n in available if n in chosen["include"] - chosen["exclude"]]
    if not selected:
        raise ValueError(
            f"features.include {list(config.include)} minus features.exclude "
            f"{list(config.exclude)} leaves no input among {available}: keep at least one"
        )
    return selected


def check_selection(prices: pd.DataFrame, config: FeatureConfig) -> list[str]:
    """``select_features`` for ``prices``' columns, before anything is computed (a bad name is
    refused before a run exists)."""
    return select_features(config, feature_names(config, present_columns(prices)))


def make_features(prices: pd.DataFrame, config: FeatureConfig | None = None) -> pd.DataFrame:
    """One column per feature on the (date, ticker) index of ``prices``; NaN during warm-up.

    Features needing a price column that ``prices`` lacks are left out with a warning."""
    config = config or FeatureConfig()
    columns = present_columns(prices)
    skipped = {n: needs for n, needs in _needs(config).items() if not set(needs) <= set(columns)}
    if skipped:
        shown = ", ".join(f"{n} (needs {'/'.join(needs)})" for n, needs in skipped.items())
        warnings.warn(f"price data have no {_missing(columns)}: skipped {shown}", stacklevel=2)
    by_ticker = prices.groupby(level="ticker", sort=False, group_keys=False)
    features = by_ticker[list(prices.columns)].apply(
        _ticker_features, config=config, names=feature_names(config, columns)
    )
    return features.loc[prices.index]


def _missing(columns: Sequence[str]) -> str:
    return "/".join(c for c in PRICE_COLUMNS if c not in columns)


def make_target(prices: pd.DataFrame, horizon: int = 1) -> pd.Series:
    """Forward log return ``log(close[t + horizon] / close[t])`` per ticker; NaN for the last rows."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 trading day, got {horizon}")
    log_close = np.log(prices["close"])
    future = log_close.groupby(level="ticker", sort=False).shift(-horizon)
    return (future - log_close).rename(TARGET)


def _ticker_features(frame: pd.DataFrame, config: FeatureConfig, names: list[str]) -> pd.DataFrame:
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
    volume_z = f"volume_z_{config.volume_window}d"
    if volume_z in names:
        log_volume = np.log1p(frame["volume"].astype("float64"))
        rolling = log_volume.rolling(config.volume_window)
        std = rolling.std()
        out[volume_z] = (log_volume - rolling.mean()) / std.where(std > 0)
    if "hl_range" in names:
        out["hl_range"] = np.log(frame["high"] / frame["low"])
    if "oc_return" in names:
        out["oc_return"] = np.log(close / frame["open"])
    if config.variance:
        for estimator in ESTIMATOR_NEEDS:
            if variance_feature(estimator) not in names:
                continue
            daily = daily_variance_one(frame, estimator)
            for days in (1, *VARIANCE_MEANS):
                out[variance_feature(estimator, days)] = np.log(daily.rolling(days).mean())
        downside = (ret1**2).where(ret1 < 0, 0.0).where(ret1.notna())
        out[DOWNSIDE] = np.log(downside.rolling(5).mean().clip(lower=VARIANCE_FLOOR))
    return pd.DataFrame({name: out[name] for name in names}, index=frame.index)


def _rsi(close: pd.Series, window: int) -> pd.Series:
    """Wilder's relative strength index scaled to [-1, 1] (0 = neutral)."""
    change = close.diff()
    gain = change.clip(lower=0).ewm(alpha=1 / window, adjust=False, min_periods=window).mean()
    loss = (-change).clip(lower=0).ewm(alpha=1 / window, adjust=False, min_periods=window).mean()
    total = gain + loss
    return ((gain - loss) / total.where(total > 0)).fillna(0.0).where(gain.notna())
