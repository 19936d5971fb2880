"""The report's memory-by-use section: how far back, the gates beside it, where it lives."""

from __future__ import annotations

from stockpred.config import load_config
from stockpred.report import memory_by_use_html

METRICS = {
    "memory/saliency_tau": 17.4,
    "memory/untrained/saliency_tau": 2.5,
    "memory/k90": 35.0,
    "memory/truncation_k5": 1.437,
    "gates/l0/timescale/median": 1.9,
    "memory/best_ewma_tau": 13.9,
    "memory/ewma_excess_1_5d": 0.12,
}


def test_it_says_how_far_back_and_that_the_gates_disagree() -> None:
    config = load_config({"features": {"include": ["daily"]}, "model": {"window": 64}})
    text = memory_by_use_html(METRICS, config)
    assert "looks back about 17.4 trading days" in text and "untrained: 2.5" in text
    assert "+43.7%" in text and "last 35 days" in text and "64-day window" in text
    assert "The gates tell a different story" in text and "1.9 days" in text
    assert "few slow units" in text
    assert "best exponential memory of this target is 13.9 days" in text and "memory pays" in text
    assert "the network's own" in text and "make bench-memory" in text


def test_agreeing_gates_and_multi_day_inputs_are_said_so() -> None:
    metrics = {**METRICS, "gates/l0/timescale/median": 12.0}
    text = memory_by_use_html(metrics, load_config({}))
    assert "agree within a factor 2" in text and "features.include=daily" in text


def test_a_run_without_the_measure_says_so() -> None:
    assert "did not measure memory by use" in memory_by_use_html({}, load_config({}))
