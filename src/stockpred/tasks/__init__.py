"""Forecasting tasks: each owns its target, baselines, metrics and their names (``base``).

``task_for(config)`` is the task a config trains; adding a task is one module and one line in
``TASKS`` (plus its name in the config).
"""

from __future__ import annotations

from stockpred.config import PipelineConfig
from stockpred.tasks.base import LSTM, Baseline, ForecastTask, Part, metric_key
from stockpred.tasks.returns import ReturnTask

TASKS: dict[str, ForecastTask] = {"return": ReturnTask()}

__all__ = ["LSTM", "TASKS", "Baseline", "ForecastTask", "Part", "metric_key", "task_for"]


def task_for(config: PipelineConfig) -> ForecastTask:
    """The task ``config`` trains (the return task: more come with ``target.kind``)."""
    return TASKS["return"]
