"""Ablation by memory-timescale band: the masked replay, the bands, the loss deltas."""

import math

import numpy as np
import pytest
import torch

from stockpred import ablation, experiment
from stockpred.config import load_config
from stockpred.controls import garch_prices
from stockpred.models import LSTMForecaster

TINY = {
    "model": {"window": 10, "hidden_size": 6, "num_layers": 2, "dropout": 0.0},
    "train": {"max_epochs": 2, "progress_bar": False, "accelerator": "cpu", "seed": 0},
    "gates": {"batch_size": 32},
    "split": {"val_fraction": 0.2, "test_fraction": 0.2},
    "target": {"kind": "volatility"},
}


def _net(features: int, hidden: int = 6, layers: int = 2, seed: int = 0) -> LSTMForecaster:
    torch.manual_seed(seed)
    return LSTMForecaster(features, hidden, layers).eval()


def test_bands_are_named_by_their_edges() -> None:
    names = [b.name for b in ablation.bands((2, 10, 50))]
    assert names == ["lt_2", "2_10", "10_50", "gt_50"]
    assert [b.name for b in ablation.bands((1.5,))] == ["lt_1.5", "gt_1.5"]
    band = ablation.bands((2, 10))[1]
    assert list(band.contains(np.array([1.9, 2.0, 9.9, 10.0]))) == [False, True, True, False]


def test_the_unmasked_replay_forecast_equals_the_model() -> None:
    net = _net(3)
    x = torch.randn(20, 9, 3)
    with torch.no_grad():
        expected = net(x).double().numpy()
    np.testing.assert_allclose(ablation.replay_forecast(net, x, batch_size=7), expected, atol=1e-5)
    none = {0: torch.zeros(6, dtype=torch.bool), 1: torch.zeros(6, dtype=torch.bool)}
    assert np.array_equal(ablation.replay_forecast(net, x, none), ablation.replay_forecast(net, x))


def test_ablating_every_top_layer_unit_leaves_the_heads_bias() -> None:
    net = _net(3)
    x = torch.randn(5, 9, 3)
    out = ablation.replay_forecast(net, x, {1: torch.ones(6, dtype=torch.bool)})
    np.testing.assert_array_equal(out, np.full(5, float(net.head.bias.detach())))
    some = ablation.replay_forecast(net, x, {0: torch.tensor([True] * 3 + [False] * 3)})
    assert not np.allclose(some, ablation.replay_forecast(net, x))  # lower units do matter


def test_a_band_without_units_changes_nothing_and_every_unit_is_in_one_band() -> None:
    config = load_config(TINY)
    prepared = experiment.build(garch_prices(400, 0.95, alpha=0.1), config)
    net = _net(len(prepared.feature_names))
    taus = np.array([[1.2, 1.5, 3.0, 12.0, 1.44, 0.9], [1.1, 1.3, 1.4, 1.6, 4.0, 1.0]])
    result = ablation.ablate(net, prepared, config, timescales=taus)
    table = result.table.set_index("band")
    assert list(table.index) == ["lt_2", "2_10", "10_50", "gt_50"]
    assert list(table["units"]) == [9, 2, 1, 0]
    assert table.loc["gt_50", "delta_loss"] == 0.0  # exactly: the same replay
    assert table.loc["lt_2", "delta_loss"] != 0.0
    assert result.loss_name == "qlike" and math.isfinite(result.base_loss)
    metrics = result.metrics()
    assert (
        metrics["gates/ablation/gt_50/units"] == 0 and "gates/ablation/lt_2/delta_loss" in metrics
    )
    measured = ablation.ablate(net, prepared, config)  # tau measured on the validation windows
    assert measured.timescales.shape == (2, 6) and measured.table["units"].sum() == 12


def test_ablation_bands_must_increase() -> None:
    with pytest.raises(ValueError, match="increasing"):
        load_config({"gates": {"ablation_bands": [10, 2]}})
    assert load_config({"gates": {"ablation_bands": []}}).gates.ablation_bands == ()


def test_one_replay_of_every_band_equals_one_replay_per_band() -> None:
    net = _net(3)
    x = torch.randn(7, 9, 3)
    taus = np.array([[1.2, 1.5, 3.0, 12.0, 1.44, 0.9], [1.1, 1.3, 1.4, 1.6, 4.0, 60.0]])
    chosen = [ablation.masks(taus, band) for band in ablation.bands((2, 10, 50))]
    together = ablation.band_replay(net, x, chosen)
    assert together.shape == (4, 7)
    for row, masks in zip(together, chosen, strict=True):
        np.testing.assert_allclose(row, ablation.replay_forecast(net, x, masks), atol=1e-6)


def test_the_ablation_is_the_same_in_small_batches_as_in_one() -> None:
    config = load_config(TINY)
    prepared = experiment.build(garch_prices(400, 0.95, alpha=0.1), config)
    net = _net(len(prepared.feature_names))
    taus = np.array([[1.2, 1.5, 3.0, 12.0, 1.44, 0.9], [1.1, 1.3, 1.4, 1.6, 4.0, 1.0]])
    whole = ablation.ablate(net, prepared, config, timescales=taus).table
    # ~2 KB per window here: 0.01 MB holds a few windows, so the test period takes many batches
    small = load_config({**TINY, "gates": {"batch_size": 32, "replay_mb": 0.01}})
    batched = ablation.ablate(net, prepared, small, timescales=taus).table
    assert list(batched["units"]) == list(whole["units"])
    np.testing.assert_allclose(batched["loss"], whole["loss"], rtol=1e-5)
    np.testing.assert_allclose(batched["delta_loss"], whole["delta_loss"], atol=1e-6)
