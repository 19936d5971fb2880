import numpy as np
import pandas as pd
import pytest

from stockpred.data import DataError, UnknownTickerError, load_prices, validate_prices


def test_it_loads_the_embedded_sample_in_the_long_format() -> None:
    prices = load_prices(["^GSPC", "^IXIC"], "1999-01-01", "2018-12-31")
    assert list(prices.index.names) == ["date", "ticker"]
    assert list(prices.columns) == ["open", "high", "low", "close", "volume"]
    assert prices.index.is_monotonic_increasing
    assert prices.index.get_level_values("date").tz is None
    assert prices.dtypes.to_dict() == {
        "open": np.float64,
        "high": np.float64,
        "low": np.float64,
        "close": np.float64,
        "volume": np.int64,
    }
    assert len(prices) == 2 * 5031
    first = prices.xs("^GSPC", level="ticker").iloc[0]
    assert first["close"] == pytest.approx(1228.099976)  # 1999-01-04, real S&P 500 close


def test_it_cuts_to_the_requested_dates_inclusive() -> None:
    prices = load_prices("^GSPC", "2010-01-04", "2010-01-08")
    dates = prices.index.get_level_values("date")
    assert dates.min() == pd.Timestamp("2010-01-04")
    assert dates.max() == pd.Timestamp("2010-01-08")
    assert len(prices) == 5


def test_it_names_an_unknown_ticker_and_the_ones_it_has() -> None:
    with pytest.raises(UnknownTickerError, match=r"AAPL.*\^GSPC"):
        load_prices(["^GSPC", "AAPL"], "2010-01-01", "2011-01-01")


def test_it_names_a_date_range_outside_the_sample() -> None:
    with pytest.raises(DataError, match="covers 1999-01-04 to 2018-12-31"):
        load_prices(["^GSPC"], "2020-01-01", "2021-01-01")


def test_it_rejects_an_unknown_source_and_reversed_dates() -> None:
    with pytest.raises(DataError, match="unknown source"):
        load_prices(["^GSPC"], "2010-01-01", "2011-01-01", source="bloomberg")
    with pytest.raises(DataError, match="must be before"):
        load_prices(["^GSPC"], "2011-01-01", "2010-01-01")


def _frame(**overrides: list[float]) -> pd.DataFrame:
    data = {
        "open": [10.0, 11.0],
        "high": [12.0, 12.0],
        "low": [9.0, 10.0],
        "close": [11.0, 11.5],
        "volume": [100, 200],
    }
    data.update(overrides)
    index = pd.MultiIndex.from_arrays(
        [pd.to_datetime(["2020-01-02", "2020-01-03"]), ["X", "X"]], names=["date", "ticker"]
    )
    return pd.DataFrame(data, index=index)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"close": [11.0, float("nan")]}, "non-finite or non-positive price"),
        ({"open": [-1.0, 11.0]}, "non-finite or non-positive price"),
        ({"high": [10.5, 12.0]}, "high below open/close"),
        ({"low": [11.5, 10.0]}, "low above open/close"),
        ({"volume": [-5, 200]}, "negative or missing volume"),
    ],
)
def test_it_rejects_malformed_rows_counting_them(overrides, message) -> None:
    with pytest.raises(
        DataError, match=rf"1 bad row\(s\) of 2: 1 with {message} \(e.g. 20"
    ) as info:
        validate_prices(_frame(**overrides))
    assert "on_bad_rows='drop'" in str(info.value)  # says what to do


def test_it_rejects_missing_columns_and_duplicates() -> None:
    with pytest.raises(DataError, match="lacks column"):
        validate_prices(_frame().drop(columns="volume"))
    twice = pd.concat([_frame(), _frame()])
    with pytest.raises(DataError, match="duplicate"):
        validate_prices(twice)


def test_it_strips_time_zones() -> None:
    frame = _frame()
    frame.index = frame.index.set_levels(
        frame.index.levels[0].tz_localize("America/New_York"), level="date"
    )
    out = validate_prices(frame)
    assert out.index.get_level_values("date").tz is None


def test_bad_rows_can_be_dropped_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="dropped 1 bad row"):
        out = validate_prices(_frame(low=[11.5, 10.0]), on_bad_rows="drop")
    assert out.index.get_level_values("date").tolist() == [pd.Timestamp("2020-01-03")]
    with pytest.raises(DataError, match="all values missing"):
        validate_prices(
            _frame(
                **{c: [np.nan, 1.0] for c in ["open", "high", "low", "close"]}, volume=[np.nan, 1]
            )
        )


def test_long_gaps_are_flagged() -> None:
    frame = _frame()
    frame.index = pd.MultiIndex.from_arrays(
        [pd.to_datetime(["2020-01-02", "2020-03-02"]), ["X", "X"]], names=["date", "ticker"]
    )
    with pytest.warns(UserWarning, match="1 gap\\(s\\) longer than 10 business days"):
        validate_prices(frame, max_gap_days=10)
