import math
from typing import get_args

import numpy as np
import pytest
import torch

from stockpred.config import MODEL_ARCHS, TASK_KINDS, ConfigError, ModelArch, load_config
from stockpred.figures.gate_plots import gate_artifacts
from stockpred.gates import GateMonitor, gate_statistics, unit_table, unit_timescales
from stockpred.models import (
    MODELS,
    GRUForecaster,
    LSTMForecaster,
    build_model,
    gru_gate_activations,
    load_architecture,
)
from stockpred.tasks import TASKS
from stockpred.training import fit_forecaster
from tests.models.test_lstm import _learnable


def _reference(gru: torch.nn.GRU, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return gru.eval()(x)


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_the_replay_equals_nn_gru_at_every_step_and_layer(layers, batch_first, bias) -> None:
    torch.manual_seed(layers)
    dropout = 0.3 if layers > 1 else 0.0  # inter-layer dropout: eval semantics ignore it
    gru = torch.nn.GRU(5, 7, num_layers=layers, batch_first=batch_first, bias=bias, dropout=dropout)
    x = torch.randn(4, 9, 5) if batch_first else torch.randn(9, 4, 5)
    out, h_n = _reference(gru, x)
    acts = gru_gate_activations(gru, x)
    assert acts.h.shape == (layers, 4, 9, 7) and acts.c is None
    top = out if batch_first else out.transpose(0, 1)
    torch.testing.assert_close(acts.h[-1], top, rtol=0, atol=1e-6)  # every step, float32
    torch.testing.assert_close(acts.h[:, :, -1], h_n, rtol=0, atol=1e-6)  # every layer's h_n


def test_the_update_gate_keeps_the_state_as_pytorch_defines_it() -> None:
    # h' = (1 - z) * n + z * h, with n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    torch.manual_seed(0)
    gru = torch.nn.GRU(3, 4, num_layers=2, batch_first=True)
    acts = gru_gate_activations(gru, torch.randn(5, 6, 3) * 3)
    for name in ("reset", "update"):
        assert acts.gate(name).min() >= 0 and acts.gate(name).max() <= 1
    assert acts.gate("new").min() >= -1 and acts.gate("new").max() <= 1
    h_prev = torch.cat([torch.zeros_like(acts.h[:, :, :1]), acts.h[:, :, :-1]], dim=2)
    z, n = acts.update, acts.new
    torch.testing.assert_close(acts.h, (1 - z) * n + z * h_prev)
    assert acts.memory is acts.gate("update")


def test_the_memory_timescale_comes_from_the_update_gate() -> None:
    gru = torch.nn.GRU(2, 3, batch_first=True)
    with torch.no_grad():
        for p in gru.parameters():
            p.zero_()
        gru.bias_ih_l0[3:6] = math.log(0.9 / 0.1)  # z = sigmoid(logit 0.9) = 0.9 every step
    acts = gru_gate_activations(gru, torch.randn(4, 5, 2))
    np.testing.assert_allclose(unit_timescales(acts), -1 / math.log(0.9), rtol=1e-5)
    stats = gate_statistics(acts)
    assert stats["gates/l0/update/timescale"] == pytest.approx(-1 / math.log(0.9), rel=1e-5)
    assert stats["gates/l0/timescale/median"] == pytest.approx(-1 / math.log(0.9), rel=1e-5)
    assert "gates/l0/hidden_state/norm_growth" in stats and "gates/l0/forget/mean" not in stats
    table = unit_table(acts, epoch=0)
    assert set(table["gate"]) == {"reset", "update", "new"}
    assert table.loc[table["gate"] != "update", "timescale"].isna().all()


def test_silenced_units_reach_neither_the_recurrence_nor_the_layer_above() -> None:
    torch.manual_seed(1)
    model = GRUForecaster(3, 5, 2).eval()
    x = torch.randn(6, 8, 3)
    nothing = {0: torch.zeros(5, dtype=torch.bool), 1: torch.zeros(5, dtype=torch.bool)}
    torch.testing.assert_close(model.gate_activations(x, nothing).h, model.gate_activations(x).h)
    mask = torch.tensor([True, False, False, True, False])
    ablated = model.gate_activations(x, {0: mask})
    assert (ablated.h[0][..., mask] == 0).all() and (ablated.h[0][..., ~mask] != 0).all()
    assert not torch.allclose(ablated.h[1], model.gate_activations(x).h[1])
    with pytest.raises(ValueError, match="shape"):
        model.gate_activations(x, {0: torch.zeros(4, dtype=torch.bool)})


def test_a_weights_only_load_rebuilds_the_class_its_architecture_names() -> None:
    for model in (GRUForecaster(3, 4, 2, 0.1), LSTMForecaster(3, 4, 2, 0.1)):
        shape = model.architecture()
        assert shape["arch"] == model.arch and MODELS[model.arch] is type(model)
        again = load_architecture(shape)
        again.load_state_dict(model.state_dict())
        x = torch.randn(2, 5, 3)
        assert type(again) is type(model)
        torch.testing.assert_close(again.eval()(x), model.eval()(x))
    old = {"num_features": 3, "hidden_size": 4, "num_layers": 1, "dropout": 0.0}  # no arch
    assert isinstance(load_architecture(old), LSTMForecaster)
    with pytest.raises(ValueError, match=r"unknown model\.arch 'tcn'"):
        load_architecture({**old, "arch": "tcn"})


def test_the_configs_names_are_the_registries_keys() -> None:
    assert MODEL_ARCHS == get_args(ModelArch) == tuple(MODELS)
    assert set(TASK_KINDS) == set(TASKS)
    config = load_config({"model": {"arch": "gru", "hidden_size": 4, "num_layers": 1}})
    assert isinstance(build_model(3, config.model), GRUForecaster)
    with pytest.raises(ConfigError, match=r"model\.arch=gru trains with model\.init=default"):
        load_config({"model": {"arch": "gru", "init": "chrono"}})
    with pytest.raises(ConfigError, match=r"model\.arch"):
        load_config({"model": {"arch": "transformer"}})


def test_the_gate_monitor_and_its_figures_follow_a_gru() -> None:
    from stockpred.config import ModelConfig, TrainConfig
    from tests.test_gates import MemoryLogger

    train, val = _learnable(300, 0), _learnable(80, 1)
    batch = val.__getitems__(list(range(16)))[0]
    monitor = GateMonitor(batch, artifact_epochs=(0,))
    fit = fit_forecaster(
        train,
        val,
        ModelConfig(arch="gru", window=6, hidden_size=6, num_layers=2, dropout=0.0),
        TrainConfig(max_epochs=2, batch_size=32, progress_bar=False),
        logger=MemoryLogger(),
        callbacks=[monitor],
    )
    assert isinstance(fit.model, GRUForecaster)
    assert set(monitor.snapshots) == {0, 1}
    assert monitor.snapshots[1].spec.memory == "update"
    row = monitor.history[-1]
    assert "gates/l1/update/timescale" in row and "gates/l1/timescale/median" in row
    artifacts = dict(gate_artifacts(monitor, np.linspace(100, 101, 6)))
    assert "gates/heatmap_epoch_001.png" in artifacts and "gates/trajectories.png" in artifacts
    heatmap = artifacts["gates/heatmap_epoch_001.png"]
    titles = {ax.get_title() for ax in heatmap.axes}  # type: ignore[union-attr]
    assert "layer 1 · update gate z" in titles and "layer 0 · new state n" in titles
    # the monitor's state survives a checkpoint (plain values only), its gates included
    again = GateMonitor(batch)
    again.load_state_dict(monitor.state_dict())
    assert again.snapshots[1].spec == monitor.snapshots[1].spec


def test_the_recurrent_models_share_their_sequence_output_and_memory_gate_bias() -> None:
    """Both RNN forecasters: ``forward_sequence``'s last step is ``forward``, and
    ``forget_bias`` is the memory gate's slice of bias_ih + bias_hh (LSTM: f; GRU: z)."""
    torch.manual_seed(0)
    x = torch.randn(3, 7, 4)
    for model, rnn in ((LSTMForecaster(4, 5, 2), "lstm"), (GRUForecaster(4, 5, 2), "gru")):
        with torch.no_grad():
            torch.testing.assert_close(model.forward_sequence(x)[:, -1], model(x))
        body = getattr(model, rnn)
        expected = torch.cat(
            [
                (getattr(body, f"bias_ih_l{k}") + getattr(body, f"bias_hh_l{k}"))[5:10]
                for k in range(2)
            ]
        )
        torch.testing.assert_close(model.forget_bias(), expected.detach())
        assert len(model.gate_biases()) == 4  # bias_ih and bias_hh of two layers
