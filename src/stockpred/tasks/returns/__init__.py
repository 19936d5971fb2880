"""The return task as one package: the forward log return, its baselines, scores and figures."""

from stockpred.tasks.returns.baselines import (
    AutoRegression,
    Mean,
    RidgeOnFeatures,
    Zero,
)
from stockpred.tasks.returns.task import ReturnTask

__all__ = ["AutoRegression", "Mean", "ReturnTask", "RidgeOnFeatures", "Zero"]
