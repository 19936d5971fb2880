"""The return task: its baselines on tiny hand-made windows, its scores, its names."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from stockpred.config import load_config
from stockpred.prepare import FeatureTable
from stockpred.tasks import TASKS, metric_key
from stockpred.tasks.base import Part
from stockpred.tasks.returns import RidgeOnFeatures

TASK = TASKS["return"]
RETURNS = load_config({"target": {"kind": "return"}})  # the default task is volatility


def _part(x: np.ndarray, y: np.ndarray) -> Part:
    width = x.shape[1]
    table = FeatureTable(x, tuple(f"f{i}" for i in range(width)), np.zeros(width), np.ones(width))
    prepared = SimpleNamespace(
        features=x, baseline_features=table, target=y, unscale=lambda v: np.asarray(v, float)
    )
    return Part(prepared, np.arange(len(y)))  # type: ignore[arg-type]


def test_ridge_picks_its_penalty_on_validation_rows() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = x @ np.array([0.5, 0.0, -0.2]) + rng.normal(0, 0.1, 400)
    ridge = RidgeOnFeatures().fit(_part(x[:300], y[:300]), _part(x[300:], y[300:]))
    assert ridge.ridge_.alpha <= 10.0
    np.testing.assert_allclose(ridge.ridge_.coef_, [0.5, 0.0, -0.2], atol=0.05)
    assert ridge.params() == {"baseline.ridge_alpha": ridge.ridge_.alpha}


def test_metric_keys_follow_one_rule() -> None:
    assert metric_key("lstm", "rmse") == "test/rmse" == TASK.metric_key("lstm", "rmse")
    assert metric_key("zero", "rmse", "val") == "baseline/zero/val/rmse"
    assert TASK.selection_metric == "val/rmse_vs_zero"
    assert TASK.models == ("lstm", "zero", "mean", "ridge", "ar")


def test_flat_metrics_add_each_models_skill_relative_to_zero() -> None:
    flat = TASK.flat_metrics({"lstm": {"rmse": 0.9, "ic": float("nan")}, "zero": {"rmse": 1.0}})
    assert flat == {
        "test/rmse": 0.9,
        "test/rmse_vs_zero": pytest.approx(0.9),
        "baseline/zero/test/rmse": 1.0,
        "baseline/zero/test/rmse_vs_zero": 1.0,
    }  # NaN scores (an undefined IC) are left out


def test_the_ar_baseline_needs_the_one_day_return_feature() -> None:
    names = [b.name for b in TASK.baselines(RETURNS)]
    assert names == ["zero", "mean", "ridge", "ar"]
    no_daily = RETURNS.with_overrides({"features.return_lags": [5, 20]})
    assert "ar" not in [b.name for b in TASK.baselines(no_daily)]


def test_score_names_every_metric() -> None:
    rng = np.random.default_rng(0)
    frame = _frame(
        date=np.repeat(np.arange(50), 3),
        ticker=list("ABC") * 50,
        actual=rng.normal(0, 0.01, 150),
        lstm=rng.normal(0, 0.01, 150),
    )
    metrics = TASK.score(frame, "lstm", RETURNS)
    for key in (
        "rmse",
        "mae",
        "dir_acc",
        "dir_acc_low",
        "dir_acc_high",
        "ic",
        "rank_ic",
        "sharpe",
        "long_flat/sharpe",
        "long_short/max_drawdown",
        "long_short/turnover",
    ):
        assert np.isfinite(metrics[key]), key
    assert metrics["dir_acc_low"] < metrics["dir_acc"] < metrics["dir_acc_high"]


def _frame(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns)
