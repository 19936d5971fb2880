import datetime as dt

import pandas as pd
import pytest

from stockpred.data.yahoo import FetchError, RateLimitedError, YahooSource, normalise
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
    columns = pd.MultiIndex.from_product([["Close", "High", "Low", "Open", "Volume"], ["AAA"]],
                                         names=["Price", "Ticker"])  # fmt: skip
    raw = pd.DataFrame(
        [[1, 2, 0.5, 1, 10], [1, 2, 0.5, 1, 10]], index=index, columns=columns, dtype=float
    )
    frame = normalise(raw, ["AAA"])["AAA"]
    assert frame.index.tz is None and frame.index[0] == pd.Timestamp("2024-01-02")
