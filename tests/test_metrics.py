import numpy as np
import pandas as pd
import pytest

from stockpred.metrics import (
    comparison_table,
    information_coefficients,
    regression_metrics,
    strategy_returns,
    strategy_stats,
    wilson_interval,
)


def test_metrics_match_hand_computed_values() -> None:
    actual = np.array([0.01, -0.02, 0.03, 0.0])
    predicted = np.array([0.02, 0.01, -0.01, 0.0])
    m = regression_metrics(actual, predicted)
    errors = np.array([0.01, 0.03, -0.04, 0.0])
    assert m["rmse"] == pytest.approx(np.sqrt((errors**2).mean()))
    assert m["mae"] == pytest.approx(0.02)
    # up/up, up/down, down/up, flat/flat -> agree on rows 0 and 3
    assert m["dir_acc"] == pytest.approx(0.5)


def test_the_zero_forecast_scores_the_share_of_non_up_days() -> None:
    actual = np.array([0.01, -0.01, -0.02, 0.03, 0.0])
    assert regression_metrics(actual, np.zeros(5))["dir_acc"] == pytest.approx(3 / 5)


def test_metrics_refuse_mismatched_or_empty_input() -> None:
    with pytest.raises(ValueError, match="equal, non-empty"):
        regression_metrics(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="equal, non-empty"):
        regression_metrics(np.zeros(0), np.zeros(0))


def test_the_comparison_table_is_relative_to_the_zero_baseline() -> None:
    table = comparison_table(
        {"lstm": {"rmse": 0.9, "mae": 1.0}, "zero": {"rmse": 1.0, "mae": 1.0}}, "zero", "rmse"
    )
    assert table.set_index("model").loc["lstm", "rmse_vs_zero"] == pytest.approx(0.9)


def test_the_wilson_interval_matches_the_textbook_value() -> None:
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(0.2775, abs=1e-4)


def _frame(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns)


def test_ic_is_time_series_for_one_ticker_and_cross_sectional_for_several() -> None:
    one = _frame(
        date=[1, 2, 3, 4],
        ticker=["A"] * 4,
        actual=[0.01, 0.02, -0.01, 0.03],
        lstm=[1.0, 2.0, -1.0, 4.0],
    )
    ics = information_coefficients(one, "lstm")
    assert ics["ic_cross_sectional"] == 0.0
    assert ics["ic"] == pytest.approx(np.corrcoef(one["lstm"], one["actual"])[0, 1])
    assert ics["rank_ic"] == pytest.approx(1.0)  # the same order: ranks 2,3,1,4 both
    many = _frame(
        date=[1, 1, 1, 2, 2, 2],
        ticker=list("ABCABC"),
        actual=[0.01, 0.02, 0.03, 0.03, 0.02, 0.01],
        lstm=[1, 2, 3, 1, 2, 3],
    )
    cross = information_coefficients(many, "lstm")
    assert cross["ic_cross_sectional"] == 1.0
    assert cross["ic"] == pytest.approx(0.0) and cross["rank_ic"] == pytest.approx(0.0)  # +1 and -1
    flat = one.assign(lstm=0.0)
    assert np.isnan(information_coefficients(flat, "lstm")["ic"])


def test_sign_strategies_by_hand() -> None:
    frame = _frame(
        date=[1, 2, 3, 1, 2, 3],
        ticker=list("AAABBB"),
        actual=np.log([1.10, 0.90, 1.05, 1.00, 1.20, 0.80]),
        lstm=[0.1, -0.1, 0.2, -0.3, 0.1, 0.1],
    )
    long_short = strategy_returns(frame, "lstm", "long_short", horizon=1, cost_bps=0)
    # date 1: A long +10%, B short 0% -> 5%; date 2: A short -(-10%)=+10%, B long +20% -> 15%;
    # date 3: A long +5%, B long -20% -> -7.5%
    np.testing.assert_allclose(long_short["net"], [0.05, 0.15, -0.075])
    np.testing.assert_allclose(long_short["turnover"], [1.0, 2.0, 1.0])  # |dpos| averaged
    costly = strategy_returns(frame, "lstm", "long_short", horizon=1, cost_bps=100)
    np.testing.assert_allclose(costly["net"], [0.04, 0.13, -0.085])
    long_flat = strategy_returns(frame, "lstm", "long_flat", horizon=1, cost_bps=0)
    np.testing.assert_allclose(long_flat["net"], [0.05, 0.10, -0.075])
    stats = strategy_stats(long_short, horizon=1)
    wealth = np.cumprod([1.05, 1.15, 0.925])
    assert stats["ann_return"] == pytest.approx(wealth[-1] ** (252 / 3) - 1)
    assert stats["max_drawdown"] == pytest.approx(0.075)
    net = np.array([0.05, 0.15, -0.075])
    assert stats["sharpe"] == pytest.approx(net.mean() / net.std(ddof=1) * np.sqrt(252))
    every_other = strategy_returns(frame, "lstm", "buy_hold", horizon=2, cost_bps=0)
    assert list(every_other.index) == [1, 3]  # non-overlapping periods
