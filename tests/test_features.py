import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockpred.config import FeatureConfig
from stockpred.features import feature_names, make_features, make_target

CONFIG = FeatureConfig(volatility_window=5, rsi_window=4, ema_fast=3, ema_slow=6, volume_window=5)
VARIANCE = CONFIG.model_copy(update={"variance": True})  # the volatility task's features too


def synthetic_prices(
    seed: int, days: int, tickers: tuple[str, ...] = ("AAA", "BBB")
) -> pd.DataFrame:
    """Random-walk OHLCV that passes validation, for several tickers on shared dates."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-01", periods=days)
    frames = []
    for ticker in tickers:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, days)))
        open_ = close * np.exp(rng.normal(0, 0.005, days))
        high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, days))
        low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, days))
        volume = rng.integers(0, 10_000, days)
        frames.append(
            pd.DataFrame(
                {
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": volume,
                    "date": dates,
                    "ticker": ticker,
                }
            )
        )
    return pd.concat(frames).set_index(["date", "ticker"]).sort_index()


def test_it_returns_one_named_column_per_feature_on_the_same_index() -> None:
    prices = synthetic_prices(0, 60)
    features = make_features(prices, CONFIG)
    assert list(features.columns) == feature_names(CONFIG)
    assert features.index.equals(prices.index)
    assert features.iloc[-10:].notna().all().all()  # warm-up is over


@pytest.mark.parametrize("config", [CONFIG, VARIANCE], ids=["return", "variance"])
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), days=st.integers(8, 80), cut=st.integers(1, 80))
def test_it_never_looks_ahead(seed: int, days: int, cut: int, config: FeatureConfig) -> None:
    """f(df)[:i] == f(df[:i]): truncating the future leaves every earlier value unchanged."""
    prices = synthetic_prices(seed, days)
    dates = prices.index.get_level_values("date").unique()
    last = dates[min(cut, days) - 1]
    full = make_features(prices, config)
    past = prices[prices.index.get_level_values("date") <= last]
    pd.testing.assert_frame_equal(full.loc[past.index], make_features(past, config))


@pytest.mark.parametrize("config", [CONFIG, VARIANCE], ids=["return", "variance"])
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.integers(5, 50))
def test_changing_the_future_changes_no_past_feature(
    seed: int, cut: int, config: FeatureConfig
) -> None:
    prices = synthetic_prices(seed, 60)
    dates = prices.index.get_level_values("date")
    future = dates > dates.unique()[cut]
    shocked = prices.copy()
    shocked.loc[future, ["open", "high", "low", "close"]] *= 3.0
    shocked.loc[future, "volume"] += 5_000
    before = make_features(prices, config)[~future]
    after = make_features(shocked, config)[~future]
    pd.testing.assert_frame_equal(before, after)


def test_each_ticker_is_computed_from_its_own_rows_only() -> None:
    both = synthetic_prices(1, 40)
    alone = both.xs("AAA", level="ticker", drop_level=False)
    pd.testing.assert_frame_equal(
        make_features(both, CONFIG).loc[alone.index], make_features(alone, CONFIG)
    )


def test_it_computes_returns_and_range_by_hand() -> None:
    prices = synthetic_prices(2, 30, tickers=("AAA",))
    features = make_features(prices, CONFIG)
    close = prices["close"].to_numpy()
    assert features["ret_1d"].iloc[7] == pytest.approx(np.log(close[7] / close[6]))
    assert features["ret_5d"].iloc[7] == pytest.approx(np.log(close[7] / close[2]))
    assert features["ret_5d"].iloc[:5].isna().all()
    row = prices.iloc[3]
    assert features["hl_range"].iloc[3] == pytest.approx(np.log(row["high"] / row["low"]))
    vol = np.std(np.diff(np.log(close[:8]))[-5:], ddof=1)
    assert features["vol_5d"].iloc[7] == pytest.approx(vol)
    assert features["rsi_4"].dropna().between(-1, 1).all()


def test_the_target_is_the_forward_log_return_per_ticker() -> None:
    prices = synthetic_prices(3, 20)
    target = make_target(prices, horizon=2)
    one = prices.xs("BBB", level="ticker")["close"].to_numpy()
    got = target.xs("BBB", level="ticker").to_numpy()
    np.testing.assert_allclose(got[:-2], np.log(one[2:] / one[:-2]))
    assert np.isnan(got[-2:]).all()  # no future beyond the ticker's own last row
    with pytest.raises(ValueError, match="horizon"):
        make_target(prices, horizon=0)


def _close_only(prices: pd.DataFrame, keep: tuple[str, ...] = ("close",)) -> pd.DataFrame:
    """As the files source gives close-only data: the absent columns entirely NaN."""
    out = prices.astype({"volume": "float64"})
    out[[c for c in ["open", "high", "low", "volume"] if c not in keep]] = np.nan
    return out


@pytest.mark.parametrize(
    ("keep", "skipped"),
    [
        (("close",), ["volume_z_5d", "hl_range", "oc_return"]),
        (("close", "volume"), ["hl_range", "oc_return"]),
        (("close", "high", "low", "volume"), ["oc_return"]),
    ],
)
def test_features_of_absent_columns_are_skipped_with_a_note(keep, skipped) -> None:
    prices = synthetic_prices(4, 40)
    partial = _close_only(prices, keep)
    with pytest.warns(UserWarning, match="price data have no .*: skipped") as notes:
        features = make_features(partial, CONFIG)
    assert len(notes) == 1 and all(name in str(notes[0].message) for name in skipped)
    assert list(features.columns) == feature_names(CONFIG, keep)
    assert not set(skipped) & set(features.columns)
    assert features.iloc[-10:].notna().all().all()
    full = make_features(prices, CONFIG)
    pd.testing.assert_frame_equal(features, full[features.columns])  # the rest is unchanged


def test_dropped_columns_count_as_absent_and_full_data_warn_nothing() -> None:
    import warnings

    prices = synthetic_prices(5, 30)
    with pytest.warns(UserWarning, match="skipped"):
        dropped = make_features(prices[["close"]], CONFIG)
    assert list(dropped.columns) == feature_names(CONFIG, ["close"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_features(prices, CONFIG)


@pytest.mark.parametrize("config", [CONFIG, VARIANCE], ids=["return", "variance"])
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), days=st.integers(8, 60), cut=st.integers(1, 60))
def test_close_only_features_never_look_ahead(
    seed: int, days: int, cut: int, config: FeatureConfig
) -> None:
    prices = _close_only(synthetic_prices(seed, days))
    last = prices.index.get_level_values("date").unique()[min(cut, days) - 1]
    past = prices[prices.index.get_level_values("date") <= last]
    with pytest.warns(UserWarning):
        full, head = make_features(prices, config), make_features(past, config)
    pd.testing.assert_frame_equal(full.loc[past.index], head)


def test_variance_features_only_for_the_variance_switch() -> None:
    prices = synthetic_prices(2, 60)
    plain, with_variance = make_features(prices, CONFIG), make_features(prices, VARIANCE)
    assert feature_names(FeatureConfig()) == [
        *("ret_1d", "ret_5d", "ret_20d", "vol_20d", "rsi_14", "ema_spread_12_26"),
        *("volume_z_20d", "hl_range", "oc_return"),
    ]  # the return task's default features are as before
    assert not any(c.startswith("lv_") for c in plain.columns)
    extra = [c for c in with_variance.columns if c not in plain.columns]
    assert "lv_parkinson" in extra and "lv_parkinson_22d" in extra and "dsv_5d" in extra
    assert len(extra) == 5 * 3 + 1
    one = prices.xs("AAA", level="ticker")
    parkinson = np.log(one["high"] / one["low"]) ** 2 / (4 * np.log(2))
    got = with_variance.xs("AAA", level="ticker")
    np.testing.assert_allclose(got["lv_parkinson"], np.log(parkinson))
    np.testing.assert_allclose(got["lv_parkinson_5d"].iloc[10], np.log(parkinson.iloc[6:11].mean()))
    assert with_variance.iloc[-10:].notna().all().all()
