"""Store faults: two processes starting on a new, empty store at the same moment both run (the
tables are created once, under a file lock beside the database); a read-only store and a
tracking server lost mid-run are one line each."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stockpred import tracking
from stockpred.config import PipelineConfig

CHILD = """
import sys, time
from pathlib import Path
from stockpred import tracking
from stockpred.config import PipelineConfig

config = PipelineConfig().with_overrides({"tracking.experiment": "first-run"})
print("ready", flush=True)
go = Path(sys.argv[1])
while not go.exists():  # the barrier: both start their first MLflow call together
    time.sleep(0.01)
with tracking.tracked_run(config) as run_id:
    tracking.log_metrics(run_id, {"x": 1.0})
print("finished", run_id, flush=True)
"""


def test_two_processes_starting_on_an_empty_store_both_finish(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "STOCKPRED_HOME": str(home), "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", child.communicate()[1]
    assert not (home / "mlflow" / "mlflow.db").exists()  # nothing created before the barrier
    go.touch()
    outcomes = [child.communicate(timeout=600) for child in children]
    for child, (out, err) in zip(children, outcomes, strict=True):
        assert child.returncode == 0, err[-2000:]
        assert out.startswith("finished "), out
    run_ids = {out.split()[1] for out, _ in outcomes}
    assert len(run_ids) == 2
    assert (home / "mlflow" / "mlflow.db.lock").exists()


def _immutable(path: Path, on: bool) -> bool:
    """Set or clear the immutable flag (read-only even for root); False where it cannot."""
    if shutil.which("chattr") is None:
        return False
    done = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True)
    return done.returncode == 0


@pytest.mark.parametrize("when", ["at start", "mid-run"])
def test_a_read_only_store_is_one_line_at_once_not_a_busy_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    database = tmp_path / "store" / "mlflow.db"
    database.parent.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{database}")
    tracking.client()  # the tables exist
    if when == "at start":  # a new process: the store is checked when first used
        monkeypatch.setattr(tracking.store, "_CREATED", set())
    if not _immutable(database, True):
        pytest.skip("no chattr +i here: permissions do not bind root, so no read-only store")
    monkeypatch.setattr(tracking.store, "RETRY_FOR_S", 600.0)  # were it waited for: 10 minutes
    started = time.monotonic()
    try:
        with pytest.raises(tracking.StoreNotWritableError) as raised:
            config = PipelineConfig().with_overrides({"tracking.experiment": "read-only"})
            with tracking.tracked_run(config):
                pass
    finally:
        assert _immutable(database, False)
    line = str(raised.value)
    assert line.startswith(f"[Errno 13] the MLflow store {database} cannot be written ("), line
    assert "\n" not in line and "resume" not in line and "busy" not in line, line
    assert time.monotonic() - started < 300  # refused, not retried for RETRY_FOR_S


def test_a_tracking_server_lost_mid_run_is_retried_then_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on: the server has gone
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's own retries: none
    monkeypatch.setattr(tracking.store, "_ANSWERED", {uri})  # it answered when the run began
    monkeypatch.setattr(tracking.store, "RETRY_FOR_S", 2.0)
    calls = []
    monkeypatch.setattr(tracking.store.time, "sleep", calls.append)  # the backoff, not waited
    with pytest.raises(tracking.TrackingUnavailableError) as raised:
        tracking.log_metrics("0" * 32, {"train/loss": 1.0})
    assert calls, "the lost server was not retried"
    line = str(raised.value)
    assert line.startswith(f"the MLflow store {uri} stayed busy or unreachable for 2 s"), line
    assert "\n" not in line, line
