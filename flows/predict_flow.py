"""The prediction flow: the champion's next-day forecast per ticker, saved and published.

Run it with ``python -m flows.predict_flow [--model stockpred-lstm] [--as-of YYYY-MM-DD]``.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from stockpred.predict import predict_next, save_predictions

if TYPE_CHECKING:
    import argparse


@task(
    name="predict",
    cache_policy=NO_CACHE,
    retries=1,
    retry_delay_seconds=30,
    retry_condition_fn=lambda task, run, state: (
        not isinstance(state.data, LookupError | ValueError)
    ),
)
def predict_task(model: str, as_of: dt.date | None, max_stale_days: int) -> list[dict[str, Any]]:
    """Forecast with the champion (data loading may retry; bad input does not)."""
    return predict_next(model, as_of, max_stale_days).to_dict("records")


@flow(name="predict", log_prints=True)
def predict_flow(
    model: str = "stockpred-lstm", as_of: dt.date | None = None, max_stale_days: int = 5
) -> str:
    """Predict the next period per ticker with ``models:/<model>@champion``; returns the file."""
    import pandas as pd

    rows = predict_task(model, as_of, max_stale_days)
    path = save_predictions(pd.DataFrame(rows))
    create_table_artifact(
        table=rows,
        key="predictions",
        description=f"{model} v{rows[0]['model_version']} forecasts as of {rows[0]['as_of']}",
    )
    for row in rows:
        print(
            f"{row['ticker']:<8} {row['direction']:<5} {row['predicted_log_return']:+.5f} "
            f"(as of {row['as_of']}, {model} v{row['model_version']})"
        )
    print(f"saved {path}")
    return str(path)


def add_predict_options(parser: argparse.ArgumentParser, as_of_help: str) -> None:
    """``--model``, ``--as-of``, ``--max-stale-days``: the parameters of a forecast."""
    parser.add_argument("--model", default="stockpred-lstm")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=None, help=as_of_help)
    parser.add_argument("--max-stale-days", type=int, default=5)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flows.predict_flow [--model NAME] [--as-of YYYY-MM-DD]``."""
    import argparse

    from stockpred.cli import report_errors

    parser = argparse.ArgumentParser(
        prog="python -m flows.predict_flow", description=predict_flow.description
    )
    add_predict_options(parser, as_of_help="default: today (the embedded sample ends 2018-12-31)")
    args = parser.parse_args(argv)
    return report_errors(lambda: predict_flow(args.model, args.as_of, args.max_stale_days))


if __name__ == "__main__":
    sys.exit(main())
