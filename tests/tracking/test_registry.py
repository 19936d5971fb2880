"""The champion rule against a real SQLite MLflow registry."""

import pytest
import torch

from stockpred import tracking
from stockpred.config import PipelineConfig
from stockpred.tasks import TASKS

METRIC = TASKS["return"].selection_metric


def _run_with_model(skill: float) -> tuple[str, str]:
    config = PipelineConfig().with_overrides({"tracking.experiment": "registry"})
    with tracking.tracked_run(config) as run_id:
        tracking.log_metrics(run_id, {METRIC: skill})
        uri = tracking.log_model(run_id, torch.nn.Linear(3, 1), torch.zeros(2, 3).numpy())
    return run_id, uri


def test_the_champion_alias_moves_only_to_a_better_model() -> None:
    name = "registry-test"
    first = tracking.register_model(*_run_with_model(0.99), name, METRIC)
    assert first.promoted and first.version == "1" and "first version" in first.reason
    worse = tracking.register_model(*_run_with_model(1.01), name, METRIC)
    assert not worse.promoted
    assert worse.reason == "val/rmse_vs_zero 1.010000 does not beat champion v1's 0.990000"
    client = tracking.client()
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    better_run, better_uri = _run_with_model(0.98)
    better = tracking.register_model(better_run, better_uri, name, METRIC)
    assert (
        better.promoted and str(client.get_model_version_by_alias(name, "champion").version) == "3"
    )
    version = client.get_model_version(name, "2")
    assert version.tags["promotion"].startswith("not promoted: val/rmse_vs_zero 1.010000")
    assert client.get_run(better_run).data.tags["registry.promotion"].startswith("promoted")
    assert version.current_stage == "None"  # aliases only, never the deprecated stages


def test_a_run_without_the_metric_cannot_be_judged() -> None:
    config = PipelineConfig().with_overrides({"tracking.experiment": "registry"})
    with tracking.tracked_run(config) as run_id:
        uri = tracking.log_model(run_id, torch.nn.Linear(3, 1), torch.zeros(2, 3).numpy())
    with pytest.raises(ValueError, match="no val/rmse_vs_zero"):
        tracking.register_model(run_id, uri, "registry-test-2", METRIC)
