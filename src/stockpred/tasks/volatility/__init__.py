"""The volatility task as one package: the forward realised variance, its baselines (random
walk, EWMA, the HAR family, GARCH/GJR), QLIKE and Diebold-Mariano tests, and its figures."""

from stockpred.tasks.volatility.baselines import Ewma, Garch, Har, RandomWalk
from stockpred.tasks.volatility.task import BASELINES, QLikeLoss, VolatilityTask, dm_tests

__all__ = [
    "BASELINES",
    "Ewma",
    "Garch",
    "Har",
    "QLikeLoss",
    "RandomWalk",
    "VolatilityTask",
    "dm_tests",
]
