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
    import pandas as pd

    from stockpred.config import PipelineConfig

# option -> config field; None values (option not given) leave the config as it is
OPTION_FIELDS = {
    "tickers": "data.tickers",
    "start": "data.start",
    "end": "data.end",
    "source": "data.source",
    "universe": "data.universe",
    "path": "data.path",
    "horizon": "features.horizon",
    "target": "target.kind",
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
    from stockpred.config import TASK_KINDS  # cold start: pydantic only, not the tasks (torch)

    parser.add_argument("--config", metavar="FILE", help="JSON file with a full or partial config")
    data = parser.add_argument_group("data")
    data.add_argument("--tickers", nargs="+", metavar="SYMBOL", help="default: ^GSPC ^IXIC")
    data.add_argument("--start", metavar="YYYY-MM-DD", help="first date (default 1999-01-01)")
    data.add_argument("--end", metavar="YYYY-MM-DD", help="last date (default 2018-12-31)")
    data.add_argument(
        "--source",
        help="sample (embedded, offline; the default), yfinance (cached Yahoo data) or files "
        "(your own Parquet/CSV at --path)",
    )
    data.add_argument(
        "--universe",
        help="the sample's universe and the default tickers: indices (^GSPC ^IXIC; the default) "
        "or stocks (AAPL GOOG IBM MSFT FB, 2000-2013), or all (the seven; stocks end 2013)",
    )
    data.add_argument(
        "--path",
        metavar="FILE_OR_DIR",
        help="with --source files: a long Parquet/CSV file (date, ticker, close; open, high, "
        "low, volume optional) or a folder of them or of TICKER.csv/.parquet files; "
        "--tickers '*' takes all of them",
    )
    data.add_argument("--horizon", type=int, help="forecast horizon in trading days (default 1)")
    data.add_argument(
        "--target",
        choices=TASK_KINDS,
        help="what is forecast: the realised variance (volatility, the default; estimator and "
        "loss: --set target.estimator=... target.loss=...) or the log return (return)",
    )
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
    track.add_argument(
        "--register",
        action="store_true",
        help="register the model as a new version; it becomes the champion only if it beats a "
        "comparable champion on the same validation period (evaluation.register_model)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="any other setting, e.g. --set train.patience=2 (see `stockpred config`)",
    )


def add_predict_options(parser: argparse.ArgumentParser, as_of_help: str) -> None:
    """``--model``, ``--as-of``, ``--max-stale-days``: the parameters of a forecast (shared with
    ``python -m flows.predict_flow`` and ``flows.daily_flow``)."""
    import datetime as dt

    parser.add_argument(
        "--model",
        default="stockpred-lstm",
        help="registered model whose `champion` version forecasts (default stockpred-lstm)",
    )
    parser.add_argument(
        "--as-of",
        type=dt.date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help=as_of_help,
    )
    parser.add_argument(
        "--max-stale-days",
        type=int,
        default=5,
        metavar="N",
        help="refuse a ticker whose latest row is more than N calendar days before the as-of "
        "date (default 5)",
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
    if getattr(args, "register", False):
        overrides["evaluation.register_model"] = True
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected SECTION.FIELD=VALUE")
        overrides[key.strip()] = _parse_value(value)
    return config.with_overrides(overrides) if overrides else config


def _parse_value(text: str) -> Any:
    from stockpred.config import ConfigError, check_depth

    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    except RecursionError:  # a 100,000-deep value: one line, not a traceback
        raise ConfigError(f"--set value {text[:40]!r}...: nested too deep") from None
    check_depth(value, f"--set value {text[:40]!r}... is")
    return value


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
    train.add_argument(
        "--resume",
        metavar="RUN_ID",
        help="continue an interrupted run from its last checkpoint, in the same MLflow run and "
        "with its own config: its id, or `last` (the newest one in --experiment); see "
        "`stockpred interrupted`",
    )
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
    fetch.add_argument("tickers", nargs="+", metavar="SYMBOL", help="Yahoo symbols to fetch")
    fetch.add_argument(
        "--start",
        default="2010-01-01",
        metavar="YYYY-MM-DD",
        help="first date (default 2010-01-01)",
    )
    fetch.add_argument(
        "--end", default=None, metavar="YYYY-MM-DD", help="last date (default: today)"
    )
    fetch.add_argument("--cache-dir", default=None, help="default: data/cache in the project")
    predict = sub.add_parser(
        "predict",
        help="forecast the next period per ticker with the registered champion",
        description="Load models:/<model>@champion, the latest data and the champion's scaling; "
        "print and save the forecasts (predictions/<as-of>_v<version>.parquet). The same runs "
        "as a Prefect flow with `python -m flows.predict_flow`.",
    )
    add_predict_options(
        predict,
        "forecast after the close of this day, from data up to it (default: today; the "
        "embedded sample ends 2018-12-31)",
    )
    interrupted = sub.add_parser(
        "interrupted",
        help="list runs that stopped before finishing, with the command that resumes each",
        description="Runs left RUNNING by a process that is gone (killed, crashed, rebooted) "
        "and FAILED or KILLED runs that kept a checkpoint: `stockpred train --resume RUN_ID` "
        "continues one from its last checkpoint.",
    )
    interrupted.add_argument("--experiment", default="stockpred", help="default: stockpred")
    interrupted.add_argument(
        "--abandon",
        metavar="RUN_ID",
        help="give up on one: a dangling RUNNING run ends KILLED; its checkpoints are deleted",
    )
    interrupted.add_argument(
        "--force",
        action="store_true",
        help="with --abandon: also end a RUNNING run whose process cannot be checked from this "
        "machine (started on another one); only when you know that process is gone",
    )
    ui = sub.add_parser(
        "ui",
        help="start the MLflow UI on the project's tracking store",
        description="Start the MLflow UI on the project's tracking store (mlflow/mlflow.db) and "
        "say when it accepts connections; Ctrl-C stops it.",
    )
    ui.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 for other machines)",
    )
    ui.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    synth = sub.add_parser(
        "synth",
        help="write a synthetic stock universe for --source files",
        description="Write deterministic synthetic daily OHLCV: a market factor plus "
        "idiosyncratic GARCH(1,1) noise per ticker, business days, integer volume rising with "
        "|return|. Train on it with `stockpred train --source files --path DIR --tickers '*'`.",
    )
    synth.add_argument("--tickers", type=int, default=500, help="how many (default 500)")
    synth.add_argument("--days", type=int, default=5000, help="business days (default 5000)")
    synth.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument(
        "--layout",
        choices=["long", "per-ticker"],
        default="long",
        help="one prices.<format> file (default) or one file per ticker",
    )
    synth.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    synth.add_argument(
        "--start",
        default="2000-01-03",
        metavar="YYYY-MM-DD",
        help="first date (default 2000-01-03)",
    )
    synth.add_argument(
        "--ragged", action="store_true", help="tickers start at different dates (in the first half)"
    )
    return parser


# what report_errors turns into one line (flows keep Prefect's tracebacks of these off the terminal)
EXPECTED_ERRORS = (ValueError, LookupError, ConnectionError, OSError)


def report_errors(func: Any, *args: Any) -> int:
    """Run ``func``; print a one-line message for config and data errors instead of a traceback."""
    from stockpred.config import ConfigError
    from stockpred.resume import Terminated

    try:
        func(*args)
    except ConfigError as exc:
        print(f"stockpred: config error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, LookupError, ConnectionError) as exc:  # bad input, no champion, server down
        print(f"stockpred: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a disk or folder problem the code did not name: say which path
        where = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p)
        what = exc.strerror or str(exc) or type(exc).__name__
        hint = "check that path, its permissions and free space"
        print(f"stockpred: error: {where + ': ' if where else ''}{what} ({hint})", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # Ctrl-C; a training run says how to resume it
        print(f"stockpred: {exc or 'interrupted'}", file=sys.stderr)
        return 130
    except Terminated as exc:  # SIGTERM
        print(f"stockpred: {exc}", file=sys.stderr)
        return 128 + exc.signum
    return 0


def _train(args: argparse.Namespace) -> None:
    # fast refusal: a bad option or setting fails here, before torch, Lightning or MLflow load
    config = None if args.resume else config_from_args(args)
    # cold start: training imports torch, Lightning and MLflow only when a run starts
    from stockpred.pipeline import run_training
    from stockpred.resume.checkpoints import checkpoint_epoch
    from stockpred.resume.lock import last_checkpoint

    if config is None:
        run_id = resume_run_id(args, may_set=True)
        last = last_checkpoint(run_id)
        where = f"after epoch {checkpoint_epoch(last)}" if last else "from epoch 0"
        print(f"resuming MLflow run {run_id} {where}", flush=True)
        result = run_training(resume_config(args, run_id), resume=run_id)
    else:
        _note_interrupted(config.tracking.experiment)
        result = run_training(config)
    print(result.summary())
    if result.report:  # tracking.report: attached, or where the background render puts it
        print(f"report       {result.report}")


# options that may come with --resume (the run keeps its config; these only find or show it)
RESUME_OPTIONS = frozenset({"resume", "experiment", "no_progress"})


def resume_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--set`` settings that a resume may change (``data.refresh``); others raise."""
    from stockpred.config import ConfigError  # cold start: pydantic only when parsing settings
    from stockpred.resume.session import RESUME_MAY_CHANGE  # cold start: MLflow

    overrides: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in RESUME_MAY_CHANGE - {"train.progress_bar"}:
            raise ConfigError(
                f"--resume continues the run with the config it was started with: drop --set "
                f"{item} (with --resume only --set data.refresh=false is allowed; start a new "
                "run to change settings)"
            )
        overrides[key.strip()] = _parse_value(value)
    return overrides


def resume_config(args: argparse.Namespace, run_id: str) -> PipelineConfig | None:
    """The config a resume runs with: the run's own with the settings a resume may change
    (``--set data.refresh=...``, ``--no-progress``), or None when nothing changes."""
    from stockpred import tracking

    overrides = dict(resume_overrides(args))
    if args.no_progress:
        overrides["train.progress_bar"] = False
    if getattr(args, "register", False):
        overrides["evaluation.register_model"] = True
    return tracking.load_run_config(run_id).with_overrides(overrides) if overrides else None


def resume_run_id(args: argparse.Namespace, may_set: bool = False) -> str:
    """The run id ``--resume`` names (``last``: the newest interrupted run of --experiment).
    ``may_set``: the caller applies ``resume_overrides`` (else any ``--set`` is refused)."""
    from stockpred.config import ConfigError  # cold start: pydantic
    from stockpred.resume.interrupted import resumable_run  # cold start: MLflow

    given = [
        name
        for name in (*OPTION_FIELDS, "config", "no_model")
        if name not in RESUME_OPTIONS and getattr(args, name, None)
    ]
    if may_set and not given:
        resume_overrides(args)
    elif given or args.set:
        shown = ", ".join(
            "--" + name.replace("_", "-") for name in given + ["set"] * bool(args.set)
        )
        raise ConfigError(
            f"--resume continues the run with the config it was started with: drop {shown} "
            "(or start a new run to change settings)"
        )
    return resumable_run(args.resume, args.experiment or "stockpred")


def _note_interrupted(experiment: str) -> None:
    """Before a new run: say which runs of the experiment were interrupted and how to resume."""
    from stockpred.resume.interrupted import interrupted_runs  # cold start: MLflow

    try:
        found = interrupted_runs(experiment, max_results=50)
    except Exception:  # a note must never stop a run (e.g. a server that is down fails later)
        return
    resumable = [run for run in found if run.resumable]
    if resumable:
        newest = resumable[0]
        print(
            f"stockpred: note: {len(resumable)} interrupted run(s) in experiment "
            f"{experiment!r} can be resumed (`stockpred interrupted` lists them); the newest, "
            f"{newest.run_name} ({newest.status}, {newest.why}), with: {newest.resume_command}",
            file=sys.stderr,
        )


def _interrupted(args: argparse.Namespace) -> None:
    from stockpred.config import ConfigError  # cold start: pydantic
    from stockpred.resume.interrupted import abandon_run, interrupted_runs  # cold start: MLflow

    if args.force and not args.abandon:
        raise ConfigError("--force goes with --abandon RUN_ID")
    if args.abandon:
        status = abandon_run(args.abandon, force=args.force)
        print(f"abandoned run {args.abandon} ({status}); its checkpoints are deleted")
        return
    found = interrupted_runs(args.experiment)
    if not found:
        print(f"no interrupted runs in experiment {args.experiment!r}")
        return
    print(f"interrupted runs in experiment {args.experiment!r}, newest first:")
    print(f"  {'run id':<33}{'name':<24}{'status':<9}{'started':<18}{'epoch':>6}  why")
    for run in found:
        epoch = "-" if run.checkpoint_epoch is None else str(run.checkpoint_epoch)
        print(
            f"  {run.run_id:<33}{run.run_name[:23]:<24}{run.status:<9}{run.started:<18}"
            f"{epoch:>6}  {'sweep trial; ' * run.sweep_trial}{run.why[:100]}"
        )
    print(
        "resume one with:  stockpred train --resume RUN_ID   (the newest: --resume last"
        + ("" if args.experiment == "stockpred" else f" --experiment {args.experiment}")
        + ")"
    )
    print("('epoch': the last epoch its checkpoint completed; training continues after it)")
    if any(run.sweep_trial for run in found):
        print(
            "sweep trials are resumed only by id (not by --resume last); their sweep's table "
            "will not include the resumed result"
        )
    if any(not run.resumable for run in found):
        print("runs with no checkpoint folder here cannot be resumed; end them with --abandon")


def _backtest(args: argparse.Namespace) -> None:
    config = config_from_args(args)  # fast refusal, before torch and MLflow load
    # cold start: walk-forward imports torch and MLflow only when it runs
    from stockpred.tasks import task_for
    from stockpred.walkforward import run_walk_forward, verdict_table

    result = run_walk_forward(config)
    ev = config.evaluation
    print(
        f"walk-forward, {ev.folds} {ev.scheme} folds (MLflow run {result.run_id}); "
        "mean ± std over folds (- where a metric is undefined):"
    )
    print(backtest_table(result.folds, result.summary))
    print()
    print(verdict_table(result.folds, result.pooled, task_for(config)))


def backtest_table(folds: pd.DataFrame, summary: pd.DataFrame, digits: int = 4) -> str:
    """The walk-forward summary as ``mean ± std`` per model and metric, then each fold's dates."""

    def cell(mean: float, std: float) -> str:
        if mean != mean:  # NaN: undefined for this model (e.g. the IC of a constant forecast)
            return "-"
        return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std == std else "")

    metrics = [c.removesuffix("_mean") for c in summary.columns if c.endswith("_mean")]
    rows = [["model", *metrics]] + [
        [str(r["model"]), *(cell(r[f"{m}_mean"], r[f"{m}_std"]) for m in metrics)]
        for r in summary.to_dict("records")
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            [row[0].ljust(widths[0])]
            + [v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)]
        )
        for row in rows
    ]
    for fold in folds.drop_duplicates("fold").to_dict("records"):
        parts = (f"{p} {fold[p + '_start']}..{fold[p + '_end']}" for p in ("train", "val", "test"))
        lines.append(f"fold {fold['fold']}: " + ", ".join(parts))
    return "\n".join(lines)


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
        print(
            f"{r.ticker:<10}{r.status:<11}{r.rows_fetched:>8}{r.rows_cached:>8}  "
            f"{r.first or '-':<11} {r.last or '-'}"
        )
    failed = [r for r in results if not r.ok]
    if failed:
        raise DataError(describe_failures(failed))


def _predict(args: argparse.Namespace) -> None:

    from stockpred.predict import forecast_table, predict_next_warning_line, save_predictions

    frame = predict_next_warning_line(args.model, args.as_of, args.max_stale_days)
    print(forecast_table(frame).to_string(index=False))
    print(f"saved {save_predictions(frame)}")


def _synth(args: argparse.Namespace) -> None:
    import time

    from stockpred.universe import synthetic_universe, write_universe

    started = time.perf_counter()
    prices = synthetic_universe(
        args.tickers, args.days, args.seed, ragged=args.ragged, start=args.start
    )
    paths = write_universe(prices, args.out, args.layout, args.format)
    seconds = time.perf_counter() - started
    dates = prices.index.get_level_values("date")
    size = sum(p.stat().st_size for p in paths) / 1e6
    where = str(paths[0]) if len(paths) == 1 else f"{len(paths)} files in {args.out}"
    print(
        f"wrote {args.tickers} tickers x {args.days} business days "
        f"({dates.min().date()}..{dates.max().date()}), {len(prices):,} rows, {size:.1f} MB: "
        f"{where} in {seconds:.1f} s"
    )
    print(
        f"train on it with: stockpred train --source files --path {args.out} --tickers '*' "
        f"--start {dates.min().date()} --end {dates.max().date()}"
    )


def _ui(args: argparse.Namespace) -> None:
    from stockpred.mlflow_ui import start_ui  # cold start: MLflow only once the port is free

    start_ui(args.host, args.port)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stockpred`` console script."""
    args = build_parser().parse_args(argv)
    handlers = {
        "train": _train,
        "backtest": _backtest,
        "config": _config,
        "fetch": _fetch,
        "predict": _predict,
        "ui": _ui,
        "interrupted": _interrupted,
        "synth": _synth,
    }
    handler = handlers[args.command]
    return report_errors(handler, args)


if __name__ == "__main__":
    sys.exit(main())
