"""The champion rule against a real SQLite MLflow registry: like with like, on the same window."""

import contextlib
import json
import threading
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from stockpred import tracking
from stockpred.config import PipelineConfig
from stockpred.models import LSTMForecaster
from stockpred.tasks import TASKS

METRIC = TASKS["return"].selection_metric
BASE = PipelineConfig().with_overrides({"tracking.experiment": "registry", "target.kind": "return"})


def _run_with_model(skill: float, config: PipelineConfig = BASE) -> tuple[str, str]:
    with tracking.tracked_run(config) as run_id:
        tracking.log_metrics(run_id, {METRIC: skill})
        tracking.log_params(
            run_id, {"split.val_start": "2013-01-02", "split.val_end": "2013-06-28"}
        )
        uri = tracking.log_model(
            run_id, LSTMForecaster(3, hidden_size=2, num_layers=1), torch.zeros(2, 4, 3).numpy()
        )
    return run_id, uri


class Rescore:
    """A stand-in for the pipeline's re-scoring: the champion's score on the challenger's window."""

    def __init__(self, value: float) -> None:
        self.value, self.calls = value, []

    def __call__(self, model_uri: str, run_id: str) -> float:
        self.calls.append((model_uri, run_id))
        return self.value


def _register(
    run: tuple[str, str], name: str, rescore: Rescore, config: PipelineConfig = BASE
) -> tracking.Promotion:
    return tracking.register_model(*run, name, METRIC, challenger_config=config, rescore=rescore)


def test_a_comparable_challenger_is_judged_against_the_champion_rescored_on_its_window() -> None:
    name = "registry-test"
    first_run = _run_with_model(0.99)
    first = _register(first_run, name, Rescore(0.0))
    assert first.promoted and first.version == "1" and "first version" in first.reason
    # the champion scored 0.99 on its own period but 0.97 on the challenger's: 0.98 loses
    rescore = Rescore(0.97)
    worse = _register(_run_with_model(0.98), name, rescore)
    assert rescore.calls == [(f"models:/{name}/1", first_run[0])]
    assert not worse.promoted
    assert worse.reason == (
        "val/rmse_vs_zero 0.980000 does not beat champion v1's 0.970000 on this run's "
        "validation period 2013-01-02..2013-06-28"
    )
    assert worse.evidence["champion_own_period"] == pytest.approx(0.99)
    assert worse.evidence["champion_rescored"] == pytest.approx(0.97)
    client = tracking.client()
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    better_run = _run_with_model(0.96)
    better = _register(better_run, name, Rescore(0.97))
    assert better.promoted and better.reason.startswith("val/rmse_vs_zero 0.960000 beats champion")
    assert str(client.get_model_version_by_alias(name, "champion").version) == "3"
    version = client.get_model_version(name, "2")
    assert version.tags["promotion"].startswith("not promoted: val/rmse_vs_zero 0.980000")
    assert json.loads(version.tags["evidence"])["champion_rescored"] == pytest.approx(0.97)
    tags = client.get_run(better_run[0]).data.tags
    assert tags["registry.promotion"].startswith("promoted")
    evidence = json.loads(tags["registry.evidence"])
    assert evidence["promoted"] is True and evidence["champion_version"] == "1"
    assert evidence["window"] == "2013-01-02..2013-06-28" and evidence["tickers"] == "^GSPC,^IXIC"
    assert version.current_stage == "None"  # aliases only, never the deprecated stages
    # the registered model and each version say what they are, first thing in the UI
    assert "`champion` alias" in client.get_registered_model(name).description
    assert version.description.startswith("return task on ^GSPC,^IXIC (sample, horizon 1), from")
    assert version.description.endswith(
        ": val/rmse_vs_zero 0.98 (validation 2013-01-02..2013-06-28). Not promoted: "
        "val/rmse_vs_zero 0.980000 does not beat champion v1's 0.970000 on this run's "
        "validation period 2013-01-02..2013-06-28."
    )


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"data.tickers": ["^GSPC"]}, "trained on ^GSPC,^IXIC; this run on ^GSPC"),
        ({"features.horizon": 5}, "trained on horizon 1; this run on horizon 5"),
    ],
)
def test_a_challenger_that_is_not_comparable_is_registered_but_never_promoted(
    overrides: dict[str, Any], why: str
) -> None:
    name = f"registry-apart-{next(iter(overrides))}"
    _register(_run_with_model(0.99), name, Rescore(0.0))
    other = BASE.with_overrides(overrides)
    rescore = Rescore(5.0)  # would lose by far, were it compared
    refused = _register(_run_with_model(0.5, other), name, rescore, other)
    assert not refused.promoted and refused.version == "2"
    assert refused.reason == f"champion v1 was {why}: not comparable"
    assert rescore.calls == []  # never re-scored: there is nothing to compare
    champion = tracking.client().get_model_version_by_alias(name, "champion")
    assert str(champion.version) == "1"


def test_comparable_names_every_difference_including_the_task() -> None:
    assert tracking.comparable(BASE, BASE.with_overrides({"model.window": 20})) is None
    assert tracking.task_kind(BASE) == "return"
    other_task: Any = SimpleNamespace(
        data=BASE.data, features=BASE.features, target=SimpleNamespace(kind="volatility")
    )
    assert tracking.task_kind(other_task) == "volatility"
    assert (
        tracking.comparable(BASE, other_task)
        == "trained on task return; this run on task volatility"
    )
    both = BASE.with_overrides({"data.source": "yfinance", "features.horizon": 2})
    assert tracking.comparable(BASE, both) == (
        "trained on source sample, horizon 1; this run on source yfinance, horizon 2"
    )


def test_a_task_that_maximises_promotes_the_higher_score() -> None:
    promoted, reason = tracking.decide("val/ic", 0.2, 0.1, "champion v4", lower_is_better=False)
    assert promoted and reason == "val/ic 0.200000 beats champion v4's 0.100000"
    assert not tracking.decide("val/x", float("nan"), 1.0, "champion v1")[0]


def test_a_run_without_the_metric_cannot_be_judged() -> None:
    with tracking.tracked_run(BASE) as run_id:
        uri = tracking.log_model(
            run_id, LSTMForecaster(3, hidden_size=2, num_layers=1), torch.zeros(2, 4, 3).numpy()
        )
    with pytest.raises(ValueError, match="no val/rmse_vs_zero"):
        _register((run_id, uri), "registry-test-2", Rescore(0.0))


class OwnScore:
    """Re-scores a champion with its own run's metric, after both registrations met here: on
    today's main both read the same champion first (the race the lock removes)."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties)

    def __call__(self, model_uri: str, run_id: str) -> float:
        # A lock lets only one registration reach here at a time; the other arrives after the
        # first has finished, so the wait ends broken (only a delay, never a different result).
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait(timeout=20)
        return float(tracking.client().get_run(run_id).data.metrics[METRIC])


def test_two_registrations_finishing_together_leave_the_better_as_the_only_champion() -> None:
    name = "registry-race"
    first = _run_with_model(1.0)
    assert _register(first, name, Rescore(0.0)).promoted  # v1: the champion to beat
    better, worse = _run_with_model(0.5), _run_with_model(0.8)
    rescore = OwnScore(2)
    start = threading.Barrier(2)
    results: dict[str, tracking.Promotion | BaseException] = {}

    def register(label: str, run: tuple[str, str]) -> None:
        start.wait()
        try:
            results[label] = _register(run, name, rescore)
        except BaseException as exc:
            results[label] = exc

    threads = [
        threading.Thread(target=register, args=(label, run))
        for label, run in (("better", better), ("worse", worse))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(r, tracking.Promotion) for r in results.values()), results
    client = tracking.client()
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.run_id == better[0]
    # judged in turn: each promotion beat the champion of its moment, never the same one twice
    versions = {str(v.version): v for v in client.search_model_versions(f"name='{name}'")}
    assert sorted(versions) == ["1", "2", "3"]
    promoted = [v for v in versions.values() if v.tags["promotion"].startswith("promoted")]
    beaten = [json.loads(v.tags["evidence"]).get("champion_version") for v in promoted]
    assert len(beaten) == len(set(beaten)), [v.tags["promotion"] for v in promoted]
    worse_result = results["worse"]
    assert isinstance(worse_result, tracking.Promotion)
    if not worse_result.promoted:  # the better registered first: the worse never promoted
        assert str(champion.version) == results["better"].version  # type: ignore[union-attr]
