"""Bounded replays: windows gathered one batch at a time, statistics accumulated batch by batch
equal to one replay of everything."""

import numpy as np
import pandas as pd
import pytest
import torch

from stockpred import experiment, replay
from stockpred.config import load_config
from stockpred.controls import garch_prices
from stockpred.gates import GATES, lstm_gate_activations, snapshot, unit_table
from stockpred.split import TEST

CONFIG = {
    "model": {"window": 10, "hidden_size": 6, "num_layers": 2, "dropout": 0.0},
    "split": {"val_fraction": 0.2, "test_fraction": 0.2},
}


def test_the_batch_size_follows_the_memory_budget_not_the_universe() -> None:
    per_window = replay.replay_bytes_per_window(layers=2, steps=60, hidden=64, features=20)
    assert per_window == 4 * 60 * (2 * 64 * 12 + 20)
    assert replay.replay_batch(64, 2, 60, 64, 20) == 64 * 2**20 // per_window
    assert replay.replay_batch(1e-6, 2, 60, 64, 20) == 1  # never zero


def test_window_batches_cover_every_window_in_order_within_the_batch_size() -> None:
    prepared = experiment.build(garch_prices(300, 0.95, alpha=0.1), load_config(CONFIG))
    test = prepared.dataset(TEST)
    x_all, _ = test.__getitems__(torch.arange(len(test)))
    batches = list(replay.window_batches(prepared, TEST, 7))
    assert all(len(x) <= 7 and len(x) == len(ends) for x, ends in batches)
    assert len(batches) == -(-len(test) // 7)
    np.testing.assert_array_equal(np.concatenate([e for _, e in batches]), test.ends.numpy())
    assert torch.equal(torch.cat([x for x, _ in batches]), x_all)
    with pytest.raises(ValueError, match="batch_size"):
        next(replay.window_batches(prepared, TEST, 0))


def test_accumulated_statistics_equal_one_replay_of_every_window() -> None:
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 5, num_layers=2, batch_first=True)
    x = torch.randn(23, 8, 3) * 2
    whole = lstm_gate_activations(lstm, x)
    acc = replay.GateAccumulator()
    for start in range(0, len(x), 5):
        acc.add(lstm_gate_activations(lstm, x[start : start + 5]))
    pd.testing.assert_frame_equal(acc.units(3), unit_table(whole, 3), check_exact=False, atol=1e-5)
    expected = snapshot(whole, 3, sample=4)
    shot = acc.snapshot(3, lstm_gate_activations(lstm, x[4:5]), index=0)
    for name in GATES:
        np.testing.assert_allclose(shot.histograms[name], expected.histograms[name], atol=1e-4)
        np.testing.assert_array_equal(shot.edges[name], expected.edges[name])
        np.testing.assert_allclose(shot.sample[name], expected.sample[name], atol=1e-6)
    with pytest.raises(ValueError, match="no windows"):
        replay.GateAccumulator().units(0)
