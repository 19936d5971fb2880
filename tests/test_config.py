import json

import pytest

from stockpred.config import ConfigError, PipelineConfig, load_config, override_fields


def test_it_has_defaults_that_validate_and_derive_the_embargo() -> None:
    config = PipelineConfig()
    assert config.data.source == "sample"
    assert config.embargo == config.model.window + config.features.horizon


@pytest.mark.parametrize(
    ("override", "field", "hint"),
    [
        ({"model.window": 1}, "model.window", "greater than or equal to 2"),
        ({"features.horizon": 0}, "features.horizon", "greater than or equal to 1"),
        ({"data.tickers": []}, "data.tickers", "at least one ticker"),
        ({"data.tickers": ["../../etc"]}, "data.tickers", "malformed ticker"),
        ({"data.tickers": ["AAPL", "A B"]}, "data.tickers", "malformed ticker"),
        ({"data.source": "bloomberg"}, "data.source", "'sample'"),
        ({"data.start": "2020-01-01", "data.end": "2019-01-01"}, "data", "must be before"),
        ({"split.embargo": 3}, "split.embargo", ">= model.window + features.horizon"),
        ({"train.epochs": 3}, "train.epochs", "allowed: max_epochs"),
    ],
)
def test_it_rejects_bad_values_naming_the_field_and_what_is_allowed(
    override: dict[str, object], field: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as info:
        PipelineConfig().with_overrides(override)
    assert field in str(info.value)
    assert hint in str(info.value)


def test_it_is_frozen() -> None:
    config = PipelineConfig()
    with pytest.raises(Exception, match="frozen"):
        config.model.window = 5  # type: ignore[misc]


def test_it_accepts_yahoo_symbols() -> None:
    tickers = ("^GSPC", "BRK-B", "EURUSD=X", "7203.T")
    config = PipelineConfig().with_overrides({"data.tickers": list(tickers)})
    assert config.data.tickers == tickers


def test_it_flattens_to_section_dot_field_params() -> None:
    flat = PipelineConfig().flat()
    assert flat["model.window"] == 60
    assert flat["data.tickers"] == "^GSPC,^IXIC"
    assert flat["split.embargo_effective"] == 61
    assert all("." in key for key in flat)


def test_it_loads_a_partial_json_file(tmp_path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"model": {"window": 20}}))
    assert load_config(path).model.window == 20
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.json")


def test_it_round_trips_through_json() -> None:
    config = PipelineConfig().with_overrides({"model.hidden_size": 16})
    assert PipelineConfig.model_validate_json(config.model_dump_json()) == config


def test_a_null_end_means_through_the_latest_day() -> None:
    import datetime as dt

    config = load_config({"data": {"end": None}})
    assert config.data.end is None and config.data.last_date == dt.date.today()
    assert config.flat()["data.end"] is None  # logged as such: the run's data.range tag has dates
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    with pytest.raises(ConfigError, match="must be before end"):
        load_config({"data": {"start": tomorrow.isoformat(), "end": None}})


@pytest.mark.parametrize(
    "override",
    [
        {"train.weight_decay": float("inf")},
        {"train.weight_decay": "Infinity"},
        {"train.learning_rate": float("nan")},
        {"train.gradient_clip": float("inf")},
        {"model.dropout": float("nan")},
        {"split.val_fraction": float("nan")},
        {"evaluation.cost_bps": "NaN"},
    ],
)
def test_it_refuses_non_finite_floats_everywhere(override: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=r"Input should be a finite number") as info:
        PipelineConfig().with_overrides(override)
    assert next(iter(override)) in str(info.value)


@pytest.mark.parametrize("value", [0, -3, 0.0, 1.5, 2.0, float("inf"), float("nan"), True])
def test_it_refuses_limit_train_batches_lightning_cannot_use(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        PipelineConfig().with_overrides({"train.limit_train_batches": value})
    message = str(info.value)
    assert message.startswith("train.limit_train_batches: must be a ")
    assert "fraction in (0, 1]" in message and "batches >= 1" in message


@pytest.mark.parametrize(("value", "kept"), [(0.25, 0.25), (1.0, 1.0), (1, 1), (50, 50)])
def test_it_keeps_limit_train_batches_lightning_can_use(value: float, kept: float) -> None:
    limit = PipelineConfig().with_overrides({"train.limit_train_batches": value})
    assert limit.train.limit_train_batches == kept
    assert type(limit.train.limit_train_batches) is type(kept)  # an int is a count, a float a share


def test_a_config_path_that_is_a_folder_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match=rf"config file {tmp_path} is a folder: give a JSON file"):
        load_config(tmp_path)


def test_the_target_section_and_the_variance_features_follow_its_kind() -> None:
    default = load_config({"target": {"kind": "return"}})
    assert (default.target.kind, default.target.estimator, default.target.loss) == (
        "return",
        "parkinson",
        "qlike",
    )
    assert not default.features.variance
    assert PipelineConfig().target.kind == "volatility" and PipelineConfig().features.variance
    vol = load_config({"target": {"kind": "volatility", "estimator": "yang_zhang"}})
    assert vol.features.variance
    switched = default.with_overrides({"target.kind": "volatility"})
    assert switched.features.variance
    assert not switched.with_overrides({"target.kind": "return"}).features.variance
    kept = default.with_overrides({"target.kind": "volatility", "features.variance": False})
    assert not kept.features.variance
    assert load_config(vol.model_dump(mode="json")) == vol
    with pytest.raises(ConfigError, match=r"target\.estimator"):
        load_config({"target": {"kind": "volatility", "estimator": "close_close"}})


def test_it_refuses_a_device_or_a_fifo_as_the_config_without_reading_it(tmp_path) -> None:
    import os

    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # nobody writes to it: reading it would wait forever
    for path in ("/dev/zero", fifo):
        with pytest.raises(ConfigError, match="not a regular file"):
            load_config(path)
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)


def test_it_refuses_a_config_file_larger_than_the_limit(tmp_path) -> None:
    from stockpred.config import MAX_CONFIG_BYTES

    path = tmp_path / "big.json"
    path.write_text(json.dumps({"tracking": {"run_name": "x" * MAX_CONFIG_BYTES}}))
    with pytest.raises(ConfigError, match="larger than 1024 KiB") as info:
        load_config(path)
    assert len(str(info.value)) < 300  # the value itself is not echoed back


def test_a_100000_deep_config_is_one_line_not_a_recursion_error(tmp_path) -> None:
    from stockpred.cli import _parse_value

    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match="nested deeper than 32 levels"):
        load_config(path)
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ConfigError, match="nested deeper"):
        load_config({"data": {"tickers": deep}})
    with pytest.raises(ConfigError, match="nested too deep"):
        _parse_value("[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize(
    ("override", "hint"),
    [
        ({"train.seed": 2**32}, "train.seed: Input should be less than or equal to 4294967295"),
        ({"train.limit_train_batches": 0.001}, "less than one batch: use at least"),
        ({"evaluation.registered_name": "team/lstm"}, "without '/' or ':'"),
        ({"evaluation.registered_name": "a:b"}, "without '/' or ':'"),
        ({"tracking.run_name": "x" * 251}, "at most 250 characters"),
        ({"data.source": "files", "data.path": "p" * 6001}, "data.path is 6,001 characters"),
        (
            {"model.hidden_size": 4096, "model.num_layers": 8, "train.batch_size": 10**9},
            "GiB of memory, more than this machine's",
        ),
    ],
)
def test_it_refuses_what_a_library_would_refuse_later(
    override: dict[str, object], hint: str
) -> None:
    with pytest.raises(ConfigError) as info:
        PipelineConfig().with_overrides(override)
    assert hint in str(info.value)
    assert (
        "\n" not in str(info.value) and len(str(info.value)) < 400
    )  # one readable line, the long value not echoed whole


def test_it_keeps_the_largest_values_the_libraries_accept() -> None:
    config = PipelineConfig().with_overrides(
        {"train.seed": 2**32 - 1, "train.limit_train_batches": 0.05, "tracking.run_name": "r" * 250}
    )
    assert config.train.seed == 2**32 - 1
    # the bound is an upper bound: a fraction that leaves one batch of the real data passes
    assert 0.05 * config.most_train_batches() >= 1


def test_the_batch_limit_bound_is_never_below_the_real_batch_count() -> None:
    from stockpred.data import load_prices

    config = PipelineConfig()
    data = config.data
    dates = (
        load_prices(data.tickers, data.start, data.last_date)
        .index.get_level_values("date")
        .nunique()
    )
    train_windows = dates * (1 - config.split.val_fraction - config.split.test_fraction) * 2
    assert config.most_train_batches() >= train_windows / 256


def test_a_partial_config_overrides_another_field_by_field() -> None:
    base = load_config(
        {"train": {"progress_bar": False}, "evaluation": {"register_model": True}}
    ).model_dump(mode="json")
    given = {"train": {"max_epochs": 3}, "tracking": {"report": False}}
    merged = load_config(override_fields(base, given))
    assert merged.train.max_epochs == 3 and merged.train.progress_bar is False
    assert merged.evaluation.register_model and merged.tracking.report == "off"
    assert base["train"]["max_epochs"] == 15  # the base is left as it was
    # a new task brings its own features unless they are given too
    returns = load_config(override_fields(base, {"target": {"kind": "return"}}))
    assert returns.target.kind == "return" and not returns.features.variance
    kept = {"target": {"kind": "return"}, "features": {"variance": True}}
    assert load_config(override_fields(base, kept)).features.variance
