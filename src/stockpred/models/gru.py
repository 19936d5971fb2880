"""The GRU forecaster: stacked ``nn.GRU``, a linear head, and the exact replay of its gates.

PyTorch's GRU (gate order r, z, n in ``weight_ih_l{k}`` and ``weight_hh_l{k}``)::

    r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)          reset gate
    z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)          update gate
    n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))       new state (b_hn inside the product)
    h' = (1 - z) * n + z * h

so z is the share of the state kept per step, like the LSTM's forget gate: a unit's memory
timescale is -1 / ln(mean z).
"""

from __future__ import annotations

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

GRU_GATES = GateSpec(
    names=("reset", "update", "new"),
    memory="update",
    tanh=frozenset({"new"}),
    labels={"reset": "reset gate r", "update": "update gate z", "new": "new state n"},
    state="hidden_state",
)


class GRUForecaster(RecurrentForecaster):
    """Stacked ``nn.GRU`` over a window of features, a linear head on the last hidden state."""

    arch = "gru"
    gate_spec = GRU_GATES

    def __init__(
        self, num_features: int, hidden_size: int = 64, num_layers: int = 2, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.gru = nn.GRU(
            input_size=num_features,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.head = nn.Linear(hidden_size, 1)

    @classmethod
    def from_config(cls, num_features: int, config: Any) -> GRUForecaster:
        """The untrained GRU of a ``ModelConfig`` (PyTorch's init: chrono is LSTM-only)."""
        return cls(num_features, config.hidden_size, config.num_layers, config.dropout)

    @property
    def rnn(self) -> nn.GRU:
        """The stacked ``nn.GRU``."""
        return self.gru

    def gate_activations(
        self, x: torch.Tensor, ablate: Mapping[int, torch.Tensor] | None = None
    ) -> GateActivations:
        """The exact replay of the GRU's gates (``gru_gate_activations``)."""
        return gru_gate_activations(self.gru, x, ablate)


@torch.no_grad()
def gru_gate_activations(
    gru: nn.GRU, x: torch.Tensor, ablate: Mapping[int, torch.Tensor] | None = None
) -> GateActivations:
    """Replay ``gru`` on ``x`` (its batch_first layout, zero initial state) in eval semantics.

    Returns the reset, update and new-state gates and h_t of every layer and step, shaped
    (layers, batch, time, hidden), equal to what ``nn.GRU`` computes (no inter-layer dropout).
    ``ablate``: layer -> boolean (hidden,) mask of units whose h_t is forced to 0 at every step.
    """
    if not isinstance(gru, nn.GRU):
        raise TypeError(f"expected a torch.nn.GRU, got {type(gru).__name__}")
    if gru.bidirectional:
        raise ValueError("bidirectional GRUs are not supported by the gate replay")
    x = replay_input(x, gru)
    batch, steps, hidden = x.shape[0], x.shape[1], gru.hidden_size
    gates: list[torch.Tensor] = []
    states: list[torch.Tensor] = []
    layer_input = x  # (B, T, F)
    for layer in range(gru.num_layers):
        w_ih = getattr(gru, f"weight_ih_l{layer}")  # (3H, F): r, z, n
        w_hh = getattr(gru, f"weight_hh_l{layer}")  # (3H, H)
        projected = layer_input @ w_ih.T  # (B, T, 3H), every step at once
        b_hh = None
        if gru.bias:
            projected = projected + getattr(gru, f"bias_ih_l{layer}")
            b_hh = getattr(gru, f"bias_hh_l{layer}")
        h = x.new_zeros(batch, hidden)
        keep = ablation_mask(ablate, layer, hidden, x)
        gate_steps, h_steps = [], []
        for t in range(steps):
            recurrent = h @ w_hh.T if b_hh is None else torch.addmm(b_hh, h, w_hh.T)  # (B, 3H)
            x_r, x_z, x_n = projected[:, t].chunk(3, dim=1)
            h_r, h_z, h_n = recurrent.chunk(3, dim=1)
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + r * h_n)  # b_hn sits inside r * (...)
            h = torch.lerp(n, h, z)  # (1 - z) * n + z * h
            if keep is not None:
                h = h * keep
            gate_steps.append(torch.cat([r, z, n], dim=1))
            h_steps.append(h)
        layer_input = torch.stack(h_steps, dim=1)  # (B, T, H)
        gates.append(torch.stack(gate_steps, dim=1))  # (B, T, 3H)
        states.append(layer_input)
    chunks = torch.stack(gates).chunk(3, dim=-1)  # 3 x (L, B, T, H)
    return GateActivations(
        dict(zip(GRU_GATES.names, chunks, strict=True)), h=torch.stack(states), spec=GRU_GATES
    )
