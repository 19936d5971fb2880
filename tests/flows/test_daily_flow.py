"""The daily flow under a real Prefect server: ingest (Yahoo champions only), then predict."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

from flows.daily_flow import daily_flow
from stockpred.config import load_config
from stockpred.data import yahoo
from stockpred.data.cache import PriceCache
from stockpred.pipeline import run_training
from tests.conftest import TINY
from tests.data.fake_yahoo import FakeYahoo


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeYahoo]:
    fake = FakeYahoo(["AAA", "BBB"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(yahoo, "_yfinance_download", lambda: fake)
        yield fake


@pytest.fixture(scope="module")
def sample_champion() -> str:
    config = load_config(TINY).with_overrides(
        {
            "evaluation.registered_name": "daily-sample",
            "evaluation.register_model": True,
            "gates.enabled": False,
        }
    )
    run_training(config)
    return "daily-sample"


@pytest.fixture(scope="module")
def yahoo_champion(fake: FakeYahoo, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    cache = tmp_path_factory.mktemp("daily-cache")
    config = load_config(TINY).with_overrides(
        {
            "data.tickers": ["AAA", "BBB"],
            "data.source": "yfinance",
            "data.cache_dir": str(cache),
            "data.start": "2016-01-01",
            "data.end": "2018-12-31",
            "evaluation.registered_name": "daily-yahoo",
            "evaluation.register_model": True,
            "gates.enabled": False,
        }
    )
    run_training(config)
    return "daily-yahoo", cache


def _children(state) -> dict[str, str]:
    """The daily run's subflow runs: flow name -> state name."""
    parent = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent])
            )
        )
        return {client.read_flow(run.flow_id).name: run.state.name for run in runs}


def test_a_yahoo_champion_ingests_its_tickers_then_predicts(prefect_server, yahoo_champion) -> None:
    model, cache = yahoo_champion
    state = daily_flow(model, dt.date(2019, 6, 28), return_state=True)
    assert state.is_completed(), state.message
    assert _children(state) == {"ingest": "Completed", "predict": "Completed"}
    frame = pd.read_parquet(state.result())
    assert sorted(frame["ticker"]) == ["AAA", "BBB"] and (frame["as_of"] == "2019-06-28").all()
    cached = PriceCache(cache)
    assert cached.tickers() == ["AAA", "BBB"]


@pytest.mark.filterwarnings("ignore:.*could not refresh")  # asserted in the message
def test_yahoo_down_fails_the_day_without_a_forecast(
    prefect_server, yahoo_champion, fake, isolated_store
) -> None:
    model, _ = yahoo_champion
    fake.failures.extend(["offline"] * 20)
    try:
        state = daily_flow(model, dt.date(2019, 12, 31), return_state=True)
    finally:
        fake.failures.clear()
    assert state.is_failed()
    message = str(state.message)
    assert "ingest for daily-yahoo champion v1 (AAA, BBB, yfinance) could not refresh AAA, BBB" in (
        message
    )
    assert "using the cache through 2019-06-28" in message and "no forecast made" in message
    assert _children(state) == {"ingest": "Completed"}  # predict never started
    assert not list((isolated_store / "predictions").glob("2019-12-31_*"))


@pytest.mark.filterwarnings("ignore:.*could not refresh")  # asserted in the message
def test_a_ticker_that_fails_to_ingest_fails_the_day(prefect_server, yahoo_champion, fake) -> None:
    model, cache = yahoo_champion
    PriceCache(cache).path("BBB").unlink()  # nothing cached for BBB: offline, it fails outright
    fake.failures.extend(["offline"] * 20)
    try:
        state = daily_flow(model, dt.date(2019, 12, 31), return_state=True)
    finally:
        fake.failures.clear()
    assert state.is_failed() and _children(state) == {"ingest": "Failed"}
    message = str(state.message)
    assert "ingest for daily-yahoo champion v1 (AAA, BBB, yfinance) did not complete" in message
    assert "1 of 2 tickers cached; failed: BBB" in message


def test_a_sample_champion_predicts_as_of_a_date_without_ingesting(
    prefect_server, sample_champion
) -> None:
    state = daily_flow(sample_champion, dt.date(2014, 12, 31), return_state=True)
    assert state.is_completed(), state.message
    assert _children(state) == {"predict": "Completed"}
    frame = pd.read_parquet(state.result())
    assert sorted(frame["ticker"]) == ["^GSPC", "^IXIC"] and (frame["as_of"] == "2014-12-31").all()


def test_a_sample_champion_skips_the_live_day_and_says_what_to_do(
    prefect_server, sample_champion
) -> None:
    state = daily_flow(sample_champion, return_state=True)
    assert state.is_completed() and _children(state) == {}  # no ingest, no forecast
    message = str(state.message)
    assert message.startswith("skipped: daily-sample champion v1")
    assert "reads the embedded sample, which ends 2018-12-31" in message
    assert "data.source='yfinance'" in message
    assert state.result() is None
