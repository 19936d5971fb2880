"""``run_training(config)``: the one code path shared by the Prefect flow, the CLI and notebooks.

It is a short sequence of stages. Each stage is a plain function that reads and writes files in
the run's work folder and returns small things (paths, metric dicts), so the Prefect flow can run
each one as a task by passing a ``runner`` that wraps it.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from stockpred import tracking
from stockpred.config import PipelineConfig

if TYPE_CHECKING:
    import torch

    from stockpred.prepare import Prepared

F = TypeVar("F", bound=Callable[..., Any])
Runner = Callable[[F], F]
MODELS = ("lstm", "zero", "mean", "ridge", "ar")


@dataclass(frozen=True)
class RunContext:
    """What every stage needs: the MLflow run, a scratch folder, the config."""

    run_id: str
    workdir: Path
    config: PipelineConfig
    checkpoints: Path | None = None  # the run's checkpoint folder (see stockpred.resume)
    resumed: bool = False  # continuing an interrupted run (its data must not have changed)


@dataclass(frozen=True)
class TrainingResult:
    """Where the run is and how the LSTM did beside the baselines on the test period."""

    run_id: str
    run_name: str
    experiment: str
    tracking_uri: str
    artifact_uri: str
    model_uri: str | None
    metrics: dict[str, float]
    seconds: float
    ui_command: str = field(default="")
    registry: str = ""  # e.g. "stockpred-lstm v3: promoted: val/rmse_vs_zero ... beats ..."

    def as_dict(self) -> dict[str, Any]:
        """Plain values, e.g. for a Prefect flow's return value."""
        return asdict(self)

    def summary(self) -> str:
        """The lines printed at the end of a run."""
        rows = [f"{'model':<8}{'RMSE':>10}{'vs zero':>9}{'dir.acc':>9}{'IC':>8}{'Sharpe':>8}"]
        zero = self.metrics.get("baseline/zero/test/rmse", float("nan"))
        for model in MODELS:
            prefix = "test" if model == "lstm" else f"baseline/{model}/test"
            rmse = self.metrics.get(f"{prefix}/rmse")
            if rmse is None:
                continue
            m = {k: self.metrics.get(f"{prefix}/{k}") for k in ("dir_acc", "ic", "sharpe")}
            rows.append(
                f"{model:<8}{rmse:>10.5f}{rmse / zero:>9.3f}{_fmt(m['dir_acc'], 9, 3)}"
                f"{_fmt(m['ic'], 8, 3)}{_fmt(m['sharpe'], 8, 2)}"
            )
        hold = self.metrics.get("benchmark/buy_hold/test/sharpe")
        if hold is not None:
            rows.append(f"{'buy&hold':<8}{'':>10}{'':>9}{'':>9}{'':>8}{hold:>8.2f}")
        return "\n".join(
            [
                f"MLflow run   {self.run_name}  (id {self.run_id})",
                f"experiment   {self.experiment}",
                f"tracking     {self.tracking_uri}",
                f"artifacts    {self.artifact_uri}",
                *([f"model        {self.model_uri}"] if self.model_uri else []),
                *([f"registry     {self.registry}"] if self.registry else []),
                "",
                "test period (RMSE in log-return units; Sharpe of the long/short sign strategy,",
                "annualised, net of costs; IC = Pearson correlation of forecast and outcome):",
                *("  " + r for r in rows),
                "",
                "open the MLflow UI (then http://127.0.0.1:5000):",
                f"  {self.ui_command}",
                f"finished in {self.seconds:.0f} s",
            ]
        )


def _fmt(value: float | None, width: int, digits: int) -> str:
    """A right-aligned number, or a dash where a metric is undefined (e.g. IC of a constant)."""
    if value is None or value != value:
        return f"{'-':>{width}}"
    return f"{value:>{width}.{digits}f}"


def _direct(stage: F) -> F:
    return stage


def _timing(runner: Runner, seconds: dict[str, float]) -> Runner:
    """``runner`` that also records each stage's wall time (its task's, under Prefect)."""

    def wrap(stage: F) -> F:
        run = runner(stage)

        def call(*args: Any, **kwargs: Any) -> Any:
            begun = time.perf_counter()
            try:
                return run(*args, **kwargs)
            finally:
                seconds[stage.__name__] = time.perf_counter() - begun

        return call  # type: ignore[return-value]

    return wrap


def run_training(
    config: PipelineConfig | None = None,
    *,
    runner: Runner = _direct,
    tags: Mapping[str, str] | None = None,
    resume: str | None = None,
) -> TrainingResult:
    """Load, featurise, split, train, evaluate and log one run; return where it is and its metrics.

    ``runner`` wraps each stage before it is called (the Prefect flow turns stages into tasks).
    ``tags`` are added to the MLflow run (e.g. ``mlflow.parentRunId`` for a sweep's trials).
    A failure in any stage ends the MLflow run as FAILED with the error recorded, and re-raises;
    SIGTERM (in the main thread, where no other handler is installed) and Ctrl-C end it KILLED
    with its checkpoints kept, and raise ``resume.Terminated`` and ``KeyboardInterrupt`` saying
    how to resume it; the signal handlers are as they were afterwards.

    Training checkpoints persist per run (``stockpred.resume``) until the run finishes.
    ``resume`` (a run id, or ``"last"``: the newest interrupted run of the experiment) continues
    an interrupted run in the same MLflow run, with the config it was started with, from the
    epoch after its last checkpoint; a ``config`` given with it must equal the run's (except
    ``RESUME_MAY_CHANGE``). A resume whose freshly loaded data differ from what the run was
    trained on is refused (``ConfigError``) before the run is touched.
    """
    from stockpred import resume as resuming

    started = time.perf_counter()
    stage_seconds: dict[str, float] = {}
    runner = _timing(runner, stage_seconds)
    run_id: str | None = None
    locked = False  # this process holds the run's owner lock: its folder is ours to clean up
    # ``owned`` holds the owner lock and unwinds after ``stack``, which ends the MLflow run: the
    # run is never seen RUNNING without a live owner, and its folder is cleaned up under the lock
    with contextlib.ExitStack() as owned:
        owned.enter_context(resuming.signals_raise())
        try:
            with contextlib.ExitStack() as stack:
                if resume is None:
                    config = config or PipelineConfig()
                    run_id = stack.enter_context(tracking.tracked_run(config, tags=tags))
                    checkpoints = owned.enter_context(resuming.owner_lock(run_id))
                    locked = True
                else:
                    run_id, config = _resume_target(resume, config)
                    checkpoints = owned.enter_context(resuming.owner_lock(run_id))
                    locked = True
                scratch = Path(
                    stack.enter_context(tempfile.TemporaryDirectory(prefix="stockpred-run-"))
                )
                ctx = RunContext(run_id, scratch, config, checkpoints, resumed=resume is not None)
                try:
                    if resume is not None:
                        # under the lock: the run is still what it was when it was looked up
                        resume_tags = _resume_tags(run_id)
                        # before the run is touched: refused on other data, it stays as it was
                        prices = runner(load_data)(ctx)
                        stack.enter_context(
                            tracking.reopen_run(run_id, {**resume_tags, **(tags or {})})
                        )
                    else:
                        prices = runner(load_data)(ctx)
                    features = runner(build_features)(ctx, prices)
                    prepared = runner(prepare_data)(ctx, features)
                    model = runner(train_model)(ctx, prepared)
                    metrics = runner(evaluate_model)(ctx, prepared, model)
                    model_uri = runner(log_trained_model)(ctx, prepared, model)
                    runner(render_diagnostics)(ctx)
                    # where the time went, as metrics beside the run's (time/<stage>_s)
                    tracking.log_metrics(run_id, {f"time/{name}_s": seconds
                                                  for name, seconds in stage_seconds.items()})  # fmt: skip
                except (SystemExit, KeyboardInterrupt) as exc:
                    if isinstance(exc, SystemExit) and not isinstance(
                        exc.__context__, KeyboardInterrupt
                    ):
                        raise
                    # a Ctrl-C while another SIGINT handler than ours was in charge (Lightning
                    # turns one it catches in ``fit`` into ``sys.exit(1)``)
                    raise _interrupted(run_id, None) from None
                except resuming.Terminated as exc:
                    raise _interrupted(run_id, exc) from None
        except BaseException:
            # a new run's folder without checkpoints goes; a resumed run's stays as it was
            if locked and resume is None:
                resuming.discard_if_empty(run_id)
            raise
        assert run_id is not None
        resuming.discard(run_id)  # finished: the model is logged, the checkpoints are not needed
    run = tracking.client().get_run(run_id)
    return TrainingResult(
        run_id=run_id,
        run_name=run.info.run_name,
        experiment=config.tracking.experiment,
        tracking_uri=tracking.tracking_uri(),
        artifact_uri=run.info.artifact_uri,
        model_uri=model_uri,
        metrics=metrics,
        seconds=time.perf_counter() - started,
        ui_command=tracking.ui_command(),
        registry=(
            f"{run.data.tags['registry.model']} v{run.data.tags['registry.version']}: "
            f"{run.data.tags['registry.promotion']}"
            if "registry.promotion" in run.data.tags
            else ""
        ),
    )


# settings that may differ between a run and its resume (they do not change what is trained:
# a resume checks that the data it loads is the data the run was trained on)
RESUME_MAY_CHANGE = frozenset({"train.progress_bar", "data.refresh"})


def _interrupted(run_id: str | None, exc: BaseException | None) -> BaseException:
    """What a run stopped by a signal raises, saying how to resume it: ``Terminated`` for
    SIGTERM, ``KeyboardInterrupt`` for Ctrl-C (``exc`` None or a SIGINT ``Terminated``): what a
    notebook, a shell or a caller expects of Ctrl-C."""
    from stockpred import resume as resuming

    signum = getattr(exc, "signum", signal.SIGINT)
    what = exc or "interrupted by Ctrl-C (SIGINT)"
    hint = (f"{what}: MLflow run {run_id} is KILLED, its checkpoints kept; resume it with "
            f"`stockpred train --resume {run_id}`")  # fmt: skip
    if signum == signal.SIGINT:
        return KeyboardInterrupt(hint)
    return resuming.Terminated(hint, signum)


def _resume_target(ref: str, config: PipelineConfig | None) -> tuple[str, PipelineConfig]:
    """The run to resume and the config it was started with (``RESUME_MAY_CHANGE`` from
    ``config``, which must otherwise equal it)."""
    from stockpred.config import ConfigError

    experiment = (config or PipelineConfig()).tracking.experiment
    run_id = tracking.resumable_run(ref, experiment)
    saved = tracking.load_run_config(run_id)
    if config is not None:
        given, kept = config.flat(), saved.flat()
        differ = [k for k in kept if k not in RESUME_MAY_CHANGE and given.get(k) != kept[k]]
        if differ:
            shown = ", ".join(f"{k} (run: {kept[k]!r}, given: {given.get(k)!r})" for k in differ)
            raise ConfigError(
                f"a resumed run keeps the config it was started with; these settings differ: "
                f"{shown}. Resume without them, or start a new run"
            )
        saved = saved.with_overrides({k: given[k] for k in RESUME_MAY_CHANGE})
    return run_id, saved


def _resume_tags(run_id: str) -> dict[str, str]:
    """Checked with the owner lock held: the run was not finished meanwhile (by the process
    that held it when it was looked up); the tags that mark the resume."""
    from stockpred import resume as resuming

    run = tracking.client().get_run(run_id)
    if run.info.status == "FINISHED":
        resuming.discard(run_id)  # the folder that taking the lock made again
        raise ValueError(f"run {run_id} finished meanwhile: there is nothing to resume")
    if run.data.tags.get("run.kind") == tracking.SWEEP_TRIAL:
        logging.getLogger(__name__).warning(
            "stockpred: warning: run %s is a trial of sweep run %s; resumed on its own, its "
            "result will not be in the sweep's trials table or best-trial choice",
            run_id,
            run.data.tags.get("mlflow.parentRunId", "?"),
        )
    last = resuming.last_checkpoint(run_id)
    return {"resumed_from_epoch": str(resuming.checkpoint_epoch(last))} if last else {}


def load_data(ctx: RunContext) -> Path:
    """Load the configured prices, record their lineage, and save them as Parquet."""
    from stockpred.data import load_prices

    data = ctx.config.data
    prices = load_prices(
        data.tickers,
        data.start,
        data.last_date,
        source=data.source,
        cache_dir=data.cache_dir,
        refresh=data.refresh,
        on_bad_rows=data.on_bad_rows,
        max_gap_days=data.max_gap_days,
    )
    name = f"{data.source}:{','.join(data.tickers)}:{data.start}..{data.last_date}"
    first, last = prices.index.get_level_values("date")[[0, -1]]
    seen = {"rows": str(len(prices)), "range": f"{first.date()}..{last.date()}",
            "digest": prices_digest(prices)}  # fmt: skip
    if ctx.resumed:  # before anything is logged: a checkpoint must continue on its own data
        _check_same_data(ctx, name, prices, seen)
    path = ctx.workdir / "prices.parquet"
    prices.to_parquet(path)
    tracking.log_dataset(ctx.run_id, prices.reset_index(), name=name, source=data.source)
    tracking.set_tags(ctx.run_id, {f"data.{key}": value for key, value in seen.items()})
    return path


def prices_digest(prices: pd.DataFrame) -> str:
    """A digest of every row and value of the prices, dates and tickers included."""
    import hashlib

    hashed = pd.util.hash_pandas_object(prices, index=True).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


class DataChangedError(ValueError):
    """A resumed run would train on other data than it was started on."""


def _check_same_data(
    ctx: RunContext, name: str, prices: pd.DataFrame, seen: dict[str, str]
) -> None:
    """Refuse to resume a run on data that differ from those it was trained on (new days,
    revised prices, another cache), naming what changed and what to do instead."""
    recorded = tracking.recorded_data(ctx.run_id, name)
    changed = [f"{key} {recorded[key]} -> {seen[key]}" for key in ("rows", "range")
               if key in recorded and recorded[key] != seen[key]]  # fmt: skip
    if "digest" in recorded:
        values_differ = recorded["digest"] != seen["digest"]
    elif "dataset_digest" in recorded:  # a run from before the data.digest tag
        values_differ = recorded["dataset_digest"] != tracking.dataset_digest(prices.reset_index())
    else:  # stopped before its data were recorded: nothing was trained on them
        values_differ = False
    if not changed and not values_differ:
        return
    what = ", ".join(changed) if changed else "the same rows with other values"
    data = ctx.config.data
    refresh = (
        f"; or, if the price cache still holds the days it was trained on, resume on the cache "
        f"alone: `stockpred train --resume {ctx.run_id} --set data.refresh=false`"
        if data.source == "yfinance" and data.refresh
        else ""
    )
    raise DataChangedError(
        f"run {ctx.run_id} cannot be resumed: its data ({name}) changed since it was trained "
        f"({what}), so its checkpoint was fitted on other data; nothing was changed in the "
        f"run. Start a new run with the same settings instead{refresh}"
    )


def build_features(ctx: RunContext, prices_path: Path) -> Path:
    """Compute the causal features and the forward-return target; save them as Parquet."""
    from stockpred.features import make_features, make_target

    prices = pd.read_parquet(prices_path)
    features = make_features(prices, ctx.config.features)
    features["target"] = make_target(prices, ctx.config.features.horizon)
    path = ctx.workdir / "features.parquet"
    features.to_parquet(path)
    return path


def prepare_data(ctx: RunContext, features_path: Path) -> Path:
    """Split chronologically with embargoes, scale with training statistics only, save arrays."""
    from stockpred.prepare import prepare

    frame = pd.read_parquet(features_path)
    prepared = prepare(frame.drop(columns="target"), frame["target"], ctx.config)
    tracking.log_dict(ctx.run_id, prepared.preprocessing(), "preprocessing.json")
    tracking.log_params(ctx.run_id, {f"split.{k}": v for k, v in prepared.split.as_dict().items()})
    return prepared.save(ctx.workdir / "prepared.npz")


def train_model(ctx: RunContext, prepared_path: Path) -> Path:
    """Fit the LSTM (epoch metrics stream into the run) and save the best weights."""
    import torch

    from stockpred.gates import GateMonitor, diagnostic_indices
    from stockpred.prepare import Prepared
    from stockpred.split import TRAIN, VAL
    from stockpred.train import fit_forecaster

    prepared = Prepared.load(prepared_path)
    window = ctx.config.model.window
    train, val = prepared.dataset(TRAIN, window), prepared.dataset(VAL, window)
    tracking.log_params(
        ctx.run_id, {"data.train_windows": len(train), "data.val_windows": len(val)}
    )
    gates = ctx.config.gates
    monitor = None
    if gates.enabled:  # the same evenly spaced validation windows every epoch
        diagnostic = diagnostic_indices(len(val), gates.batch_size)
        monitor = GateMonitor(
            val.__getitems__(diagnostic)[0], artifact_epochs=gates.artifact_epochs
        )
    fit = fit_forecaster(
        train,
        val,
        ctx.config.model,
        ctx.config.train,
        logger=tracking.lightning_logger(ctx.run_id),
        callbacks=[monitor] if monitor else [],
        checkpoint_dir=ctx.checkpoints,
    )
    if monitor is not None:
        from stockpred.gate_plots import gate_artifacts

        row = int(val.ends[diagnostic[monitor.sample_index]])  # the heatmap's window ends here
        label = f"{prepared.tickers[row]} window ending {str(prepared.dates[row])[:10]}"
        for artifact_file, item in gate_artifacts(monitor, prepared.price_path(row, window), label):
            tracking.log_artifact_object(ctx.run_id, item, artifact_file)
    tracking.log_metrics(
        ctx.run_id,
        {
            "train/best_epoch": fit.best_epoch,
            "train/epochs": fit.epochs_trained,
            "val/best_loss": fit.best_val_loss,
        },
    )
    tracking.set_tags(ctx.run_id, {f"train.resolved.{k}": str(v) for k, v in {
        "batch_size": fit.batch_size, "precision": fit.precision, "strategy": fit.strategy,
        "world_size": fit.world_size}.items()})  # fmt: skip
    path = ctx.workdir / "model.pt"
    torch.save(fit.model, path)
    return path


def evaluate_model(ctx: RunContext, prepared_path: Path, model_path: Path) -> dict[str, float]:
    """Score the LSTM and the naive baselines on the same test windows; log metrics, table, figure."""
    import torch

    from stockpred.evaluate import comparison_figure, comparison_table, predicted_vs_actual_figure
    from stockpred.prepare import Prepared

    prepared = Prepared.load(prepared_path)
    model = torch.load(model_path, weights_only=False)
    predictions, fitted = test_predictions(prepared, model, ctx.config)
    scores, metrics = score_predictions(predictions, ctx.config)
    metrics.update(validation_metrics(prepared, model, ctx.config))
    tracking.log_metrics(ctx.run_id, metrics)
    tracking.log_params(ctx.run_id, {"data.test_windows": len(predictions), **fitted})
    table = comparison_table(scores)
    tracking.log_table(ctx.run_id, table, "evaluation/test_comparison.json")
    predictions_path = ctx.workdir / "test_predictions.parquet"
    predictions.to_parquet(predictions_path, index=False)
    tracking.log_artifact(ctx.run_id, predictions_path, "evaluation")
    horizon, cost = ctx.config.features.horizon, ctx.config.evaluation.cost_bps
    tracking.log_figure(ctx.run_id, predicted_vs_actual_figure(predictions, horizon),
                        "evaluation/predicted_vs_actual.png")  # fmt: skip
    tracking.log_figure(ctx.run_id, comparison_figure(predictions, table, horizon, cost),
                        "evaluation/comparison.png")  # fmt: skip
    return metrics


def validation_metrics(
    prepared: Prepared, model: torch.nn.Module, config: PipelineConfig
) -> dict[str, float]:
    """The LSTM's RMSE on the validation windows, alone and relative to the zero forecast
    (``val/rmse_vs_zero`` is what the champion rule compares)."""
    from stockpred.split import VAL
    from stockpred.train import predict

    val = prepared.dataset(VAL, config.model.window)
    actual = prepared.actual[val.ends.numpy()]
    rmse = float(np.sqrt(np.mean((prepared.unscale(predict(model, val)) - actual) ** 2)))
    return {"val/rmse": rmse, "val/rmse_vs_zero": rmse / float(np.sqrt(np.mean(actual**2)))}


def test_predictions(
    prepared: Prepared, model: torch.nn.Module, config: PipelineConfig
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Predictions of the LSTM and every baseline on the test windows, in log-return units.

    Baselines, all fitted on the training windows only: zero (random walk), the training mean,
    ridge on the window's last feature row (penalty chosen on validation), and AR(p) on the
    window's last p one-day returns. Returns (frame: date, ticker, actual, one column per model;
    fitted hyperparameters to log).
    """
    from stockpred.evaluate import fit_autoregression, fit_ridge
    from stockpred.split import TEST, TRAIN, VAL
    from stockpred.train import predict

    window = config.model.window
    parts = {"train": TRAIN, "val": VAL, "test": TEST}
    datasets = {name: prepared.dataset(part, window) for name, part in parts.items()}
    ends = {name: ds.ends.numpy() for name, ds in datasets.items()}
    if len(ends["test"]) == 0:
        raise ValueError("the test period holds no complete window; load a longer date range")
    last_row = {name: prepared.features[rows] for name, rows in ends.items()}  # (S, F) at t
    target = {name: prepared.target[rows] for name, rows in ends.items()}
    ridge = fit_ridge(last_row["train"], target["train"], last_row["val"], target["val"])
    rows = ends["test"]
    frame = pd.DataFrame(
        {
            "date": prepared.dates[rows],
            "ticker": prepared.tickers[rows],
            "actual": prepared.actual[rows],
            "lstm": prepared.unscale(predict(model, datasets["test"])),
            "zero": np.zeros(len(rows)),
            "mean": np.full(len(rows), prepared.target_mean),
            "ridge": prepared.unscale(ridge.predict(last_row["test"])),
        }
    )
    fitted: dict[str, float] = {"baseline.ridge_alpha": ridge.alpha}
    if "ret_1d" in prepared.feature_names:
        column = prepared.feature_names.index("ret_1d")
        order = config.evaluation.ar_order
        lags = {name: prepared.features[idx[:, None] - np.arange(order), column]  # (S, p)
                for name, idx in ends.items()}  # fmt: skip
        ar = fit_autoregression(lags["train"], target["train"])
        frame["ar"] = prepared.unscale(ar.predict(lags["test"]))
        fitted["baseline.ar_order"] = order
    return frame, fitted


def score_predictions(
    predictions: pd.DataFrame, config: PipelineConfig
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Every metric of every model (``scores[model]``) and the flat MLflow metric names.

    LSTM metrics are ``test/<metric>``, baselines ``baseline/<name>/test/<metric>``, buy-and-hold
    ``benchmark/buy_hold/test/<metric>``.
    """
    from stockpred.evaluate import score, strategy_returns, strategy_stats

    horizon, cost = config.features.horizon, config.evaluation.cost_bps
    models = [m for m in MODELS if m in predictions]
    scores = {m: score(predictions, m, horizon, cost) for m in models}
    metrics: dict[str, float] = {}
    for name, values in scores.items():
        prefix = "test" if name == "lstm" else f"baseline/{name}/test"
        metrics.update({f"{prefix}/{k}": v for k, v in values.items() if np.isfinite(v)})
    metrics["test/rmse_vs_zero"] = scores["lstm"]["rmse"] / scores["zero"]["rmse"]
    hold = strategy_stats(strategy_returns(predictions, "lstm", "buy_hold", horizon, cost), horizon)
    metrics.update({f"benchmark/buy_hold/test/{k}": v for k, v in hold.items() if np.isfinite(v)})
    return scores, metrics


def log_trained_model(ctx: RunContext, prepared_path: Path, model_path: Path) -> str | None:
    """Log the trained model (signature + input example) to the run; returns its model URI."""
    import torch

    from stockpred.prepare import Prepared
    from stockpred.split import TEST

    if not ctx.config.tracking.log_model:
        return None
    prepared = Prepared.load(prepared_path)
    model = torch.load(model_path, weights_only=False)
    example, _ = prepared.dataset(TEST, ctx.config.model.window).__getitems__([0])
    model_uri = tracking.log_model(ctx.run_id, model, example.numpy())
    if ctx.config.evaluation.register_model:
        tracking.register_model(ctx.run_id, model_uri, ctx.config.evaluation.registered_name)
    return model_uri


def render_diagnostics(ctx: RunContext) -> str | None:
    """Execute the gate-diagnostics notebook for this run and attach it as HTML under ``report/``.

    Returns the artifact path, or None when it is switched off (``tracking.report``, or no gate
    diagnostics) or failed: a failure never fails the run, it is logged as a warning and recorded
    in the run's ``report.error`` tag.
    """
    import contextlib
    import logging

    if not (ctx.config.tracking.report and ctx.config.gates.enabled):
        return None
    try:
        from stockpred.report import render_report

        html = render_report(ctx.run_id, ctx.workdir / "report")
        tracking.log_artifact(ctx.run_id, html, "report")
    except Exception as exc:  # the report is a convenience: the trained run must survive it
        message = f"{type(exc).__name__}: {exc}"
        logging.getLogger(__name__).warning("diagnostics report not attached: %s", message)
        with contextlib.suppress(Exception):
            tracking.set_tags(ctx.run_id, {"report.error": message[:5000]})
        return None
    return f"report/{html.name}"
