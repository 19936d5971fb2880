"""The prediction flow: the champion's next-day forecast per ticker, saved and published.

Run it with ``python -m flows.predict_flow [--model stockpred-lstm] [--as-of YYYY-MM-DD]``.
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

    parse_early("predict_flow", sys.argv[1:])

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from stockpred.predict import (
    forecast_line,
    forecast_table,
    predict_next_warning_line,
    save_predictions,
)


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
    return predict_next_warning_line(model, as_of, max_stale_days).to_dict("records")


@flow(name="predict", log_prints=True)
def predict_flow(
    model: str = "stockpred-lstm", as_of: dt.date | None = None, max_stale_days: int = 5
) -> str:
    """Predict the next period per ticker with ``models:/<model>@champion``; returns the file."""
    import pandas as pd

    rows = predict_task(model, as_of, max_stale_days)
    path = save_predictions(pd.DataFrame(rows))
    create_table_artifact(  # labelled, in the forecast's units (the file keeps full precision)
        table=forecast_table(pd.DataFrame(rows)).to_dict("records"),
        key="predictions",
        description=f"{model} v{rows[0]['model_version']} forecasts as of {rows[0]['as_of']}",
    )
    for row in rows:
        print(forecast_line(row))
    print(f"saved {path}")
    return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flows.predict_flow [--model NAME] [--as-of YYYY-MM-DD]``."""
    from flows.cli import predict_parser, run_reporting

    args = predict_parser().parse_args(argv)
    return run_reporting(lambda: predict_flow(args.model, args.as_of, args.max_stale_days))


if __name__ == "__main__":
    sys.exit(main())
