"""The forecasting networks as one package: each model owns its construction, its weights-only
save/load (``architecture()``) and the gate replay it supports.

``MODELS`` names every model a config can choose (``model.arch``).
"""

from stockpred.models.lstm import INITS, LitForecaster, LSTMForecaster, chrono_init

MODELS: dict[str, type] = {"lstm": LSTMForecaster}

__all__ = ["INITS", "MODELS", "LSTMForecaster", "LitForecaster", "chrono_init"]
