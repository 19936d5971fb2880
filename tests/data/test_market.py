"""The yfinance source through the cache, against a fake yfinance.download (never the network)."""

import datetime as dt
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from stockpred.config import ConfigError, PipelineConfig
from stockpred.data import DataError, load_prices
from stockpred.data.cache import CorruptCacheError, PriceCache
from stockpred.data.market import sync
from stockpred.data.yahoo import YahooSource
from tests.data.fake_yahoo import FakeYahoo

TODAY = dt.date(2024, 7, 1)


@pytest.fixture
def fake() -> FakeYahoo:
    return FakeYahoo(["AAA", "BBB", "CCC"])


def _load(
    fake,
    cache: Path,
    tickers=("AAA", "BBB"),
    start="2020-01-01",
    end="2024-06-28",
    today=TODAY,
    **kwargs,
) -> pd.DataFrame:
    source = YahooSource(download=fake, min_pause=0, sleep=lambda s: None)
    return load_prices(
        list(tickers),
        start,
        end,
        "yfinance",
        cache_dir=str(cache),
        yahoo=source,
        today=today,
        **kwargs,
    )


def test_a_warm_cache_makes_zero_calls(fake, tmp_path) -> None:
    first = _load(fake, tmp_path)
    assert len(fake.calls) == 1  # both tickers in one batch
    again = _load(fake, tmp_path)
    narrower = _load(fake, tmp_path, start="2022-03-01", end="2023-03-01")
    assert len(fake.calls) == 1
    pd.testing.assert_frame_equal(first, again)
    assert narrower.index.get_level_values("date").min() >= pd.Timestamp("2022-03-01")
    assert list(first.index.names) == ["date", "ticker"] and first["volume"].dtype == "int64"


def test_a_refresh_fetches_only_the_new_days_plus_an_overlap(fake, tmp_path) -> None:
    _load(fake, tmp_path, end="2024-06-28")
    later = dt.date(2024, 7, 16)
    prices = _load(fake, tmp_path, end="2024-07-15", today=later)
    assert len(fake.calls) == 2
    call = fake.calls[1]
    assert call["start"] == "2024-04-29"  # last cached day (06-28) minus 60 days of overlap
    assert call["end"] == "2024-07-16"  # through 07-15 inclusive
    assert prices.index.get_level_values("date").max() == pd.Timestamp("2024-07-15")
    entry = PriceCache(tmp_path).read("AAA")
    assert entry is not None and entry.fetched_through == dt.date(2024, 7, 15)
    assert entry.yfinance_version != "unknown" and entry.fetched_at


def test_a_split_in_the_overlap_refetches_the_whole_history(fake, tmp_path) -> None:
    _load(fake, tmp_path, tickers=["AAA"], end="2024-06-28")
    fake.adjust("AAA", 0.5, before="2024-06-26")  # a 2:1 split on 06-26, history re-adjusted
    prices = _load(fake, tmp_path, tickers=["AAA"], end="2024-07-10", today=dt.date(2024, 7, 11))
    assert len(fake.calls) == 3  # first fetch, the refresh that saw the change, the full refetch
    assert fake.calls[2]["start"] == "2020-01-01"
    expected = fake.universe["AAA"].loc["2020-01-01":"2024-07-10", "Close"].to_numpy()
    assert prices["close"].to_numpy() == pytest.approx(expected, rel=1e-12)


def test_an_unknown_ticker_is_a_clear_error_and_the_good_ones_are_cached(fake, tmp_path) -> None:
    with pytest.raises(
        DataError, match=r"no rows for NOPE.*misspelled or delisted.*source='sample'"
    ):
        _load(fake, tmp_path, tickers=["AAA", "NOPE"])
    assert PriceCache(tmp_path).tickers() == ["AAA"]


def test_offline_with_a_cache_uses_it_and_says_how_stale(fake, tmp_path) -> None:
    _load(fake, tmp_path, end="2024-06-28")
    fake.failures.extend(["offline"] * 10)
    with pytest.warns(
        UserWarning, match=r"AAA: could not refresh .* through 2024-06-28 \(14 days old\)"
    ):
        prices = _load(fake, tmp_path, end="2024-07-12", today=dt.date(2024, 7, 12))
    assert prices.index.get_level_values("date").max() == pd.Timestamp("2024-06-28")


def test_offline_with_nothing_cached_suggests_the_sample(fake, tmp_path) -> None:
    fake.failures.extend(["offline"] * 10)
    with pytest.raises(
        DataError,
        match=r"2 of 2 ticker\(s\) failed: .*(?i:check the symbol and your connection), or use source='sample'",
    ):
        _load(fake, tmp_path)


def test_a_rate_limit_is_retried_then_succeeds(fake, tmp_path) -> None:
    fake.failures.extend(["raise-rate-limit", "log-rate-limit"])
    prices = _load(fake, tmp_path)
    assert len(fake.calls) == 3 and len(prices) > 1000


def test_a_corrupt_file_is_detected_moved_aside_and_refetched(fake, tmp_path) -> None:
    _load(fake, tmp_path, tickers=["AAA"])
    path = PriceCache(tmp_path).path("AAA")
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(CorruptCacheError):
        PriceCache(tmp_path).read("AAA")
    with pytest.warns(UserWarning, match="unreadable.*re-fetching"):
        prices = _load(fake, tmp_path, tickers=["AAA"])
    assert len(fake.calls) == 2 and len(prices) > 1000
    assert len(list(tmp_path.glob("AAA.parquet.corrupt-*"))) == 1  # kept for inspection


def test_cache_only_mode_refuses_what_is_not_cached(fake, tmp_path) -> None:
    with pytest.raises(DataError, match="not cached and refreshing is off"):
        _load(fake, tmp_path, refresh=False)
    assert fake.calls == []


def test_todays_unfinished_bar_is_not_cached(fake, tmp_path) -> None:
    _load(fake, tmp_path, tickers=["AAA"], end="2024-07-01", today=dt.date(2024, 7, 1))
    entry = PriceCache(tmp_path).read("AAA")
    assert entry is not None and entry.last_date == dt.date(2024, 6, 28)


def test_path_like_tickers_are_rejected_everywhere(fake, tmp_path) -> None:
    for bad in ("../../x", "a/b", "..", ".hidden"):
        with pytest.raises(ValueError, match="malformed ticker"):
            PriceCache(tmp_path).path(bad)
        with pytest.raises(ValueError, match="malformed ticker"):
            sync(
                [bad],
                dt.date(2024, 1, 1),
                dt.date(2024, 2, 1),
                PriceCache(tmp_path),
                YahooSource(download=fake),
            )
        with pytest.raises(ConfigError, match="malformed ticker"):
            PriceCache  # noqa: B018
            PipelineConfig().with_overrides({"data.tickers": [bad]})
    assert fake.calls == [] and not list(tmp_path.iterdir())


def test_the_training_config_accepts_the_yfinance_source(tmp_path) -> None:
    config = PipelineConfig().with_overrides(
        {"data.source": "yfinance", "data.cache_dir": str(tmp_path), "data.tickers": ["aapl"]}
    )
    assert config.data.tickers == ("AAPL",)


WRITER = textwrap.dedent(
    """
    import datetime as dt, os, sys, time
    import numpy as np, pandas as pd
    from stockpred.data import cache as cache_module
    from stockpred.data.cache import CacheEntry, PriceCache

    root, mode, scale = sys.argv[1], sys.argv[2], float(sys.argv[3])
    dates = pd.bdate_range("2000-01-03", periods=6000, name="date")
    close = np.linspace(10, 20, len(dates)) * scale
    prices = pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99,
                           "close": close, "volume": np.arange(len(dates))}, index=dates)
    entry = CacheEntry(prices, dt.date(2000, 1, 3), dates[-1].date(), "now", "test")
    cache = PriceCache(root)
    if mode == "hang-before-rename":
        def hang(src, dst):
            print("writing", flush=True)
            time.sleep(120)
        cache_module.os.replace = hang
        with cache.locked("ZZZ"):
            cache.write("ZZZ", entry)
    else:
        for done in range(int(mode)):
            with cache.locked("ZZZ"):
                cache.write("ZZZ", entry)
            if done == 0:
                print("wrote", flush=True)  # the handshake: writes are under way
    """
)


def _writer(tmp_path: Path, mode: str, scale: float) -> subprocess.Popen:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "cache"), mode, str(scale)],
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow  # writers in subprocesses
def test_a_writer_killed_mid_write_leaves_the_previous_file_intact(tmp_path) -> None:
    assert _writer(tmp_path, "1", 1.0).wait(timeout=120) == 0
    before = PriceCache(tmp_path / "cache").read("ZZZ")
    proc = _writer(tmp_path, "hang-before-rename", 2.0)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    proc.kill()  # SIGKILL with the new data written to a temp file, not yet renamed
    proc.wait(timeout=30)
    after = PriceCache(tmp_path / "cache").read("ZZZ")
    assert before is not None and after is not None
    pd.testing.assert_frame_equal(before.prices, after.prices)
    assert list((tmp_path / "cache").glob(".ZZZ.parquet.*.tmp"))  # the abandoned temp file
    assert PriceCache(tmp_path / "cache").tickers() == ["ZZZ"]


@pytest.mark.slow  # writers in subprocesses
def test_two_processes_writing_one_ticker_leave_a_valid_file(tmp_path) -> None:
    procs = [_writer(tmp_path, "15", scale) for scale in (1.0, 3.0)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    entry = PriceCache(tmp_path / "cache").read("ZZZ")
    assert entry is not None and len(entry.prices) == 6000
    assert entry.prices["close"].iloc[0] in (10.0, 30.0)  # wholly one writer's data
    assert not list((tmp_path / "cache").glob("*.tmp"))


@pytest.mark.slow  # writers in subprocesses
def test_writers_killed_at_random_moments_never_leave_a_broken_file(tmp_path) -> None:
    assert _writer(tmp_path, "1", 1.0).wait(timeout=120) == 0
    for delay in (0.0, 0.05, 0.3):
        proc = _writer(tmp_path, "1000", 2.0)  # rewrites the file as fast as it can
        # after its first write (not a guess at how long the imports take on a loaded machine),
        # the kill falls at some moment of the writes that follow
        assert proc.stdout is not None and proc.stdout.readline().strip() == "wrote"
        time.sleep(delay)
        proc.kill()
        proc.wait(timeout=30)
        entry = PriceCache(tmp_path / "cache").read("ZZZ")  # raises if torn
        assert entry is not None and len(entry.prices) == 6000


def test_an_unreachable_yahoo_is_one_grouped_line(tmp_path) -> None:
    def unreachable(tickers, **kwargs):
        raise ConnectionError("Failed to perform, curl: (6) Could not resolve host: example (x)")

    source = YahooSource(download=unreachable, retries=1, min_pause=0, sleep=lambda s: None)
    with pytest.raises(DataError) as info:
        load_prices(
            ["AAA", "BBB"],
            "2020-01-01",
            "2020-06-30",
            "yfinance",
            cache_dir=str(tmp_path),
            yahoo=source,
            today=TODAY,
        )
    assert str(info.value) == (
        "2 of 2 ticker(s) failed: AAA, BBB: could not reach Yahoo (curl: (6) Could not resolve "
        "host: example), 2 attempts; nothing is cached: check your connection, or use "
        "source='sample' to work offline"
    )


def test_one_timing_out_ticker_fails_alone_and_the_rest_of_its_batch_is_cached(fake, tmp_path):
    fake.timing_out.add("BBB")
    with pytest.raises(DataError) as info:
        _load(fake, tmp_path, tickers=["AAA", "BBB", "CCC"])
    message = str(info.value)
    assert message.startswith("1 of 3 ticker(s) failed: BBB: Yahoo sent no price data for BBB")
    assert "the other tickers were fetched" in message and "connection" not in message
    assert PriceCache(tmp_path).tickers() == ["AAA", "CCC"]


def test_a_dividend_recorded_weeks_late_is_picked_up_by_the_overlap(fake, tmp_path) -> None:
    _load(fake, tmp_path, tickers=["AAA"], end="2024-06-28")
    fake.adjust("AAA", 0.995, before="2024-06-07")  # 3 weeks before the last cached row
    prices = _load(fake, tmp_path, tickers=["AAA"], end="2024-07-10", today=dt.date(2024, 7, 11))
    assert [c["start"] for c in fake.calls[1:]] == ["2024-04-29", "2020-01-01"]  # refresh, refetch
    expected = fake.universe["AAA"].loc["2020-01-01":"2024-07-10", "Close"].to_numpy()
    assert prices["close"].to_numpy() == pytest.approx(expected, rel=1e-12)


def test_an_older_revision_is_caught_by_the_monthly_full_refetch(fake, tmp_path) -> None:
    _load(fake, tmp_path, tickers=["AAA"], end="2024-06-28")  # fully fetched on 2024-07-01
    fake.adjust("AAA", 0.99, before="2024-03-01")  # before the overlap: a refresh cannot see it
    within = _load(fake, tmp_path, tickers=["AAA"], end="2024-07-26", today=dt.date(2024, 7, 29))
    assert fake.calls[-1]["start"] == "2024-04-29"  # a refresh: the file is 28 days old
    assert within.loc["2024-02-01", "close"].item() != pytest.approx(
        fake.universe["AAA"].loc["2024-02-01", "Close"], rel=1e-9
    )
    later = _load(fake, tmp_path, tickers=["AAA"], end="2024-08-09", today=dt.date(2024, 8, 12))
    assert fake.calls[-1]["start"] == "2020-01-01"  # 42 days since the full fetch: all again
    expected = fake.universe["AAA"].loc["2020-01-01":"2024-08-09", "Close"].to_numpy()
    assert later["close"].to_numpy() == pytest.approx(expected, rel=1e-12)
    entry = PriceCache(tmp_path).read("AAA")
    assert entry is not None and entry.full_fetch_on == dt.date(2024, 8, 12)


def test_many_tickers_not_in_the_sample_are_one_short_line() -> None:
    from stockpred.data import UnknownTickerError

    tickers = [f"T{i:03d}" for i in range(500)]
    with pytest.raises(UnknownTickerError) as info:
        load_prices(tickers, "2015-01-01", "2016-01-01")
    message = str(info.value)
    assert "\n" not in message and len(message) < 250
    assert "no ticker(s) ['T000', 'T001', 'T002', 'T003', 'T004'] and 495 more in its" in message
    with pytest.raises(
        UnknownTickerError,
        match=r"no ticker\(s\) \['AAPL'\] in its indices universe; it has \['\^GSPC'",
    ):
        load_prices(["^GSPC", "AAPL"], "2015-01-01", "2016-01-01")
