"""From features and target to model-ready arrays: split, train-only scaling, window datasets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stockpred.config import PipelineConfig
from stockpred.features import TARGET, select_features
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
class FeatureTable:
    """Every computed feature, scaled with training statistics: what baselines read, the same
    whatever ``features.include`` / ``exclude`` give the network."""

    values: np.ndarray  # (N, F_all) float32, scaled
    names: tuple[str, ...]
    mean: np.ndarray  # (F_all,)
    scale: np.ndarray  # (F_all,)

    def scaled(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """The scaled feature ``name`` at ``rows`` (any index shape) or every row."""
        column = self._column(name)
        return self.values[:, column] if rows is None else self.values[rows, column]

    def raw(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """The feature ``name`` in its own units (unscaled, float64), at ``rows`` or every row."""
        column = self._column(name)
        values = np.asarray(self.scaled(name, rows), dtype=np.float64)
        return values * self.scale[column] + self.mean[column]

    def _column(self, name: str) -> int:
        if name not in self.names:
            raise ValueError(
                f"no feature {name!r} was computed; the features are {list(self.names)}"
            )
        return self.names.index(name)


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
    # every computed feature, for baselines (None: ``features`` are all of them)
    full_features: FeatureTable | None = None

    @property
    def baseline_features(self) -> FeatureTable:
        """Every computed feature whatever the network's selection: what baselines read."""
        if self.full_features is not None:
            return self.full_features
        return FeatureTable(
            self.features, self.feature_names, self.feature_mean, self.feature_scale
        )

    def dataset(
        self, part: int, window: int | None = None, *, sequence: bool = False
    ) -> WindowDataset:
        """Windows whose every row lies in ``part`` of one ticker (no straddling); ``sequence``:
        with every step's target (for the all-steps loss)."""
        return WindowDataset.from_arrays(
            self.features, self.target, self.groups(part), window or self.window, sequence=sequence
        )

    def groups(self, part: int) -> np.ndarray:
        """Row group ids for ``part``: one per ticker, -1 for rows outside the part and rows
        where any computed feature is missing (so the windows, and the baselines scored on them,
        are the same whatever the network's feature selection)."""
        _, codes = np.unique(self.tickers, return_inverse=True)
        inside = self.labels == part
        if self.full_features is not None and self.full_features.values is not self.features:
            inside &= np.isfinite(self.full_features.values.sum(axis=1, dtype=np.float64))
        return np.where(inside, codes, EMBARGO).astype(np.int64)

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
    scale everything; the network's inputs are ``config.features``' selection (include /
    exclude), and every feature stays in ``full_features`` for the baselines. ``transform``: what
    the model learns of the target, the task's ``target_transform`` (``identity``, or ``log`` for
    a variance); ``experiment.prepare_frame`` passes it.

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
    every = FeatureTable(
        scaler.transform(raw).astype(np.float32),
        tuple(features.columns),
        scaler.mean_.copy(),
        scaler.scale_.copy(),
    )
    selected = select_features(config.features, list(features.columns))
    columns = [every.names.index(name) for name in selected]
    inputs = every.values if len(columns) == len(every.names) else every.values[:, columns]
    return Prepared(
        features=np.ascontiguousarray(inputs),
        target=((model_target - target_mean) / target_scale).astype(np.float32),
        actual=actual,
        labels=labels,
        dates=dates.to_numpy(dtype="datetime64[ns]"),
        tickers=frame.index.get_level_values("ticker").to_numpy(dtype=str),
        feature_names=tuple(selected),
        split=split,
        feature_mean=every.mean[columns],
        feature_scale=every.scale[columns],
        target_mean=target_mean,
        target_scale=target_scale,
        window=config.model.window,
        close=frame[CLOSE].to_numpy(dtype=np.float64)
        if close is not None
        else np.full(len(frame), np.nan),
        target_transform=transform,
        full_features=every,
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
