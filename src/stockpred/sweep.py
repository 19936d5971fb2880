"""Hyperparameter sweeps: a validated search space, its trial configs, and the choice of the best.

A sweep is one parent MLflow run with one nested (child) run per trial. Each trial is an ordinary
``run_training`` of the base config with a few fields overridden; the parent records the search
space, a comparison table and figure, and the best trial (``best.*`` params, ``best/...`` metrics).

The best trial is the one with the best **validation** score of the task's selection metric
(``val/qlike`` for volatility, the default task; ``val/rmse_vs_zero``, the LSTM's RMSE over the zero
forecast's, for returns), the metric the champion rule also uses. The test
metrics are shown beside it but never used to choose: picking by test score would make the test
period part of model selection and its score an optimistic estimate.

Trials do not register their models: only the best trial's model is registered (and the champion
rule applied) once the sweep is over, when the base config asks for registration — one registry
version per sweep rather than one per trial.

No Prefect here: ``flows/sweep_flow.py`` runs each trial as a task; ``run_sweep`` with the default
executor runs them one after the other (a notebook, a test).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, ValidationError, field_validator, model_validator

from stockpred import tracking
from stockpred.config import (
    DEFAULT_TARGET,
    ConfigError,
    FrozenModel,
    PipelineConfig,
    describe_validation_error,
)
from stockpred.figures.comparison import sweep_trials_figure
from stockpred.pipeline import register_run, run_training
from stockpred.tasks import TASKS, ForecastTask, task_for
from stockpred.text import printable

log = logging.getLogger(__name__)

MAX_TRIALS = 500
# The trials' tracking belongs to the sweep (one experiment, nested under one parent), and the
# registry is updated once per sweep: these settings cannot vary per trial.
FIXED = ("tracking.", "evaluation.register_model", "evaluation.registered_name")
# Trials are compared on one validation period of one target: what defines the data, the target
# and the periods cannot vary either (a trial with other split fractions could validate on
# another trial's test dates, leaking the test period into the choice).
SAME_DATA = ("data.", "split.", "features.horizon")


def table_metrics(task: ForecastTask) -> tuple[str, ...]:
    """The metrics of the trials table: the selection metric first (validation, never test: see
    the module docstring), then the test scores shown beside it."""
    relative, metric = task.relative_name, task.relative_metric
    return (
        task.selection_metric,
        f"val/{metric}",
        f"test/{relative}",
        *(f"test/{m}" for m in task.headline),
        "train/epochs",
        "train/best_epoch",
    )


class Uniform(FrozenModel):
    """A continuous range for random search: uniform, or log-uniform (``log``) for scale-like
    settings such as the learning rate; ``integer`` rounds draws (e.g. hidden sizes)."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _check(self) -> Uniform:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
            raise ValueError(f"needs finite low < high (got {self.low} and {self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-uniform range needs low > 0 (got {self.low})")
        if self.integer and math.floor(self.high) < math.ceil(self.low):
            raise ValueError(f"holds no integer (got {self.low}..{self.high})")
        return self

    def sample(self, rng: np.random.Generator) -> float | int:
        """One draw."""
        if self.log:
            value = float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        else:
            value = float(rng.uniform(self.low, self.high))
        if self.integer:
            return int(min(max(round(value), math.ceil(self.low)), math.floor(self.high)))
        return value

    def bounds(self) -> tuple[float | int, float | int]:
        """The extreme values a draw can take (checked against the config before any trial)."""
        if self.integer:
            return math.ceil(self.low), math.floor(self.high)
        return self.low, self.high

    def describe(self) -> str:
        kind = ("log-uniform" if self.log else "uniform") + (" integers" if self.integer else "")
        return f"{kind} in [{self.low:g}, {self.high:g}]"


Values = tuple[Any, ...] | Uniform


class SearchSpace(FrozenModel):
    """Which config fields to vary and how.

    ``params`` maps ``section.field`` (as in ``PipelineConfig.flat()``, e.g. ``model.hidden_size``,
    ``train.learning_rate``) to a list of values, or, for random search only, a ``Uniform`` range
    (``{"low": 1e-4, "high": 1e-2, "log": true}``). ``grid`` tries every combination of the lists;
    ``random`` draws ``n_trials`` combinations (a list is a uniform choice) with ``seed``.
    """

    method: Literal["grid", "random"] = "grid"
    params: dict[str, Values]
    n_trials: int | None = Field(None, ge=1, le=MAX_TRIALS, description="random search only")
    seed: int = Field(0, ge=0, description="random search only")

    @field_validator("params", mode="before")
    @classmethod
    def _lists_or_ranges(cls, params: Any) -> Any:
        if isinstance(params, dict):
            if not params:
                raise ValueError("name at least one setting to vary, e.g. model.hidden_size")
            for key, values in params.items():
                if not isinstance(values, list | tuple | dict | Uniform):
                    raise ValueError(
                        f"{key}: give a list of values (e.g. [{values!r}]) or, for random "
                        "search, a range {'low': ..., 'high': ..., 'log': false}"
                    )
        return params

    @field_validator("params")
    @classmethod
    def _check_params(cls, params: dict[str, Values]) -> dict[str, Values]:
        for key, values in params.items():
            _check_field(key)
            if isinstance(values, tuple):
                if not values:
                    raise ValueError(f"{key}: the list of values is empty; give at least one")
                if len({repr(v) for v in values}) != len(values):
                    raise ValueError(f"{key}: duplicate values in {list(values)}")
        return params

    @model_validator(mode="after")
    def _check_method(self) -> SearchSpace:
        ranges = [k for k, v in self.params.items() if isinstance(v, Uniform)]
        if self.method == "grid":
            if ranges:
                raise ValueError(
                    f"a grid needs lists of values, but {ranges} are ranges: list the values, "
                    "or use method='random'"
                )
            if self.n_trials is not None:
                raise ValueError("n_trials is for random search; a grid tries every combination")
            if self.size > MAX_TRIALS:
                raise ValueError(
                    f"the grid has {self.size} combinations (more than {MAX_TRIALS}): use fewer "
                    "values or random search with n_trials"
                )
        elif self.n_trials is None:
            raise ValueError("random search needs n_trials (how many combinations to draw)")
        return self

    @property
    def size(self) -> int:
        """The number of trials."""
        if self.method == "random":
            return int(self.n_trials or 0)
        return math.prod(len(v) for v in self.params.values() if isinstance(v, tuple))

    def overrides(self) -> list[dict[str, Any]]:
        """One ``{"section.field": value}`` dict per trial, in trial order (reproducible)."""
        keys = list(self.params)
        if self.method == "grid":
            lists = [self.params[k] for k in keys]
            return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*lists)]
        rng = np.random.default_rng(self.seed)
        out = []
        for _ in range(self.size):
            trial = {}
            for key in keys:
                values = self.params[key]
                if isinstance(values, Uniform):
                    trial[key] = values.sample(rng)
                else:
                    trial[key] = _plain(values[int(rng.integers(len(values)))])
            out.append(trial)
        return out

    def describe(self) -> str:
        """One line, e.g. ``grid of 4: model.hidden_size in [8, 16] x train.learning_rate ...``."""
        parts = [
            f"{k} {v.describe()}" if isinstance(v, Uniform) else f"{k} in {list(v)}"
            for k, v in self.params.items()
        ]
        head = (
            f"grid of {self.size}"
            if self.method == "grid"
            else f"random search, {self.size} trials, seed {self.seed}"
        )
        return f"{head}: " + " x ".join(parts)


def load_space(source: SearchSpace | dict[str, Any]) -> SearchSpace:
    """A validated ``SearchSpace``; errors are ``ConfigError`` naming the bad part."""
    if isinstance(source, SearchSpace):
        return source
    try:
        return SearchSpace.model_validate(source)
    except ValidationError as exc:
        raise ConfigError("search space: " + describe_validation_error(exc)) from None


def _check_field(key: str) -> None:
    section, _, name = key.partition(".")
    sections = PipelineConfig.model_fields
    if section not in sections or not name:
        raise ValueError(
            f"unknown setting {key!r}: use section.field with section one of {sorted(sections)}"
        )
    model = sections[section].annotation
    fields = list(model.model_fields) if isinstance(model, type) else []
    if name not in fields:
        raise ValueError(f"unknown setting {key!r}; {section} has: {', '.join(fields)}")
    if _matches(key, FIXED):
        raise ValueError(
            f"{key} cannot vary per trial: the sweep's tracking and registration come from the "
            "base config"
        )
    if _matches(key, SAME_DATA):
        raise ValueError(
            f"{key} cannot vary per trial: trials are compared on the same data, target and "
            "validation period (data.*, split.* and features.horizon come from the base config; "
            "run one sweep per setting instead)"
        )


def _matches(key: str, fields: Sequence[str]) -> bool:
    return any(key == f or (f.endswith(".") and key.startswith(f)) for f in fields)


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones (JSON, MLflow params, pydantic)."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class Trial:
    """One trial: its number (from 0), the overridden fields, and the resulting config."""

    number: int
    overrides: dict[str, Any]
    config: PipelineConfig

    @property
    def name(self) -> str:
        """The child run's name, e.g. ``trial-1 hidden_size=16 learning_rate=0.003``."""
        shown = " ".join(f"{k.rpartition('.')[2]}={_short(v)}" for k, v in self.overrides.items())
        return f"trial-{self.number} {shown}".strip()

    def tags(self, parent_id: str) -> dict[str, str]:
        """The child run's tags: ``mlflow.parentRunId`` nests it under the sweep in the UI."""
        return {
            "mlflow.parentRunId": parent_id,
            "run.kind": "sweep_trial",
            "sweep.trial": str(self.number),
        }


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def trials(base: PipelineConfig, space: SearchSpace | dict[str, Any]) -> list[Trial]:
    """Every trial's validated config: ``base`` with the trial's overrides and registration off.

    All of them are built before anything trains, so a bad value (a window below its minimum,
    a dropout of 1.0, an AR order above a window) is reported up front, naming every bad trial.
    """
    space = load_space(space)
    for key, values in space.params.items():  # a range's extremes must be valid values too
        if isinstance(values, Uniform):
            for value in values.bounds():
                try:
                    base.with_overrides({key: value})
                except ConfigError as exc:
                    raise ConfigError(f"search space {key} {values.describe()}: {exc}") from None
    out, errors = [], []
    for number, overrides in enumerate(space.overrides()):
        fixed = {"evaluation.register_model": False}
        try:
            config = base.with_overrides({**overrides, **fixed})
        except ConfigError as exc:
            shown = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
            errors.append(f"trial {number} ({shown}): {exc}")
            continue
        out.append(Trial(number, overrides, config))
    if errors:
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise ConfigError(
            f"{len(errors)} of {space.size} trials are invalid: " + " | ".join(errors[:3]) + more
        )
    return _same_periods(base, out)


def _same_periods(base: PipelineConfig, found: list[Trial]) -> list[Trial]:
    """Give every trial the embargo of the longest window, when the windows differ and the base
    config leaves the embargo to its default (window + horizon): otherwise each window would
    move the validation and test periods, and trials would be scored on different days."""
    windows = {t.config.model.window for t in found}
    if base.split.embargo is not None or len(windows) < 2:
        return found
    embargo = max(windows) + base.features.horizon
    log.info(
        "windows %s: every trial gets split.embargo=%d, so all validate on the same dates",
        sorted(windows),
        embargo,
    )
    return [
        Trial(t.number, t.overrides, t.config.with_overrides({"split.embargo": embargo}))
        for t in found
    ]


@dataclass(frozen=True)
class TrialOutcome:
    """How a trial ended: its child run (if one was created), status, metrics or error."""

    number: int
    overrides: dict[str, Any]
    run_id: str | None
    status: Literal["FINISHED", "FAILED"]
    metrics: dict[str, float] = field(default_factory=dict)
    model_uri: str | None = None
    error: str = ""
    selection_metric: str = ""  # the task's (``ForecastTask.selection_metric``)

    @property
    def score(self) -> float:
        """The selection metric (NaN when missing)."""
        return float(self.metrics.get(self.selection_metric, math.nan))


def run_trial(trial: Trial, parent_id: str) -> TrialOutcome:
    """Train one trial as a child run of ``parent_id``; raises if training fails (the child run
    is then FAILED with the error recorded, by ``run_training``)."""

    config = trial.config.with_overrides({"tracking.run_name": trial.name})
    where = f"{socket.gethostname()}:{os.getpid()}"  # which worker trained it (Dask: a process)
    result = run_training(config, tags={**trial.tags(parent_id), "sweep.worker": where})
    metrics = tracking.get_run(result.run_id).data.metrics  # with train/* and val/*
    return TrialOutcome(
        trial.number,
        trial.overrides,
        result.run_id,
        "FINISHED",
        {**metrics, **result.metrics},
        result.model_uri,
        selection_metric=task_for(config).selection_metric,
    )


def failed_outcome(trial: Trial, parent_id: str, error: BaseException | str) -> TrialOutcome:
    """The outcome of a trial that raised: its FAILED child run, found by its tags, if any."""
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    run_id = None
    try:
        runs = tracking.search_runs(
            trial.config.tracking.experiment,
            f"tags.`mlflow.parentRunId` = '{parent_id}' and tags.`sweep.trial` = '{trial.number}'",
        )
        if len(runs):
            run_id = str(runs["run_id"].iloc[0])
    except LookupError:  # no experiment yet: the trial failed before its run was created
        pass
    return TrialOutcome(
        trial.number,
        trial.overrides,
        run_id,
        "FAILED",
        error=message[:2000],
        selection_metric=task_for(trial.config).selection_metric,
    )


Executor = Callable[[Sequence[Trial], str], list[TrialOutcome]]


def run_sequentially(trial_list: Sequence[Trial], parent_id: str) -> list[TrialOutcome]:
    """The default executor: one trial after the other in this process."""
    outcomes = []
    for trial in trial_list:
        try:
            outcomes.append(run_trial(trial, parent_id))
        except Exception as exc:  # one failed trial does not stop the sweep
            log.warning("trial %d failed: %s: %s", trial.number, type(exc).__name__, exc)
            outcomes.append(failed_outcome(trial, parent_id, exc))
    return outcomes


def best_trial(outcomes: Sequence[TrialOutcome]) -> TrialOutcome:
    """The finished trial with the lowest validation selection metric (ties: lowest number)."""
    scored = [o for o in outcomes if o.status == "FINISHED" and math.isfinite(o.score)]
    if not scored:
        raise SweepError(_all_failed(outcomes))
    return min(scored, key=lambda o: (o.score, o.number))


def _all_failed(outcomes: Sequence[TrialOutcome]) -> str:
    errors = "; ".join(f"trial {o.number}: {o.error[:300]}" for o in outcomes[:3] if o.error)
    metric = outcomes[0].selection_metric if outcomes else "selection metric"
    return f"no trial of {len(outcomes)} finished with a {metric}" + (
        f" ({errors})" if errors else ""
    )


class SweepError(RuntimeError):
    """Every trial of a sweep failed."""


def comparison_table(outcomes: Sequence[TrialOutcome], task: ForecastTask) -> pd.DataFrame:
    """One row per trial: number, status, each swept field, the metrics, the rank by the
    selection metric (1 = best), child run id and error."""
    keys = list(dict.fromkeys(k for o in outcomes for k in o.overrides))
    rows = []
    for o in sorted(outcomes, key=lambda o: o.number):
        row: dict[str, Any] = {"trial": o.number, "status": o.status}
        row.update({k: o.overrides.get(k) for k in keys})
        row.update({m: o.metrics.get(m, math.nan) for m in table_metrics(task)})
        row.update({"run_id": o.run_id or "", "error": o.error})
        rows.append(row)
    table = pd.DataFrame(rows)
    ranks = table[task.selection_metric].rank(method="first", ascending=task.lower_is_better)
    table.insert(2, "rank", ranks.astype("Int64"))
    return table


@dataclass(frozen=True)
class SweepResult:
    """The parent run, every trial's outcome, the comparison table and the best trial."""

    run_id: str
    run_name: str
    space: str
    outcomes: list[TrialOutcome]
    table: pd.DataFrame
    best: TrialOutcome
    registry: str = ""
    task: str = DEFAULT_TARGET

    @property
    def failed(self) -> list[TrialOutcome]:
        return [o for o in self.outcomes if o.status != "FINISHED"]

    def summary(self) -> str:
        """The lines printed at the end of a sweep."""
        test = f"test/{TASKS[self.task].relative_name}"
        shown = self.table.drop(columns=["error"]).copy()
        shown["run_id"] = shown["run_id"].str[:8]
        best = ", ".join(f"{k}={_short(v)}" for k, v in self.best.overrides.items())
        return "\n".join(
            [
                f"sweep        {printable(self.run_name)}  (MLflow parent run id {self.run_id})",
                f"space        {self.space}",
                f"best         trial {self.best.number} ({best}): {self.best.selection_metric} "
                f"{self.best.score:.4f}, {test} {self.best.metrics.get(test, math.nan):.4f}",
                *([f"registry     {self.registry}"] if self.registry else []),
                *(f"failed       trial {o.number}: {o.error[:200]}" for o in self.failed),
                "",
                "trials, best first by validation (test shown, not used to select):",
                shown.sort_values("rank").to_string(index=False, float_format=lambda v: f"{v:.4f}"),
                "",
                "open the MLflow UI, expand the sweep's run to see its trials, tick them and "
                "press Compare:",
                f"  {tracking.ui_command()}",
            ]
        )


def run_sweep(
    base: PipelineConfig,
    space: SearchSpace | dict[str, Any],
    *,
    execute: Executor = run_sequentially,
    on_parent: Callable[[str], None] | None = None,
) -> SweepResult:
    """Run every trial of ``space`` as a child of one parent run; log the comparison and the best.

    ``execute(trials, parent_id)`` runs the trials (sequentially by default; the Prefect flow
    submits them as tasks) and returns one outcome per trial, failures included. Every trial is
    validated before the parent run exists. The parent ends FAILED (and ``SweepError`` is raised)
    only if no trial finished; otherwise it finishes, failed trials listed in its table.
    """
    space = load_space(space)
    task = task_for(base)
    trial_list = trials(base, space)  # raises before anything is created or trained
    tags = {"run.kind": "sweep", "sweep.method": space.method, "sweep.trials": str(space.size)}
    with tracking.tracked_run(base, tags=tags) as parent:
        if on_parent is not None:
            on_parent(parent)
        tracking.log_dict(parent, space.model_dump(mode="json"), "sweep/space.json")
        tracking.log_params(
            parent,
            {
                "sweep.method": space.method,
                "sweep.n_trials": space.size,
                "sweep.space": space.describe()[:6000],
            },
        )
        outcomes = sorted(execute(trial_list, parent), key=lambda o: o.number)
        table = comparison_table(outcomes, task)
        tracking.log_table(parent, table, "sweep/trials.json")
        figure = sweep_trials_figure(table, task.selection_metric, f"test/{task.relative_name}")
        tracking.log_figure(parent, figure, "sweep/trials.png")
        failed = [o for o in outcomes if o.status != "FINISHED"]
        tracking.set_tags(parent, {"sweep.failed": str(len(failed))})
        best = best_trial(outcomes)  # SweepError (parent FAILED) if none finished
        log_best(parent, best)
        registry = ""
        if base.evaluation.register_model and best.model_uri and best.run_id:
            # the one champion rule, as for a single run: like with like, on the same window
            promotion = register_run(
                best.run_id, best.model_uri, tracking.load_run_config(best.run_id)
            )
            registry = (
                f"{promotion.name} v{promotion.version} (trial {best.number}): {promotion.decision}"
            )
            tracking.set_tags(parent, {"sweep.registry": registry})
    run_name = tracking.get_run(parent).info.run_name
    return SweepResult(
        parent, run_name, space.describe(), outcomes, table, best, registry, task.kind
    )


def log_best(parent: str, best: TrialOutcome) -> None:
    """The best trial on the parent: ``best.<field>`` params, ``best/<metric>`` metrics, tags."""
    tracking.log_params(parent, {f"best.{k}": v for k, v in best.overrides.items()})
    metrics = {
        f"best/{k}": v
        for k, v in best.metrics.items()
        if k.startswith(("val/", "test/", "train/")) and math.isfinite(v)
    }
    tracking.log_metrics(parent, {"best/trial": best.number, **metrics})
    tracking.set_tags(
        parent, {"sweep.best_trial": str(best.number), "sweep.best_run_id": best.run_id or ""}
    )


def parse_values(spec: str, *, random: bool = False) -> tuple[str, Values]:
    """``key=v1,v2,...`` (a list), or for random search ``key=low..high`` (uniform) and
    ``key=log:low..high`` (log-uniform; integer bounds draw integers). Values are JSON when they
    parse as JSON (numbers, true/false), else strings."""
    key, sep, text = spec.partition("=")
    key, text = key.strip(), text.strip()
    if not sep or not key or not text:
        raise ConfigError(f"search parameter {spec!r}: expected section.field=v1,v2,...")
    if ".." in text:
        if not random:
            raise ConfigError(f"{spec!r}: a range (low..high) needs random search (--random N)")
        log_scale = text.startswith("log:")
        low_text, _, high_text = text.removeprefix("log:").partition("..")
        try:
            low, high = json.loads(low_text), json.loads(high_text)
        except json.JSONDecodeError:
            raise ConfigError(f"{spec!r}: a range is low..high with numbers") from None
        integer = isinstance(low, int) and isinstance(high, int)
        try:
            return key, Uniform(low=low, high=high, log=log_scale, integer=integer)
        except ValidationError as exc:
            raise ConfigError(f"{spec!r}: {describe_validation_error(exc)}") from None

    def value(item: str) -> Any:
        try:
            return json.loads(item)
        except json.JSONDecodeError:
            return item

    return key, tuple(value(item.strip()) for item in text.split(",") if item.strip())
