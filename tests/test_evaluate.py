import numpy as np
import pandas as pd
import pytest

from stockpred.evaluate import (
    comparison_table,
    fit_ridge,
    predicted_vs_actual_figure,
    regression_metrics,
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


def test_ridge_picks_its_penalty_on_validation_rows() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = x @ np.array([0.5, 0.0, -0.2]) + rng.normal(0, 0.1, 400)
    ridge = fit_ridge(x[:300], y[:300], x[300:], y[300:])
    assert ridge.alpha <= 10.0
    np.testing.assert_allclose(ridge.coef_, [0.5, 0.0, -0.2], atol=0.05)


def test_the_comparison_table_is_relative_to_the_zero_baseline() -> None:
    table = comparison_table({"lstm": {"rmse": 0.9, "mae": 1.0}, "zero": {"rmse": 1.0, "mae": 1.0}})
    assert table.set_index("model").loc["lstm", "rmse_vs_zero"] == pytest.approx(0.9)


def test_the_figure_has_one_row_per_ticker_with_labelled_axes() -> None:
    frame = pd.DataFrame({
        "date": list(pd.bdate_range("2020-01-01", periods=5)) * 2,
        "ticker": ["A"] * 5 + ["B"] * 5,
        "actual": np.linspace(-0.01, 0.01, 10), "lstm": np.zeros(10), "ridge": np.zeros(10),
    })  # fmt: skip
    fig = predicted_vs_actual_figure(frame, horizon=1)
    assert len(fig.axes) == 4
    assert all(ax.get_xlabel() and ax.get_ylabel() and ax.get_title() for ax in fig.axes)
