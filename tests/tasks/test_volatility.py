"""The volatility task end to end on a GARCH-simulated market, and its names and surfaces."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from stockpred import experiment
from stockpred.cli import build_parser, config_from_args
from stockpred.config import load_config
from stockpred.tasks import TASKS, task_for
from stockpred.tasks.volatility import QLikeLoss
from stockpred.variance import half_life, market_memory


def garch_market(days: int = 1500, tickers: tuple[str, ...] = ("AAA", "BBB"), seed: int = 0):
    """OHLCV whose daily variance follows a GARCH(1,1); high and low from a 16-step intraday
    path, so the range carries the variance as in real data."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2010-01-01", periods=days)
    frames = []
    for ticker in tickers:
        variance, previous = np.empty(days), 0.0
        var = 1e-4
        for t in range(days):
            var = 2e-6 + 0.1 * previous**2 + 0.88 * var
            variance[t] = var
            previous = math.sqrt(var) * rng.standard_normal()
        steps = rng.standard_normal((days, 16)) * np.sqrt(variance / 17)[:, None]
        gap = rng.standard_normal(days) * np.sqrt(variance / 17)
        path = np.cumsum(np.concatenate([gap[:, None], steps], axis=1).reshape(-1))
        path = path.reshape(days, 17)
        log_open, log_close = path[:, 0], path[:, -1]
        close = 100 * np.exp(log_close)
        frames.append(
            pd.DataFrame(
                {
                    "open": 100 * np.exp(log_open),
                    "high": 100 * np.exp(path.max(axis=1)),
                    "low": 100 * np.exp(path.min(axis=1)),
                    "close": close,
                    "volume": rng.integers(1000, 10_000, days),
                    "date": dates,
                    "ticker": ticker,
                }
            )
        )
    return pd.concat(frames).set_index(["date", "ticker"]).sort_index()


TINY = {
    "model": {"window": 10, "hidden_size": 8, "num_layers": 1, "dropout": 0.0},
    "train": {"max_epochs": 3, "progress_bar": False, "accelerator": "cpu", "seed": 0},
    "gates": {"enabled": False},
    "split": {"val_fraction": 0.2, "test_fraction": 0.2},
}


@pytest.mark.slow  # trains
def test_the_lstm_beats_the_random_walk_on_a_garch_market() -> None:
    config = load_config({**TINY, "target": {"kind": "volatility"}})
    outcome = experiment.run(config, garch_market())
    metrics = outcome.evaluation.metrics
    assert outcome.prepared.target_transform == "log"
    assert np.nanmin(outcome.evaluation.predictions["lstm"]) > 0  # variance
    assert metrics["test/qlike"] < metrics["baseline/rw/test/qlike"]
    assert metrics["test/dm_vs_rw/t"] < 0
    for key in ("val/qlike", "test/qlike_vs_har", "test/mz_r2", "test/mse_log", "test/mse"):
        assert np.isfinite(metrics[key]), key
    assert metrics["baseline/har/test/qlike_vs_har"] == pytest.approx(1.0)
    for name in TASKS["volatility"].baseline_names:
        assert f"baseline/{name}/test/qlike" in metrics
        assert 0.0 <= metrics[f"test/dm_vs_{name}/p"] <= 1.0
    # the market's memory: the simulated GARCH has alpha + beta = 0.98 (half-life 34.3 days)
    assert metrics["market/garch_persistence"] == pytest.approx(0.98, abs=0.02)
    persistence = metrics["market/garch_persistence"]
    assert metrics["market/garch_half_life_days"] == pytest.approx(
        math.log(0.5) / math.log(persistence)
    )
    assert metrics["market/garch_tickers"] == 2
    params = outcome.evaluation.params
    weights = [params[f"baseline.har_beta{i}"] for i in (1, 2, 3)]
    assert metrics["market/har_weight_22d"] == weights[2]
    assert metrics["market/har_share_22d"] == pytest.approx(weights[2] / sum(weights))
    task = task_for(config)
    rows = task.summary_rows(metrics)
    assert any(row.startswith("gjr") for row in rows)
    # the verdict against the strongest baseline, its ratio and tag, the MCS and panel tests
    verdict = task.verdict(metrics)
    assert verdict is not None
    best = min(task.baseline_names, key=lambda m: metrics[f"baseline/{m}/test/qlike"])
    assert verdict.best == best and outcome.evaluation.tags["verdict.best_baseline"] == best
    assert metrics["test/qlike_vs_best"] == pytest.approx(
        metrics["test/qlike"] / metrics[f"baseline/{best}/test/qlike"]
    )
    assert verdict.t == metrics[f"test/dm_vs_{best}/t"]
    for loss in ("qlike", "mse_log"):
        for scope in ("all", "AAA", "BBB"):
            pvalues = [metrics[f"mcs/{loss}/{scope}/p/{m}"] for m in task.models]
            assert max(pvalues) == 1.0 and min(pvalues) >= 0.0
    members = outcome.evaluation.tags["mcs.qlike.all.10"].split(", ")
    assert members and all(metrics[f"mcs/qlike/all/p/{m}"] >= 0.10 for m in members)
    assert "rw" not in members  # the random walk is far worse than the rest on a GARCH market
    assert metrics["test/dm_vs_rw/wins"] + metrics["test/dm_vs_rw/ties"] == 2
    assert np.isfinite(metrics["test/dm_vs_har/AAA/t"]) and "test/qlike/BBB" in metrics
    figures = task.figures(outcome.evaluation.predictions, outcome.evaluation.scores, config)
    assert list(figures) == [
        "evaluation/comparison.png",
        "evaluation/mcs_qlike.png",
        "evaluation/mcs_mse_log.png",
    ]
    # three lines a ticker (realised, LSTM, its best baseline), every model in the bars
    comparison = figures["evaluation/comparison.png"]
    assert [len(ax.lines) for ax in comparison.axes[:2]] == [3, 3]
    assert len(comparison.axes[2].patches) == len(task.models)


def test_the_return_task_still_runs_on_the_same_prices() -> None:
    config = load_config(
        {**TINY, "target": {"kind": "return"}, "train": {**TINY["train"], "max_epochs": 1}}
    )
    outcome = experiment.run(config, garch_market(600, ("AAA",)))
    assert outcome.prepared.target_transform == "identity"
    assert "test/rmse_vs_zero" in outcome.evaluation.metrics
    assert not any(name.startswith("lv_") for name in outcome.prepared.feature_names)


def test_names_selection_and_forecast_columns() -> None:
    task = TASKS["volatility"]
    assert task.selection_metric == "val/qlike" and task.lower_is_better
    assert task.relative_name == "qlike_vs_har"
    assert task.models == (
        "lstm",
        *("rw", "ewma", "har", "log_har", "harx", "garch", "gjr"),
        *("har_pooled", "log_har_pooled", "harx_pooled"),
    )
    columns = task.forecast_columns(np.array([1e-4]))
    assert columns["annual_vol_pct"][0] == pytest.approx(100 * math.sqrt(252e-4))  # 15.87%
    assert list(columns) == ["predicted_variance", "annual_vol_pct"]


def test_qlike_loss_unscales_to_log_variance() -> None:
    mean, scale = -9.0, 0.8
    z, log_v = torch.tensor([-9.5, -8.0]), torch.tensor([-9.0, -8.4])
    loss = QLikeLoss(mean, scale)((z - mean) / scale, (log_v - mean) / scale)
    v = log_v.exp()
    expected = (v * torch.exp(-z) + z - log_v - 1).mean()  # v e^{-z} + z, shifted to 0 at best
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert float(QLikeLoss(mean, scale)(z, z)) == 0.0


def test_the_cli_selects_the_task() -> None:
    args = build_parser().parse_args(["train", "--target", "volatility"])
    config = config_from_args(args)
    assert config.target.kind == "volatility" and config.features.variance
    assert task_for(config).kind == "volatility"
    assert task_for(load_config()).kind == "volatility"  # the default task
    back = config_from_args(build_parser().parse_args(["train", "--target", "return"]))
    assert task_for(back).kind == "return" and not back.features.variance


def test_market_memory_reads_persistence_and_har_weights_off_known_fits() -> None:
    memory = market_memory([1e-5, 0.2, 0.3, 0.5], {"A": 0.90, "B": 0.97, "C": 0.99})
    assert memory["market/garch_persistence"] == 0.97  # the median over tickers
    assert memory["market/garch_half_life_days"] == pytest.approx(22.76, abs=0.01)
    assert memory["market/garch_timescale_days"] == pytest.approx(-1 / math.log(0.97))
    assert memory["market/har_weight_1d"] == 0.2 and memory["market/har_weight_22d"] == 0.5
    assert memory["market/har_share_22d"] == pytest.approx(0.5)
    assert half_life(0.90) == pytest.approx(6.58, abs=0.01)
    assert half_life(0.99) == pytest.approx(68.97, abs=0.01)
    # no mean reversion (alpha + beta >= 1): an infinite half-life is not logged
    assert "market/garch_half_life_days" not in market_memory(None, {"A": 1.0})
    assert market_memory(None, {}) == {}
