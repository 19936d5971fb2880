"""The diagnostics report off a run's critical path: ``launch(run_id)`` starts a detached process
that renders the report of the finished run and attaches it, so the run returns without waiting.

    python -m stockpred.report.background RUN_ID

The run's ``report.status`` tag says where the report stands in the MLflow UI: ``pending`` (set
before the process starts), then ``attached`` or ``failed: <reason>``; ``report.log`` names the
process's log file. Renders launched here run one at a time (a sweep's trials queue up).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from stockpred import tracking
from stockpred.report.render import REPORT_FILE, render_report

STATUS_TAG = "report.status"
LOG_TAG = "report.log"
PENDING, ATTACHED, FAILED = "pending", "attached", "failed"
ARTIFACT = f"report/{REPORT_FILE}"

# launched processes, kept so that each is reaped (no zombie, no ResourceWarning) by a later
# launch in a long-lived process (a notebook, ``flow.serve``); a short-lived CLI just exits
_LAUNCHED: list[subprocess.Popen[bytes]] = []


def attach(run_id: str) -> str:
    """Render the report of ``run_id`` and attach it under ``report/``; returns its artifact path.

    Sets ``report.status`` to ``attached``, or to ``failed: <reason>`` (and ``report.error``) and
    re-raises, so that a failed report is visible on the run and in the process's exit status.
    """
    try:
        with tempfile.TemporaryDirectory(prefix="stockpred-report-") as scratch:
            html = render_report(run_id, Path(scratch))
            tracking.log_artifact(run_id, html, "report")
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        tracking.set_tags(
            run_id, {STATUS_TAG: f"{FAILED}: {reason}"[:5000], "report.error": reason[:5000]}
        )
        raise
    tracking.set_tags(run_id, {STATUS_TAG: ATTACHED})
    return ARTIFACT


def launch(run_id: str, log_dir: Path | None = None) -> Path:
    """Mark the report of ``run_id`` pending and start the process that attaches it; returns the
    process's log file. The process outlives this one (its own session: a Ctrl-C meant for the
    command that trained does not reach it) and sees the same tracking store."""
    _reap()
    folder = Path(log_dir) if log_dir else Path(tempfile.gettempdir()) / "stockpred-reports"
    folder.mkdir(parents=True, exist_ok=True)
    log_file = folder / f"{run_id}.log"
    tracking.set_tags(run_id, {STATUS_TAG: PENDING, LOG_TAG: str(log_file)})
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri()}
    command = [sys.executable, "-m", "stockpred.report.background", run_id]
    command += ["--queue", str(folder / "render.lock")]
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
    return log_file


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
    args = parser.parse_args(argv)
    try:
        with _one_at_a_time(args.queue):
            artifact = attach(args.run_id)
    except Exception as exc:
        print(f"stockpred report: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"attached {artifact} to run {args.run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
