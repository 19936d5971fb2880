"""Training: fit the forecaster with Lightning on whatever devices exist, and predict with it."""

from stockpred.training.fit import FitResult, fit_forecaster, predict
from stockpred.training.module import LitForecaster

__all__ = ["FitResult", "LitForecaster", "fit_forecaster", "predict"]
