"""The ingest flow under a real Prefect server, against a fake yfinance.download."""

import datetime as dt

import pytest
from prefect.client.orchestration import get_client

from flows.ingest_flow import ingest_flow
from stockpred.data import yahoo
from stockpred.data.cache import PriceCache
from tests.data.fake_yahoo import FakeYahoo


@pytest.fixture
def fake(monkeypatch) -> FakeYahoo:
    fake = FakeYahoo(["AAA", "BBB", "CCC"])
    monkeypatch.setattr(yahoo, "_yfinance_download", lambda: fake)
    return fake


def test_one_bad_ticker_fails_the_flow_but_not_the_others(prefect_server, fake, tmp_path) -> None:
    state = ingest_flow(
        ["AAA", "NOPE", "BBB", "../../x", "CCC"],
        dt.date(2020, 1, 1),
        dt.date(2020, 12, 31),
        batch_size=2,
        cache_dir=str(tmp_path),
        min_pause=0.0,
        return_state=True,
    )
    assert state.is_failed()
    assert "3 of 5 tickers cached" in state.message and "NOPE" in state.message
    assert PriceCache(tmp_path).tickers() == ["AAA", "BBB", "CCC"]
    assert not list(tmp_path.parent.glob("x*"))  # nothing written outside the cache
    with get_client(sync_client=True) as client:
        artifacts = [a for a in client.read_artifacts() if a.key == "ingest-report"]
    table = max(artifacts, key=lambda a: a.created).data  # newest; the server lists newest first
    rows = {
        row["ticker"]: row
        for row in (table if isinstance(table, list) else __import__("json").loads(table))
    }
    assert rows["AAA"]["status"] == "fetched" and rows["AAA"]["rows_cached"] == 262
    assert rows["AAA"]["first"] == "2020-01-01" and rows["AAA"]["last"] == "2020-12-31"
    assert (
        rows["NOPE"]["status"] == "failed" and "misspelled or delisted" in rows["NOPE"]["message"]
    )
    assert (
        rows["../../x"]["status"] == "failed" and "malformed ticker" in rows["../../x"]["message"]
    )


def test_a_second_run_is_served_from_the_cache(prefect_server, fake, tmp_path) -> None:
    args = (["AAA", "BBB"], dt.date(2020, 1, 1), dt.date(2020, 6, 30))
    first = ingest_flow(*args, cache_dir=str(tmp_path), min_pause=0.0, return_state=True)
    calls = len(fake.calls)
    second = ingest_flow(*args, cache_dir=str(tmp_path), min_pause=0.0, return_state=True)
    assert first.is_completed() and second.is_completed()
    assert len(fake.calls) == calls == 1
    assert "2 of 2 tickers cached" in second.message
