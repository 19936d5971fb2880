"""The background report's bounds and bookkeeping: its queue lock lives in the project's store,
a render past its memory or time bound ends ``failed: <reason>`` (its kernel stopped), and a
renderer that died without a word is marked failed by the next reader or renderer."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from stockpred import tracking
from stockpred.config import load_config
from stockpred.pipeline import run_training
from stockpred.report import background
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained_run() -> str:
    """A finished run with gate diagnostics and a model, its report not rendered."""
    config = {
        **TINY,
        "train": {**TINY["train"], "max_epochs": 1, "limit_train_batches": 4},
        "tracking": {"experiment": "report-bounds", "report": "off"},
    }
    return run_training(load_config(config)).run_id


def _renderer(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``python -m stockpred.report.background ARGS`` in its own process (as ``launch`` runs
    it: its bounds and the kernels it stops are its own, not the test's)."""
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking.tracking_uri(),
        "PYTHONPATH": str(ROOT / "src"),
    }
    return subprocess.run(
        [sys.executable, "-m", "stockpred.report.background", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _status(run_id: str) -> str:
    return tracking.get_run(run_id).data.tags[background.STATUS_TAG]


def test_the_queue_lock_and_logs_live_beside_the_projects_mlflow_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert background.reports_dir() == tracking.store_dir() / "reports"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'elsewhere' / 'runs.db'}")
    assert background.reports_dir() == tmp_path / "elsewhere" / "reports"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert background.reports_dir() == tracking.store_dir() / "reports"


def test_the_kernels_memory_bound_is_a_real_limit() -> None:
    code = textwrap.dedent(
        """
        import numpy as np
        from stockpred.report.render import limit_memory
        small = np.ones(2**20)  # 8 MB: fine
        limit_memory(0.25)
        try:
            np.ones(2**27)  # 1 GB
        except MemoryError:
            print("refused")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "refused", out.stderr[-2000:]


@pytest.mark.slow  # starts a kernel
@pytest.mark.timeout(900)  # a loaded 2-core machine
def test_a_render_over_its_memory_bound_fails_with_its_reason_and_the_run_is_kept(
    trained_run: str,
) -> None:
    # the time bound too: a kernel starved of memory may hang rather than die
    done = _renderer(trained_run, "--memory-gb", "0.5", "--timeout", "300", timeout=800)
    assert done.returncode == 1
    status = _status(trained_run)
    assert status.startswith("failed: ") and "tracking.report_memory_gb = 0.5 GB" in status
    assert "\n" not in status and status.removeprefix("failed: ") in done.stderr
    assert tracking.list_artifact_paths(trained_run, "report") == []
    assert tracking.get_run(trained_run).info.status == "FINISHED"


@pytest.mark.slow  # starts a kernel
def test_a_render_over_its_time_bound_fails_and_its_kernel_is_stopped(trained_run: str) -> None:
    # the kernel alone takes longer than a second to start and import stockpred
    done = _renderer(trained_run, "--timeout", "1")
    assert done.returncode == 1, done.stderr[-2000:]
    assert _status(trained_run) == (
        "failed: over the time bound: the render took more than tracking.report_timeout_s = 1 s"
    )
    stopped = [line for line in done.stderr.splitlines() if "stopped its kernel" in line]
    pids = [int(p) for p in stopped[0].split("pid ")[1].rstrip(")").split(", ")] if stopped else []
    deadline = time.monotonic() + 60
    while any(background._pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(background._pid_alive(p) for p in pids)


@pytest.mark.slow  # starts a renderer
def test_a_renderer_killed_without_a_word_is_marked_failed_by_the_next_reader(
    trained_run: str,
) -> None:
    background.launch(trained_run, memory_gb=2, timeout_s=600)
    host, pid = tracking.get_run(trained_run).data.tags[background.PID_TAG].rsplit(":", 1)
    assert host == socket.gethostname()
    assert background.report_status(trained_run) == background.PENDING  # alive, working
    os.kill(int(pid), signal.SIGKILL)  # as the out-of-memory killer would
    deadline = time.monotonic() + 60
    status = background.PENDING
    while status == background.PENDING and time.monotonic() < deadline:
        status = background.report_status(trained_run)  # also while it is an unreaped zombie
        time.sleep(0.2)
    assert status.startswith("failed: the renderer") and f":{pid}" in status
    assert _status(trained_run) == status  # recorded on the run, not only returned
    assert tracking.list_artifact_paths(trained_run, "report") == []


def test_the_next_renderer_marks_silent_renders_failed_and_leaves_live_ones_pending() -> None:
    config = load_config({**TINY, "tracking": {"experiment": "report-dead", "report": "off"}})
    with tracking.tracked_run(config) as silent, tracking.tracked_run(config) as live:
        pass
    stale = f"{time.time() - 2 * background.STALE_S:.0f}"
    tracking.set_tags(
        silent,
        {
            background.STATUS_TAG: background.PENDING,
            background.HEARTBEAT_TAG: stale,
            background.PID_TAG: "another-host:1234",
        },
    )
    tracking.set_tags(
        live,
        {
            background.STATUS_TAG: background.PENDING,
            background.HEARTBEAT_TAG: f"{time.time():.0f}",
            background.PID_TAG: f"{socket.gethostname()}:{os.getpid()}",
        },
    )
    assert silent in background.mark_dead_renders()
    assert _status(silent).startswith("failed: the renderer (host:pid another-host:1234)")
    assert _status(live) == background.PENDING


@pytest.mark.slow  # trains on 50 tickers and renders their report
@pytest.mark.timeout(1800)  # a loaded 2-core machine
def test_the_report_of_a_50_ticker_universe_renders_within_2_gb(tmp_path: Path) -> None:
    from stockpred.universe import synthetic_universe, write_universe

    write_universe(synthetic_universe(50, 400, seed=1), tmp_path / "universe")
    config = {
        "data": {"source": "files", "path": str(tmp_path / "universe"), "tickers": ["*"]},
        "model": {"window": 20, "hidden_size": 16, "num_layers": 2, "dropout": 0.0},
        "train": {"max_epochs": 1, "limit_train_batches": 4, "progress_bar": False},
        "tracking": {"experiment": "report-50", "report": "off"},
    }
    run_id = run_training(load_config(config)).run_id
    done = _renderer(run_id, "--memory-gb", "2", "--timeout", "1200", timeout=1300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _status(run_id) == background.ATTACHED
    html = tracking.download_artifact(run_id, background.ARTIFACT).read_text()
    assert "50 tickers (S000, S001" in html  # the header names the universe in one line
    assert "of 50 tickers" in html  # the per-ticker spread over every ticker
    assert "most turbulent test window" in html and "Traceback" not in html


def _kernels_of(pid: int) -> list[int]:
    """The ipykernel processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) != pid:
                continue
            if b"ipykernel" in (stat.parent / "cmdline").read_bytes():
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


@pytest.mark.slow  # starts a renderer and its kernel
@pytest.mark.timeout(900)  # a loaded 2-core machine
def test_a_kernel_does_not_outlive_its_renderer_killed_by_a_signal(trained_run: str) -> None:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking.tracking_uri(),
        "PYTHONPATH": str(ROOT / "src"),
    }
    command = [sys.executable, "-m", "stockpred.report.background", trained_run]
    renderer = subprocess.Popen(
        [*command, "--memory-gb", "2", "--timeout", "600"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    kernels: list[int] = []
    while not kernels and renderer.poll() is None and time.monotonic() < deadline:
        kernels = _kernels_of(renderer.pid)
        time.sleep(0.2)
    assert kernels, "the renderer started no kernel"
    renderer.kill()  # SIGKILL: no cleanup of its own
    renderer.wait()
    deadline = time.monotonic() + 60
    while any(background._pid_alive(p) for p in kernels) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(background._pid_alive(p) for p in kernels)
    assert background.report_status(trained_run).startswith("failed: the renderer")
