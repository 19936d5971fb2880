"""Training that can learn memory: the all-steps loss (targets inside their part) and the gate
biases' own learning rate with the bias move logged beside the largest possible."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from pytorch_lightning.callbacks import Callback

from stockpred import experiment
from stockpred.config import ConfigError, PipelineConfig, load_config
from stockpred.models import LSTMForecaster
from stockpred.split import TEST, TRAIN, VAL
from stockpred.training import LitForecaster
from tests.conftest import TINY


@pytest.fixture(scope="module")
def prepared(tiny_config_module: PipelineConfig):  # type: ignore[no-untyped-def]
    config = tiny_config_module.with_overrides({"target.kind": "volatility", "features.horizon": 5})
    return experiment.build(experiment.load_prices(config.data), config)


@pytest.fixture(scope="module")
def tiny_config_module() -> PipelineConfig:
    return load_config(TINY)


@pytest.mark.parametrize("part", [TRAIN, VAL, TEST])
def test_no_step_target_reaches_past_its_part(prepared, part: int) -> None:  # type: ignore[no-untyped-def]
    data = prepared.dataset(part, sequence=True)
    x, y = data.__getitems__(torch.arange(len(data)))
    window = prepared.window
    rows = data.ends[:, None] - (window - 1) + torch.arange(window)  # (S, W)
    assert y.shape == (len(data), window)
    np.testing.assert_array_equal(y.numpy(), prepared.target[rows.numpy()])
    np.testing.assert_array_equal(x.numpy(), prepared.features[rows.numpy()])
    known = np.isfinite(y.numpy())
    assert known[:, -1].all()  # the last step is the usual target
    horizon_end = pd.Series(prepared.dates).groupby(prepared.tickers).shift(-5).to_numpy()
    last = prepared.dates[prepared.labels == part].max()
    ends = horizon_end[rows.numpy()][known]
    assert (ends <= last).all()  # every known step's target is realised inside the part
    assert (prepared.labels[rows.numpy()] == part).all()


def test_the_all_steps_loss_skips_the_burn_in_and_unknown_steps() -> None:
    torch.manual_seed(0)
    net = LSTMForecaster(2, 4, 1)
    module = LitForecaster(net, burn_in=3)
    x = torch.randn(5, 8, 2)
    y = torch.randn(5, 8)
    y[0, 6] = float("nan")
    predicted = net.forward_sequence(x)
    assert torch.allclose(predicted[:, -1], net(x))
    keep = torch.isfinite(y) & (torch.arange(8) >= 3)
    expected = ((predicted[keep] - y[keep]) ** 2).mean()
    assert torch.allclose(module._loss((x, y)), expected)
    assert torch.allclose(module._loss((x, y[:, -1])), ((net(x) - y[:, -1]) ** 2).mean())


def test_gate_biases_train_at_their_own_rate_and_the_move_is_logged(
    tiny_config_module: PipelineConfig,
) -> None:
    config = tiny_config_module.with_overrides(
        {
            "train.gate_bias_lr": 5e-2,
            "train.loss_steps": "all",
            "train.burn_in": 2,
            "train.max_epochs": 2,
            "train.patience": 5,
        }
    )
    data = experiment.build(experiment.load_prices(config.data), config)
    module = LitForecaster(LSTMForecaster(3, 4, 1), 1e-3, 0.1, gate_bias_lr=5e-2)
    optimizer = module.configure_optimizers()
    assert [g["lr"] for g in optimizer.param_groups] == [1e-3, 5e-2]
    assert optimizer.param_groups[1]["weight_decay"] == 0.0
    assert len(optimizer.param_groups[1]["params"]) == 2  # bias_ih_l0, bias_hh_l0

    logged: dict[str, float] = {}

    class Record(Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
            logged.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    fitted = experiment.fit(data, config, callbacks=[Record()])
    assert fitted.epochs_trained == 2
    assert 0 < logged["train/forget_bias_move_max"] <= logged["train/forget_bias_move_possible"]
    steps = logged["train/forget_bias_move_possible"] / (2 * 5e-2)
    assert steps == pytest.approx(round(steps)) and steps > 0


def test_a_burn_in_as_long_as_the_window_is_refused(tiny_config_module: PipelineConfig) -> None:
    with pytest.raises(ConfigError, match="burn_in"):
        tiny_config_module.with_overrides({"train.loss_steps": "all", "train.burn_in": 10})
