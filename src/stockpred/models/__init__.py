"""The forecasting networks as one package: each model owns its construction, its weights-only
save/load (``architecture()``, with the ``arch`` name) and the gate replay it supports.

``MODELS`` names every model a config can choose (``model.arch``).
"""

from typing import Any

from stockpred.models.forecaster import Forecaster, GateActivations, GateSpec, find_forecaster
from stockpred.models.gru import GRUForecaster, gru_gate_activations
from stockpred.models.lstm import INITS, LSTMForecaster, chrono_init, lstm_gate_activations

MODELS: dict[str, type[Forecaster]] = {"lstm": LSTMForecaster, "gru": GRUForecaster}


def build_model(num_features: int, config: Any) -> Forecaster:
    """The untrained model ``config.arch`` names (a ``ModelConfig``), for ``num_features`` inputs."""
    return model_class(config.arch).from_config(num_features, config)


def model_class(arch: str) -> type[Forecaster]:
    """The registered model class of ``arch``; an unknown name is one clear error."""
    if arch not in MODELS:
        raise ValueError(f"unknown model.arch {arch!r}: expected one of {sorted(MODELS)}")
    return MODELS[arch]


def load_architecture(architecture: dict[str, Any]) -> Forecaster:
    """An untrained model rebuilt from ``architecture()``'s dict (no ``arch``: an LSTM, as logged
    before the GRU existed); load the state dict into it."""
    arguments = dict(architecture)
    return model_class(str(arguments.pop("arch", "lstm")))(**arguments)


__all__ = [
    "INITS",
    "MODELS",
    "Forecaster",
    "GRUForecaster",
    "GateActivations",
    "GateSpec",
    "LSTMForecaster",
    "build_model",
    "chrono_init",
    "find_forecaster",
    "gru_gate_activations",
    "load_architecture",
    "lstm_gate_activations",
    "model_class",
]
