"""The ingest flow: fetch a list of tickers from Yahoo into the local Parquet price cache.

Run it with ``python -m flows.ingest_flow --tickers AAPL MSFT ... --start 2010-01-01``.
Batches of tickers run as concurrent tasks; one failing ticker does not stop the others, and the
flow ends Failed (with a summary) if any ticker failed. A table artifact lists every ticker.
``--dask`` runs the batches on Dask workers (a LocalCluster of processes, or the scheduler at
``--dask-address`` / ``$STOCKPRED_DASK_ADDRESS``): the cache folder must be the same path on every
worker, and each worker process paces its own requests to Yahoo.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

if __name__ == "__main__":  # --help and bad options answer before Prefect loads (seconds)
    from flows.cli import parse_early

    parse_early("ingest_flow", sys.argv[1:])

from prefect import flow, task, unmapped
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from stockpred.data.market import ingest

MAX_CONCURRENCY = 4  # batches fetched at once; a per-process pacer spaces all requests anyway


@task(name="fetch-batch", retries=1, retry_delay_seconds=30, cache_policy=NO_CACHE)
def fetch_batch(
    tickers: list[str], start: dt.date, end: dt.date, cache_dir: str | None, min_pause: float
) -> list[dict[str, Any]]:
    """Fetch one batch into the cache; one row per ticker (failures included, not raised)."""
    results = ingest(tickers, start, end, cache_dir, batch_size=len(tickers), min_pause=min_pause)
    return [asdict(r) for r in results]


@flow(name="ingest", task_runner=ThreadPoolTaskRunner(max_workers=MAX_CONCURRENCY), log_prints=True)
def ingest_flow(
    tickers: list[str],
    start: dt.date = dt.date(2010, 1, 1),
    end: dt.date | None = None,
    batch_size: int = 20,
    cache_dir: str | None = None,
    min_pause: float = 0.5,
) -> State:
    """Fetch ``tickers`` (start..end, default through yesterday) into the price cache."""
    end = end or dt.date.today()
    batches = [tickers[i : i + batch_size] for i in range(0, len(tickers), batch_size)]
    futures = fetch_batch.map(
        batches, unmapped(start), unmapped(end), unmapped(cache_dir), unmapped(min_pause)
    )
    rows: list[dict[str, Any]] = []
    for batch, future in zip(batches, futures, strict=True):
        try:
            rows.extend(future.result())
        except Exception as exc:  # the whole batch task failed even after its retry
            rows.extend({"ticker": t, "status": "failed", "message": str(exc)} for t in batch)
    create_table_artifact(
        table=rows, key="ingest-report", description=f"price cache ingest of {len(tickers)} tickers"
    )
    failed = [r for r in rows if r["status"] == "failed"]
    summary = f"{len(rows) - len(failed)} of {len(rows)} tickers cached"
    print(summary)
    if failed:
        reasons = "; ".join(
            f"{r['ticker']}: {(r.get('cause') or r['message'])[:200]}" for r in failed[:5]
        )
        return Failed(message=f"{summary}; failed: {reasons}", data=rows)
    return Completed(message=summary, data=rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flows.ingest_flow --tickers ... [--start] [--end]``."""
    from flows.cli import ingest_parser, run_reporting

    args = ingest_parser().parse_args(argv)
    run = ingest_flow
    if args.dask or args.dask_address:
        from flows.runners import dask_runner

        run = ingest_flow.with_options(task_runner=dask_runner(args.dask_address, n_workers=2))
    completed: list[bool] = []

    def _run() -> None:  # in run_reporting: a server that fails to start is one line
        state = run(
            args.tickers, args.start, args.end, args.batch_size, args.cache_dir, return_state=True
        )
        print(state.message)
        completed.append(state.is_completed())

    return run_reporting(_run) or (0 if completed and completed[0] else 1)


if __name__ == "__main__":
    sys.exit(main())
