"""Feature selection (features.include / exclude) changes the network's inputs and no baseline,
and a tracked run logs the memory measured by use."""

from __future__ import annotations

import numpy as np
import pytest

from stockpred import experiment, tracking
from stockpred.config import PipelineConfig, load_config
from stockpred.features import daily_features, feature_names, select_features
from stockpred.pipeline import on_scaling_of, run_training
from stockpred.split import TEST, TRAIN, VAL
from stockpred.tasks import Part, task_for


def test_the_daily_set_holds_the_same_day_quantities_only() -> None:
    config = load_config({"target": {"kind": "volatility"}}).features
    daily = daily_features(config)
    assert set(daily) == {
        "ret_1d",
        "hl_range",
        "oc_return",
        "lv_parkinson",
        "lv_garman_klass",
        "lv_rogers_satchell",
        "lv_yang_zhang",
        "lv_squared_return",
    }
    every = feature_names(config)
    chosen = select_features(config.model_copy(update={"include": ("daily", "ret_5d")}), every)
    assert chosen == [n for n in every if n in {*daily, "ret_5d"}]  # in feature order
    dropped = config.model_copy(update={"exclude": ("daily",)})
    assert set(select_features(dropped, every)) == set(every) - set(daily)


@pytest.mark.parametrize(
    ("field", "names", "message"),
    [
        (
            "include",
            ("daily", "ret_2d"),
            r"features.include names unknown feature\(s\) \['ret_2d'\]",
        ),
        ("exclude", ("nope",), r"features.exclude names unknown feature\(s\) \['nope'\]"),
        ("exclude", ("all",), "leaves no input"),
    ],
)
def test_an_unknown_or_empty_selection_is_one_clear_line(
    field: str, names: tuple, message: str
) -> None:
    config = load_config({"features": {field: list(names)}}).features
    with pytest.raises(ValueError, match=message) as error:
        select_features(config, feature_names(config))
    assert "\n" not in str(error.value)


def test_a_comma_separated_override_is_a_list(tiny_config: PipelineConfig) -> None:
    config = tiny_config.with_overrides({"features.include": "daily, ret_5d"})
    assert config.features.include == ("daily", "ret_5d")


@pytest.mark.parametrize("kind", ["volatility", "return"])
def test_selection_changes_the_lstm_inputs_and_no_baseline_forecast(
    tiny_config: PipelineConfig, kind: str
) -> None:
    config = tiny_config.with_overrides({"target.kind": kind})
    prices = experiment.load_prices(config.data)
    every = experiment.build(prices, config)
    daily = experiment.build(prices, config.with_overrides({"features.include": ["daily"]}))
    assert daily.feature_names == tuple(daily_features(config.features))
    assert len(daily.feature_names) < len(every.feature_names)
    assert daily.dataset(TRAIN).num_features == len(daily.feature_names)
    for part in (TRAIN, VAL, TEST):  # the same windows: the comparison stays like for like
        assert daily.dataset(part).ends.equal(every.dataset(part).ends)
    column = every.feature_names.index("ret_1d")
    np.testing.assert_array_equal(
        daily.features[:, daily.feature_names.index("ret_1d")], every.features[:, column]
    )
    # a champion trained on every feature is rescored on a daily-only challenger's data
    rescaled = on_scaling_of(daily, every.preprocessing(), every.window)
    assert rescaled.feature_names == every.feature_names
    np.testing.assert_allclose(rescaled.features, every.features, atol=1e-5)
    task = task_for(config)
    for a, b in zip(task.baselines(config), task.baselines(config), strict=True):
        a.fit(Part.of(every, TRAIN), Part.of(every, VAL))
        b.fit(Part.of(daily, TRAIN), Part.of(daily, VAL))
        np.testing.assert_array_equal(
            a.predict(Part.of(every, TEST)), b.predict(Part.of(daily, TEST)), err_msg=a.name
        )


def test_a_run_logs_the_memory_it_uses_and_what_memory_could_earn(
    tiny_config: PipelineConfig,
) -> None:
    config = tiny_config.with_overrides(
        {
            "target.kind": "volatility",
            "features.include": ["daily"],
            "train.max_epochs": 2,
            "tracking.log_model": False,
        }
    )
    result = run_training(config)
    metrics = tracking.client().get_run(result.run_id).data.metrics
    window = config.model.window
    for prefix in ("memory", "memory/untrained"):
        assert 1 <= metrics[f"{prefix}/k90"] <= window
        assert metrics[f"{prefix}/saliency_tau"] >= 0
        assert metrics[f"{prefix}/truncation_k5"] > 0
    assert 0.5 <= metrics["memory/best_ewma_tau"] <= 256
    assert metrics["memory/ewma_excess_1_5d"] >= 0
    history = tracking.client().get_metric_history(result.run_id, "memory/k90")
    assert sorted(m.step for m in history) == [0, 1]
    files = {f.path for f in tracking.client().list_artifacts(result.run_id, "memory")}
    assert {"memory/memory.png", "memory/value.png", "memory/curves.parquet"} <= files
    # the kept weights' measures equal what the kept epoch logged (the last epoch may differ)
    best = int(metrics["train/best_epoch"])
    assert metrics["memory/kept/epoch"] == metrics["gates/kept/epoch"] == best
    for kept, per_epoch in (
        ("memory/kept/k90", "memory/k90"),
        ("memory/kept/saliency_tau", "memory/saliency_tau"),
        ("gates/kept/l0/timescale/median", "gates/l0/timescale/median"),
    ):
        at_best = {
            m.step: m.value for m in tracking.client().get_metric_history(result.run_id, per_epoch)
        }[best]
        assert metrics[kept] == pytest.approx(at_best, rel=1e-5), kept


def test_an_unknown_feature_is_refused_before_a_run_exists(tiny_config: PipelineConfig) -> None:
    config = tiny_config.with_overrides(
        {"features.include": ["dailly"], "tracking.experiment": "bad-selection"}
    )
    with pytest.raises(ValueError, match="unknown feature"):
        run_training(config)
    experiment_ = tracking.client().get_experiment_by_name("bad-selection")
    assert experiment_ is None or tracking.client().search_runs([experiment_.experiment_id]) == []
