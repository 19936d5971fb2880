"""Chronological train / validation / test split with embargoes, and a train-only scaler."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

TRAIN, VAL, TEST, EMBARGO = 0, 1, 2, -1
SPLIT_NAMES = {TRAIN: "train", VAL: "val", TEST: "test"}


@dataclass(frozen=True)
class SplitDates:
    """Inclusive first and last date of each part; the dates between parts are the embargo."""

    train: tuple[pd.Timestamp, pd.Timestamp]
    val: tuple[pd.Timestamp, pd.Timestamp]
    test: tuple[pd.Timestamp, pd.Timestamp]
    embargo: int

    def as_dict(self) -> dict[str, str]:
        """``{"train_start": "1999-01-04", ...}`` for logging."""
        out = {}
        for part in ("train", "val", "test"):
            first, last = getattr(self, part)
            out[f"{part}_start"], out[f"{part}_end"] = str(first.date()), str(last.date())
        return out


def chronological_split(
    dates: pd.DatetimeIndex | np.ndarray,
    val_fraction: float,
    test_fraction: float,
    embargo: int,
) -> SplitDates:
    """Split the sorted unique ``dates`` into train | embargo | val | embargo | test.

    The validation and test parts take the given fractions of all dates; ``embargo`` dates are
    dropped before each, so no training target (which looks ``horizon`` days ahead) and no
    training window reaches into the next part.
    """
    unique = pd.DatetimeIndex(pd.unique(np.asarray(dates))).sort_values()
    n = len(unique)
    n_test = max(1, round(n * test_fraction))
    n_val = max(1, round(n * val_fraction))
    n_train = n - n_test - n_val - 2 * embargo
    need = max(2 * embargo, 10)
    if n_train < need:
        # the dates it takes: the training part's minimum, two embargoes, val and test
        least = need + 2 * embargo + n_val + n_test
        raise ValueError(
            f"{n} dates are too few for an embargo of {embargo} days and val/test fractions "
            f"{val_fraction}/{test_fraction}: the training part needs at least {need} dates, "
            f"so about {least} in all. Load a longer date range or use a shorter window."
        )
    val_start = n_train + embargo
    test_start = val_start + n_val + embargo
    return SplitDates(
        train=(unique[0], unique[n_train - 1]),
        val=(unique[val_start], unique[val_start + n_val - 1]),
        test=(unique[test_start], unique[n - 1]),
        embargo=embargo,
    )


def assign_split(dates: pd.DatetimeIndex | pd.Index, split: SplitDates) -> np.ndarray:
    """Per row: TRAIN, VAL, TEST, or EMBARGO (-1) for dates between the parts."""
    dates = pd.DatetimeIndex(dates)
    labels = np.full(len(dates), EMBARGO, dtype=np.int8)
    for code, (first, last) in ((TRAIN, split.train), (VAL, split.val), (TEST, split.test)):
        labels[(dates >= first) & (dates <= last)] = code
    return labels


def fit_scaler(features: np.ndarray, labels: np.ndarray) -> StandardScaler:
    """A ``StandardScaler`` fitted on the training rows only (NaNs are ignored)."""
    train_rows = features[labels == TRAIN]
    if not np.isfinite(train_rows).any(axis=1).any():
        raise ValueError("no finite training rows to fit the scaler on")
    return StandardScaler().fit(train_rows)


def walk_forward_splits(
    dates: pd.DatetimeIndex | np.ndarray,
    folds: int,
    fold_test_fraction: float,
    val_fraction: float,
    embargo: int,
    scheme: str = "expanding",
) -> list[SplitDates]:
    """K folds: consecutive test blocks at the end of ``dates``, each after its own validation
    block and embargoes; training is everything before (``expanding``) or a window of the first
    fold's length that slides forward (``rolling``)."""
    if scheme not in ("expanding", "rolling"):
        raise ValueError(f"scheme must be 'expanding' or 'rolling', got {scheme!r}")
    unique = pd.DatetimeIndex(pd.unique(np.asarray(dates))).sort_values()
    n = len(unique)
    n_test = max(1, round(n * fold_test_fraction))
    n_val = max(1, round(n * val_fraction))
    first_test = n - folds * n_test
    train_len = first_test - n_val - 2 * embargo
    if train_len < max(2 * embargo, 10):
        raise ValueError(
            f"{n} dates are too few for {folds} folds of {n_test} test dates, {n_val} validation "
            f"dates and embargoes of {embargo}: the first fold would train on {train_len} dates"
        )
    splits = []
    for fold in range(folds):
        test_start = first_test + fold * n_test
        val_start = test_start - embargo - n_val
        train_end = val_start - embargo  # exclusive
        train_start = 0 if scheme == "expanding" else train_end - train_len
        splits.append(
            SplitDates(
                train=(unique[train_start], unique[train_end - 1]),
                val=(unique[val_start], unique[val_start + n_val - 1]),
                test=(unique[test_start], unique[test_start + n_test - 1]),
                embargo=embargo,
            )
        )
    return splits
