"""The ``stockpred`` command line: ``train`` a run, print the ``config``, open the MLflow ``ui``.

``--help`` imports nothing heavy (no torch, lightning, prefect or mlflow), so it answers at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stockpred.config import PipelineConfig

# option -> config field; None values (option not given) leave the config as it is
OPTION_FIELDS = {
    "tickers": "data.tickers",
    "start": "data.start",
    "end": "data.end",
    "source": "data.source",
    "horizon": "features.horizon",
    "window": "model.window",
    "hidden_size": "model.hidden_size",
    "layers": "model.num_layers",
    "dropout": "model.dropout",
    "epochs": "train.max_epochs",
    "batch_size": "train.batch_size",
    "lr": "train.learning_rate",
    "seed": "train.seed",
    "accelerator": "train.accelerator",
    "devices": "train.devices",
    "experiment": "tracking.experiment",
    "run_name": "tracking.run_name",
    "folds": "evaluation.folds",
    "scheme": "evaluation.scheme",
}


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """The options that build a ``PipelineConfig`` (shared with ``python -m flows.train_flow``)."""
    parser.add_argument("--config", metavar="FILE", help="JSON file with a full or partial config")
    data = parser.add_argument_group("data")
    data.add_argument("--tickers", nargs="+", metavar="SYMBOL", help="default: ^GSPC ^IXIC")
    data.add_argument("--start", metavar="YYYY-MM-DD", help="first date (default 1999-01-01)")
    data.add_argument("--end", metavar="YYYY-MM-DD", help="last date (default 2018-12-31)")
    data.add_argument(
        "--source", help="sample (embedded, offline; the default) or yfinance (cached Yahoo data)"
    )
    data.add_argument("--horizon", type=int, help="forecast horizon in trading days (default 1)")
    model = parser.add_argument_group("model and training")
    model.add_argument("--window", type=int, help="input window in trading days (default 60)")
    model.add_argument("--hidden-size", type=int, help="LSTM hidden units (default 64)")
    model.add_argument("--layers", type=int, help="stacked LSTM layers (default 2)")
    model.add_argument("--dropout", type=float, help="dropout between layers (default 0.1)")
    model.add_argument("--epochs", type=int, help="maximum epochs (default 15)")
    model.add_argument(
        "--batch-size", type=int, help="windows per step and device (default: 256 CPU, 1024 GPU)"
    )
    model.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    model.add_argument("--seed", type=int, help="random seed (default 42)")
    model.add_argument("--accelerator", help="auto (default), cpu, gpu, cuda or mps")
    model.add_argument(
        "--devices", help="GPUs, or CPU processes, to train on with DDP (default auto: all GPUs)"
    )
    track = parser.add_argument_group("tracking")
    track.add_argument("--experiment", help="MLflow experiment (default stockpred)")
    track.add_argument("--run-name", help="MLflow run name (default: a generated one)")
    track.add_argument("--no-model", action="store_true", help="do not log the model to MLflow")
    track.add_argument("--no-progress", action="store_true", help="hide Lightning's progress bar")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="any other setting, e.g. --set train.patience=2 (see `stockpred config`)",
    )


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """The validated config the options describe; raises ``ConfigError`` naming the bad field."""
    from stockpred.config import ConfigError, load_config

    config = load_config(args.config)
    overrides: dict[str, Any] = {
        field: getattr(args, option)
        for option, field in OPTION_FIELDS.items()
        if getattr(args, option, None) is not None
    }
    if args.no_model:
        overrides["tracking.log_model"] = False
    if args.no_progress:
        overrides["train.progress_bar"] = False
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected SECTION.FIELD=VALUE")
        overrides[key.strip()] = _parse_value(value)
    return config.with_overrides(overrides) if overrides else config


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_parser() -> argparse.ArgumentParser:
    """The ``stockpred`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="stockpred",
        description="Train and inspect LSTM stock forecasters tracked in MLflow.",
        epilog="Run `stockpred train --help` for the training options.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = sub.add_parser(
        "train",
        help="train on the configured data and log the run to MLflow",
        description="Train the LSTM, score it beside naive baselines on the held-out test "
        "period, and log everything to MLflow. Runs without Prefect; the same pipeline runs "
        "as a Prefect flow with `python -m flows.train_flow` (same options).",
    )
    add_config_options(train)
    backtest = sub.add_parser(
        "backtest",
        help="walk-forward evaluation: retrain per fold, LSTM vs baselines, mean ± std",
        description="Walk-forward: K consecutive test blocks at the end of the data, each after "
        "its own validation block and embargoes; the model is retrained per fold. Logged as one "
        "MLflow run with a nested run per fold.",
    )
    add_config_options(backtest)
    backtest.add_argument("--folds", type=int, help="number of folds (default 3)")
    backtest.add_argument("--scheme", help="expanding (default) or rolling training windows")
    config = sub.add_parser("config", help="print the resolved config as JSON")
    add_config_options(config)
    fetch = sub.add_parser(
        "fetch",
        help="fetch tickers from Yahoo into the local price cache",
        description="Fetch daily prices into the Parquet cache (only missing days are requested). "
        "The same step runs as a Prefect flow with `python -m flows.ingest_flow`.",
    )
    fetch.add_argument("tickers", nargs="+", metavar="SYMBOL")
    fetch.add_argument("--start", default="2010-01-01", metavar="YYYY-MM-DD")
    fetch.add_argument("--end", default=None, metavar="YYYY-MM-DD", help="default: yesterday")
    fetch.add_argument("--cache-dir", default=None, help="default: data/cache in the project")
    predict = sub.add_parser(
        "predict",
        help="forecast the next period per ticker with the registered champion",
        description="Load models:/<model>@champion, the latest data and the champion's scaling; "
        "print and save the forecasts (predictions/<as-of>_v<version>.parquet). The same runs "
        "as a Prefect flow with `python -m flows.predict_flow`.",
    )
    predict.add_argument("--model", default="stockpred-lstm")
    predict.add_argument("--as-of", default=None, metavar="YYYY-MM-DD",
                         help="default: today (the embedded sample ends 2018-12-31)")  # fmt: skip
    predict.add_argument("--max-stale-days", type=int, default=5)
    sub.add_parser("ui", help="start the MLflow UI on the project's tracking store")
    return parser


def report_errors(func: Any, *args: Any) -> int:
    """Run ``func``; print a one-line message for config and data errors instead of a traceback."""
    from stockpred.config import ConfigError

    try:
        func(*args)
    except ConfigError as exc:
        print(f"stockpred: config error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, LookupError, ConnectionError) as exc:  # bad input, no champion, server down
        print(f"stockpred: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stockpred: interrupted", file=sys.stderr)
        return 130
    return 0


def _train(args: argparse.Namespace) -> None:
    from stockpred.pipeline import run_training

    result = run_training(config_from_args(args))
    print(result.summary())


def _backtest(args: argparse.Namespace) -> None:
    from stockpred.walkforward import run_walk_forward

    config = config_from_args(args)
    result = run_walk_forward(config)
    ev = config.evaluation
    print(f"walk-forward, {ev.folds} {ev.scheme} folds (MLflow run {result.run_id}); "
          "mean and std over folds, RMSE relative to the zero forecast:")  # fmt: skip
    print(result.table())


def _config(args: argparse.Namespace) -> None:
    print(config_from_args(args).model_dump_json(indent=2))


def _fetch(args: argparse.Namespace) -> None:
    import datetime as dt

    from stockpred.data import DataError
    from stockpred.data.market import describe_failures, ingest

    end = dt.date.fromisoformat(args.end) if args.end else dt.date.today()
    results = ingest(args.tickers, dt.date.fromisoformat(args.start), end, args.cache_dir)
    print(f"{'ticker':<10}{'status':<11}{'fetched':>8}{'cached':>8}  first       last")
    for r in results:
        print(f"{r.ticker:<10}{r.status:<11}{r.rows_fetched:>8}{r.rows_cached:>8}  "
              f"{r.first or '-':<11} {r.last or '-'}")  # fmt: skip
    failed = [r for r in results if not r.ok]
    if failed:
        raise DataError(describe_failures(failed))


def _predict(args: argparse.Namespace) -> None:
    import datetime as dt

    from stockpred.predict import predict_next, save_predictions

    as_of = dt.date.fromisoformat(args.as_of) if args.as_of else None
    frame = predict_next(args.model, as_of, args.max_stale_days)
    print(frame[["ticker", "as_of", "direction", "predicted_log_return", "model_version"]]
          .to_string(index=False))  # fmt: skip
    print(f"saved {save_predictions(frame)}")


def _ui(_: argparse.Namespace) -> None:
    import os
    import shlex

    from stockpred.tracking import store_dir, ui_command

    (store_dir() / "artifacts").mkdir(parents=True, exist_ok=True)
    command = shlex.split(ui_command())
    print(" ".join(command), flush=True)
    os.execvp(command[0], command)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stockpred`` console script."""
    args = build_parser().parse_args(argv)
    handlers = {"train": _train, "backtest": _backtest, "config": _config, "fetch": _fetch,
                "predict": _predict, "ui": _ui}  # fmt: skip
    handler = handlers[args.command]
    return report_errors(handler, args)


if __name__ == "__main__":
    sys.exit(main())
