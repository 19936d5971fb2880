import pytest

from stockpred import tracking
from stockpred.config import PipelineConfig
from stockpred.data import DataError
from stockpred.pipeline import MODELS, run_training


def test_it_trains_and_scores_the_lstm_beside_every_baseline(tiny_config: PipelineConfig) -> None:
    result = run_training(tiny_config)
    for prefix in ("test", *(f"baseline/{m}/test" for m in MODELS[1:])):
        for metric in ("rmse", "mae", "dir_acc"):
            assert f"{prefix}/{metric}" in result.metrics
    assert result.metrics["baseline/zero/test/rmse"] > 0
    assert 0 <= result.metrics["test/dir_acc"] <= 1
    summary = result.summary()
    assert result.run_id in summary and "mlflow ui --backend-store-uri" in summary
    assert all(f"\n  {m}" in summary for m in MODELS)
    assert tracking.client().get_run(result.run_id).info.status == "FINISHED"


def test_the_same_config_and_seed_give_the_same_metrics(tiny_config: PipelineConfig) -> None:
    config = tiny_config.with_overrides({"train.max_epochs": 2, "tracking.log_model": False})
    first, second = run_training(config), run_training(config)
    assert first.run_id != second.run_id
    assert first.metrics == second.metrics
    assert first.model_uri is None


def test_a_bad_data_range_fails_the_run_clearly(tiny_config: PipelineConfig) -> None:
    config = tiny_config.with_overrides({"data.start": "2030-01-01", "data.end": "2031-01-01"})
    with pytest.raises(DataError, match="the sample covers"):
        run_training(config)
    runs = tracking.client().search_runs(
        [tracking.experiment_id(config.tracking.experiment)],
        order_by=["attributes.start_time DESC"],
    )
    assert runs[0].info.status == "FAILED"
    assert "the sample covers" in runs[0].data.tags["error"]
