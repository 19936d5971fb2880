"""Memory measured by use, on hand-built networks whose answers are known."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from torch import nn

from stockpred.memory import (
    SHORT_MEMORY,
    MemoryMonitor,
    decay_timescale,
    ewma,
    ewma_value_curve,
    k_within,
    memory_profile,
    saliency_by_lag,
    truncated_windows,
    truncation_curve,
    value_metrics,
)
from stockpred.models import LSTMForecaster
from stockpred.training import LitForecaster

EPS = 1e-3  # the cell candidate's input weight: tanh(EPS x) ~ EPS x, so the cell is linear


def ewma_lstm(lam: float) -> LSTMForecaster:
    """A one-unit LSTM wired as an EWMA of its one input: c_t = lam c_{t-1} + (1 - lam) x_t,
    forecast = c_T (input gate 1 - lam, forget lam, output ~1, head undoing EPS)."""
    net = LSTMForecaster(1, hidden_size=1, num_layers=1)
    lstm = net.lstm
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        logit = lambda p: math.log(p / (1 - p))  # noqa: E731
        lstm.bias_ih_l0[:] = torch.tensor([logit(1 - lam), logit(lam), 0.0, 30.0])
        lstm.weight_ih_l0[2, 0] = EPS  # the cell candidate g = tanh(EPS x)
        net.head.weight[:] = 1.0 / EPS
    return net.eval()


class LastStep(nn.Module):
    """Reads only the last step's first feature."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2.0 * x[:, -1, 0]


def mse(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((predicted - target) ** 2).mean()


def test_it_zeroes_every_step_before_the_last_k() -> None:
    x = torch.ones(2, 4, 3)
    cut = truncated_windows(x).reshape(4, 2, 4, 3)
    for k in range(1, 5):
        assert cut[k - 1, :, : 4 - k].abs().sum() == 0
        assert (cut[k - 1, :, 4 - k :] == 1).all()


@pytest.mark.parametrize("lam", [0.5, 0.8, 0.94])
def test_an_ewma_network_has_saliency_lambda_to_the_k(lam: float) -> None:
    x = torch.randn(256, 40, 1, generator=torch.Generator().manual_seed(0))
    saliency = saliency_by_lag(ewma_lstm(lam), x)
    expected = (1 - lam) * lam ** np.arange(40)
    floor = expected > 0.01 * expected[0]
    np.testing.assert_allclose(saliency[floor], expected[floor], rtol=1e-3)
    assert decay_timescale(saliency) == pytest.approx(-1 / math.log(lam), rel=1e-2)


def test_a_last_step_network_needs_one_day() -> None:
    x = torch.randn(64, 30, 3, generator=torch.Generator().manual_seed(1))
    target = torch.randn(64, generator=torch.Generator().manual_seed(2))
    profile = memory_profile(LastStep(), x, target, mse)
    np.testing.assert_allclose(profile.truncation, 1.0)
    assert profile.k90 == 1
    assert profile.saliency_tau == 0.0
    assert profile.saliency[1:].sum() == 0


def test_the_truncation_curve_of_an_ewma_network_is_the_loss_of_its_truncated_sum() -> None:
    lam, steps, batch = 0.8, 30, 2048
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(batch, steps, 1, generator=gen)
    weights = (1 - lam) * lam ** np.arange(steps)  # lag 0 first
    lags = x[:, :, 0].flip(1).double().numpy()  # (B, T), lag 0 first
    target = lags @ weights + 0.02 * np.random.default_rng(4).standard_normal(batch)
    curve = truncation_curve(ewma_lstm(lam), x, torch.from_numpy(target).float(), mse)
    losses = np.array([np.mean((lags[:, :k] @ weights[:k] - target) ** 2) for k in range(1, 31)])
    np.testing.assert_allclose(curve, losses / losses[-1], rtol=2e-2)
    assert k_within(curve) == k_within(losses / losses[-1])
    assert 5 < k_within(curve) < 30  # the memory matters for a while, not the whole window


def test_k90_is_the_shortest_window_from_which_all_are_within_one_percent() -> None:
    assert k_within(np.array([3.0, 1.5, 1.005, 1.02, 1.0])) == 5  # a lone early dip does not count
    assert k_within(np.array([2.0, 1.009, 0.99, 1.0])) == 2
    assert k_within(np.array([1.0, 1.0])) == 1


def test_a_non_decaying_saliency_is_capped_and_a_nan_is_reported() -> None:
    assert decay_timescale(np.ones(10)) == 1e6
    assert decay_timescale(np.arange(1.0, 11.0)) == 1e6  # the oldest step matters most
    assert math.isnan(decay_timescale(np.zeros(10)))


def test_the_monitor_logs_untrained_and_every_epoch_memory(tmp_path: object) -> None:
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(512, 12, 2, generator=gen)
    y = x[:, -3:, 0].mean(1)  # a three-day memory to find
    batch = x[:64], y[:64]
    monitor = MemoryMonitor(*batch, mse)
    data = torch.utils.data.TensorDataset(x, y)
    loader = torch.utils.data.DataLoader(data, batch_size=64)
    module = LitForecaster(LSTMForecaster(2, 8, 1), learning_rate=1e-2)
    trainer = pl.Trainer(
        max_epochs=2,
        logger=CSVLogger(str(tmp_path)),
        callbacks=[monitor],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(module, loader, loader)
    assert sorted(monitor.profiles) == [-1, 0, 1]
    assert [row["epoch"] for row in monitor.history] == [0, 1]
    assert {"memory/k90", "memory/saliency_tau", "memory/truncation_k5"} <= set(monitor.history[0])
    logged = pd.read_csv(next(Path(str(tmp_path)).rglob("metrics.csv")))
    assert "memory/untrained/k90" in logged.columns and "memory/k90" in logged.columns
    frame = monitor.frame()
    assert set(frame["measure"]) == {"truncation", "saliency"}
    restored = MemoryMonitor(*batch, mse)
    restored.load_state_dict(monitor.state_dict())
    np.testing.assert_array_equal(restored.profiles[1].saliency, monitor.profiles[1].saliency)


@pytest.mark.parametrize("lam", [0.8, 0.95])
def test_the_kept_measures_are_those_of_the_model_passed_not_the_last_epoch(lam: float) -> None:
    x = torch.randn(64, 60, 1, generator=torch.Generator().manual_seed(2))
    monitor = MemoryMonitor(x, x[:, -1, 0], mse)
    kept = monitor.kept(ewma_lstm(lam), epoch=3)
    assert kept["memory/kept/epoch"] == 3
    assert kept["memory/kept/saliency_tau"] == pytest.approx(-1 / math.log(lam), rel=0.05)
    assert kept["memory/kept/k90"] == memory_profile(ewma_lstm(lam), x, x[:, -1, 0], mse).k90


def test_the_memory_value_curve_finds_the_planted_timescale_on_training_rows_only() -> None:
    rng = np.random.default_rng(6)
    daily = rng.lognormal(0.0, 1.0, 3000)
    groups = np.repeat([0, 1], 1500)
    planted = 8.0
    noise = rng.lognormal(0.0, 0.3, 3000)
    actual = 3.0 * ewma(daily, groups, planted) * noise  # a scaled 8-day EWMA, noisy
    rows = np.concatenate([np.arange(100, 1000), np.arange(1600, 2500)])
    curve = ewma_value_curve(daily, actual, groups, rows, "qlike", taus=(2.0, 4.0, 8.0, 16.0))
    metrics = value_metrics(curve)
    assert metrics["memory/best_ewma_tau"] == planted
    assert curve[planted] < min(curve[4.0], curve[16.0]) - 0.005
    assert metrics["memory/ewma_excess_1_5d"] > 0 and SHORT_MEMORY in curve.index
    spoiled = actual.copy()
    spoiled[np.setdiff1d(np.arange(3000), rows)] = 1e3  # rows outside training never count
    again = ewma_value_curve(daily, spoiled, groups, rows, "qlike", taus=(2.0, 4.0, 8.0, 16.0))
    pd.testing.assert_series_equal(curve, again)


def test_the_ewma_restarts_per_group() -> None:
    values = np.array([1.0, 1.0, 5.0, 5.0])
    np.testing.assert_allclose(ewma(values, np.array([0, 0, 1, 1]), 3.0), [1.0, 1.0, 5.0, 5.0])


def test_a_chunked_truncation_curve_equals_the_single_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    import stockpred.memory as memory

    gen = torch.Generator().manual_seed(7)
    x = torch.randn(16, 12, 2, generator=gen)
    target = torch.randn(16, generator=gen)
    net = LSTMForecaster(2, 4, 1).eval()
    whole = truncation_curve(net, x, target, mse)
    monkeypatch.setattr(memory, "CHUNK_ELEMENTS", 5 * 16 * 12 * 2)  # five cuts per forward
    np.testing.assert_allclose(truncation_curve(net, x, target, mse), whole, rtol=1e-5)
