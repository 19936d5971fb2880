"""The daily flow: refresh the champion's tickers in the price cache, then forecast with it.

Run it with ``python -m flows.daily_flow [--model stockpred-lstm] [--as-of YYYY-MM-DD]``; the
``daily/after-close`` deployment (``flows/deploy.py``) runs it on weekdays after the US close.

What it ingests is what the champion reads: its tickers, from its data source.

- ``yfinance`` champion: the ``ingest`` flow fetches the champion's tickers from Yahoo into the
  Parquet cache (as a subflow), then the ``predict`` flow forecasts. If any ticker fails to
  ingest or could not be refreshed (Yahoo unreachable, the cache kept its older days), the daily
  flow fails saying which and why, and predict does not run: a forecast from silently stale
  prices is worse than none (rerun when Yahoo answers).
- ``sample`` champion: the embedded sample is fixed (it ends 2018-12-31), so there is nothing to
  ingest and no live forecast to make. With ``as_of`` inside the sample it predicts as of that
  date; without one (the scheduled weekday run) the day is skipped: the run is Completed with a
  ``skipped: ...`` message saying to train a champion on ``data.source=yfinance``, instead of
  failing every weekday.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

if __name__ == "__main__":  # --help and bad options answer before Prefect loads (seconds)
    from flows.cli import parse_early

    parse_early("daily_flow", sys.argv[1:])

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed

from flows.ingest_flow import ingest_flow
from flows.predict_flow import predict_flow
from stockpred.predict import load_champion
from stockpred.tracking import load_model


class IngestFailedError(ConnectionError):
    """The champion's tickers could not all be refreshed; no forecast was made."""


@task(name="champion-data", cache_policy=NO_CACHE)
def champion_data(model: str) -> dict[str, Any]:
    """Which data the champion of ``model`` reads: its version, tickers, source and cache (its
    model loaded first: a damaged one is refused before anything is fetched)."""
    champion = load_champion(model)
    load_model(champion.model_uri)  # a damaged or non-finite model fails here, before any ingest
    data = champion.config.data
    return {
        "version": champion.version,
        "tickers": list(data.tickers),
        "start": data.start,
        "source": data.source,
        "cache_dir": data.cache_dir,
    }


@flow(name="daily", log_prints=True)
def daily_flow(
    model: str = "stockpred-lstm", as_of: dt.date | None = None, max_stale_days: int = 5
) -> Any:
    """Ingest the champion's tickers (Yahoo), then predict the next period; returns the file
    (None, the run Completed with a ``skipped: ...`` message, for a sample champion today)."""
    data = champion_data(model)
    what = f"{model} champion v{data['version']} ({', '.join(data['tickers'])}, {data['source']})"
    if data["source"] == "yfinance":
        end = as_of or dt.date.today()
        state = ingest_flow(
            data["tickers"],
            start=data["start"],
            end=end,
            cache_dir=data["cache_dir"],
            return_state=True,
        )
        if not state.is_completed():
            raise IngestFailedError(
                f"ingest for {what} did not complete ({state.message}); no forecast made, "
                "rather than one from stale prices: rerun when Yahoo answers"
            )
        stale = [row for row in state.result() if row["status"] == "stale"]
        if stale:  # Yahoo did not answer; the cache still holds older days
            raise IngestFailedError(
                f"ingest for {what} could not refresh {', '.join(r['ticker'] for r in stale)} "
                f"({stale[0]['message']}); no forecast made, rather than one from stale "
                "prices: rerun when Yahoo answers"
            )
    elif as_of is None:  # a scheduled day: skip (Completed) rather than fail every weekday
        skipped = (
            f"skipped: {what} reads the embedded sample, which ends 2018-12-31: there is nothing "
            "to ingest and no live forecast to make. Train a champion on live data (config "
            "data.source='yfinance'), or pass as_of inside the sample"
        )
        print(skipped)
        return Completed(message=skipped, data=None)
    else:
        print(f"{what}: the embedded sample is fixed, nothing to ingest")
    return predict_flow(model, as_of, max_stale_days)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flows.daily_flow [--model NAME] [--as-of YYYY-MM-DD] [--max-stale-days N]``."""
    from flows.cli import daily_parser, run_reporting

    args = daily_parser().parse_args(argv)

    def _run() -> None:
        path = daily_flow(args.model, args.as_of, args.max_stale_days)
        if path is not None:  # a skipped day printed why
            print(path)

    return run_reporting(_run)


if __name__ == "__main__":
    sys.exit(main())
