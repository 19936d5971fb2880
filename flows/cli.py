"""The command lines of ``python -m flows.<name>``, without Prefect: ``--help`` and a bad option
answer at once (each flow module parses with these before it imports Prefect, which takes
seconds), and an expected failure ends in one line, the traceback left to the flow run's log.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from stockpred.cli import (
    EXPECTED_ERRORS,
    add_config_options,
    add_predict_options,
    config_from_args,
    report_errors,
)
from stockpred.resume.signals import Terminated
from stockpred.symbols import check_ticker

PREFECT_HOST, PREFECT_PORT = "127.0.0.1", 4200


def train_parser() -> argparse.ArgumentParser:
    """``python -m flows.train_flow``: the options of ``stockpred train``."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.train_flow",
        description="Train and evaluate the LSTM on the configured data as a Prefect flow (each "
        "pipeline stage a task); the run is tracked in MLflow. Same options as `stockpred "
        "train`.",
    )
    add_config_options(parser)
    parser.add_argument(
        "--resume",
        metavar="RUN_ID",
        help="continue an interrupted run (its id, or `last`) from its last "
        "checkpoint, with its own config; see `stockpred interrupted`",
    )
    return parser


def predict_parser() -> argparse.ArgumentParser:
    """``python -m flows.predict_flow``."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.predict_flow",
        description="Forecast the next period per ticker with the registered champion "
        "(models:/MODEL@champion); saves predictions/<as-of>_v<version>.parquet and publishes "
        "a Prefect table artifact.",
    )
    add_predict_options(
        parser,
        "forecast after the close of this day, from data up to it (default: today; the "
        "embedded sample ends 2018-12-31)",
    )
    return parser


def daily_parser() -> argparse.ArgumentParser:
    """``python -m flows.daily_flow``."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.daily_flow",
        description="Refresh the champion's tickers in the price cache (Yahoo champions), then "
        "forecast the next period. A champion trained on the embedded sample has no live "
        "forecast: without --as-of the day is skipped, saying so.",
    )
    add_predict_options(
        parser, "forecast after the close of this day (default: today, with the Yahoo ingest first)"
    )
    return parser


def ingest_parser() -> argparse.ArgumentParser:
    """``python -m flows.ingest_flow``."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.ingest_flow",
        description="Fetch tickers from Yahoo into the local Parquet price cache, in concurrent "
        "batches; one failing ticker does not stop the others. Exit code 1 if any failed.",
    )
    parser.add_argument(
        "--tickers", nargs="+", required=True, metavar="SYMBOL", help="Yahoo symbols to fetch"
    )
    parser.add_argument(
        "--start",
        type=dt.date.fromisoformat,
        default=dt.date(2010, 1, 1),
        metavar="YYYY-MM-DD",
        help="first date (default 2010-01-01)",
    )
    parser.add_argument(
        "--end",
        type=dt.date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help="last date (default: today)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=20, metavar="N", help="tickers per task (default 20)"
    )
    parser.add_argument("--cache-dir", default=None, help="default: data/cache in the project")
    parser.add_argument(
        "--dask",
        action="store_true",
        help="fetch on Dask workers: a LocalCluster, or the scheduler at "
        "--dask-address / $STOCKPRED_DASK_ADDRESS",
    )
    parser.add_argument("--dask-address", metavar="HOST:PORT", help="a running Dask scheduler")
    return parser


def sweep_parser() -> argparse.ArgumentParser:
    """``python -m flows.sweep_flow``: the search space, the runner, the ``train`` options."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.sweep_flow",
        description="Grid or random search: one nested MLflow run per trial under a parent run "
        "that logs the comparison table and figure and the best trial (by validation).",
    )
    search = parser.add_argument_group("search space")
    search.add_argument(
        "--grid",
        nargs="+",
        default=[],
        metavar="SECTION.FIELD=V1,V2",
        help="values per setting, e.g. model.hidden_size=8,16 "
        "train.learning_rate=1e-3,3e-3; with --random also low..high and "
        "log:low..high ranges",
    )
    search.add_argument(
        "--random",
        type=int,
        metavar="N",
        help="random search: draw N combinations instead of the full grid",
    )
    search.add_argument(
        "--random-seed",
        type=int,
        default=0,
        metavar="S",
        help="seed of the random search (default 0)",
    )
    search.add_argument("--space", metavar="FILE", help="JSON search space (see stockpred.sweep)")
    run = parser.add_argument_group("execution")
    run.add_argument(
        "--dask",
        action="store_true",
        help="run trials in Dask worker processes (a LocalCluster, or the scheduler "
        "at --dask-address / $STOCKPRED_DASK_ADDRESS)",
    )
    run.add_argument("--dask-address", metavar="HOST:PORT", help="a running Dask scheduler")
    run.add_argument(
        "--max-parallel",
        type=int,
        metavar="N",
        help="trials at once (Dask workers; default: one per core)",
    )
    add_config_options(parser)
    return parser


def deploy_parser() -> argparse.ArgumentParser:
    """``python -m flows.deploy``."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.deploy",
        description="Serve the scheduled deployments (daily/after-close, train/weekly-retrain) "
        "from this process, against the Prefect server in PREFECT_API_URL or a local one.",
    )
    parser.add_argument(
        "--local-server",
        action="store_true",
        help="start (or reuse) a local Prefect server and serve against it (what `make serve` "
        "does)",
    )
    parser.add_argument(
        "--host", default=PREFECT_HOST, help=f"with --local-server (default {PREFECT_HOST})"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=PREFECT_PORT,
        help=f"with --local-server (default {PREFECT_PORT})",
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=None,
        help="how often to look for due runs (default: Prefect's, 10 s)",
    )
    return parser


PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "train_flow": train_parser,
    "predict_flow": predict_parser,
    "daily_flow": daily_parser,
    "ingest_flow": ingest_parser,
    "sweep_flow": sweep_parser,
    "deploy": deploy_parser,
}


def parse_early(module: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and check ``python -m flows.<module>``'s options before Prefect is imported:
    ``--help``, a bad option and a bad config setting (``--set trian.epochs=3``) exit here, in
    well under a second instead of after Prefect's, torch's and MLflow's imports."""
    args = PARSERS[module]().parse_args(argv)
    code = report_errors(check_early, module, args)
    if code:
        sys.exit(code)
    return args


def check_early(module: str, args: argparse.Namespace) -> None:
    """Refuse what needs no heavy import: the config the options describe (a resume keeps the
    run's own, checked once MLflow is up) and the tickers to ingest."""
    if "set" in args and not getattr(args, "resume", None):
        config_from_args(args)
    if module == "ingest_flow":
        for ticker in args.tickers:
            check_ticker(ticker)


class _ExpectedTracebacks(logging.Filter):
    """Drops console records that carry the traceback of an expected error (bad input, no
    champion, a server that is down): the flow run's log in Prefect keeps them, and the
    terminal ends with the one-line message. Tracebacks of anything else (a bug) still show."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        # a signal that ended the run (Ctrl-C, SIGTERM) is expected too: one line says so
        return not isinstance(error, (*EXPECTED_ERRORS, KeyboardInterrupt, Terminated))


def quiet_expected_tracebacks() -> None:
    """Attach the filter to Prefect's console handler (on the root logger once Prefect is
    imported); Prefect's API handler, the flow run's log, is left as it is."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
            isinstance(f, _ExpectedTracebacks) for f in handler.filters
        ):
            handler.addFilter(_ExpectedTracebacks())


def run_reporting(func: Callable[..., Any], *args: Any) -> int:
    """Run a flow's command: ``report_errors`` (one line, exit code) with Prefect's console
    tracebacks of expected errors silenced, so that line is the last one on stderr."""
    from flows.server import detach_server_from_ctrl_c, one_line_start_failure

    detach_server_from_ctrl_c()
    quiet_expected_tracebacks()
    code = report_errors(one_line_start_failure(func), *args)
    if code:  # at exit Prefect logs "Stopping temporary server": keep the error the last line
        logging.getLogger("prefect").setLevel(logging.WARNING)
    sys.stderr.flush()
    return code
