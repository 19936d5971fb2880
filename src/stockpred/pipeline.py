"""``run_training(config)``: the one tracked code path shared by the Prefect flow, the CLI and
notebooks.

It is the untracked core run (``stockpred.experiment``) with each step logged to MLflow, as a
short sequence of stages. Each stage is a plain function of in-memory objects, so the Prefect
flow can run each one as a task by passing a ``runner`` that wraps it (the tasks run in this
process: nothing is written to disk between them). The run's lifecycle, with resume, is
``stockpred.resume.session.open_run``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from pytorch_lightning.callbacks import Callback

from stockpred import ablation, experiment, tracking
from stockpred.config import DEFAULT_TARGET, PipelineConfig
from stockpred.data.lineage import data_record, prices_digest
from stockpred.experiment import Evaluation
from stockpred.features import check_selection
from stockpred.figures.gate_plots import ablation_figure, gate_artifacts
from stockpred.figures.memory_plots import memory_figure, memory_value_figure
from stockpred.memory import value_metrics
from stockpred.prepare import Prepared
from stockpred.report import background
from stockpred.resume import checkpoints as resume_checkpoints
from stockpred.resume.session import (
    RESUME_MAY_CHANGE,
    DataChangedError,
    open_run,
    resume_target,
)
from stockpred.split import TEST, TRAIN, VAL, chronological_split
from stockpred.tasks import TASKS, ForecastTask, task_for
from stockpred.tasks.base import LSTM, Part
from stockpred.text import printable
from stockpred.training import FitResult

__all__ = [
    "RESUME_MAY_CHANGE",
    "DataChangedError",
    "RunContext",
    "TrainingResult",
    "headline_metrics",
    "prices_digest",
    "register_run",
    "run_training",
]

F = TypeVar("F", bound=Callable[..., Any])
Runner = Callable[[F], F]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunContext:
    """What every stage needs: the MLflow run, its config and task, a scratch folder."""

    run_id: str
    config: PipelineConfig
    workdir: Path
    checkpoints: Path | None = None  # the run's checkpoint folder (see stockpred.resume)

    @property
    def task(self) -> ForecastTask:
        """The forecasting task the run trains."""
        return task_for(self.config)


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
    registry: str = ""  # e.g. "stockpred-lstm v3: promoted: val/qlike ... beats ..."
    task: str = DEFAULT_TARGET
    experiment_id: str = ""
    run_url: str = ""  # the run's page in the MLflow UI
    best_epoch: int | None = None  # the epoch whose weights were kept (0-based, as logged)
    epochs: int | None = None  # epochs trained
    runs_url: str = ""  # the experiment's runs table in the MLflow UI, sorted by the headline

    @property
    def weights(self) -> str:
        """Which epoch's weights the model kept, and what epoch 0 means."""
        if self.best_epoch is None:
            return ""
        trained = f"; epochs 0-{self.epochs - 1} trained" if self.epochs else ""
        kept = f"epoch {self.best_epoch}'s (the lowest val/loss{trained})"
        if self.best_epoch == 0:
            kept += ": the first epoch's, so the network learned nothing the validation set rewards"
        return kept

    report: str = ""  # where the diagnostics report is, or will appear (tracking.report)

    @property
    def table(self) -> list[str]:
        """The model-vs-baselines rows of the test period (the task's ``summary_rows``)."""
        return TASKS[self.task].summary_rows(self.metrics)

    @property
    def verdict(self) -> str:
        """The LSTM against the strongest baseline in one line (the task's ``verdict``)."""
        verdict = TASKS[self.task].verdict(self.metrics)
        return verdict.sentence() if verdict else ""

    def markdown(self) -> str:
        """The result as Markdown: the verdict against the strongest baseline, the registry
        decision, then the model-vs-baselines table (the run's MLflow description and the
        Prefect artifact lead with it)."""
        rows, caption = self.table, TASKS[self.task].caption_lines
        return "\n".join(
            [
                *([f"**verdict**: {self.verdict}", ""] if self.verdict else []),
                f"**registry**: {self.registry}"
                if self.registry
                else "**registry**: not registered (`stockpred train --register` registers)",
                *([f"**weights**: {self.weights}"] if self.weights else []),
                "",
                " ".join(rows[:caption]),
                "",
                *markdown_table(rows[caption:]),
            ]
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain values, e.g. for a Prefect flow's return value."""
        return asdict(self)

    def summary(self) -> str:
        """The lines printed at the end of a run."""
        return "\n".join(
            [
                f"MLflow run   {printable(self.run_name)}  (id {self.run_id})",
                f"experiment   {self.experiment}",
                f"tracking     {self.tracking_uri}",
                f"artifacts    {self.artifact_uri}",
                *([f"model        {self.model_uri}"] if self.model_uri else []),
                *([f"registry     {self.registry}"] if self.registry else []),
                *([f"weights      {self.weights}"] if self.weights else []),
                *([f"run page     {self.run_url}"] if self.run_url else []),
                *([f"runs table   {self.runs_url}"] if self.runs_url else []),
                "",
                *([self.verdict, ""] if self.verdict else []),
                *(
                    row if i < TASKS[self.task].caption_lines else "  " + row
                    for i, row in enumerate(self.table)
                ),
                "",
                "open the MLflow UI (then http://127.0.0.1:5000):",
                f"  {self.ui_command}",
                f"finished in {self.seconds:.0f} s",
            ]
        )


def markdown_table(rows: list[str]) -> list[str]:
    """A task's fixed-width table (a header whose names are 2+ spaces apart, then one line per
    model, blank cells leading) as a Markdown table; as a code block if a row does not fit."""
    if not rows:
        return []
    names = re.split(r"\s{2,}", rows[0].strip())
    body = []
    for row in rows[1:]:
        cells = row.split()
        if not cells or len(cells) > len(names):
            return ["```", *rows, "```"]
        body.append([cells[0], *[""] * (len(names) - len(cells)), *cells[1:]])
    return [
        "| " + " | ".join(names) + " |",
        "|" + "|".join([":---", *["---:"] * (len(names) - 1)]) + "|",
        *("| " + " | ".join(cells) + " |" for cells in body),
    ]


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

    The data are loaded before the run is created: a bad ticker or date range is an error with
    no run left behind. ``runner`` wraps each stage before it is called (the Prefect flow turns
    stages into tasks). ``tags`` are added to the MLflow run (e.g. ``mlflow.parentRunId`` for a
    sweep's trials). A failure in a later stage ends the MLflow run as FAILED with the error
    recorded, and re-raises; SIGTERM (in the main thread, where no other handler is installed)
    and Ctrl-C end it KILLED with its checkpoints kept, and raise ``resume.Terminated`` and
    ``KeyboardInterrupt`` saying how to resume it; the signal handlers are as they were after.

    Training checkpoints persist per run (``stockpred.resume``) until the run finishes.
    ``resume`` (a run id, or ``"last"``: the newest interrupted run of the experiment) continues
    an interrupted run in the same MLflow run, with the config it was started with, from the
    epoch after its last checkpoint; a ``config`` given with it must equal the run's (except
    ``RESUME_MAY_CHANGE``). A resume whose freshly loaded data differ from what the run was
    trained on is refused (``DataChangedError``) before the run is touched.
    """
    started = time.perf_counter()
    stage_seconds: dict[str, float] = {}
    runner = _timing(runner, stage_seconds)
    resume_id = None
    if config is not None:  # a model without gates trains with diagnostics off (one line says so)
        config = experiment.gates_for_model(config)
    if resume is not None:
        resume_id, config = resume_target(resume, config)
    config = config or PipelineConfig()
    prices = runner(load_data)(config)
    task_for(config).check_data(prices, config)  # e.g. stale opens: refused before the run exists
    # too few dates for the split (a 10-row file): refused here too, leaving no FAILED run
    split = config.split
    dates = prices.index.get_level_values("date").unique()
    chronological_split(dates, split.val_fraction, split.test_fraction, config.embargo)
    check_selection(prices, config.features)  # an unknown feature name, before the run exists
    record = data_record(config, prices)
    with (
        open_run(config, record, prices, tags=tags, resume_id=resume_id) as run,
        tempfile.TemporaryDirectory(prefix="stockpred-run-") as scratch,
    ):
        ctx = RunContext(run.run_id, config, Path(scratch), run.checkpoints)
        tracking.log_data_record(ctx.run_id, record, prices, config.data.source)
        features = runner(build_features)(ctx, prices)
        prepared = runner(prepare_data)(ctx, features, prices)
        fitted = runner(train_model)(ctx, prepared)
        evaluation = runner(evaluate_model)(ctx, prepared, fitted)
        model_uri = runner(log_trained_model)(ctx, prepared, fitted)
        report = runner(render_diagnostics)(ctx)
        # where the time went, as metrics beside the run's (time/<stage>_s)
        times = {f"time/{name}_s": seconds for name, seconds in stage_seconds.items()}
        tracking.log_metrics(ctx.run_id, times)
        result = _result(ctx, model_uri, evaluation.metrics, time.perf_counter() - started)
        # the run's page leads with the result: the table and the registry decision
        tracking.set_description(ctx.run_id, result.markdown())
    return dataclasses.replace(result, report=_report_note(config, result.run_id, report))


def _result(
    ctx: RunContext, model_uri: str | None, metrics: dict[str, float], seconds: float
) -> TrainingResult:
    run = tracking.get_run(ctx.run_id)
    tags_now = run.data.tags
    return TrainingResult(
        run_id=ctx.run_id,
        run_name=run.info.run_name,
        experiment=ctx.config.tracking.experiment,
        tracking_uri=tracking.tracking_uri(),
        artifact_uri=run.info.artifact_uri,
        model_uri=model_uri,
        metrics=metrics,
        seconds=seconds,
        ui_command=tracking.ui_command(),
        registry=(
            f"{tags_now['registry.model']} v{tags_now['registry.version']}: "
            f"{tags_now[tracking.PROMOTION_TAG]}"
            if tracking.PROMOTION_TAG in tags_now
            else ""
        ),
        task=ctx.task.kind,
        experiment_id=run.info.experiment_id,
        run_url=tracking.run_url(run.info.experiment_id, ctx.run_id),
        best_epoch=_int_or_none(run.data.metrics.get("train/best_epoch")),
        epochs=_int_or_none(run.data.metrics.get("train/epochs")),
        runs_url=tracking.runs_url(
            run.info.experiment_id, headline_key(ctx.task), ctx.task.lower_is_better
        ),
    )


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)


def load_data(config: PipelineConfig) -> pd.DataFrame:
    """Load the configured prices (before any run exists: a data error leaves no run)."""
    return experiment.load_prices(config.data)


def build_features(ctx: RunContext, prices: pd.DataFrame) -> pd.DataFrame:
    """The causal features and the task's target."""
    return experiment.feature_frame(prices, ctx.config)


def prepare_data(ctx: RunContext, features: pd.DataFrame, prices: pd.DataFrame) -> Prepared:
    """Split chronologically with embargoes, scale with training statistics only; log the split."""
    prepared = experiment.prepare_frame(features, ctx.config, close=prices["close"])
    tracking.log_dict(ctx.run_id, prepared.preprocessing(), "preprocessing.json")
    split = {f"split.{k}": v for k, v in prepared.split.as_dict().items()}
    tracking.log_params(ctx.run_id, split)
    return prepared


def train_model(ctx: RunContext, prepared: Prepared) -> FitResult:
    """Fit the LSTM (epoch metrics stream into the run); log the gate artifacts."""
    train, val = prepared.dataset(TRAIN), prepared.dataset(VAL)
    tracking.log_params(
        ctx.run_id, {"data.train_windows": len(train), "data.val_windows": len(val)}
    )
    diagnostics = experiment.gate_diagnostics(prepared, ctx.config.gates)
    callbacks: list[Callback] = [diagnostics.monitor] if diagnostics else []
    memory = experiment.memory_diagnostics(prepared, ctx.config)
    callbacks += [memory] if memory else []
    log_memory_value(ctx, prepared)
    resume_from = None
    if ctx.checkpoints is not None:
        callbacks += resume_checkpoints.callbacks(ctx.checkpoints)
        resume_from = resume_checkpoints.resume_from(ctx.checkpoints)
    fitted = experiment.fit(
        prepared,
        ctx.config,
        logger=tracking.lightning_logger(ctx.run_id),
        callbacks=callbacks,
        checkpoint_dir=str(ctx.checkpoints) if ctx.checkpoints else None,
        resume_from=str(resume_from) if resume_from else None,
    )
    kept: dict[str, float] = {}  # the diagnostics of the weights training kept
    if diagnostics is not None:
        kept.update(diagnostics.monitor.kept(fitted.model, fitted.best_epoch))
    if memory is not None:
        kept.update(memory.kept(fitted.model, fitted.best_epoch))
    if kept:
        tracking.log_metrics(ctx.run_id, kept)
    if diagnostics is not None:
        price_path, label = diagnostics.window(prepared)
        for artifact_file, item in gate_artifacts(diagnostics.monitor, price_path, label):
            tracking.log_artifact_object(ctx.run_id, item, artifact_file)
    if memory is not None and memory.profiles:
        tracking.log_artifact_object(
            ctx.run_id, memory_figure(memory.profiles.values()), "memory/memory.png"
        )
        tracking.log_artifact_object(ctx.run_id, memory.frame(), "memory/curves.parquet")
    tracking.log_metrics(
        ctx.run_id,
        {
            "train/best_epoch": fitted.best_epoch,
            "train/epochs": fitted.epochs_trained,
            "val/best_loss": fitted.best_val_loss,
        },
    )
    resolved = {
        "batch_size": fitted.batch_size,
        "precision": fitted.precision,
        "strategy": fitted.strategy,
        "world_size": fitted.world_size,
    }
    tracking.set_tags(ctx.run_id, {f"train.resolved.{k}": str(v) for k, v in resolved.items()})
    if not math.isfinite(fitted.best_val_loss):
        raise ValueError(
            f"the validation loss is not finite ({fitted.best_val_loss}): training diverged, so "
            "the model is neither logged nor registered; lower train.learning_rate or "
            "train.weight_decay, or check the data for extreme values"
        )
    return fitted


def log_memory_value(ctx: RunContext, prepared: Prepared) -> None:
    """Before training: the memory-value curve of the target on the training windows (metrics
    ``memory/best_ewma_tau``, ``memory/ewma_excess_1_5d``; a figure and the curve)."""
    value = experiment.memory_value(prepared, ctx.config) if ctx.config.gates.memory else None
    if value is None:
        return
    curve, loss = value
    tracking.log_metrics(ctx.run_id, value_metrics(curve))
    tracking.log_artifact_object(
        ctx.run_id, memory_value_figure(curve, loss.upper()), "memory/value.png"
    )
    tracking.log_artifact_object(ctx.run_id, curve.reset_index(), "memory/value.parquet")


def evaluate_model(ctx: RunContext, prepared: Prepared, fitted: FitResult) -> Evaluation:
    """Score the LSTM and the task's baselines on the same test windows; log metrics, the table,
    the forecasts and the task's figures. The validation forecasts are training's own, at the
    kept epoch, when it kept them (the model is not run over the validation windows again)."""
    evaluation = experiment.evaluate(
        prepared,
        fitted.model,
        ctx.config,
        val_predictions=experiment.kept_val_predictions(prepared, fitted),
    )
    tracking.log_metrics(ctx.run_id, evaluation.metrics)
    tracking.log_metrics(ctx.run_id, headline_metrics(ctx.task, evaluation.metrics))
    tracking.set_tags(ctx.run_id, evaluation.tags)  # verdict.best_baseline, the MCS's members
    params = {"data.test_windows": len(evaluation.predictions), **evaluation.params}
    tracking.log_params(ctx.run_id, params)
    tracking.log_table(ctx.run_id, evaluation.table(), "evaluation/test_comparison.json")
    tracking.log_artifact_object(
        ctx.run_id, evaluation.predictions, "evaluation/test_predictions.parquet"
    )
    figures = ctx.task.figures(evaluation.predictions, evaluation.scores, ctx.config)
    for artifact_file, figure in figures.items():
        tracking.log_figure(ctx.run_id, figure, artifact_file)
    log_ablation(ctx, prepared, fitted)
    return evaluation


def log_ablation(ctx: RunContext, prepared: Prepared, fitted: FitResult) -> None:
    """Ablate the trained LSTM's units by memory-timescale band on the test windows (when gate
    diagnostics are on and ``gates.ablation_bands`` is not empty); log the change of the test loss
    per band (``gates/ablation/<band>/delta_loss``, ``.../units``), the table and the bar chart."""
    gates = ctx.config.gates
    if not (gates.enabled and gates.ablation_bands):
        return
    result = ablation.ablate(fitted.model, prepared, ctx.config)
    tracking.log_metrics(ctx.run_id, result.metrics())
    tracking.log_artifact_object(ctx.run_id, result.table, "gates/ablation.parquet")
    tracking.log_figure(
        ctx.run_id, ablation_figure(result.table, result.loss_name), "gates/ablation.png"
    )


def log_trained_model(ctx: RunContext, prepared: Prepared, fitted: FitResult) -> str | None:
    """Log the trained model (signature + input example) to the run; returns its model URI.
    Registers it only when the config asks (``evaluation.register_model``, ``--register``): the
    champion rule of ``register_run``."""
    if not ctx.config.tracking.log_model:
        return None
    example, _ = prepared.dataset(TEST).__getitems__([0])
    model_uri = tracking.log_model(ctx.run_id, fitted.model, example.numpy())
    if ctx.config.evaluation.register_model:
        register_run(ctx.run_id, model_uri, ctx.config, prepared)
    return model_uri


def register_run(
    run_id: str, model_uri: str, config: PipelineConfig, prepared: Prepared | None = None
) -> tracking.Promotion:
    """Register a run's model under ``evaluation.registered_name`` with the one champion rule:
    promoted only over a comparable champion (same task, tickers, source, horizon) that it beats
    on the task's selection metric, the champion re-scored on this run's validation windows.

    ``prepared``: the run's prepared data (rebuilt from ``config`` when not given, e.g. for a
    sweep's best trial)."""
    if prepared is None:
        prepared = experiment.build(experiment.load_prices(config.data), config)
    task = task_for(config)
    return tracking.register_model(
        run_id,
        model_uri,
        config.evaluation.registered_name,
        task.selection_metric,
        challenger_config=config,
        rescore=champion_rescorer(prepared, task),
        lower_is_better=task.lower_is_better,
    )


def champion_rescorer(prepared: Prepared, task: ForecastTask) -> tracking.Rescore:
    """``rescore(model_uri, run_id)``: a champion's selection metric on the validation windows of
    ``prepared`` (the challenger's), its inputs scaled with the champion's own training statistics
    and window, its outputs unscaled with its own target scale."""

    def rescore(model_uri: str, run_id: str) -> float:
        own = tracking.load_dict(run_id, "preprocessing.json")
        window = tracking.load_run_config(run_id).model.window
        theirs = on_scaling_of(prepared, own, window)
        predicted = experiment.predict(tracking.load_model(model_uri), theirs, VAL)
        actual = Part.of(theirs, VAL).actual
        return task.validation_metrics(actual, predicted)[task.selection_metric]

    return rescore


def on_scaling_of(prepared: Prepared, preprocessing: Mapping[str, Any], window: int) -> Prepared:
    """``prepared``'s rows (same dates, same split) with the features, target scale and window of
    another run's ``preprocessing.json``; ``ValueError`` if it uses a feature ``prepared`` lacks."""
    names = list(preprocessing["feature_names"])
    table = prepared.baseline_features  # every computed feature: the champion may select others
    missing = [n for n in names if n not in table.names]
    if missing:
        raise ValueError(f"it uses feature(s) {missing} that this run does not compute")
    raw = table.values.astype(np.float64) * table.scale + table.mean
    columns = [table.names.index(n) for n in names]
    mean = np.asarray(preprocessing["feature_mean"], dtype=np.float64)
    scale = np.asarray(preprocessing["feature_scale"], dtype=np.float64)
    return dataclasses.replace(
        prepared,
        features=((raw[:, columns] - mean) / scale).astype(np.float32),
        feature_names=tuple(names),
        feature_mean=mean,
        feature_scale=scale,
        target_mean=float(preprocessing["target_mean"]),
        target_scale=float(preprocessing["target_scale"]),
        window=int(window),
    )


def headline_key(task: ForecastTask) -> str:
    """The headline metric the runs table sorts by: the LSTM's test score over the reference's."""
    return f"headline/{LSTM}_vs_{task.reference}_{task.relative_metric}"


def headline_metrics(task: ForecastTask, metrics: Mapping[str, float]) -> dict[str, float]:
    """A few metrics that read first and in human units, under ``headline/``: the LSTM's test
    score over the reference baseline's (``headline/lstm_vs_zero_rmse``, below 1 beats it), the
    same as a percentage gain (``..._gain_pct``, above 0 beats it) and the validation score the
    registry selects by, named for what it is: a ratio where the task selects by one
    (``headline/val_lstm_vs_zero_rmse``), else the LSTM's own score (``headline/val_lstm_qlike``,
    a raw QLIKE, not a ratio to HAR). Copies of keys named by ``metric_key``; none renamed."""
    name = f"{LSTM}_vs_{task.reference}_{task.relative_metric}"
    selection = task.selection_metric.removeprefix("val/")
    val_name = name if selection == task.relative_name else f"{LSTM}_{selection}"
    out: dict[str, float] = {}
    test = metrics.get(task.metric_key(LSTM, task.relative_name))
    if test is not None and math.isfinite(test):
        out[f"headline/{name}"] = test
        gain = (1.0 - test) if task.lower_is_better else (test - 1.0)
        out[f"headline/{name}_gain_pct"] = 100.0 * gain
    val = metrics.get(task.selection_metric)
    if val is not None and math.isfinite(val):
        out[f"headline/val_{val_name}"] = val
    return out


def render_diagnostics(ctx: RunContext) -> str | None:
    """The gate-diagnostics report, by ``tracking.report``: ``inline`` executes the notebook for
    this run now and attaches it as HTML under ``report/``; ``background`` leaves it to a process
    started once the run has finished (``stockpred.report.background``); ``off`` (or no gate
    diagnostics): none.

    Returns the report's artifact path (attached, or to be attached), or None when there is none
    or the inline render failed: a failure never fails the run, it is logged as a warning and
    recorded in the run's ``report.status`` (``failed: <reason>``) and ``report.error`` tags.
    """
    mode = ctx.config.tracking.report
    if mode == "off" or not ctx.config.gates.enabled:
        return None
    if mode == "background":
        return background.ARTIFACT
    try:
        return background.attach(ctx.run_id)
    except Exception as exc:  # the report is a convenience: the trained run must survive it
        log.warning("diagnostics report not attached: %s: %s", type(exc).__name__, exc)
        return None


def _report_note(config: PipelineConfig, run_id: str, artifact: str | None) -> str:
    """Where the report is (inline), or start its background render and say where it will be."""
    if artifact is None:
        return (
            ""
            if config.tracking.report == "off" or not config.gates.enabled
            else "not attached: see the run's report.status tag"
        )
    if config.tracking.report == "inline":
        return f"{artifact} (attached)"
    try:
        log_file = background.launch(
            run_id,
            memory_gb=config.tracking.report_memory_gb,
            timeout_s=config.tracking.report_timeout_s,
        )
    except Exception as exc:  # the run is finished and fine; only its report is missing
        log.warning("diagnostics report not started: %s: %s", type(exc).__name__, exc)
        return f"not started ({type(exc).__name__}: {exc})"
    return (
        f"{artifact} of this run, rendering in the background (tag {background.STATUS_TAG}: "
        f"pending -> attached | failed; log {log_file})"
    )
