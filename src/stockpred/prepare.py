"""From features and target to model-ready arrays: split, train-only scaling, window datasets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stockpred.config import PipelineConfig
from stockpred.features import TARGET
from stockpred.split import (
    EMBARGO,
    SPLIT_NAMES,
    TEST,
    TRAIN,
    VAL,
    SplitDates,
    assign_split,
    chronological_split,
    fit_scaler,
)
from stockpred.windows import WindowDataset

CLOSE = "_close"  # a column name no feature can take


@dataclass(frozen=True)
class Prepared:
    """Rows of every ticker, ticker-major and date-ordered, scaled with training statistics."""

    features: np.ndarray  # (N, F) float32, scaled
    target: np.ndarray  # (N,) float32, the scaled model target: transform(actual), scaled
    actual: np.ndarray  # (N,) float64, the target as realised (forward log return, variance)
    labels: np.ndarray  # (N,) int8: TRAIN / VAL / TEST / EMBARGO
    dates: np.ndarray  # (N,) datetime64[ns]
    tickers: np.ndarray  # (N,) str
    feature_names: tuple[str, ...]
    split: SplitDates
    feature_mean: np.ndarray  # (F,)
    feature_scale: np.ndarray  # (F,)
    target_mean: float
    target_scale: float
    window: int  # the input window length the datasets serve
    close: np.ndarray  # (N,) float64 close price (for figures); NaN when not given
    target_transform: str = "identity"  # the model learns transform(actual): identity or log

    def dataset(self, part: int, window: int | None = None) -> WindowDataset:
        """Windows whose every row lies in ``part`` of one ticker (no straddling)."""
        return WindowDataset.from_arrays(
            self.features, self.target, self.groups(part), window or self.window
        )

    def groups(self, part: int) -> np.ndarray:
        """Row group ids for ``part``: one per ticker, -1 for rows outside the part."""
        _, codes = np.unique(self.tickers, return_inverse=True)
        return np.where(self.labels == part, codes, EMBARGO).astype(np.int64)

    def unscale(self, scaled: np.ndarray) -> np.ndarray:
        """Model outputs back in target units (log return; variance, for a log target)."""
        return unscale(scaled, self.target_mean, self.target_scale, self.target_transform)

    def price_path(self, end: int) -> np.ndarray:
        """The close of one ticker over the window ending at row ``end``, rebased to 100."""
        close = self.close[end - self.window + 1 : end + 1]
        return 100.0 * close / close[0]

    def preprocessing(self) -> dict[str, Any]:
        """What a prediction needs to reproduce the scaling, as plain JSON."""
        return {
            "feature_names": list(self.feature_names),
            "feature_mean": self.feature_mean.tolist(),
            "feature_scale": self.feature_scale.tolist(),
            "target_mean": self.target_mean,
            "target_scale": self.target_scale,
            "target_transform": self.target_transform,
            "split": self.split.as_dict(),
            "embargo": self.split.embargo,
            "rows": {SPLIT_NAMES[k]: int((self.labels == k).sum()) for k in SPLIT_NAMES},
        }


def unscale(scaled: np.ndarray, mean: float, scale: float, transform: str) -> np.ndarray:
    """Scaled model outputs back in target units, undoing the scaling and ``transform``."""
    model_units = np.asarray(scaled, dtype=np.float64) * scale + mean
    return np.exp(model_units) if transform == "log" else model_units


def prepare(
    features: pd.DataFrame,
    target: pd.Series,
    config: PipelineConfig,
    split: SplitDates | None = None,
    close: pd.Series | None = None,
    transform: str = "identity",
) -> Prepared:
    """Split by date with an embargo (or use ``split``), fit the scalers on training rows only,
    scale everything. ``transform``: what the model learns of the target, the task's
    ``target_transform`` (``identity``, or ``log`` for a variance); ``experiment.prepare_frame``
    passes it.

    Targets whose horizon ends past their own part are purged (NaN): so nothing fitted on the
    training part - scalers, model, baselines - depends on a price after its last date.
    """
    frame = features.join(target.rename(TARGET))
    if close is not None:
        frame = frame.join(close.rename(CLOSE))
    frame = frame.sort_index(level=["ticker", "date"])
    dates = frame.index.get_level_values("date")
    if split is None:
        split = chronological_split(
            dates, config.split.val_fraction, config.split.test_fraction, config.embargo
        )
    labels = assign_split(dates, split)
    raw = frame[list(features.columns)].to_numpy(dtype=np.float64)
    has_value = np.isfinite(raw[labels == TRAIN]).any(0)
    empty = [name for name, ok in zip(features.columns, has_value, strict=True) if not ok]
    if empty:
        raise ValueError(
            f"feature(s) {empty} have no value on any training date: their look-back is longer "
            f"than the {int((labels == TRAIN).sum())} training rows; shorten the feature "
            "windows (config section features) or load a longer date range"
        )
    scaler = fit_scaler(raw, labels)
    actual = frame[TARGET].to_numpy(dtype=np.float64, copy=True)
    actual[_reaches_past_its_part(frame.index, labels, split, config.features.horizon)] = np.nan
    if transform not in ("identity", "log"):
        raise ValueError(f"unknown target transform {transform!r}: expected identity or log")
    with np.errstate(divide="ignore", invalid="ignore"):
        model_target = np.log(actual) if transform == "log" else actual
    train_target = model_target[(labels == 0) & np.isfinite(model_target)]
    target_mean = float(train_target.mean())
    target_scale = float(train_target.std()) or 1.0
    return Prepared(
        features=scaler.transform(raw).astype(np.float32),
        target=((model_target - target_mean) / target_scale).astype(np.float32),
        actual=actual,
        labels=labels,
        dates=dates.to_numpy(dtype="datetime64[ns]"),
        tickers=frame.index.get_level_values("ticker").to_numpy(dtype=str),
        feature_names=tuple(features.columns),
        split=split,
        feature_mean=scaler.mean_.copy(),
        feature_scale=scaler.scale_.copy(),
        target_mean=target_mean,
        target_scale=target_scale,
        window=config.model.window,
        close=frame[CLOSE].to_numpy(dtype=np.float64)
        if close is not None
        else np.full(len(frame), np.nan),
        target_transform=transform,
    )


def _reaches_past_its_part(
    index: pd.MultiIndex, labels: np.ndarray, split: SplitDates, horizon: int
) -> np.ndarray:
    """Rows whose target's end date (``horizon`` rows later, same ticker) lies after their part."""
    dates = pd.Series(index.get_level_values("date"))
    target_end = dates.groupby(index.get_level_values("ticker").to_numpy()).shift(-horizon)
    part_end = pd.Series(pd.NaT, index=dates.index, dtype="datetime64[ns]")
    for code, (_, last) in ((TRAIN, split.train), (VAL, split.val), (TEST, split.test)):
        part_end[labels == code] = last
    return (target_end > part_end).to_numpy()
