"""Scheduled deployments, served from this process: ``make serve`` or ``python -m flows.deploy``.

- ``daily/after-close``: weekdays 17:30 New York time (after the US close), ingest the champion's
  tickers from Yahoo and forecast the next day (``flows/daily_flow.py``).
- ``train/weekly-retrain``: Saturdays 06:00 New York time, train + evaluate a challenger, register
  it and promote it to champion if it beats the current one (``flows/train_flow.py``).

``python -m flows.deploy`` serves them against the Prefect server in ``PREFECT_API_URL``;
``--local-server`` (what ``make serve`` runs) first starts a local one on 127.0.0.1:4200 with its
SQLite database in ``.prefect/`` (or reuses one already answering there) and stops it on Ctrl-C.
``prefect.yaml`` holds the same deployments for ``prefect deploy`` to a process work pool.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

if __name__ == "__main__":  # --help and bad options answer before Prefect loads (seconds)
    from flows.cli import parse_early

    parse_early("deploy", sys.argv[1:])

from prefect.schedules import Cron

from flows.cli import PREFECT_HOST, PREFECT_PORT
from flows.daily_flow import daily_flow
from flows.train_flow import train_flow
from stockpred.config import PipelineConfig, load_config
from stockpred.paths import project_root
from stockpred.tasks import task_for

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

TIMEZONE = "America/New_York"  # the exchange's clock: schedules follow US daylight saving
DAILY_CRON = "30 17 * * 1-5"  # Mon-Fri 17:30, after the 16:00 close has settled on Yahoo
WEEKLY_CRON = "0 6 * * 6"  # Saturday 06:00, the market closed
TAGS = ["stockpred"]
DEFAULT_HOST, DEFAULT_PORT = PREFECT_HOST, PREFECT_PORT
# the weekly retrain's config: the defaults, without progress bars in the serving process's log,
# registering its model (a run registers only when asked; the champion rule decides promotion)
WEEKLY_OVERRIDES = {"train": {"progress_bar": False}, "evaluation": {"register_model": True}}
WEEKLY_CONFIG = load_config(WEEKLY_OVERRIDES)


def weekly_description(config: PipelineConfig) -> str:
    """The weekly retrain's description, naming the metric its task promotes by."""
    task = task_for(config)
    better = "lower" if task.lower_is_better else "higher"
    return (
        f"Saturdays 06:00 {TIMEZONE}: train and evaluate a challenger on the configured data, register it and "
        "move the champion alias to it if the champion is comparable (same task, tickers, "
        f"source, horizon) and the challenger beats it on {task.selection_metric} (the "
        f"{task.kind} task's selection metric; {better} is better), the champion re-scored on "
        "the challenger's validation period."
    )


def deployments() -> list[RunnerDeployment]:
    """The scheduled deployments; parameters are defaults, editable per run in the Prefect UI."""
    daily = daily_flow.to_deployment(
        name="after-close",
        schedules=[Cron(DAILY_CRON, timezone=TIMEZONE)],
        parameters={"model": "stockpred-lstm", "max_stale_days": 5},
        tags=[*TAGS, "daily"],
        description=f"Weekdays 17:30 {TIMEZONE}, after the US close: ingest the champion's tickers from Yahoo, "
        "then forecast the next day with the champion. Fails, without forecasting, if the "
        "ingest fails; a champion trained on the embedded sample skips the day (Completed, "
        "saying why).",
    )
    weekly = train_flow.to_deployment(
        name="weekly-retrain",
        schedules=[Cron(WEEKLY_CRON, timezone=TIMEZONE)],
        parameters={"config": WEEKLY_CONFIG.model_dump(mode="json")},
        tags=[*TAGS, "weekly"],
        description=weekly_description(WEEKLY_CONFIG),
    )
    return [daily, weekly]


def serve(poll_seconds: float | None = None) -> None:
    """Serve the deployments until interrupted (their schedules pause when it stops)."""
    from prefect import serve as prefect_serve

    prefect_serve(*deployments(), query_seconds=poll_seconds)


def _healthy(api_url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def local_server(
    host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, timeout: float = 120
) -> Iterator[str]:
    """A Prefect server on ``host:port`` (SQLite in ``.prefect/``); yields its API URL.

    Reuses a server already answering there; one it started is stopped on exit.
    """
    api_url = f"http://{host}:{port}/api"
    if _healthy(api_url):
        print(f"Using the Prefect server already running at http://{host}:{port}")
        yield api_url
        return
    home = project_root() / ".prefect"
    home.mkdir(exist_ok=True)
    log = home / "server.log"
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    # the UI's page calls the API at this address: left unset it is 127.0.0.1:4200's, whatever
    # --port says (a broken page, or another server's data)
    env.update(
        PREFECT_SERVER_UI_API_URL=api_url,
        PREFECT_SERVER_API_HOST=host,
        PREFECT_SERVER_API_PORT=str(port),
    )
    env.pop("PREFECT_UI_API_URL", None)  # an older alias would win over the one set here
    prefect = Path(sys.executable).with_name("prefect")
    command = [
        str(prefect) if prefect.exists() else "prefect",
        "server",
        "start",
        "--host",
        host,
        "--port",
        str(port),
    ]
    print(
        f"Starting a Prefect server at http://{host}:{port} (database {home}/prefect.db, "
        f"log {log})",
        flush=True,
    )
    with log.open("ab") as out:
        # its own session: Ctrl-C reaches only this process, which pauses the schedules while
        # the server still runs and then stops it
        server = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(api_url):
            if server.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(
                    f"the Prefect server exited ({server.returncode}) before answering: "
                    + " | ".join(tail)
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Prefect server did not answer within {timeout:.0f} s")
            time.sleep(0.5)
        print(f"Prefect UI: http://{host}:{port}", flush=True)
        yield api_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        print("Prefect server stopped", flush=True)


def _stop_on_hangup() -> None:
    """SIGTERM (systemd, `kill`) and SIGHUP (a closed terminal) stop serving like Ctrl-C, so the
    schedules are paused and the local server, in its own session, is stopped too."""
    import signal

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flows.deploy [--local-server [--port N]] [--poll-seconds S]``."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.cli import deploy_parser

    args = deploy_parser().parse_args(argv)
    if not args.local_server and not PREFECT_API_URL.value():
        print(
            "python -m flows.deploy: no Prefect server: set PREFECT_API_URL (e.g. "
            "http://127.0.0.1:4200/api), or pass --local-server (what `make serve` does)",
            file=sys.stderr,
        )
        return 2
    _stop_on_hangup()  # only once it is going to serve: a refused start changes no handler
    if not args.local_server:
        serve(args.poll_seconds)
        return 0
    try:
        with local_server(args.host, args.port) as api_url:
            os.environ["PREFECT_API_URL"] = api_url  # for anything started from here
            with temporary_settings(updates={PREFECT_API_URL: api_url}):
                print(
                    f"For the prefect CLI in another shell: export PREFECT_API_URL={api_url}",
                    flush=True,
                )
                serve(args.poll_seconds)
    except RuntimeError as exc:
        print(f"python -m flows.deploy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
