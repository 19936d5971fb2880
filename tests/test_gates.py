import math
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import Logger

from stockpred.config import ModelConfig, TrainConfig
from stockpred.figures.gate_plots import gate_artifacts
from stockpred.gates import (
    GATES,
    GateActivations,
    GateMonitor,
    diagnostic_indices,
    gate_statistics,
    lstm_gate_activations,
    timescale,
    unit_table,
)
from stockpred.models import GRUForecaster, LSTMForecaster
from stockpred.models.lstm import LSTM_GATES
from stockpred.training import LitForecaster, fit_forecaster
from tests.models.test_lstm import _learnable


def _reference(lstm: torch.nn.LSTM, x: torch.Tensor):
    was_training = lstm.training
    lstm.eval()
    with torch.no_grad():
        out, (h_n, c_n) = lstm(x)
    lstm.train(was_training)
    return out, h_n, c_n


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_the_replay_equals_nn_lstm_for_random_weights(layers, batch_first, bias) -> None:
    torch.manual_seed(layers)
    lstm = torch.nn.LSTM(
        5,
        7,
        num_layers=layers,
        batch_first=batch_first,
        bias=bias,
        dropout=0.3 if layers > 1 else 0.0,
    )
    x = torch.randn(4, 9, 5) if batch_first else torch.randn(9, 4, 5)
    out, h_n, c_n = _reference(lstm, x)
    acts = lstm_gate_activations(lstm, x)
    assert acts.h.shape == (layers, 4, 9, 7)  # (layers, batch, time, hidden) for either layout
    top = out if batch_first else out.transpose(0, 1)
    torch.testing.assert_close(acts.h[-1], top, rtol=0, atol=1e-5)
    torch.testing.assert_close(acts.h[:, :, -1], h_n, rtol=0, atol=1e-5)  # every layer's last h
    torch.testing.assert_close(acts.c[:, :, -1], c_n, rtol=0, atol=1e-5)  # ...and last c


@pytest.mark.slow  # trains (39 steps)
def test_the_replay_equals_a_trained_model() -> None:
    train, val = _learnable(400, 0), _learnable(100, 1)
    model_config = ModelConfig(window=6, hidden_size=12, num_layers=2, dropout=0.2)
    fit = fit_forecaster(
        train, val, model_config, TrainConfig(max_epochs=3, batch_size=32, progress_bar=False)
    )
    x, _ = val.__getitems__(list(range(32)))
    out, _, _ = _reference(fit.model.lstm, x)
    torch.testing.assert_close(
        lstm_gate_activations(fit.model.lstm, x).h[-1], out, rtol=0, atol=1e-5
    )


def test_gates_are_in_their_ranges_and_consistent() -> None:
    lstm = torch.nn.LSTM(3, 6, num_layers=2, batch_first=True)
    acts = lstm_gate_activations(lstm, torch.randn(8, 12, 3) * 5)
    for name in ("input", "forget", "output"):
        assert acts.gate(name).min() >= 0 and acts.gate(name).max() <= 1
    assert acts.cell.min() >= -1 and acts.cell.max() <= 1
    # c_t = f * c_{t-1} + i * g and h_t = o * tanh(c_t), step by step
    c_prev = torch.cat([torch.zeros_like(acts.c[:, :, :1]), acts.c[:, :, :-1]], dim=2)
    torch.testing.assert_close(acts.c, acts.forget * c_prev + acts.input * acts.cell)
    torch.testing.assert_close(acts.h, acts.output * torch.tanh(acts.c))


def test_it_neither_changes_the_model_nor_records_gradients() -> None:
    lstm = torch.nn.LSTM(3, 4, num_layers=2, dropout=0.5).train()
    before = [p.detach().clone() for p in lstm.parameters()]
    acts = lstm_gate_activations(lstm, torch.randn(5, 2, 3, requires_grad=True))
    assert lstm.training
    assert all(torch.equal(a, b) for a, b in zip(before, lstm.parameters(), strict=True))
    assert not acts.h.requires_grad


def test_it_refuses_what_it_cannot_replay() -> None:
    with pytest.raises(ValueError, match="bidirectional"):
        lstm_gate_activations(torch.nn.LSTM(3, 4, bidirectional=True), torch.randn(2, 2, 3))
    with pytest.raises(ValueError, match="proj_size"):
        lstm_gate_activations(torch.nn.LSTM(3, 4, proj_size=2), torch.randn(2, 2, 3))
    with pytest.raises(TypeError, match=r"torch\.nn\.LSTM"):
        lstm_gate_activations(torch.nn.GRU(3, 4), torch.randn(2, 2, 3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expects 3"):
        lstm_gate_activations(torch.nn.LSTM(3, 4), torch.randn(2, 2, 5))


def _constant_acts(values: dict[str, list[float]]) -> GateActivations:
    """One layer, one sample, len(values) steps, one unit."""

    def tensor(seq: list[float]) -> torch.Tensor:
        return torch.tensor(seq, dtype=torch.float32).reshape(1, 1, -1, 1)

    c = tensor([1.0, 2.0, 4.0, 8.0])
    gates = {k: tensor(v) for k, v in values.items()}
    return GateActivations(gates, h=torch.tanh(c), spec=LSTM_GATES, c=c)


def test_statistics_match_hand_computed_values() -> None:
    acts = _constant_acts(
        {
            "input": [0.05, 0.5, 0.95, 0.99],
            "forget": [0.9, 0.9, 0.9, 0.9],
            "cell": [-0.95, 0.0, 0.5, 0.95],
            "output": [0.5, 0.5, 0.5, 0.5],
        }
    )
    stats = gate_statistics(acts)
    assert stats["gates/l0/input/sat_left"] == pytest.approx(0.25)
    assert stats["gates/l0/input/sat_right"] == pytest.approx(0.5)
    assert stats["gates/l0/cell/sat_left"] == pytest.approx(0.25)  # tanh: below -0.9
    assert stats["gates/l0/cell/sat_right"] == pytest.approx(0.25)
    assert stats["gates/l0/forget/mean"] == pytest.approx(0.9)
    assert stats["gates/l0/forget/timescale"] == pytest.approx(-1 / math.log(0.9))  # ~9.5 days
    assert stats["gates/l0/output/std"] == pytest.approx(0.0)
    assert stats["gates/l0/cell_state/norm_growth"] == pytest.approx(8.0)
    assert timescale(1.0) == math.inf and timescale(0.0) == 0.0


def test_the_unit_table_has_one_row_per_layer_gate_and_unit() -> None:
    acts = lstm_gate_activations(torch.nn.LSTM(3, 5, num_layers=2), torch.randn(6, 4, 3))
    table = unit_table(acts, epoch=7)
    assert len(table) == 2 * 4 * 5
    assert set(table["gate"]) == set(GATES) and (table["epoch"] == 7).all()
    assert ((table["sat_left"] + table["sat_right"]) <= 1).all()
    assert table.loc[table["gate"] == "forget", "timescale"].gt(0).all()
    assert table.loc[table["gate"] != "forget", "timescale"].isna().all()


class MemoryLogger(Logger):
    """A real Lightning logger that keeps what it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int | None, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> str:
        return "0"

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        self.rows.append((step, dict(metrics)))


def _fit_with(monitor: GateMonitor, logger: Logger | None, epochs: int = 3):
    train, val = _learnable(300, 2), _learnable(100, 3)
    return fit_forecaster(
        train,
        val,
        ModelConfig(window=6, hidden_size=8, num_layers=2, dropout=0.0),
        TrainConfig(max_epochs=epochs, batch_size=64, patience=10, progress_bar=False),
        logger=logger if logger is not None else False,
        callbacks=[monitor],
    )


@pytest.mark.slow  # trains several epochs
def test_the_monitor_logs_every_epoch_and_keeps_snapshots() -> None:
    batch = _learnable(100, 4).__getitems__(list(range(16)))[0]
    monitor = GateMonitor(batch, artifact_epochs=[0])
    logger = MemoryLogger()
    _fit_with(monitor, logger)
    gate_rows = [(step, m) for step, m in logger.rows if "gates/l1/forget/mean" in m]
    assert [step for step, _ in gate_rows] == [0, 1, 2]
    assert {
        "gates/l0/input/sat_left",
        "gates/l1/output/sat_right",
        "gates/l0/forget/timescale",
    } <= set(gate_rows[0][1])
    assert sorted(monitor.snapshots) == [0, 2]  # asked for epoch 0; the last is always kept
    history = monitor.history_frame()
    assert set(history["epoch"]) == {0, 1, 2} and set(history["layer"]) == {0, 1}
    names = [name for name, _ in gate_artifacts(monitor, np.linspace(100, 101, 6))]
    assert "gates/saturation_epoch_000.png" in names and "gates/heatmap_epoch_002.png" in names
    assert "gates/trajectories.png" in names and "gates/units_epoch_002.parquet" in names
    assert "gates/timescale_spectrum_epoch_002.png" in names  # the first and last epoch's
    assert {"gates/l1/timescale/median", "gates/l0/timescale/share_gt_60"} <= set(gate_rows[0][1])


def test_the_monitor_fails_fast_when_misconfigured() -> None:
    batch = _learnable(50, 5).__getitems__(list(range(8)))[0]
    with pytest.raises(ValueError, match="trainer's logger"):
        _fit_with(GateMonitor(batch), logger=None)
    with pytest.raises(ValueError, match="batch has 3 features"):
        _fit_with(GateMonitor(torch.zeros(4, 6, 3)), MemoryLogger())
    with pytest.raises(ValueError, match="batch, time, features"):
        GateMonitor(torch.zeros(4, 6))
    with pytest.raises(ValueError, match="outside the batch"):
        GateMonitor(batch, sample_index=99)
    two = LitForecaster(LSTMForecaster(2, 4, 1))
    two.extra = GRUForecaster(2, 3, 1)
    with pytest.raises(ValueError, match="exactly one stockpred forecaster"):
        GateMonitor(batch).setup(SimpleNamespace(logger=MemoryLogger()), two, "fit")  # type: ignore[arg-type]


def test_only_rank_zero_computes_and_logs() -> None:
    batch = _learnable(50, 6).__getitems__(list(range(8)))[0]
    monitor = GateMonitor(batch)
    logger = MemoryLogger()
    module = LitForecaster(LSTMForecaster(2, 4, 1))
    trainer = SimpleNamespace(
        logger=logger, sanity_checking=False, is_global_zero=False, current_epoch=0
    )
    monitor.setup(trainer, module, "fit")  # type: ignore[arg-type]
    monitor.on_validation_epoch_end(trainer, module)  # type: ignore[arg-type]
    assert logger.rows == [] and monitor.history == []
    trainer.is_global_zero = True
    monitor.on_validation_epoch_end(trainer, module)  # type: ignore[arg-type]
    assert len(logger.rows) == 1 and len(monitor.history) == 1


def test_the_diagnostic_batch_is_spread_evenly_and_fixed() -> None:
    assert diagnostic_indices(10, 4).tolist() == [0, 3, 6, 9]
    assert diagnostic_indices(3, 100).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="no validation windows"):
        diagnostic_indices(0, 5)


def test_pl_is_lightning() -> None:  # the callback is a real Lightning callback
    assert isinstance(GateMonitor(torch.zeros(1, 2, 2)), pl.Callback)


def test_the_kept_timescales_are_those_of_the_model_passed_and_its_snapshot_is_kept() -> None:
    lam = 0.9  # every forget gate exactly lam: every unit's timescale -1 / ln lam
    net = LSTMForecaster(1, hidden_size=4, num_layers=1)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.lstm.bias_ih_l0[4:8] = math.log(lam / (1 - lam))  # PyTorch's gate order: i, f, g, o
    monitor = GateMonitor(torch.randn(8, 20, 1))
    kept = monitor.kept(net, epoch=5)
    assert kept["gates/kept/epoch"] == 5
    assert kept["gates/kept/l0/timescale/median"] == pytest.approx(-1 / math.log(lam), rel=1e-4)
    assert kept["gates/kept/l0/timescale/share_gt_5"] == 1.0
    assert 5 in monitor.snapshots
