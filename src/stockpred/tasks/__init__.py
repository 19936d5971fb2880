"""Forecasting tasks: each owns its target, baselines, metrics and their names (``base``).

``task_for(config)`` is the task a config trains; adding a task is one module and one line in
``TASKS`` (plus its name in the config).
"""

from __future__ import annotations

from stockpred.config import PipelineConfig
from stockpred.tasks.base import LSTM, Baseline, ForecastTask, Part, metric_key
from stockpred.tasks.returns import ReturnTask
from stockpred.tasks.volatility import VolatilityTask

TASKS: dict[str, ForecastTask] = {"return": ReturnTask(), "volatility": VolatilityTask()}

__all__ = ["LSTM", "TASKS", "Baseline", "ForecastTask", "Part", "metric_key", "task_for"]


def task_for(config: PipelineConfig) -> ForecastTask:
    """The task ``config`` trains: the one named by ``config.target.kind``."""
    return TASKS[config.target.kind]
