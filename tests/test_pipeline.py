import json

import pytest

from stockpred import experiment, tracking
from stockpred.config import PipelineConfig
from stockpred.data import DataError
from stockpred.pipeline import TrainingResult, champion_rescorer, run_training
from stockpred.tasks import TASKS

MODELS = TASKS["return"].models


@pytest.mark.slow  # trains and tracks runs
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
    assert result.best_epoch == run.data.metrics["train/best_epoch"]
    assert f"weights      epoch {result.best_epoch}'s (the lowest val/loss" in summary
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


@pytest.mark.slow  # trains twice
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


@pytest.mark.slow  # trains and tracks a run
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


def test_register_is_asked_for_on_the_command_line() -> None:
    from stockpred.cli import build_parser, config_from_args

    parser = build_parser()
    assert config_from_args(parser.parse_args(["train", "--register"])).evaluation.register_model
    assert not config_from_args(parser.parse_args(["train"])).evaluation.register_model


@pytest.mark.slow  # trains and tracks runs
def test_a_run_registers_only_when_asked_and_its_page_leads_with_the_result(
    tiny_config: PipelineConfig,
) -> None:
    config = tiny_config.with_overrides(
        {"train.max_epochs": 1, "gates.enabled": False, "evaluation.registered_name": "asked"}
    )
    assert config.evaluation.register_model is False
    quiet = run_training(config)
    assert quiet.registry == "" and quiet.model_uri is not None
    assert tracking.client().search_model_versions("name='asked'") == []
    tags = tracking.run_tags(quiet.run_id)
    assert "registry.promotion" not in tags
    description = tags["mlflow.note.content"]
    # the first line: the LSTM against the strongest baseline, named in a tag
    best = tags["verdict.best_baseline"]
    assert description.startswith(f"**verdict**: LSTM vs the strongest baseline, {best}: RMSE ")
    assert "\n**registry**: not registered" in description
    assert "| model | RMSE | vs zero |" in description and "\n| lstm | " in description
    assert tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.source.name"]
    metrics = tracking.get_run(quiet.run_id).data.metrics
    assert metrics["headline/lstm_vs_zero_rmse"] == pytest.approx(metrics["test/rmse_vs_zero"])
    assert metrics["headline/lstm_vs_zero_rmse_gain_pct"] == pytest.approx(
        100 * (1 - metrics["test/rmse_vs_zero"])
    )
    assert metrics["headline/val_lstm_vs_zero_rmse"] == metrics["val/rmse_vs_zero"]
    assert (
        quiet.run_url.endswith(f"/runs/{quiet.run_id}?workflowType=machine_learning")
        and quiet.run_url in quiet.summary()
    )
    assert "orderByKey=metrics.%60headline%2Flstm_vs_zero_rmse%60" in quiet.runs_url
    assert f"runs table   {quiet.runs_url}" in quiet.summary()


@pytest.mark.slow  # trains and tracks runs
def test_the_champion_is_rescored_on_the_challengers_validation_period(
    tiny_config: PipelineConfig,
) -> None:
    base = {"train.max_epochs": 1, "gates.enabled": False, "evaluation.register_model": True}
    name = "rescored"
    config = tiny_config.with_overrides({**base, "evaluation.registered_name": name})
    champion = run_training(config)
    assert champion.registry.startswith(f"{name} v1: promoted: first version")
    # re-scoring the champion on its own windows reproduces its own validation score
    prepared = experiment.build(experiment.load_prices(config.data), config)
    rescore = champion_rescorer(prepared, TASKS["return"])
    again = rescore(f"models:/{name}/1", champion.run_id)
    assert again == pytest.approx(champion.metrics["val/rmse_vs_zero"], rel=1e-5)
    # a challenger on a later period with another window: the champion is scored on its period
    later = config.with_overrides(
        {"data.start": "2013-01-01", "data.end": "2015-12-31", "model.window": 12}
    )
    challenger = run_training(later)
    evidence = json.loads(tracking.run_tags(challenger.run_id)["registry.evidence"])
    assert evidence["champion_version"] == "1" and evidence["champion_run"] == champion.run_id
    assert evidence["champion_own_period"] == pytest.approx(champion.metrics["val/rmse_vs_zero"])
    assert evidence["champion_rescored"] != pytest.approx(evidence["champion_own_period"])
    held, challenged = evidence["champion_rescored"], challenger.metrics["val/rmse_vs_zero"]
    assert (f"{name} v2: promoted" in challenger.registry) == (challenged < held)
    assert "on this run's validation period" in challenger.registry
    assert (
        f"\n**registry**: {name} v2: "
        in (tracking.run_tags(challenger.run_id)["mlflow.note.content"])
    )
    # another tickers' run is registered, never promoted
    apart = run_training(config.with_overrides({"data.tickers": ["^GSPC"]}))
    assert apart.registry.endswith("was trained on ^GSPC,^IXIC; this run on ^GSPC: not comparable")


def test_an_estimator_that_needs_fresh_opens_is_refused_before_a_run_exists(
    tiny_config: PipelineConfig,
) -> None:
    """^GSPC's opens are stale before 2007: Garman-Klass is refused there, and no run is left."""
    config = tiny_config.with_overrides(
        {
            "data.tickers": ["^GSPC"],
            "data.start": "2001-01-01",
            "data.end": "2005-12-31",
            "target.kind": "volatility",
            "target.estimator": "garman_klass",
            "tracking.experiment": "stale-open",
        }
    )
    with pytest.raises(DataError, match="stale"):
        run_training(config)
    experiment = tracking.client().get_experiment_by_name("stale-open")
    assert experiment is None or tracking.client().search_runs([experiment.experiment_id]) == []


def test_the_summary_says_which_epochs_weights_were_kept() -> None:
    from stockpred.pipeline import TrainingResult

    common = {"run_id": "r", "run_name": "n", "experiment": "e", "tracking_uri": "u"}
    base = TrainingResult(**common, artifact_uri="a", model_uri=None, metrics={}, seconds=1.0)
    later = TrainingResult(**{**base.as_dict(), "best_epoch": 4, "epochs": 15})
    assert "weights      epoch 4's (the lowest val/loss; epochs 0-14 trained)\n" in later.summary()
    assert "learned nothing" not in later.summary()
    first = TrainingResult(**{**base.as_dict(), "best_epoch": 0, "epochs": 15})
    said = "the network learned nothing the validation set rewards"
    assert said in first.summary() and "**weights**: epoch 0's" in first.markdown()
    assert "weights" not in base.summary()  # a result without the metric says nothing


@pytest.mark.slow  # trains and tracks a run
def test_evaluation_reuses_trainings_validation_forecasts_and_runs_the_model_on_test_only(
    tiny_config: PipelineConfig,
) -> None:
    from stockpred.split import TEST, VAL

    prepared = experiment.build(experiment.load_prices(tiny_config.data), tiny_config)
    fitted = experiment.fit(prepared, tiny_config)
    kept = experiment.kept_val_predictions(prepared, fitted)
    assert kept is not None
    rows: list[int] = []
    hook = fitted.model.register_forward_hook(lambda _m, inputs, _o: rows.append(len(inputs[0])))
    try:
        reused = experiment.evaluate(prepared, fitted.model, tiny_config, val_predictions=kept)
    finally:
        hook.remove()
    assert sum(rows) == len(prepared.dataset(TEST))  # not one validation window
    fresh = experiment.evaluate(prepared, fitted.model, tiny_config)
    assert sum(rows) == len(prepared.dataset(TEST))  # hook removed: the fresh run is not counted
    val_keys = [k for k in fresh.metrics if k.startswith("val/")]
    assert val_keys and len(prepared.dataset(VAL)) > 0
    for key in val_keys:
        assert reused.metrics[key] == pytest.approx(fresh.metrics[key], rel=1e-6, abs=1e-9)


def test_a_file_too_short_for_the_split_is_refused_before_a_run_exists(
    tiny_config: PipelineConfig, tmp_path
) -> None:
    """A 10-row file: one line saying how many dates the split needs, and no FAILED run."""
    import pandas as pd

    dates = pd.bdate_range("2020-01-01", periods=10)
    path = tmp_path / "short.csv"
    pd.DataFrame({"date": dates, "ticker": "AAA", "close": range(10, 20)}).to_csv(path)
    config = tiny_config.with_overrides(
        {
            "data.source": "files",
            "data.path": str(path),
            "data.tickers": ["AAA"],
            "data.start": "2019-01-01",
            "data.end": "2020-12-31",
            "tracking.experiment": "too-short",
        }
    )
    with pytest.raises(ValueError, match=r"10 dates are too few") as info:
        run_training(config)
    assert "needs at least 22 dates, so about 48 in all" in str(info.value)
    assert "-" not in str(info.value).split("dates")[1][:12]  # no "-19 dates"
    experiment = tracking.client().get_experiment_by_name("too-short")
    assert experiment is None or tracking.client().search_runs([experiment.experiment_id]) == []


def test_the_dataset_name_carries_the_datas_dates_not_the_configs(tiny_config) -> None:
    from stockpred.data.lineage import data_record
    from stockpred.pipeline import load_data

    config = tiny_config.with_overrides({"data.start": "2012-01-01", "data.end": "2014-12-31"})
    record = data_record(config, load_data(config))
    assert record.name == "sample:^GSPC,^IXIC:2012-01-03..2014-12-31"
    assert record.range == "2012-01-03..2014-12-31"


def test_a_volatility_description_leads_with_the_verdict_and_its_table_renders() -> None:
    metrics = {
        "test/qlike": 0.50,
        "baseline/har/test/qlike": 0.55,
        "baseline/log_har/test/qlike": 0.52,
        "baseline/rw/test/qlike": 0.90,
        "test/dm_vs_log_har/t": -0.4,
        "test/dm_vs_log_har/p": 0.69,
        "test/dm_vs_har/t": -2.1,
        "test/dm_vs_har/p": 0.036,
    }
    result = TrainingResult(
        *("id", "name", "exp", "uri", "art", None),
        metrics=metrics,
        seconds=1.0,
        task="volatility",
    )
    lines = result.markdown().splitlines()
    assert lines[0] == (
        "**verdict**: LSTM vs the strongest baseline, log_har: QLIKE 0.5 vs 0.52 (ratio 0.962; "
        "DM t -0.40, p 0.690): no significant difference at 5%"
    )
    # the caption is one paragraph and the table a Markdown table, not a code block
    assert "```" not in result.markdown()
    caption = next(line for line in lines if line.startswith("test period"))
    assert caption.endswith("MZ R2: Mincer-Zarnowitz):")
    assert "| model | QLIKE | vs HAR | vol RMSE | mean vol | MZ R2 | DM t |" in lines
    assert result.summary().splitlines()[0].startswith("MLflow run")
    assert lines[0].removeprefix("**verdict**: ") in result.summary()


def test_headline_names_say_what_each_value_is() -> None:
    from stockpred.pipeline import headline_metrics
    from stockpred.tasks import TASKS

    returns = headline_metrics(
        TASKS["return"], {"test/rmse_vs_zero": 0.98, "val/rmse_vs_zero": 0.99}
    )
    assert returns["headline/lstm_vs_zero_rmse"] == 0.98  # ratios, named as ratios
    assert returns["headline/val_lstm_vs_zero_rmse"] == 0.99
    volatility = TASKS["volatility"]
    metrics = {volatility.metric_key("lstm", volatility.relative_name): 0.9, "val/qlike": 0.38}
    shown = headline_metrics(volatility, metrics)
    assert shown["headline/lstm_vs_har_qlike"] == 0.9
    assert shown["headline/lstm_vs_har_qlike_gain_pct"] == pytest.approx(10.0)
    # the validation QLIKE the registry selects by is the LSTM's own, not a ratio to HAR
    assert shown["headline/val_lstm_qlike"] == 0.38
    assert "headline/val_lstm_vs_har_qlike" not in shown
