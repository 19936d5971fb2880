"""Training: fit the forecaster with Lightning on whatever devices exist, and predict with it."""

from stockpred.training.fit import FitResult, fit_forecaster, predict

__all__ = ["FitResult", "fit_forecaster", "predict"]
