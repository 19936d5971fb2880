"""Two real ingest processes on the same tickers and cache folder, each with the fake Yahoo.

The race is made certain, not likely: the first process blocks inside its download (holding the
tickers' locks) until the second has read the cache, planned and started waiting for the locks.
Then the second works from what it read before the first wrote, which used to replace the first's
newer rows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from stockpred.data.cache import PriceCache
from stockpred.data.market import sync
from stockpred.data.yahoo import YahooSource
from tests.data.fake_yahoo import FakeYahoo

ROOT = Path(__file__).resolve().parents[2]
TICKERS = [f"T{i}" for i in range(8)]

INGEST = textwrap.dedent(
    """
    import datetime as dt, json, sys, time
    from pathlib import Path
    from stockpred.data import market, yahoo
    from stockpred.data.cache import PriceCache
    from tests.data.fake_yahoo import FakeYahoo

    root, role, start, end, signals = sys.argv[1:6]
    tickers = sys.argv[6].split(",")
    signals = Path(signals)
    fake = FakeYahoo(tickers)
    if role == "first":  # downloads only once the second process waits for the locks
        def download(*args, **kwargs):
            (signals / "first-downloading").touch()
            deadline = time.monotonic() + 60
            while not (signals / "second-waiting").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            return fake(*args, **kwargs)
        yahoo._yfinance_download = lambda: download
    else:
        yahoo._yfinance_download = lambda: fake
        locked = PriceCache.locked
        def announce(self, *names):
            (signals / "second-waiting").touch()
            return locked(self, *names)
        PriceCache.locked = announce
    results = market.ingest(tickers, dt.date.fromisoformat(start), dt.date.fromisoformat(end),
                            root, min_pause=0, today=dt.date(2024, 7, 1))
    print(json.dumps({r.ticker: r.status for r in results}))
    """
)


def _start(tmp_path: Path, role: str, start: str, end: str) -> subprocess.Popen:
    script = tmp_path / "ingest.py"
    script.write_text(INGEST)
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    argv = [str(tmp_path / "cache"), role, start, end, str(tmp_path), ",".join(TICKERS)]
    return subprocess.Popen(
        [sys.executable, str(script), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
    )


@pytest.mark.slow  # ingests in subprocesses
def test_two_concurrent_ingests_never_drop_each_others_rows(tmp_path) -> None:
    fake = FakeYahoo(TICKERS)
    source = YahooSource(download=fake, min_pause=0, sleep=lambda s: None)
    cache = PriceCache(tmp_path / "cache")
    # the cache as it stood: through 2023; the first process brings it to 2024-06-28, the second
    # (started while the first downloads) asks for an earlier start through 2023 only
    until = dt.date(2023, 12, 29)
    seeded = sync(TICKERS, dt.date(2015, 1, 1), until, cache, source, today=dt.date(2024, 6, 20))
    assert all(r.status == "fetched" for r in seeded)
    first = _start(tmp_path, "first", "2015-01-01", "2024-06-28")
    deadline = time.monotonic() + 120
    while not (tmp_path / "first-downloading").exists():
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.02)
    second = _start(tmp_path, "second", "2014-01-01", "2023-12-29")
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    statuses = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert set(statuses[0].values()) == {"refreshed"}
    expected = fake.universe["T0"].loc["2024-01-01":"2024-06-28"]
    lost = 0
    for ticker in TICKERS:
        entry = cache.read(ticker)
        assert entry is not None
        lost += len(expected) - len(entry.prices.loc["2024-01-01":])
    assert lost == 0, f"{lost} rows of 2024 lost over {len(TICKERS)} tickers"
    entry = cache.read("T0")
    assert entry is not None and entry.fetched_through == dt.date(2024, 6, 28)
    assert entry.prices.index[0] == pd.Timestamp("2015-01-01")
