import pytest

from stockpred import tracking
from stockpred.config import PipelineConfig
from stockpred.data import DataError
from stockpred.pipeline import run_training
from stockpred.tasks import TASKS

MODELS = TASKS["return"].models


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
    run = tracking.client().get_run(result.run_id)
    assert run.info.status == "FINISHED"
    # where the time went: one metric per stage, together no more than the whole run
    stages = (
        "load_data",
        "build_features",
        "prepare_data",
        "train_model",
        "evaluate_model",
        "log_trained_model",
        "render_diagnostics",
    )
    seconds = [run.data.metrics[f"time/{stage}_s"] for stage in stages]
    assert all(s >= 0 for s in seconds) and sum(seconds) <= result.seconds
    assert max(seconds) == run.data.metrics["time/train_model_s"]


def test_the_same_config_and_seed_give_the_same_metrics(tiny_config: PipelineConfig) -> None:
    config = tiny_config.with_overrides({"train.max_epochs": 2, "tracking.log_model": False})
    first, second = run_training(config), run_training(config)
    assert first.run_id != second.run_id
    assert first.metrics == second.metrics
    assert first.model_uri is None


def test_a_bad_data_range_is_a_clear_error_that_creates_no_run(tiny_config: PipelineConfig) -> None:
    config = tiny_config.with_overrides(
        {"data.start": "2030-01-01", "data.end": "2031-01-01", "tracking.experiment": "no-run"}
    )
    with pytest.raises(DataError, match="the sample covers"):
        run_training(config)
    runs = tracking.client().search_runs([tracking.experiment_id(config.tracking.experiment)])
    assert runs == []  # checked before the run was created: no FAILED run to clean up


def test_it_trains_on_cached_yahoo_data(tiny_config, monkeypatch, tmp_path) -> None:
    import datetime as dt

    from stockpred.data import yahoo
    from stockpred.data.market import ingest
    from tests.data.fake_yahoo import FakeYahoo

    fake = FakeYahoo(["AAA", "BBB"])
    monkeypatch.setattr(yahoo, "_yfinance_download", lambda: fake)
    results = ingest(
        ["AAA", "BBB"], dt.date(2015, 1, 1), dt.date(2018, 12, 31), str(tmp_path), min_pause=0
    )
    assert all(r.ok for r in results) and len(fake.calls) == 1
    config = tiny_config.with_overrides(
        {
            "data.source": "yfinance",
            "data.tickers": ["AAA", "BBB"],
            "data.start": "2015-01-01",
            "data.end": "2018-12-31",
            "data.cache_dir": str(tmp_path),
            "data.refresh": False,
            "tracking.log_model": False,
            "gates.enabled": False,
        }
    )
    result = run_training(config)
    assert len(fake.calls) == 1  # training read the cache only
    run = tracking.client().get_run(result.run_id)
    assert run.data.tags["source"] == "yfinance" and run.data.tags["tickers"] == "AAA,BBB"
    assert result.metrics["baseline/zero/test/rmse"] > 0


def test_a_null_end_loads_through_the_latest_day(tiny_config: PipelineConfig, tmp_path) -> None:
    """``data.end: null`` (a scheduled retrain on live data): the sample, which ends 2018-12-31,
    is loaded to its last day, and the run records the dates it really got."""
    import pandas as pd

    from stockpred.data.lineage import data_record
    from stockpred.pipeline import load_data

    config = tiny_config.with_overrides({"data.start": "2018-06-01", "data.end": None})
    prices = load_data(config)
    dates = prices.index.get_level_values("date")
    assert dates.max() == pd.Timestamp("2018-12-31")
    assert data_record(config, prices).range.endswith("..2018-12-31")
