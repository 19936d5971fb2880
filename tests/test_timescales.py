import math

import numpy as np
import pytest
import torch

from stockpred.config import ModelConfig
from stockpred.gates import (
    TIMESCALE_CAP,
    gate_statistics,
    history_to_frame,
    lstm_gate_activations,
    unit_timescales,
)
from stockpred.models import LSTMForecaster, chrono_init


def _lstm_with_forget_bias(bias: list[float], layers: int = 1) -> torch.nn.LSTM:
    """An LSTM whose forget gate is sigmoid(bias) at every step (all weights zero)."""
    hidden = len(bias)
    lstm = torch.nn.LSTM(2, hidden, num_layers=layers, batch_first=True)
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            param.zero_()
            if name.startswith("bias_ih"):
                param[hidden : 2 * hidden] = torch.tensor(bias)
    return lstm


def test_a_forget_gate_of_one_half_has_the_untrained_timescale_of_1_44_days() -> None:
    lstm = _lstm_with_forget_bias([0.0, 0.0, 0.0])
    acts = lstm_gate_activations(lstm, torch.randn(4, 7, 2))
    taus = unit_timescales(acts)
    assert taus.shape == (1, 3)
    np.testing.assert_allclose(taus, 1 / math.log(2), rtol=1e-6)  # 1.4427
    stats = gate_statistics(acts)
    assert stats["gates/l0/timescale/median"] == pytest.approx(1.4427, abs=1e-4)
    assert stats["gates/l0/timescale/q10"] == pytest.approx(1.4427, abs=1e-4)
    assert stats["gates/l0/timescale/share_gt_5"] == 0.0


def test_a_huge_forget_bias_gives_a_long_timescale_and_the_shares_count_units() -> None:
    # f = sigmoid(b): tau = 1 / ln(1 + e^-b); b = 3 -> 20.6 days, b = 5 -> 148.9, b = 40 -> f = 1
    lstm = _lstm_with_forget_bias([0.0, 3.0, 5.0, 40.0])
    acts = lstm_gate_activations(lstm, torch.randn(3, 5, 2))
    taus = unit_timescales(acts)[0]
    expected = [1 / math.log(1 + math.exp(-b)) for b in (0.0, 3.0, 5.0)]
    np.testing.assert_allclose(taus[:3], expected, rtol=1e-4)
    assert taus[3] == TIMESCALE_CAP  # f rounds to 1 in float32: capped, finite
    stats = gate_statistics(acts)
    assert stats["gates/l0/timescale/share_gt_5"] == 0.75
    assert stats["gates/l0/timescale/share_gt_20"] == 0.75
    assert stats["gates/l0/timescale/share_gt_60"] == 0.5
    assert stats["gates/l0/timescale/median"] == pytest.approx(np.median(taus))
    assert all(math.isfinite(v) for k, v in stats.items() if "/timescale/" in k)


def test_timescale_keys_split_like_every_gate_metric() -> None:
    acts = lstm_gate_activations(_lstm_with_forget_bias([1.0, 2.0], layers=2), torch.randn(2, 4, 2))
    frame = history_to_frame([{"epoch": 0, **gate_statistics(acts)}])
    tau = frame[frame["gate"] == "timescale"]
    assert sorted(tau["layer"].unique()) == [0, 1]
    assert set(tau["stat"]) == {"median", "q10", "q90", "share_gt_5", "share_gt_20", "share_gt_60"}


@pytest.mark.parametrize("t_max", [3, 60])
def test_chrono_biases_lie_in_range_with_opposite_signs_and_zero_hh_slices(t_max) -> None:
    lstm = torch.nn.LSTM(3, 16, num_layers=2, batch_first=True)
    chrono_init(lstm, t_max, generator=torch.Generator().manual_seed(0))
    hidden = 16
    for layer in range(2):
        b_ih = getattr(lstm, f"bias_ih_l{layer}").detach()
        b_hh = getattr(lstm, f"bias_hh_l{layer}").detach()
        b_f, b_i = b_ih[hidden : 2 * hidden], b_ih[:hidden]
        assert float(b_f.min()) >= 0.0 and float(b_f.max()) <= math.log(t_max - 1) + 1e-6
        torch.testing.assert_close(b_i, -b_f)
        assert torch.all(b_hh[: 2 * hidden] == 0)
        assert torch.any(b_hh[2 * hidden :] != 0)  # the cell and output gates keep PyTorch's init
    assert len(torch.unique(lstm.bias_ih_l0[hidden : 2 * hidden])) > 1  # one draw per unit


def test_chrono_init_is_seeded_and_lengthens_the_untrained_timescales() -> None:
    def net(seed: int, init: str) -> LSTMForecaster:
        torch.manual_seed(seed)
        return LSTMForecaster(3, 32, 1, init=init, chrono_max=60)

    torch.testing.assert_close(net(1, "chrono").state_dict(), net(1, "chrono").state_dict())
    x = torch.randn(16, 60, 3)
    default = unit_timescales(lstm_gate_activations(net(1, "default").lstm, x))
    chrono = unit_timescales(lstm_gate_activations(net(1, "chrono").lstm, x))
    assert np.median(default) < 2.0 < 5.0 < np.median(chrono)


def test_the_model_config_names_the_init() -> None:
    assert ModelConfig().init == "default" and ModelConfig().chrono_max is None
    assert ModelConfig(init="chrono", chrono_max=66).chrono_max == 66
    with pytest.raises(ValueError):
        ModelConfig(init="orthogonal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chrono_max"):
        LSTMForecaster(3, 4, 1, init="chrono")
