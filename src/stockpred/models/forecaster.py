"""What every forecaster offers the rest of stockpred: construction from the config, the
arguments a weights-only load needs, and (where it has gates) their exact replay.

Torch only. Diagnostics (``stockpred.gates``), the ablation and the report ask a model through
this interface, never for its recurrent layer (``model.lstm``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

# Karpathy, Johnson & Fei-Fei (2015): a sigmoid gate is left-saturated below 0.1, right above 0.9;
# a tanh candidate in [-1, 1] uses -0.9 / 0.9.
SIGMOID_SATURATION = (0.1, 0.9)
TANH_SATURATION = (-0.9, 0.9)


@dataclass(frozen=True)
class GateSpec:
    """A recurrent model's gates: their names in the weight matrices' order, which of them are
    tanh (in [-1, 1]; the rest are sigmoids in [0, 1]), and the gate whose mean m defines a unit's
    memory timescale -1 / ln(m) (the share of the state kept per step)."""

    names: tuple[str, ...]
    memory: str
    tanh: frozenset[str] = frozenset()
    labels: Mapping[str, str] = field(default_factory=dict)  # axis labels, e.g. "forget gate f"
    state: str = "cell_state"  # the metric name of the state whose norm is logged

    def saturation(self, name: str) -> tuple[float, float]:
        """(low, high): below low a gate is left-saturated, above high right-saturated."""
        return TANH_SATURATION if name in self.tanh else SIGMOID_SATURATION

    def range(self, name: str) -> tuple[float, float]:
        """The gate's value range: (-1, 1) for tanh, (0, 1) for a sigmoid."""
        return (-1.0, 1.0) if name in self.tanh else (0.0, 1.0)

    def label(self, name: str) -> str:
        """A human label for the gate (its name when none is set)."""
        return self.labels.get(name, name)


@dataclass(frozen=True)
class GateActivations:
    """Every gate and state of every layer and step of a replay: each (L, B, T, H)."""

    gates: dict[str, torch.Tensor]  # name -> (L, B, T, H), in ``spec.names`` order
    h: torch.Tensor  # hidden state h_t
    spec: GateSpec
    c: torch.Tensor | None = None  # the LSTM's cell state c_t (None for a GRU)

    def gate(self, name: str) -> torch.Tensor:
        """One gate by name (``forget`` for an LSTM, ``update`` for a GRU, ...)."""
        if name not in self.gates:
            raise KeyError(f"no gate {name!r}: this model's gates are {self.spec.names}")
        return self.gates[name]

    @property
    def memory(self) -> torch.Tensor:
        """The gate that defines the memory timescale (LSTM: forget f; GRU: update z)."""
        return self.gates[self.spec.memory]

    @property
    def state(self) -> torch.Tensor:
        """The recurrent memory whose norm is logged: c_t for an LSTM, h_t for a GRU."""
        return self.c if self.c is not None else self.h

    def __getattr__(self, name: str) -> torch.Tensor:
        # ``acts.forget``, ``acts.input``: the gates by attribute, as before the GRU existed
        gates = self.__dict__.get("gates", {})
        if name in gates:
            return gates[name]
        raise AttributeError(name)


class Forecaster(nn.Module):
    """A forecaster over windows (B, T, F) -> (B,): a recurrent body and a linear ``head``.

    A subclass sets ``arch`` (its name in ``MODELS``), ``gate_spec`` (None: no gates, so no gate
    diagnostics), builds itself from the config (``from_config``), returns its constructor
    arguments (``architecture``) and, with gates, replays them exactly (``gate_activations``).
    """

    arch: ClassVar[str]
    gate_spec: ClassVar[GateSpec | None] = None
    head: nn.Linear

    @classmethod
    def from_config(cls, num_features: int, config: Any) -> Forecaster:
        """The untrained model a ``ModelConfig`` describes, for ``num_features`` inputs."""
        raise NotImplementedError

    def architecture(self) -> dict[str, Any]:
        """The constructor's arguments plus ``arch``: with the state dict, all a load needs."""
        raise NotImplementedError

    @property
    def num_layers(self) -> int:
        """Recurrent layers (each has its own units and timescales)."""
        raise NotImplementedError

    @property
    def hidden_size(self) -> int:
        """Units per layer."""
        raise NotImplementedError

    @property
    def num_features(self) -> int:
        """Inputs per step."""
        raise NotImplementedError

    @property
    def has_gates(self) -> bool:
        """Whether the model's gates can be replayed (gate diagnostics, ablation)."""
        return self.gate_spec is not None

    def gate_activations(
        self, x: torch.Tensor, ablate: Mapping[int, torch.Tensor] | None = None
    ) -> GateActivations:
        """Replay the model's gates on ``x`` (B, T, F), exactly, with ``ablate``'s units (layer ->
        boolean (hidden,) mask) forced to 0 in their layer at every step."""
        raise TypeError(f"the {self.arch} model has no gates to replay")

    def readout(self, h_last: torch.Tensor) -> torch.Tensor:
        """(B, H) the top layer's last hidden state -> (B,) the forecast (the head)."""
        return self.head(h_last.to(self.head.weight.dtype)).squeeze(-1)


class RecurrentForecaster(Forecaster):
    """A forecaster whose body is one stacked ``nn.LSTM``/``nn.GRU`` (``rnn``, batch first) read
    out by ``head`` at the last step: the shape, the weights-only architecture, the forward
    passes and the gate biases are the same for every such model; a subclass builds ``rnn`` and
    replays its gates."""

    @property
    def rnn(self) -> nn.RNNBase:
        """The recurrent body (its attribute name keeps the state dict's keys: ``lstm.``...)."""
        raise NotImplementedError

    def architecture(self) -> dict[str, Any]:
        """The constructor's arguments and ``arch``: with the state dict, all a load needs."""
        return {
            "arch": self.arch,
            "num_features": self.rnn.input_size,
            "hidden_size": self.rnn.hidden_size,
            "num_layers": self.rnn.num_layers,
            "dropout": float(self.rnn.dropout),
        }

    @property
    def num_layers(self) -> int:
        """Stacked recurrent layers."""
        return self.rnn.num_layers

    @property
    def hidden_size(self) -> int:
        """Units per layer."""
        return self.rnn.hidden_size

    @property
    def num_features(self) -> int:
        """Inputs per step."""
        return self.rnn.input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, F) -> prediction (B,) of the (scaled) target."""
        out, _ = self.rnn(x)  # (B, T, H), the top layer's hidden states
        return self.head(out[:, -1]).squeeze(-1)  # (B,)

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, F) -> the prediction at every step (B, T) (the last column is ``forward``'s)."""
        out, _ = self.rnn(x)  # (B, T, H)
        return self.head(out).squeeze(-1)  # (B, T)

    def gate_biases(self) -> list[nn.Parameter]:
        """The gate bias vectors (``bias_ih``/``bias_hh`` of every layer, every gate's slice)."""
        return [p for name, p in self.rnn.named_parameters() if name.startswith("bias_")]

    def forget_bias(self) -> torch.Tensor:
        """(layers * hidden,) the effective bias (both biases added) of every unit's memory
        gate (LSTM: forget f; GRU: update z), the one that sets its memory timescale."""
        assert self.gate_spec is not None, "a recurrent forecaster declares its gates"
        hidden = self.rnn.hidden_size
        gate = self.gate_spec.names.index(self.gate_spec.memory)
        rows = slice(gate * hidden, (gate + 1) * hidden)
        return torch.cat(
            [
                (getattr(self.rnn, f"bias_ih_l{k}") + getattr(self.rnn, f"bias_hh_l{k}"))[rows]
                for k in range(self.rnn.num_layers)
            ]
        ).detach()


def find_forecaster(module: nn.Module) -> Forecaster:
    """The one ``Forecaster`` in ``module`` (itself, or e.g. a LightningModule's ``model``)."""
    found = [m for m in module.modules() if isinstance(m, Forecaster)]
    if len(found) != 1:
        raise ValueError(
            f"expected exactly one stockpred Forecaster in the module, found {len(found)}"
        )
    return found[0]


def ablation_mask(
    ablate: Mapping[int, torch.Tensor] | None, layer: int, hidden: int, like: torch.Tensor
) -> torch.Tensor | None:
    """The keep factor (1 kept, 0 silenced) of ``layer`` in ``ablate``, or None: (hidden,) for
    every window alike, or (batch, hidden) to silence other units in each window (several
    ablations in one replay); ``like`` is the batch-first (B, T, ...) input of the layer."""
    if ablate is None or layer not in ablate:
        return None
    mask = torch.as_tensor(ablate[layer], dtype=torch.bool, device=like.device)
    batch = like.shape[0]
    if mask.shape not in {(hidden,), (batch, hidden)}:
        raise ValueError(
            f"the ablation mask of layer {layer} has shape {tuple(mask.shape)}, expected "
            f"({hidden},) or ({batch}, {hidden})"
        )
    return (~mask).to(like.dtype)


def replay_input(x: torch.Tensor, rnn: nn.RNNBase) -> torch.Tensor:
    """``x`` on the RNN's device and dtype, batch first (B, T, F), with its shape checked."""
    weight = rnn.all_weights[0][0]  # weight_ih_l0, typed as a tensor
    x = x.to(device=weight.device, dtype=weight.dtype)
    if x.ndim != 3:
        raise ValueError(f"expected a 3-d input batch, got shape {tuple(x.shape)}")
    if rnn.batch_first is False:
        x = x.transpose(0, 1)  # (T, B, F) -> (B, T, F)
    if x.shape[-1] != rnn.input_size:
        raise ValueError(
            f"input has {x.shape[-1]} features, the {type(rnn).__name__} expects {rnn.input_size}"
        )
    return x
