"""Filesystem faults under the price cache: each ends as one line naming the path and what to do,
and the tickers that could be written stay written.

Tests run as root, where chmod does not stop writes, so read-only and full disks are simulated by
making the cache module's ``os.replace`` or ``open`` raise the OSError the kernel would.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from stockpred.cli import main, report_errors
from stockpred.data import cache as cache_module
from stockpred.data.cache import CacheLockError, CacheWriteError, PriceCache
from stockpred.data.market import sync
from stockpred.data.yahoo import YahooSource
from tests.data.fake_yahoo import FakeYahoo

ROOT = Path(__file__).resolve().parents[2]
START, END, TODAY = dt.date(2020, 1, 1), dt.date(2020, 6, 30), dt.date(2020, 7, 1)


def _sync(cache: PriceCache, tickers=("AAA", "BBB", "CCC")):
    fake = FakeYahoo(["AAA", "BBB", "CCC"])
    source = YahooSource(download=fake, min_pause=0, sleep=lambda s: None)
    return {r.ticker: r for r in sync(list(tickers), START, END, cache, source, today=TODAY)}


def _failing_for(ticker: str, code: int, real):
    """``real`` (os.replace or open), raising OSError(code) for ``ticker``'s file only."""

    def fake(path, *args, **kwargs):
        if (
            Path(path).name.startswith(f".{ticker}.parquet")
            or Path(path).name == f"{ticker}.parquet"
        ):
            raise OSError(code, os.strerror(code), str(path))
        return real(path, *args, **kwargs)

    return fake


def test_a_read_only_file_fails_its_ticker_alone_and_the_others_are_written(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(cache_module.os, "replace", _failing_for("BBB", errno.EROFS, os.replace))
    results = _sync(PriceCache(tmp_path))
    assert [results[t].status for t in ("AAA", "BBB", "CCC")] == ["fetched", "failed", "fetched"]
    assert results["BBB"].message == (
        f"price cache {tmp_path / 'BBB.parquet'} is not writable (read-only or permission denied)"
        ": make it writable, or choose another folder with --cache-dir / data.cache_dir"
    )
    assert PriceCache(tmp_path).tickers() == ["AAA", "CCC"]
    assert not list(tmp_path.glob("*.tmp"))  # the temp file is cleaned up


def test_a_full_disk_keeps_the_previous_file_and_says_so(tmp_path, monkeypatch) -> None:
    cache = PriceCache(tmp_path)
    _sync(cache, ["AAA"])
    before = cache.read("AAA")
    monkeypatch.setattr(
        cache_module, "open", _failing_for("AAA", errno.ENOSPC, open), raising=False
    )
    fake = FakeYahoo(["AAA"])
    source = YahooSource(download=fake, min_pause=0, sleep=lambda s: None)
    [result] = sync(["AAA"], START, dt.date(2020, 7, 31), cache, source, today=dt.date(2020, 8, 3))
    assert result.status == "failed" and "the disk is full" in result.message
    assert "free some space" in result.message and str(tmp_path / "AAA.parquet") in result.message
    after = cache.read("AAA")
    assert before is not None and after is not None
    pd.testing.assert_frame_equal(before.prices, after.prices)


def test_a_cache_path_that_is_a_file_is_one_line(tmp_path, capsys) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    results = _sync(PriceCache(blocker), ["AAA", "BBB"])
    assert all(r.status == "failed" for r in results.values())
    assert results["AAA"].message.startswith(f"price cache {blocker} is not a folder")
    argv = ["fetch", "AAA", "--start", "2020-01-01", "--end", "2020-03-31", "--cache-dir"]
    assert main([*argv, str(blocker)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"AAA: price cache {blocker} is not a folder (a file is in the way)" in err


HOLDER = textwrap.dedent(
    """
    import sys, time
    from stockpred.data.cache import PriceCache

    with PriceCache(sys.argv[1]).locked("AAA"):
        print("locked", flush=True)
        time.sleep(120)
    """
)


@pytest.mark.slow  # a lock holder in a subprocess
def test_a_stuck_lock_holder_is_named_after_a_bounded_wait(tmp_path, monkeypatch) -> None:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    holder = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "cache")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        monkeypatch.setattr(cache_module, "LOCK_TIMEOUT_S", 0.5)
        started = time.monotonic()
        results = _sync(PriceCache(tmp_path / "cache"), ["AAA", "BBB"])
        waited = time.monotonic() - started
        with pytest.raises(CacheLockError), PriceCache(tmp_path / "cache").locked("AAA"):
            pass  # a lone lock, too
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert waited < 30
    assert results["AAA"].status == "failed" and results["BBB"].status == "failed"  # one batch
    lock = tmp_path / "cache" / ".AAA.lock"
    assert results["AAA"].message.startswith(
        f"the cache lock {lock} was held by another process (pid {holder.pid} on "
    )
    assert (
        "for over 0.5 s: wait for it to finish, or end it if it is stuck" in results["AAA"].message
    )


def test_the_default_lock_wait_is_a_minute() -> None:
    assert cache_module.LOCK_TIMEOUT_S == 60


def test_a_cache_write_error_is_a_data_error_naming_the_path(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with (
        pytest.raises(CacheWriteError, match=f"price cache {blocker} is not a folder"),
        PriceCache(blocker).locked("AAA"),
    ):
        pass


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (PermissionError(errno.EACCES, "Permission denied", "/srv/x"), "/srv/x: Permission denied"),
        (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
        (OSError("odd"), "odd"),
    ],
)
def test_any_other_os_error_is_one_line_and_exit_1(error, shown, capsys) -> None:
    def fail() -> None:
        raise error

    assert report_errors(fail) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"stockpred: error: {shown} (check that path") and err.count("\n") == 1


def test_a_symlink_planted_as_a_holder_note_never_has_its_target_written(tmp_path) -> None:
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    root = tmp_path / "cache"
    root.mkdir()
    (root / ".AAA.holder").symlink_to(victim)
    cache = PriceCache(root)
    with cache.locked("AAA"):
        pass
    results = _sync(cache, ["AAA"])  # every locked fetch writes the note
    assert victim.read_text() == "keep me"
    assert results["AAA"].status != "failed"
    note = root / ".AAA.holder"
    assert not note.is_symlink() and note.read_text().startswith(f"pid {os.getpid()} on ")
    assert not list(root.glob("*.tmp"))


def test_a_symlink_planted_as_a_lock_is_refused_and_its_target_kept(tmp_path) -> None:
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    root = tmp_path / "cache"
    root.mkdir()
    (root / ".BBB.lock").symlink_to(victim)
    lock_error = r"\.BBB\.lock failed \(Too many levels"
    with pytest.raises(CacheWriteError, match=lock_error), PriceCache(root).locked("BBB"):
        pass
    assert victim.read_text() == "keep me"


def test_a_holder_note_that_is_a_fifo_is_not_waited_on(tmp_path) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    os.mkfifo(root / ".AAA.holder")
    assert cache_module._read_holder(root / ".AAA.lock") == ""
