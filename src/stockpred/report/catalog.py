"""What the notebooks call: tidy tables of tracked runs and predictions of a logged model.

Notebooks hold only calls into ``stockpred`` and plots; the computing they need lives here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stockpred import tracking
from stockpred.config import TargetConfig
from stockpred.experiment import build, load_prices, predict
from stockpred.split import TEST
from stockpred.tasks import LSTM, TASKS, ForecastTask, metric_key

if TYPE_CHECKING:
    from torch import nn

    from stockpred.config import PipelineConfig
    from stockpred.prepare import Prepared

# every task's run-table scores, once each, in the order of ``TASKS``
SCORES = tuple(dict.fromkeys(s for task in TASKS.values() for s in task.table_scores))
# every task's models (the LSTM column holds whichever network the run trained: ``arch``)
MODELS = tuple(dict.fromkeys(m for task in TASKS.values() for m in task.models))
# the columns of ``tidy_runs`` that identify a run and say how it did, for overview tables;
# ``relative`` is the LSTM's relative score of the run's own task (``relative_name``)
RUN_OVERVIEW = [
    "run_name",
    "start_time",
    "task",
    "arch",
    "tickers",
    "start",
    "end",
    "window",
    "hidden_size",
    "num_layers",
    "epochs",
    "val_loss",
    "relative_name",
    "relative",
]
# run filters by short name -> the flattened config parameter they match
FILTER_PARAMS = {
    "task": "target.kind",
    "arch": "model.arch",
    "tickers": "data.tickers",
    "window": "model.window",
    "hidden_size": "model.hidden_size",
    "num_layers": "model.num_layers",
    "horizon": "features.horizon",
}


def metrics_table(metrics: Mapping[str, float], task: ForecastTask | None = None) -> pd.DataFrame:
    """A run's test metrics as a table: one row per model, the task's scores and its relative
    score (for the return task: rmse, mae, dir_acc, rmse_vs_zero); no task given: the one whose
    primary score the metrics hold (else the default config's)."""
    task = task or next(
        (t for t in TASKS.values() if t.metric_key(LSTM, t.relative_metric) in metrics),
        TASKS[TargetConfig().kind],
    )
    scores = {
        model: {score: metrics[task.metric_key(model, score)] for score in task.table_scores}
        for model in task.models
        if task.metric_key(model, task.relative_metric) in metrics
    }
    return task.comparison_table(scores).set_index("model")


def run_filter(
    *,
    task: str | None = None,
    arch: str | None = None,
    tickers: str | Sequence[str] | None = None,
    window: int | None = None,
    hidden_size: int | None = None,
    num_layers: int | None = None,
    horizon: int | None = None,
    params: Mapping[str, Any] | None = None,
    status: str | None = "FINISHED",
) -> str:
    """An MLflow filter string for runs with these config values (``params``: any ``section.field``)."""
    wanted: dict[str, Any] = dict(params or {})
    given = {
        "task": task,
        "arch": arch,
        "tickers": tickers,
        "window": window,
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "horizon": horizon,
    }
    for name, value in given.items():
        if value is not None:
            wanted[FILTER_PARAMS[name]] = value
    if isinstance(wanted.get("data.tickers"), str):
        wanted["data.tickers"] = wanted["data.tickers"].replace(",", " ").split()
    if "data.tickers" in wanted:  # logged as the config holds them: upper case, comma-joined
        wanted["data.tickers"] = ",".join(t.upper() for t in wanted["data.tickers"])
    clauses = [f"attributes.status = '{status}'"] if status else []
    for key, value in wanted.items():
        text = str(value).replace("'", "\\'")
        clauses.append(f"params.`{key}` = '{text}'")
    return " and ".join(clauses)


def tidy_runs(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per run: its task and model, key settings, validation loss and every model's test
    scores (``<model>_<score>``, every task's scores; NaN where the run's task has none).

    ``raw`` is laid out like ``tracking.search_runs``; settings or metrics a run lacks are NaN.
    Each task's relative score has its own column (``rmse_vs_zero``: the LSTM's test RMSE over
    the zero forecast's; ``qlike_vs_har``), and ``relative`` holds the one of the run's own task
    (its name in ``relative_name``; below 1 beats the reference where lower is better).
    """

    def column(name: str) -> pd.Series:
        return raw[name] if name in raw else pd.Series(np.nan, index=raw.index, dtype=object)

    def number(name: str) -> pd.Series:
        return pd.to_numeric(column(name), errors="coerce")

    # runs logged before a key existed forecast returns (tracking.LEGACY_TASK) with the LSTM
    kind = column("params.target.kind").fillna(tracking.LEGACY_TASK).astype(str)
    out = pd.DataFrame(
        {
            "run_id": column("run_id"),
            "run_name": column("run_name"),
            "status": column("status"),
            "start_time": column("start_time"),
            "task": kind,
            "arch": column("params.model.arch").fillna("lstm").astype(str),
            "tickers": column("params.data.tickers"),
            "start": column("params.data.start"),
            "end": column("params.data.end"),
            "window": number("params.model.window").astype("Int64"),
            "hidden_size": number("params.model.hidden_size").astype("Int64"),
            "num_layers": number("params.model.num_layers").astype("Int64"),
            "horizon": number("params.features.horizon").astype("Int64"),
            "epochs": number("metrics.train/epochs").astype("Int64"),
            "val_loss": number("metrics.val/best_loss"),
        },
        index=raw.index,
    )
    for model in MODELS:
        for score in SCORES:
            out[f"{model}_{score}"] = number(f"metrics.{metric_key(model, score)}")
    out["relative_name"] = pd.Series(np.nan, index=raw.index, dtype=object)
    out["relative"] = np.nan
    for name, task in TASKS.items():
        mine = (kind == name).to_numpy()
        metric, reference = task.relative_metric, task.reference
        relative = out[f"{LSTM}_{metric}"] / out[f"{reference}_{metric}"]
        out[task.relative_name] = relative.where(mine)
        out.loc[mine, "relative_name"] = task.relative_name
        out.loc[mine, "relative"] = relative[mine]
    out["model_uri"] = column("model_uri")
    # names can repeat (a fixed run name, or names drawn after a seeded RNG): the id keeps it unique
    out["label"] = [
        f"{name} {str(run_id)[:6]} ({arch}, w{window}, h{hidden})"
        for name, run_id, arch, window, hidden in zip(
            out["run_name"],
            out["run_id"],
            out["arch"],
            out["window"],
            out["hidden_size"],
            strict=True,
        )
    ]
    return out.reset_index(drop=True)


def scored(runs: pd.DataFrame) -> pd.Series:
    """Whether each run of ``tidy_runs`` holds the LSTM's test score of its own task's primary
    metric (a walk-forward parent or a run stopped before evaluation does not)."""
    ok = pd.Series(False, index=runs.index)
    for name, task in TASKS.items():
        column = f"{LSTM}_{task.primary_metric}"
        if column in runs:
            ok |= (runs["task"] == name) & runs[column].notna()
    return ok


def search_runs(
    experiment: str = "stockpred", *, max_results: int = 1000, **criteria: Any
) -> pd.DataFrame:
    """Finished runs of ``experiment`` with these config values, newest first, as ``tidy_runs``.

    ``criteria`` are those of ``run_filter`` (task, arch, tickers, window, hidden_size,
    num_layers, horizon, params, status). Runs of every task and model are listed; runs without
    an LSTM test score (a walk-forward parent, a run stopped before evaluation) are left out.
    """
    where = run_filter(**criteria)
    runs = tidy_runs(tracking.search_runs(experiment, where, max_results=max_results))
    return runs[scored(runs)].reset_index(drop=True)


def model_scores(runs: pd.DataFrame) -> pd.DataFrame:
    """``tidy_runs`` in long form: one row per run and model it scored, with the scores of the
    run's task and ``relative`` (the model's relative score: rmse_vs_zero, qlike_vs_har, ...)."""
    rows = []
    for _, run in runs.iterrows():
        task = TASKS[str(run["task"])]
        metric = task.relative_metric
        for model in task.models:
            if pd.isna(run[f"{model}_{metric}"]):  # a baseline added after this run was trained
                continue
            relative = run[f"{model}_{metric}"] / run[f"{task.reference}_{metric}"]
            rows.append(
                {
                    "run_id": run["run_id"],
                    "label": run["label"],
                    "task": task.kind,
                    "arch": run["arch"],
                    "model": model,
                    **{score: run[f"{model}_{score}"] for score in task.table_scores},
                    "relative_name": task.relative_name,
                    "relative": relative,
                    task.relative_name: relative,  # e.g. rmse_vs_zero: NaN on other tasks' rows
                }
            )
    names = list(dict.fromkeys(task.relative_name for task in TASKS.values()))
    columns = ["run_id", "label", "task", "arch", "model", *SCORES, "relative_name", "relative"]
    columns += names
    return pd.DataFrame(rows, columns=columns)


def score_table(scores: pd.DataFrame, value: str = "relative") -> pd.DataFrame:
    """``model_scores`` as a grid: one row per run (in the given order), one column per model."""
    table = scores.pivot(index="label", columns="model", values=value)
    models = [m for m in MODELS if m in table.columns]
    return table.reindex(index=list(dict.fromkeys(scores["label"])), columns=models)


def comparable_runs(runs: pd.DataFrame, like: str | None = None) -> pd.DataFrame:
    """``runs`` with a logged model, each judged by the registry's rule against the run ``like``
    (default: the newest, the first row of ``search_runs``): columns ``task``, ``selection_metric`` (the
    task's, e.g. ``val/rmse_vs_zero``), ``selection`` (its value) and ``not_comparable`` (why it
    may not be compared with ``like``, or None). Each run's config and metrics are read back."""
    usable = runs[runs["model_uri"].notna()].reset_index(drop=True)
    if usable.empty:
        return usable.assign(task=[], selection_metric=[], selection=[], not_comparable=[])
    like = like or str(usable["run_id"].iloc[0])
    reference = tracking.load_run_config(like)
    configs = [tracking.load_run_config(str(run_id)) for run_id in usable["run_id"]]
    kinds = [tracking.task_kind(config) for config in configs]
    metrics = [TASKS[kind].selection_metric for kind in kinds]
    values = [
        tracking.get_run(str(run_id)).data.metrics.get(metric, np.nan)
        for run_id, metric in zip(usable["run_id"], metrics, strict=True)
    ]
    return usable.assign(
        task=kinds,
        selection_metric=metrics,
        selection=pd.to_numeric(pd.Series(values, index=usable.index), errors="coerce"),
        not_comparable=[tracking.comparable(reference, config) for config in configs],
    )


def best_run(runs: pd.DataFrame, like: str | None = None) -> pd.Series:
    """The run with a logged model that the champion rule would pick: the best validation score
    on the task's selection metric among runs comparable with ``like`` (default: the newest run;
    same task, tickers, source and horizon). Never picked on test scores, and never on the raw
    validation loss, an MSE of each run's own standardised target.

    ``runs`` as ``search_runs`` gives them; already judged ones (``comparable_runs``) are used as
    they are.
    """
    judged = runs if "not_comparable" in runs else comparable_runs(runs, like)
    usable = judged[judged["not_comparable"].isna() & judged["selection"].notna()]
    if usable.empty:
        raise LookupError(
            f"none of the {len(runs)} run(s) has a logged model and a validation selection "
            "metric comparable with the reference run"
        )
    lower = TASKS[str(usable["task"].iloc[0])].lower_is_better
    pick = usable["selection"].idxmin() if lower else usable["selection"].idxmax()
    return usable.loc[pick]


def run_summary(run_id: str) -> pd.Series:
    """One run's identity, settings and headline scores, for the top of a notebook."""
    run = tidy_runs(pd.DataFrame([tracking.load_run_record(run_id)])).iloc[0]
    # no status: the report is rendered while its run is still open
    task = TASKS[str(run["task"])]
    keys = [
        "run_name",
        "run_id",
        "start_time",
        "task",
        "arch",
        "tickers",
        "start",
        "end",
        "window",
        "hidden_size",
        "num_layers",
        "epochs",
        "val_loss",
        f"{LSTM}_{task.relative_metric}",
        f"{task.reference}_{task.relative_metric}",
        "relative_name",
        "relative",
        *(f"{LSTM}_{score}" for score in task.table_scores if score != task.relative_metric),
    ]
    return run[keys].rename(run["run_name"])


def latest_gate_run(experiment: str = "stockpred") -> str:
    """The newest finished run of ``experiment`` that logged gate diagnostics (not a backtest's)."""
    try:
        runs = tracking.search_runs(experiment, "attributes.status = 'FINISHED'", max_results=200)
    except LookupError:  # no such experiment yet
        runs = pd.DataFrame()
    # a first-layer gate's mean, whichever model's gate (forget f, update z, ...)
    keys = [c for c in runs.columns if re.fullmatch(r"metrics\.gates/l0/[^/]+/mean", str(c))]
    gated = runs[runs[keys].notna().any(axis=1)] if keys else runs.iloc[:0]
    if gated.empty:
        raise LookupError(
            f"no finished run with gate diagnostics in experiment {experiment!r}: train one first "
            "(make run, or notebooks/02-train-from-notebook.ipynb)"
        )
    return str(gated["run_id"].iloc[0])


def gate_epochs(run_id: str) -> list[int]:
    """The epochs for which a run logged gate tables and figures (``gates/*_epoch_NNN.*``)."""
    epochs = {
        int(path.rsplit("_epoch_", 1)[1].split(".")[0])
        for path in tracking.list_artifact_paths(run_id, "gates")
        if path.startswith("gates/units_epoch_")
    }
    if not epochs:
        raise LookupError(
            f"run {run_id} has no gate artifacts (was it trained with gates.enabled?)"
        )
    return sorted(epochs)


def gate_summary(stats: pd.DataFrame, epoch: int | None = None) -> pd.DataFrame:
    """Per layer and gate at ``epoch`` (default: the last): mean, std, saturation, timescale."""
    epoch = int(stats["epoch"].max()) if epoch is None else epoch
    # the model's gates, in its order: those with a mean (states and timescales have none)
    gates = list(dict.fromkeys(stats.loc[stats["stat"] == "mean", "gate"]))
    at = stats[(stats["epoch"] == epoch) & stats["gate"].isin(gates)]
    table = at.pivot_table(index=["layer", "gate"], columns="stat", values="value")
    order = pd.MultiIndex.from_product(
        [sorted(at["layer"].unique()), gates], names=["layer", "gate"]
    )
    columns = [c for c in ("mean", "std", "sat_left", "sat_right", "timescale") if c in table]
    return table.reindex(index=order, columns=columns).rename_axis(columns=f"epoch {epoch}")


def timescale_table(units: pd.DataFrame, window: int) -> pd.DataFrame:
    """Per epoch and layer: the memory gate's (LSTM: forget; GRU: update) per-unit memory
    timescales summarised, in days.

    A unit whose timescale exceeds the input ``window`` barely forgets within a window (the state
    starts at zero each window); one below 1 day keeps almost nothing from the day before.
    """
    memory = units[units["timescale"].notna()]  # only the memory gate's rows have one
    grouped = memory.groupby(["epoch", "layer"])["timescale"]
    return pd.DataFrame(
        {
            "units": grouped.size(),
            "median_days": grouped.median(),
            "p10_days": grouped.quantile(0.1),
            "p90_days": grouped.quantile(0.9),
            "share_below_1_day": grouped.apply(lambda t: float((t < 1).mean())),
            f"share_above_{window}_days": grouped.apply(lambda t: float((t > window).mean())),
        }
    )


def gate_units(run_id: str, epochs: Sequence[int] | None = None) -> pd.DataFrame:
    """The per-unit gate tables of several epochs of a run (default: the first and the last)."""
    logged = gate_epochs(run_id)
    chosen = sorted({logged[0], logged[-1]}) if epochs is None else list(epochs)
    return pd.concat([tracking.load_gate_units(run_id, e) for e in chosen], ignore_index=True)


def split_table(prepared: Prepared) -> pd.DataFrame:
    """The split in time order: each part and embargo with its first and last date and counts."""
    dates = pd.DatetimeIndex(np.unique(prepared.dates))
    split = prepared.split
    spans = [
        ("train", split.train[0], split.train[1]),
        ("embargo", split.train[1], split.val[0]),
        ("validation", split.val[0], split.val[1]),
        ("embargo", split.val[1], split.test[0]),
        ("test", split.test[0], split.test[1]),
    ]
    rows = []
    for part, first, last in spans:
        inside = (dates >= first) & (dates <= last)
        if part == "embargo":  # strictly between the parts it separates
            inside = (dates > first) & (dates < last)
        days = dates[inside]
        all_rows = pd.DatetimeIndex(prepared.dates)
        rows.append(
            {
                "part": part,
                "first": days[0].date() if len(days) else None,
                "last": days[-1].date() if len(days) else None,
                "trading_days": len(days),
                "rows": int(all_rows.isin(days).sum()),
            }
        )
    return pd.DataFrame(rows)


def prepare_run_data(config: PipelineConfig) -> Prepared:
    """The prices, features, split and scaling of ``config``, rebuilt as the training run did."""
    return build(load_prices(config.data), config)


def predict_test_windows(run_id: str, model: nn.Module) -> pd.DataFrame:
    """``model``'s forecasts for every test window of run ``run_id``, rebuilt from its config.

    Columns date, ticker, actual, lstm (in target units), as in the run's
    ``evaluation/test_predictions.parquet``.
    """
    prepared = prepare_run_data(tracking.load_run_config(run_id))
    rows = prepared.dataset(TEST).ends.numpy()
    return pd.DataFrame(
        {
            "date": prepared.dates[rows],
            "ticker": prepared.tickers[rows],
            "actual": prepared.actual[rows],
            "lstm": predict(model, prepared, TEST),
        }
    )


def load_test_predictions(run_id: str) -> pd.DataFrame:
    """The test-period forecasts a run logged: date, ticker, actual, lstm, zero, mean, ridge."""
    return pd.read_parquet(
        tracking.download_artifact(run_id, "evaluation/test_predictions.parquet")
    )
