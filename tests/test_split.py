import numpy as np
import pandas as pd
import pytest

from stockpred.config import load_config
from stockpred.features import make_features, make_target
from stockpred.prepare import prepare
from stockpred.split import EMBARGO, TEST, TRAIN, VAL, assign_split, chronological_split
from tests.test_features import synthetic_prices


def test_parts_are_in_order_with_an_embargo_of_dates_between_them() -> None:
    dates = pd.bdate_range("2020-01-01", periods=200)
    split = chronological_split(dates, 0.1, 0.2, embargo=7)
    labels = assign_split(dates, split)
    assert (labels == VAL).sum() == 20 and (labels == TEST).sum() == 40
    train_end = np.flatnonzero(labels == TRAIN).max()
    val_start, val_end = np.flatnonzero(labels == VAL)[[0, -1]]
    test_start = np.flatnonzero(labels == TEST).min()
    assert val_start - train_end - 1 == 7
    assert test_start - val_end - 1 == 7
    assert (labels[train_end + 1 : val_start] == EMBARGO).all()
    assert dates[-1] == split.test[1]


def test_it_refuses_a_range_too_short_for_the_embargo() -> None:
    with pytest.raises(ValueError, match="too few"):
        chronological_split(pd.bdate_range("2020-01-01", periods=50), 0.15, 0.15, embargo=20)


def _prepared(prices: pd.DataFrame):
    config = load_config(
        {"target": {"kind": "return"}, "model": {"window": 5}, "features": {"volatility_window": 5}}
    )
    features = make_features(prices, config.features)
    return prepare(features, make_target(prices, config.features.horizon), config)


def test_the_scaler_sees_only_training_rows() -> None:
    prices = synthetic_prices(7, 300)
    base = _prepared(prices)
    train_rows = base.labels == TRAIN
    # Wreck everything after the training part: prices x 50, volume x 1000.
    later = prices.index.get_level_values("date") > base.split.train[1]
    changed = prices.copy()
    changed.loc[later, ["open", "high", "low", "close"]] *= 50.0
    changed.loc[later, "volume"] *= 1000
    other = _prepared(changed)
    np.testing.assert_array_equal(base.feature_mean, other.feature_mean)
    np.testing.assert_array_equal(base.feature_scale, other.feature_scale)
    assert base.target_mean == other.target_mean and base.target_scale == other.target_scale
    np.testing.assert_array_equal(base.features[train_rows], other.features[train_rows])
    # ...and the validation/test features did change, so the check above had teeth.
    assert not np.allclose(
        base.features[base.labels == TEST], other.features[other.labels == TEST], equal_nan=True
    )


def test_training_features_are_standardised_with_training_statistics() -> None:
    prepared = _prepared(synthetic_prices(8, 300))
    train = prepared.features[prepared.labels == TRAIN].astype(np.float64)
    np.testing.assert_allclose(np.nanmean(train, axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(np.nanstd(train, axis=0), 1, atol=1e-3)
    scaled_back = prepared.unscale(prepared.target)
    np.testing.assert_allclose(scaled_back, prepared.actual, rtol=1e-5, atol=1e-7)


def test_targets_that_reach_past_their_part_are_purged() -> None:
    prepared = _prepared(synthetic_prices(9, 300))
    assert prepared.split.embargo == 5 + 1  # window + horizon
    for part, (_, last) in ((TRAIN, prepared.split.train), (VAL, prepared.split.val)):
        for ticker in ("AAA", "BBB"):
            rows = np.flatnonzero((prepared.labels == part) & (prepared.tickers == ticker))
            assert prepared.dates[rows[-1]] == np.datetime64(last)
            assert np.isnan(prepared.actual[rows[-1]])  # its target would end after `last`
            assert np.isfinite(prepared.actual[rows[:-1]]).all()


def test_a_feature_empty_on_every_training_date_is_a_clear_error() -> None:
    prices = synthetic_prices(8, 300)
    config = load_config(
        {
            "target": {"kind": "return"},
            "model": {"window": 5},
            "features": {"volatility_window": 400},
        }
    )
    features = make_features(prices, config.features)
    with pytest.raises(
        ValueError, match=r"feature\(s\) \['vol_400d'\] have no value on any training"
    ):
        prepare(features, make_target(prices, 1), config)


def test_walk_forward_refuses_too_little_history() -> None:
    from stockpred.split import walk_forward_splits

    with pytest.raises(ValueError, match="too few for 5 folds"):
        walk_forward_splits(pd.bdate_range("2000-01-03", periods=200), 5, 0.15, 0.1, 20)
