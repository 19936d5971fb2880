"""The LSTM forecaster: a plain ``nn.Module`` (stacked ``nn.LSTM``, a linear head), its chrono
initialisation, and the exact replay of its gates.

Torch only (no Lightning, no Prefect, no MLflow), so it runs on a bare GPU box, in a notebook,
or in a DDP worker. Training is ``stockpred.training``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from stockpred.models.forecaster import (
    GateActivations,
    GateSpec,
    RecurrentForecaster,
    ablation_mask,
    replay_input,
)

INITS = ("default", "chrono")

# PyTorch's order in weight_ih_l{k}: i, f, g, o. c_t = f * c_{t-1} + i * g: f is the share of the
# cell state kept per step, so a unit's memory timescale is -1 / ln(mean f).
LSTM_GATES = GateSpec(
    names=("input", "forget", "cell", "output"),
    memory="forget",
    tanh=frozenset({"cell"}),
    labels={
        "input": "input gate i",
        "forget": "forget gate f",
        "cell": "cell candidate g",
        "output": "output gate o",
    },
    state="cell_state",
)


class LSTMForecaster(RecurrentForecaster):
    """Stacked ``nn.LSTM`` over a window of features, a linear head on the last hidden state."""

    arch = "lstm"
    gate_spec = LSTM_GATES

    def __init__(
        self,
        num_features: int,
        hidden_size: int = 64,
        num_layers: int = 2,
        dropout: float = 0.0,
        *,
        init: str = "default",
        chrono_max: int | None = None,
    ) -> None:
        """``init``: ``default`` (PyTorch's) or ``chrono`` (``chrono_init`` with T_max
        ``chrono_max``, required then; drawn from torch's global generator, so seeded runs
        repeat). The init is not part of ``architecture``: a load restores the weights."""
        super().__init__()
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}: expected one of {INITS}")
        if init == "chrono" and chrono_max is None:
            raise ValueError("init='chrono' needs chrono_max (T_max, e.g. the window length)")
        self.lstm = nn.LSTM(
            input_size=num_features,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.head = nn.Linear(hidden_size, 1)
        if init == "chrono":
            assert chrono_max is not None
            chrono_init(self.lstm, chrono_max)

    @classmethod
    def from_config(cls, num_features: int, config: Any) -> LSTMForecaster:
        """The untrained LSTM of a ``ModelConfig`` (chrono's T_max defaults to the window)."""
        return cls(
            num_features,
            config.hidden_size,
            config.num_layers,
            config.dropout,
            init=config.init,
            chrono_max=config.chrono_max or config.window,
        )

    @property
    def rnn(self) -> nn.LSTM:
        """The stacked ``nn.LSTM``."""
        return self.lstm

    def gate_activations(
        self, x: torch.Tensor, ablate: Mapping[int, torch.Tensor] | None = None
    ) -> GateActivations:
        """The exact replay of the LSTM's gates (``lstm_gate_activations``)."""
        return lstm_gate_activations(self.lstm, x, ablate)


@torch.no_grad()
def chrono_init(lstm: nn.LSTM, t_max: int, generator: torch.Generator | None = None) -> None:
    """Chrono initialisation (Tallec & Ollivier 2018), every layer: forget bias b_f =
    log U(1, t_max - 1) per unit, input bias b_i = -b_f, so the memory timescales spread up to
    about ``t_max`` steps. PyTorch adds ``bias_ih`` and ``bias_hh``: the values go into
    ``bias_ih_l{k}`` and the same slices of ``bias_hh_l{k}`` are zeroed."""
    if t_max < 2:
        raise ValueError(f"chrono init needs t_max >= 2, got {t_max}")
    if not lstm.bias:
        raise ValueError("chrono init sets gate biases: the LSTM has none (bias=False)")
    hidden = lstm.hidden_size
    forget, input_ = slice(hidden, 2 * hidden), slice(0, hidden)  # gate order i, f, g, o
    for layer in range(lstm.num_layers):
        bias_ih = getattr(lstm, f"bias_ih_l{layer}")
        bias_hh = getattr(lstm, f"bias_hh_l{layer}")
        uniform = torch.rand(hidden, generator=generator, dtype=torch.float64)
        b_f = torch.log1p(uniform * (t_max - 2))  # log U(1, t_max - 1)
        assert float(b_f.max()) <= math.log(max(t_max - 1, 1)) + 1e-12
        bias_ih[forget] = b_f.to(bias_ih.dtype)
        bias_ih[input_] = -b_f.to(bias_ih.dtype)
        bias_hh[forget] = 0.0
        bias_hh[input_] = 0.0


def check_supported(lstm: nn.Module) -> nn.LSTM:
    """Return ``lstm`` if the replay supports it, else raise a ``ValueError`` that says why."""
    if not isinstance(lstm, nn.LSTM):
        raise TypeError(f"expected a torch.nn.LSTM, got {type(lstm).__name__}")
    if lstm.bidirectional:
        raise ValueError("bidirectional LSTMs are not supported by the gate replay")
    if lstm.proj_size:
        raise ValueError(f"LSTMs with proj_size ({lstm.proj_size}) are not supported")
    return lstm


@torch.no_grad()
def lstm_gate_activations(
    lstm: nn.LSTM, x: torch.Tensor, ablate: Mapping[int, torch.Tensor] | None = None
) -> GateActivations:
    """Replay ``lstm`` on ``x`` (its batch_first layout, zero initial state) in eval semantics.

    Returns input/forget/cell/output gates and c_t, h_t of every layer and step, shaped
    (layers, batch, time, hidden), equal to what ``nn.LSTM`` computes (no inter-layer dropout).
    The model is not modified (no mode switch, no gradients).

    ``ablate``: layer -> boolean (hidden,) mask of units whose c_t and h_t are forced to 0 at
    every step of that layer (so they reach neither the recurrence nor the layer above); the
    recurrence is otherwise exact. An all-False mask changes nothing.
    """
    check_supported(lstm)
    x = replay_input(x, lstm)
    batch, steps, hidden = x.shape[0], x.shape[1], lstm.hidden_size
    layers: dict[str, list[torch.Tensor]] = {"gates": [], "c": [], "h": []}
    layer_input = x  # (B, T, F)
    for layer in range(lstm.num_layers):
        w_ih = getattr(lstm, f"weight_ih_l{layer}")  # (4H, F)
        w_hh = getattr(lstm, f"weight_hh_l{layer}")  # (4H, H)
        projected = layer_input @ w_ih.T  # (B, T, 4H), every step at once
        if lstm.bias:
            bias = getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
            projected = projected + bias
        h = x.new_zeros(batch, hidden)
        c = x.new_zeros(batch, hidden)
        keep = ablation_mask(ablate, layer, hidden, x)
        gate_steps, c_steps, h_steps = [], [], []
        for t in range(steps):
            z = torch.addmm(projected[:, t], h, w_hh.T)  # (B, 4H)
            act = torch.sigmoid(z)
            act[:, 2 * hidden : 3 * hidden] = torch.tanh(z[:, 2 * hidden : 3 * hidden])
            i, f, g, o = act.chunk(4, dim=1)
            c = torch.addcmul(f * c, i, g)
            h = o * torch.tanh(c)
            if keep is not None:
                c, h = c * keep, h * keep
            gate_steps.append(act)
            c_steps.append(c)
            h_steps.append(h)
        layer_input = torch.stack(h_steps, dim=1)  # (B, T, H)
        layers["gates"].append(torch.stack(gate_steps, dim=1))  # (B, T, 4H)
        layers["c"].append(torch.stack(c_steps, dim=1))
        layers["h"].append(layer_input)
    chunks = torch.stack(layers["gates"]).chunk(4, dim=-1)  # 4 x (L, B, T, H)
    return GateActivations(
        dict(zip(LSTM_GATES.names, chunks, strict=True)),
        h=torch.stack(layers["h"]),
        spec=LSTM_GATES,
        c=torch.stack(layers["c"]),
    )
