"""The diagnostics report off a run's critical path: ``launch(run_id)`` starts a detached process
that renders the report of the finished run and attaches it, so the run returns without waiting.

    python -m stockpred.report.background RUN_ID

The run's ``report.status`` tag says where the report stands in the MLflow UI: ``pending`` (set
before the process starts), then ``attached`` or ``failed: <reason>``; ``report.log`` names the
process's log file. Renders launched here run one at a time (a sweep's trials queue up) behind a
lock in the project's store (``reports_dir``, beside the MLflow database), so renders of other
projects on the machine do not wait for them.

Bounds: the renderer limits its kernel's memory (``tracking.report_memory_gb``, ``RLIMIT_DATA``: the
kernel holds the run's data; the renderer only converts the executed notebook) and its time (``tracking.report_timeout_s``); a render past either ends ``failed: <reason>``
and the process exits, the machine untouched. The renderer records its host and pid
(``report.pid``) and a heartbeat (``report.heartbeat``, every ``HEARTBEAT_S``); a render whose
process died without a word (kill -9, the out-of-memory killer) is marked ``failed`` by the next
reader (``report_status``) or renderer (``mark_dead_renders``), never left ``pending``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType

from stockpred import tracking
from stockpred.report.render import REPORT_FILE, render_report

STATUS_TAG = "report.status"
LOG_TAG = "report.log"
PID_TAG = "report.pid"  # "<host>:<pid>" of the renderer
HEARTBEAT_TAG = "report.heartbeat"  # unix seconds of the renderer's last sign of life
PENDING, ATTACHED, FAILED = "pending", "attached", "failed"
ARTIFACT = f"report/{REPORT_FILE}"
HEARTBEAT_S = 30.0
# a renderer silent this long is dead (a reader on another host cannot see its pid); generous,
# so that a store busy for a while on a loaded machine does not fail a live render
STALE_S = 10 * HEARTBEAT_S
QUEUE_FILE = "render.lock"

# launched processes, kept so that each is reaped (no zombie, no ResourceWarning) by a later
# launch in a long-lived process (a notebook, ``flow.serve``); a short-lived CLI just exits
_LAUNCHED: list[subprocess.Popen[bytes]] = []


class RenderTimeout(Exception):
    """The render ran past its time bound (``tracking.report_timeout_s``)."""


def attach(run_id: str, memory_gb: float | None = None) -> str:
    """Render the report of ``run_id`` and attach it under ``report/``; returns its artifact path.

    Sets ``report.status`` to ``attached``, or to ``failed: <reason>`` (and ``report.error``) and
    re-raises, so that a failed report is visible on the run and in the process's exit status.
    ``memory_gb``: the memory bound the render ran under, named in an out-of-memory reason.
    """
    try:
        with tempfile.TemporaryDirectory(prefix="stockpred-report-") as scratch:
            html = render_report(run_id, Path(scratch), memory_gb=memory_gb)
            tracking.log_artifact(run_id, html, "report")
    except Exception as exc:
        reason = failure_reason(exc, memory_gb)
        tracking.set_tags(
            run_id, {STATUS_TAG: f"{FAILED}: {reason}"[:5000], "report.error": reason[:5000]}
        )
        raise
    tracking.set_tags(run_id, {STATUS_TAG: ATTACHED})
    return ARTIFACT


# what an allocation past the memory bound looks like: numpy, torch, a library mapping, a kernel
# that died of it
_OUT_OF_MEMORY = (
    "MemoryError",
    "can't allocate memory",
    "Cannot allocate memory",
    "Unable to allocate",
    "failed to map segment",
    "DeadKernelError",
)


def failure_reason(exc: BaseException, memory_gb: float | None = None) -> str:
    """One line saying why a render failed, naming the bound it ran past (if it did)."""
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())
    if isinstance(exc, RenderTimeout):
        return f"over the time bound: {exc}"
    chain = [reason]
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        chain.append(f"{type(cause).__name__}: {cause}")
        cause = cause.__cause__ or cause.__context__
    if memory_gb is not None and any(word in text for text in chain for word in _OUT_OF_MEMORY):
        return (
            f"out of memory: the render needed more than tracking.report_memory_gb = "
            f"{memory_gb:g} GB; raise it or lower gates.replay_mb ({reason})"
        )
    if memory_gb is not None:  # a library may word a failed allocation its own way
        return f"{reason} (the kernel ran under tracking.report_memory_gb = {memory_gb:g} GB)"
    return reason


def reports_dir() -> Path:
    """Where the renders' queue lock and logs live: a ``reports`` folder beside the project's
    SQLite MLflow database, or in the project's store folder for a tracking server."""
    uri = tracking.tracking_uri()
    if tracking.is_local_store(uri):
        database = Path(uri.removeprefix("sqlite:///"))
        return database.resolve().parent / "reports"
    return tracking.store_dir() / "reports"


def launch(
    run_id: str,
    log_dir: Path | None = None,
    *,
    memory_gb: float | None = None,
    timeout_s: float | None = None,
) -> Path:
    """Mark the report of ``run_id`` pending and start the process that attaches it; returns the
    process's log file (in ``log_dir``, default ``reports_dir()``). The process outlives this one
    (its own session: a Ctrl-C meant for the command that trained does not reach it), sees the
    same tracking store, queues behind the store's lock and runs within ``memory_gb`` and
    ``timeout_s`` (none: unbounded)."""
    _reap()
    mark_dead_renders()
    queue = reports_dir()
    folder = Path(log_dir) if log_dir else queue
    folder.mkdir(parents=True, exist_ok=True)
    queue.mkdir(parents=True, exist_ok=True)
    log_file = folder / f"{run_id}.log"
    tracking.set_tags(
        run_id, {STATUS_TAG: PENDING, LOG_TAG: str(log_file), HEARTBEAT_TAG: f"{time.time():.0f}"}
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri()}
    command = [sys.executable, "-m", "stockpred.report.background", run_id]
    command += ["--queue", str(queue / QUEUE_FILE)]
    if memory_gb is not None:
        command += ["--memory-gb", str(memory_gb)]
    if timeout_s is not None:
        command += ["--timeout", str(timeout_s)]
    try:
        with log_file.open("wb") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
    except OSError as exc:
        tracking.set_tags(run_id, {STATUS_TAG: f"{FAILED}: could not start the renderer: {exc}"})
        raise
    _LAUNCHED.append(process)
    # from here a reader can tell a renderer that died (before its own first heartbeat, too)
    tracking.set_tags(run_id, {PID_TAG: f"{socket.gethostname()}:{process.pid}"})
    return log_file


def renderer_alive(tags: Mapping[str, str], now: float | None = None) -> bool:
    """Whether the renderer named by a run's tags may still be working: its heartbeat is recent
    and, on this host, its pid is a live process (not a zombie)."""
    now = time.time() if now is None else now
    try:
        beat = float(tags.get(HEARTBEAT_TAG, "nan"))
    except ValueError:
        beat = float("nan")
    if not now - beat < STALE_S:  # NaN (no heartbeat) is stale too
        return False
    host, _, pid = tags.get(PID_TAG, "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's process: the heartbeat is all we can see
    return _pid_alive(int(pid))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):  # not Linux: the signal test is all there is
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    return True


def report_status(run_id: str) -> str:
    """The run's ``report.status``, after marking a pending render whose renderer died as
    ``failed`` (see ``renderer_alive``); an empty string for a run without a report."""
    tags = tracking.get_run(run_id).data.tags
    status = tags.get(STATUS_TAG, "")
    if status != PENDING or renderer_alive(tags):
        return status
    latest = tracking.get_run(run_id).data.tags
    if latest.get(STATUS_TAG) != PENDING:  # it finished while we looked
        return latest.get(STATUS_TAG, "")
    where = latest.get(PID_TAG) or "never recorded"
    reason = (
        f"the renderer (host:pid {where}) stopped without finishing (killed, e.g. kill -9 or "
        f"the out-of-memory killer; see {latest.get(LOG_TAG, 'its log')})"
    )
    tracking.set_tags(run_id, {STATUS_TAG: f"{FAILED}: {reason}", "report.error": reason})
    return f"{FAILED}: {reason}"


def mark_dead_renders() -> list[str]:
    """Mark every pending render in the store whose renderer died as ``failed``; returns their
    run ids."""
    dead = []
    for run_id in tracking.runs_tagged(STATUS_TAG, PENDING):
        with contextlib.suppress(LookupError):
            if report_status(run_id).startswith(FAILED):
                dead.append(run_id)
    return dead


@contextlib.contextmanager
def _one_at_a_time(lock_file: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (none: no queue): the runs of a sweep each start a
    renderer as they finish, and a small machine should execute one kernel at a time."""
    if lock_file is None:
        yield
        return
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or the process ends
        yield


def _reap() -> None:
    _LAUNCHED[:] = [p for p in _LAUNCHED if p.poll() is None]


@contextlib.contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Raise ``RenderTimeout`` in this (main) thread once ``seconds`` have passed."""
    if seconds is None:
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise RenderTimeout(f"the render took more than tracking.report_timeout_s = {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _heartbeat(run_id: str) -> Iterator[None]:
    """Mark the report pending with this process as its renderer and refresh its heartbeat tag
    every ``HEARTBEAT_S`` from a daemon thread (it stops with the process, however that ends)."""
    tags = {STATUS_TAG: PENDING, PID_TAG: f"{socket.gethostname()}:{os.getpid()}"}
    tracking.set_tags(run_id, {**tags, HEARTBEAT_TAG: f"{time.time():.0f}"})
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):  # a busy store: the next beat will do
                tracking.set_tags(run_id, {HEARTBEAT_TAG: f"{time.time():.0f}"})

    thread = threading.Thread(target=beat, name="report-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


def _stop_kernels() -> list[int]:
    """SIGKILL the notebook kernels this process started and left running (a timed-out render
    leaves its kernel: it runs in its own session); returns their pids. Only this process's
    ``ipykernel`` children, from Linux's /proc; elsewhere nothing."""
    me, killed = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) != me:
                continue
            if b"ipykernel" not in (stat.parent / "cmdline").read_bytes():
                continue
            pid = int(stat.parent.name)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


def main(argv: Sequence[str] | None = None) -> int:
    """Render and attach one run's report; exit status 1 (one line on stderr) if it failed."""
    parser = argparse.ArgumentParser(
        prog="python -m stockpred.report.background",
        description="render the gate-diagnostics report of a finished run and attach it",
    )
    parser.add_argument("run_id", help="the MLflow run whose report to render")
    parser.add_argument(
        "--queue",
        type=Path,
        default=None,
        help="a lock file: renders that name the same one run one at a time (launch passes one)",
    )
    parser.add_argument(
        "--memory-gb",
        type=float,
        default=None,
        help="bound the memory (RLIMIT_DATA) of the notebook kernel, in GB",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="fail the render after this many seconds (counted once it leaves the queue)",
    )
    args = parser.parse_args(argv)
    try:
        with _heartbeat(args.run_id):
            mark_dead_renders()
            with _one_at_a_time(args.queue), _deadline(args.timeout):
                artifact = attach(args.run_id, args.memory_gb)
    except Exception as exc:
        print(f"stockpred report: {failure_reason(exc, args.memory_gb)}", file=sys.stderr)
        killed = _stop_kernels()
        if killed:
            pids = ", ".join(map(str, killed))
            print(f"stockpred report: stopped its kernel (pid {pids})", file=sys.stderr)
        return 1
    print(f"attached {artifact} to run {args.run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
