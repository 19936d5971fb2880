import datetime as dt

import pandas as pd
import pytest

from stockpred.data.yahoo import (
    FetchError,
    RateLimitedError,
    TickerFetchError,
    YahooSource,
    normalise,
)
from tests.data.fake_yahoo import FakeYahoo


def _source(fake: FakeYahoo, sleeps: list[float] | None = None, **kwargs) -> YahooSource:
    record = sleeps.append if sleeps is not None else (lambda s: None)
    return YahooSource(download=fake, min_pause=0.0, sleep=record, **kwargs)


def test_it_normalises_the_multiindex_frame_to_our_columns() -> None:
    fake = FakeYahoo(["AAA", "BBB"])
    out = _source(fake).fetch(["AAA", "BBB"], dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    assert list(out) == ["AAA", "BBB"]
    frame = out["AAA"]
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert frame.index.name == "date" and frame.index.tz is None
    assert frame.index.min() == pd.Timestamp("2024-01-01") and frame.index.max() == pd.Timestamp(
        "2024-01-31"
    )
    call = fake.calls[0]
    assert (call["start"], call["end"]) == ("2024-01-01", "2024-02-01")  # end made inclusive


def test_an_unknown_ticker_gets_an_empty_frame_beside_good_ones() -> None:
    fake = FakeYahoo(["AAA"])
    out = _source(fake).fetch(["AAA", "NOPE"], dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    assert len(out["AAA"]) > 15 and out["NOPE"].empty
    alone = _source(fake).fetch(["NOPE"], dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    assert alone["NOPE"].empty


def test_rate_limits_are_retried_with_growing_jittered_backoff() -> None:
    fake = FakeYahoo(["AAA"])
    fake.failures.extend(["raise-rate-limit", "log-rate-limit"])
    sleeps: list[float] = []
    out = _source(fake, sleeps, backoff=2.0, jitter=0.5).fetch(
        ["AAA"], dt.date(2024, 1, 1), dt.date(2024, 1, 31)
    )
    assert len(out["AAA"]) > 15
    assert len(fake.calls) == 3
    assert 1.0 <= sleeps[0] <= 3.0 and 2.0 <= sleeps[1] <= 6.0


def test_it_gives_up_after_its_retries_with_a_clear_error() -> None:
    fake = FakeYahoo(["AAA"])
    fake.failures.extend(["log-rate-limit"] * 3)
    with pytest.raises(RateLimitedError, match=r"rate-limited the request for AAA, 3 attempts"):
        _source(fake, retries=2).fetch(["AAA"], dt.date(2024, 1, 1), dt.date(2024, 1, 31))


def test_transport_errors_are_retried_too() -> None:
    calls = []

    def broken(tickers, **kwargs):
        calls.append(tickers)
        raise ConnectionError("curl: (6) Could not resolve host: query2.finance.yahoo.com")

    with pytest.raises(
        FetchError,
        match=r"could not reach Yahoo \(curl: \(6\) Could not resolve host: query2.finance.yahoo.com\), 2 attempts",
    ):
        YahooSource(download=broken, retries=1, min_pause=0, sleep=lambda s: None).fetch(
            ["AAA"], dt.date(2024, 1, 1), dt.date(2024, 1, 2)
        )
    assert len(calls) == 2


def test_many_tickers_go_in_batches() -> None:
    names = [f"T{i}" for i in range(45)]
    fake = FakeYahoo(names)
    out = _source(fake, batch_size=20).fetch(names, dt.date(2024, 1, 1), dt.date(2024, 1, 10))
    assert [len(c["tickers"]) for c in fake.calls] == [20, 20, 5]
    assert all(len(out[n]) == 8 for n in names)


def test_a_minimum_pause_separates_requests() -> None:
    import time

    fake = FakeYahoo(["AAA", "BBB"])
    source = YahooSource(download=fake, batch_size=1, min_pause=0.2)
    started = time.monotonic()
    source.fetch(["AAA", "BBB"], dt.date(2024, 1, 1), dt.date(2024, 1, 5))
    assert time.monotonic() - started >= 0.2


def test_normalise_strips_time_zones() -> None:
    index = pd.DatetimeIndex(
        ["2024-01-02 00:00", "2024-01-03 00:00"], tz="America/New_York", name="Date"
    )
    columns = pd.MultiIndex.from_product(
        [["Close", "High", "Low", "Open", "Volume"], ["AAA"]], names=["Price", "Ticker"]
    )
    raw = pd.DataFrame(
        [[1, 2, 0.5, 1, 10], [1, 2, 0.5, 1, 10]], index=index, columns=columns, dtype=float
    )
    frame = normalise(raw, ["AAA"])["AAA"]
    assert frame.index.tz is None and frame.index[0] == pd.Timestamp("2024-01-02")


class _Response:
    """What yfinance reads of a curl_cffi response."""

    def __init__(self, body: dict) -> None:
        self._body, self.status_code, self.url = body, 404, "https://query2.finance.yahoo.com/"
        self.text = str(body)

    def json(self) -> dict:
        return self._body


@pytest.fixture
def yahoo_http(monkeypatch) -> list[str]:
    """Real yfinance.download over a faked HTTP layer: AAA's timezone is in yfinance's tz cache
    and its price request times out; NOPE is a symbol Yahoo does not know."""
    import yfinance.base
    import yfinance.cache
    import yfinance.data
    from curl_cffi.requests.exceptions import Timeout

    requests: list[str] = []

    def get(self, url, params=None, timeout=30):
        requests.append(url)
        if url.endswith("/v8/finance/chart/AAA"):
            raise Timeout("curl: (28) Operation timed out after 10002 milliseconds")
        if "/v8/finance/chart/" in url:
            error = {"code": "Not Found", "description": "No data found, symbol may be delisted"}
            return _Response({"chart": {"result": None, "error": error}})
        raise AssertionError(f"unexpected request {url}")

    class WarmTzCache:
        def lookup(self, ticker: str) -> str | None:
            return {"AAA": "America/New_York"}.get(ticker)

        def store(self, ticker: str, tz: str | None) -> None:
            pass

    monkeypatch.setattr(yfinance.data.YfData, "get", get)
    monkeypatch.setattr(yfinance.cache, "get_tz_cache", WarmTzCache)
    monkeypatch.setattr(yfinance.base, "_tz_info_fetch_ctr", 2)  # no fallback to .info lookups
    return requests


def test_a_timeout_with_a_warm_tz_cache_is_retried_as_a_transport_failure(yahoo_http) -> None:
    import yfinance

    sleeps: list[float] = []
    source = YahooSource(download=yfinance.download, retries=2, min_pause=0, sleep=sleeps.append)
    with pytest.raises(FetchError, match=r"no price data for AAA .*timed out\), 3 attempts"):
        source.fetch(["AAA"], dt.date(2024, 1, 2), dt.date(2024, 1, 31))
    assert len(yahoo_http) == 3 and len(sleeps) == 2


def test_an_unknown_symbol_is_no_data_at_once_not_retried(yahoo_http) -> None:
    import yfinance

    source = YahooSource(download=yfinance.download, retries=2, min_pause=0, sleep=lambda s: None)
    out = source.fetch(["NOPE"], dt.date(2024, 1, 2), dt.date(2024, 1, 31))
    assert out["NOPE"].empty and len(yahoo_http) == 1  # the timezone lookup only, once


def test_a_failing_batch_is_fetched_ticker_by_ticker() -> None:
    fake = FakeYahoo(["AAA", "BBB", "CCC"])
    fake.timing_out.add("BBB")
    rows, errors = _source(fake, retries=1).fetch_each(
        ["AAA", "BBB", "CCC"], dt.date(2024, 1, 1), dt.date(2024, 1, 31)
    )
    assert len(rows["AAA"]) > 15 and len(rows["CCC"]) > 15 and "BBB" not in rows
    assert list(errors) == ["BBB"] and isinstance(errors["BBB"], TickerFetchError)
    assert "no price data for BBB" in str(errors["BBB"])
    # the batch twice, then AAA, BBB (twice) and CCC alone
    assert [c["tickers"] for c in fake.calls][2:] == [["AAA"], ["BBB"], ["BBB"], ["CCC"]]


def test_when_each_ticker_fails_alone_too_the_rest_of_the_batch_is_not_tried() -> None:
    calls = []

    def unreachable(tickers, **kwargs):
        calls.append(tickers)
        raise ConnectionError("curl: (6) Could not resolve host: query2.finance.yahoo.com")

    source = YahooSource(download=unreachable, retries=0, min_pause=0, sleep=lambda s: None)
    rows, errors = source.fetch_each(
        ["AAA", "BBB", "CCC", "DDD"], dt.date(2024, 1, 1), dt.date(2024, 1, 31)
    )
    assert not rows and sorted(errors) == ["AAA", "BBB", "CCC", "DDD"]
    assert not any(isinstance(e, TickerFetchError) for e in errors.values())
    assert len(calls) == 3  # the batch, then two tickers alone: Yahoo is down, not one ticker
