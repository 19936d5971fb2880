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
    Forecaster,
    GateActivations,
    GateSpec,
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


class GRUForecaster(Forecaster):
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

    def architecture(self) -> dict[str, Any]:
        """The constructor's arguments and ``arch``: with the state dict, all a load needs."""
        return {
            "arch": self.arch,
            "num_features": self.gru.input_size,
            "hidden_size": self.gru.hidden_size,
            "num_layers": self.gru.num_layers,
            "dropout": float(self.gru.dropout),
        }

    @property
    def num_layers(self) -> int:
        """Stacked GRU layers."""
        return self.gru.num_layers

    @property
    def hidden_size(self) -> int:
        """Units per layer."""
        return self.gru.hidden_size

    @property
    def num_features(self) -> int:
        """Inputs per step."""
        return self.gru.input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, F) -> prediction (B,) of the (scaled) target."""
        out, _ = self.gru(x)  # (B, T, H), the top layer's hidden states
        return self.head(out[:, -1]).squeeze(-1)  # (B,)

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, F) -> the prediction at every step (B, T) (the last column is ``forward``'s)."""
        out, _ = self.gru(x)  # (B, T, H)
        return self.head(out).squeeze(-1)  # (B, T)

    def gate_biases(self) -> list[nn.Parameter]:
        """The gate bias vectors (``bias_ih``/``bias_hh`` of every layer: r, z, n slices)."""
        return [p for name, p in self.gru.named_parameters() if name.startswith("bias_")]

    def forget_bias(self) -> torch.Tensor:
        """(layers * hidden,) the effective update-gate bias of every unit (both biases added):
        the memory gate's, the one that sets a unit's memory timescale."""
        hidden = self.gru.hidden_size
        return torch.cat(
            [
                (getattr(self.gru, f"bias_ih_l{k}") + getattr(self.gru, f"bias_hh_l{k}"))[
                    hidden : 2 * hidden
                ]
                for k in range(self.gru.num_layers)
            ]
        ).detach()

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
