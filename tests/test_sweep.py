"""The search space, its trials, the best-trial rule and the comparison table (no training)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stockpred.config import ConfigError
from stockpred.figures.comparison import sweep_trials_figure
from stockpred.sweep import (
    SearchSpace,
    SweepError,
    TrialOutcome,
    Uniform,
    best_trial,
    comparison_table,
    load_space,
    parse_values,
    trials,
)
from stockpred.tasks import TASKS

GRID = {"params": {"model.hidden_size": [8, 16, 32], "train.learning_rate": [1e-3, 3e-3]}}
RANDOM = {
    "method": "random",
    "n_trials": 50,
    "seed": 7,
    "params": {
        "train.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
        "model.hidden_size": {"low": 4, "high": 64, "log": True, "integer": True},
        "model.dropout": [0.0, 0.1, 0.2],
    },
}


def test_a_grid_is_every_combination_in_order(tiny_config) -> None:
    space = load_space(GRID)
    assert space.size == 6
    found = trials(tiny_config, space)
    assert [t.number for t in found] == list(range(6))
    assert [(t.config.model.hidden_size, t.config.train.learning_rate) for t in found] == [
        (8, 1e-3),
        (8, 3e-3),
        (16, 1e-3),
        (16, 3e-3),
        (32, 1e-3),
        (32, 3e-3),
    ]
    # everything else comes from the base config; trials never register models
    assert all(t.config.model.window == tiny_config.model.window for t in found)
    assert all(t.config.evaluation.register_model is False for t in found)
    assert tiny_config.evaluation.register_model is False  # registering is asked for
    assert found[3].name == "trial-3 hidden_size=16 learning_rate=0.003"
    assert found[3].tags("abc") == {
        "mlflow.parentRunId": "abc",
        "run.kind": "sweep_trial",
        "sweep.trial": "3",
    }


def test_random_search_is_reproducible_with_its_seed_and_stays_in_bounds(tiny_config) -> None:
    first = load_space(RANDOM).overrides()
    assert first == load_space(RANDOM).overrides()  # same seed, same trials
    assert first != load_space({**RANDOM, "seed": 8}).overrides()
    assert len(first) == 50
    rates = np.array([t["train.learning_rate"] for t in first])
    sizes = np.array([t["model.hidden_size"] for t in first])
    assert ((rates >= 1e-4) & (rates <= 1e-2)).all()
    assert ((sizes >= 4) & (sizes <= 64)).all() and all(
        type(t["model.hidden_size"]) is int for t in first
    )
    assert {t["model.dropout"] for t in first} == {0.0, 0.1, 0.2}
    assert all(type(t["model.dropout"]) is float for t in first)  # not numpy scalars
    # log-uniform: about as many draws per decade (1e-4..1e-3 vs 1e-3..1e-2), not 1:9
    low_decade = (rates < 1e-3).mean()
    assert 0.3 < low_decade < 0.7
    assert len(trials(tiny_config, RANDOM)) == 50


def test_log_uniform_draws_are_uniform_in_log_space() -> None:
    dist = Uniform(low=1e-5, high=1e-1, log=True)
    rng = np.random.default_rng(0)
    draws = np.array([dist.sample(rng) for _ in range(4000)])
    assert draws.min() >= 1e-5 and draws.max() <= 1e-1
    per_decade = np.histogram(np.log10(draws), bins=4, range=(-5, -1))[0] / len(draws)
    assert np.allclose(per_decade, 0.25, atol=0.03)
    assert Uniform(low=8, high=9, integer=True).bounds() == (8, 9)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"params": {"model.hidden": [8]}}, "unknown setting 'model.hidden'; model has: window"),
        ({"params": {"modle.hidden_size": [8]}}, "unknown setting 'modle.hidden_size'"),
        ({"params": {"model.hidden_size": []}}, "the list of values is empty"),
        ({"params": {"model.hidden_size": 8}}, "give a list of values (e.g. [8])"),
        ({"params": {}}, "name at least one setting to vary"),
        ({"params": {"model.hidden_size": [8, 8]}}, "duplicate values"),
        ({"params": {"tracking.experiment": ["a", "b"]}}, "cannot vary per trial"),
        ({"params": {"evaluation.register_model": [True]}}, "cannot vary per trial"),
        ({"params": {"data.start": ["2012-01-01"]}}, "compared on the same data, target"),
        ({"params": {"split.test_fraction": [0.1, 0.2]}}, "compared on the same data, target"),
        ({"params": {"features.horizon": [1, 5]}}, "compared on the same data, target"),
        ({"params": {"model.dropout": {"low": 0, "high": 0.5}}}, "a grid needs lists"),
        ({"method": "random", "params": {"model.dropout": [0.1]}}, "needs n_trials"),
        ({"params": {"model.dropout": [0.1]}, "n_trials": 3}, "n_trials is for random search"),
        (
            {
                "method": "random",
                "n_trials": 2,
                "params": {"train.learning_rate": {"low": 0, "high": 1, "log": True}},
            },
            "low > 0",
        ),
        (
            {
                "method": "random",
                "n_trials": 2,
                "params": {"model.dropout": {"low": 0.5, "high": 0.1}},
            },
            "low < high",
        ),
        (
            {
                "params": {
                    "model.hidden_size": list(range(1, 30)),
                    "model.window": list(range(10, 40)),
                }
            },
            "870 combinations",
        ),
    ],
)
def test_a_bad_space_is_a_clear_config_error(space, message) -> None:
    with pytest.raises(ConfigError, match="search space") as error:
        load_space(space)
    assert message in str(error.value)


def test_bad_values_are_reported_for_every_bad_trial_before_any_runs(tiny_config) -> None:
    space = {"params": {"model.dropout": [0.0, 1.0], "model.window": [3, 10]}}
    with pytest.raises(ConfigError) as error:
        trials(tiny_config, space)
    text = str(error.value)
    assert text.startswith("3 of 4 trials are invalid")
    assert "trial 0 (model.dropout=0.0, model.window=3)" in text and "ar_order" in text
    assert "model.dropout: Input should be less than 1" in text
    # a random range is checked at its extremes, before anything is drawn
    ranged = {
        "method": "random",
        "n_trials": 2,
        "params": {"model.window": {"low": 2, "high": 20, "integer": True}},
    }
    with pytest.raises(ConfigError, match=r"model.window uniform integers in \[2, 20\]"):
        trials(tiny_config, ranged)


def test_cli_specs_parse_lists_and_ranges() -> None:
    assert parse_values("model.hidden_size=8,16") == ("model.hidden_size", (8, 16))
    assert parse_values("train.learning_rate=1e-3, 3e-3") == ("train.learning_rate", (1e-3, 3e-3))
    assert parse_values("train.accelerator=cpu") == ("train.accelerator", ("cpu",))
    key, dist = parse_values("train.learning_rate=log:1e-4..1e-2", random=True)
    assert key == "train.learning_rate" and dist == Uniform(low=1e-4, high=1e-2, log=True)
    assert parse_values("model.hidden_size=8..64", random=True)[1].integer
    for bad, random, message in [
        ("model.hidden_size", False, "expected section.field=v1,v2"),
        ("model.hidden_size=8..64", False, "needs random search"),
        ("train.learning_rate=a..b", True, "low..high with numbers"),
        ("model.dropout=0.5..0.1", True, "low < high"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_values(bad, random=random)
    space = SearchSpace(params=dict([parse_values("model.hidden_size=8,16")]))
    assert space.describe() == "grid of 2: model.hidden_size in [8, 16]"


TASK = TASKS["return"]
SELECTION_METRIC = TASK.selection_metric


def _outcome(number: int, val: float | None, test: float = 1.0, **kw) -> TrialOutcome:
    metrics = {} if val is None else {SELECTION_METRIC: val, "test/rmse_vs_zero": test}
    status = "FINISHED" if val is not None else "FAILED"
    return TrialOutcome(
        number,
        {"model.hidden_size": 8 * (number + 1)},
        f"run{number}",
        status,
        metrics,
        error="" if val is not None else "ValueError: boom",
        selection_metric=SELECTION_METRIC,
        **kw,
    )


def test_the_best_trial_is_chosen_on_validation_never_test() -> None:
    outcomes = [_outcome(0, 1.02, test=0.90), _outcome(1, 0.99, test=1.10), _outcome(2, None)]
    assert best_trial(outcomes).number == 1  # best validation, though trial 0 tests better
    assert best_trial([_outcome(0, 1.0), _outcome(1, 1.0)]).number == 0  # ties: the first
    with pytest.raises(SweepError, match=r"no trial of 2 finished.*ValueError: boom"):
        best_trial([_outcome(0, None), _outcome(1, None)])


def test_the_table_has_one_row_per_trial_failures_included() -> None:
    outcomes = [_outcome(1, 0.99), _outcome(2, None), _outcome(0, 1.02)]
    table = comparison_table(outcomes, TASK)
    assert list(table["trial"]) == [0, 1, 2]
    assert list(table["status"]) == ["FINISHED", "FINISHED", "FAILED"]
    assert list(table["model.hidden_size"]) == [8, 16, 24]
    assert table["rank"].tolist()[:2] == [2, 1] and table["rank"].isna().tolist()[2]
    assert math.isnan(table[SELECTION_METRIC].iloc[2]) and table["error"].iloc[2]
    assert list(table["run_id"]) == ["run0", "run1", "run2"]
    fig = sweep_trials_figure(table, SELECTION_METRIC, "test/rmse_vs_zero")
    ax = fig.axes[0]
    assert any(line.get_ydata()[0] == 1.0 for line in ax.get_lines())  # the zero-forecast line
    assert len(ax.get_xticklabels()) == 3


def test_trials_with_different_windows_validate_on_the_same_dates(tiny_config) -> None:
    """The default embargo is window + horizon, so each window would move the periods: every
    trial gets the longest window's embargo instead, and the same validation and test dates."""
    from stockpred.data import load_prices
    from stockpred.features import make_features, make_target
    from stockpred.prepare import prepare

    found = trials(tiny_config, {"params": {"model.window": [5, 10, 20]}})
    assert {t.config.embargo for t in found} == {20 + tiny_config.features.horizon}
    data = tiny_config.data
    prices = load_prices(data.tickers, data.start, data.end)
    features = make_features(prices, tiny_config.features)
    target = make_target(prices, tiny_config.features.horizon)
    periods = {tuple(prepare(features, target, t.config).split.as_dict().items()) for t in found}
    assert len(periods) == 1  # the same train, validation and test dates
    # an embargo the user set is kept as it is
    pinned = tiny_config.with_overrides({"split.embargo": 40})
    assert {t.config.embargo for t in trials(pinned, {"params": {"model.window": [5, 10]}})} == {40}
