import itertools

import numpy as np
import pytest
import torch

from stockpred.split import TEST, TRAIN, VAL
from stockpred.windows import WindowDataset, valid_window_ends
from tests.test_features import synthetic_prices
from tests.test_split import _prepared


def _toy(rows: int = 12, features: int = 3):
    x = np.arange(rows * features, dtype=np.float32).reshape(rows, features)
    y = np.arange(rows, dtype=np.float32) * 10
    return x, y


def test_it_serves_each_window_ending_at_t_with_the_target_of_t() -> None:
    x, y = _toy()
    groups = np.zeros(12, dtype=np.int64)
    ds = WindowDataset.from_arrays(x, y, groups, window=4)
    assert len(ds) == 12 - 4 + 1
    xb, yb = ds[0]
    np.testing.assert_array_equal(xb.numpy(), x[0:4])
    assert yb.item() == y[3]
    xb, yb = ds.__getitems__([2, 5])
    assert xb.shape == (2, 4, 3)
    np.testing.assert_array_equal(xb[1].numpy(), x[5:9])
    np.testing.assert_array_equal(yb.numpy(), y[[5, 8]])


def test_windows_never_straddle_two_groups() -> None:
    x, y = _toy()
    groups = np.array([0] * 5 + [1] * 7)  # e.g. two tickers, or two split parts
    ends = valid_window_ends(x, y, groups, window=3)
    assert ends.tolist() == [2, 3, 4, 7, 8, 9, 10, 11]


def test_it_skips_windows_with_missing_rows_or_targets_and_excluded_rows() -> None:
    x, y = _toy()
    x[6, 1] = np.nan
    y[11] = np.nan
    groups = np.zeros(12, dtype=np.int64)
    groups[0] = -1
    ends = valid_window_ends(x, y, groups, window=3)
    assert ends.tolist() == [3, 4, 5, 9, 10]


def test_it_shares_storage_with_the_feature_matrix() -> None:
    x, y = _toy(1000, 8)
    ds = WindowDataset.from_arrays(x, y, np.zeros(1000, dtype=np.int64), window=50)
    assert np.shares_memory(ds.features.numpy(), x)  # no copy of the matrix
    assert ds._view is not None
    assert ds._view.untyped_storage().data_ptr() == ds.features.untyped_storage().data_ptr()


def test_the_loader_yields_whole_batches_in_a_seeded_order() -> None:
    x, y = _toy(100, 2)
    ds = WindowDataset.from_arrays(x, y, np.zeros(100, dtype=np.int64), window=5)
    first = [yb.tolist() for _, yb in ds.loader(16, shuffle=True, seed=3)]
    again = [yb.tolist() for _, yb in ds.loader(16, shuffle=True, seed=3)]
    assert first == again
    assert sorted(itertools.chain(*first)) == sorted(y[4:].tolist())
    xb, _ = next(iter(ds.loader(16, shuffle=False)))
    assert xb.shape == (16, 5, 2) and xb.dtype == torch.float32


def test_prepared_parts_hold_only_their_own_rows_per_ticker() -> None:
    prepared = _prepared(synthetic_prices(11, 300))
    window = 5
    for part in (TRAIN, VAL, TEST):
        ds = prepared.dataset(part, window)
        assert len(ds) > 0
        starts, ends = ds.ends.numpy() - window + 1, ds.ends.numpy()
        assert (prepared.labels[starts] == part).all() and (prepared.labels[ends] == part).all()
        assert (prepared.tickers[starts] == prepared.tickers[ends]).all()
        # each window's rows are consecutive business days of one ticker
        gaps = prepared.dates[ends] - prepared.dates[starts]
        assert (gaps <= np.timedelta64(window + 4, "D")).all()


def test_it_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="rows"):
        WindowDataset(torch.zeros(5, 2), torch.zeros(4), torch.zeros(0), 2)
