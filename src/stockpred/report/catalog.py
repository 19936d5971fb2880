"""What the notebooks call: tidy tables of tracked runs and predictions of a logged model.

Notebooks hold only calls into ``stockpred`` and plots; the computing they need lives here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stockpred import tracking
from stockpred.experiment import build, load_prices, predict
from stockpred.gates import GATES
from stockpred.split import TEST
from stockpred.tasks import TASKS, ForecastTask

if TYPE_CHECKING:
    from torch import nn

    from stockpred.config import PipelineConfig
    from stockpred.prepare import Prepared

RETURN = TASKS["return"]
SCORES = RETURN.table_scores
# the columns of ``tidy_runs`` that identify a run and say how it did, for overview tables
RUN_OVERVIEW = [
    "run_name",
    "start_time",
    "tickers",
    "start",
    "end",
    "window",
    "hidden_size",
    "num_layers",
    "epochs",
    "val_loss",
    "rmse_vs_zero",
    "lstm_dir_acc",
]
# run filters by short name -> the flattened config parameter they match
FILTER_PARAMS = {
    "tickers": "data.tickers",
    "window": "model.window",
    "hidden_size": "model.hidden_size",
    "num_layers": "model.num_layers",
    "horizon": "features.horizon",
}


def metrics_table(metrics: Mapping[str, float], task: ForecastTask = RETURN) -> pd.DataFrame:
    """A run's test metrics as a table: one row per model, the task's scores and its relative
    score (for the return task: rmse, mae, dir_acc, rmse_vs_zero)."""
    scores = {
        model: {score: metrics[task.metric_key(model, score)] for score in task.table_scores}
        for model in task.models
        if task.metric_key(model, task.relative_metric) in metrics
    }
    return task.comparison_table(scores).set_index("model")


def run_filter(
    *,
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
    """One row per run: its key settings, validation loss and every model's test scores.

    ``raw`` is laid out like ``tracking.search_runs``; settings or metrics a run lacks are NaN.
    ``rmse_vs_zero`` is the LSTM's test RMSE over the zero-return forecast's (below 1 beats it).
    """

    def column(name: str) -> pd.Series:
        return raw[name] if name in raw else pd.Series(np.nan, index=raw.index, dtype=object)

    def number(name: str) -> pd.Series:
        return pd.to_numeric(column(name), errors="coerce")

    out = pd.DataFrame(
        {
            "run_id": column("run_id"),
            "run_name": column("run_name"),
            "status": column("status"),
            "start_time": column("start_time"),
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
    for model in RETURN.models:
        for score in SCORES:
            out[f"{model}_{score}"] = number(f"metrics.{RETURN.metric_key(model, score)}")
    out["rmse_vs_zero"] = out["lstm_rmse"] / out["zero_rmse"]
    out["model_uri"] = column("model_uri")
    # names can repeat (a fixed run name, or names drawn after a seeded RNG): the id keeps it unique
    out["label"] = [
        f"{name} {str(run_id)[:6]} (w{window}, h{hidden})"
        for name, run_id, window, hidden in zip(
            out["run_name"], out["run_id"], out["window"], out["hidden_size"], strict=True
        )
    ]
    return out.reset_index(drop=True)


def search_runs(
    experiment: str = "stockpred", *, max_results: int = 1000, **criteria: Any
) -> pd.DataFrame:
    """Finished runs of ``experiment`` with these config values, newest first, as ``tidy_runs``.

    ``criteria`` are those of ``run_filter`` (tickers, window, hidden_size, num_layers, horizon,
    params, status). Runs without an LSTM test score (a walk-forward parent, a run stopped before
    evaluation) are left out.
    """
    where = run_filter(**criteria)
    runs = tidy_runs(tracking.search_runs(experiment, where, max_results=max_results))
    return runs[runs["lstm_rmse"].notna()].reset_index(drop=True)


def model_scores(runs: pd.DataFrame) -> pd.DataFrame:
    """``tidy_runs`` in long form: one row per run and model it scored, rmse ... rmse_vs_zero."""
    rows = []
    for _, run in runs.iterrows():
        for model in RETURN.models:
            if pd.isna(run[f"{model}_rmse"]):  # a baseline added after this run was trained
                continue
            rows.append(
                {
                    "run_id": run["run_id"],
                    "label": run["label"],
                    "model": model,
                    **{score: run[f"{model}_{score}"] for score in SCORES},
                    "rmse_vs_zero": run[f"{model}_rmse"] / run["zero_rmse"],
                }
            )
    return pd.DataFrame(rows, columns=["run_id", "label", "model", *SCORES, "rmse_vs_zero"])


def score_table(scores: pd.DataFrame, value: str = "rmse_vs_zero") -> pd.DataFrame:
    """``model_scores`` as a grid: one row per run (in the given order), one column per model."""
    table = scores.pivot(index="label", columns="model", values=value)
    models = [m for m in RETURN.models if m in table.columns]
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
    keys = [
        "run_name",
        "run_id",
        "start_time",
        "tickers",
        "start",
        "end",
        "window",
        "hidden_size",
        "num_layers",
        "epochs",
        "val_loss",
        "lstm_rmse",
        "zero_rmse",
        "rmse_vs_zero",
        "lstm_dir_acc",
    ]
    return run[keys].rename(run["run_name"])


def latest_gate_run(experiment: str = "stockpred") -> str:
    """The newest finished run of ``experiment`` that logged gate diagnostics (not a backtest's)."""
    key = "metrics.gates/l0/forget/mean"
    try:
        runs = tracking.search_runs(experiment, "attributes.status = 'FINISHED'", max_results=200)
    except LookupError:  # no such experiment yet
        runs = pd.DataFrame({key: []})
    gated = runs[runs[key].notna()] if key in runs else runs.iloc[:0]
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
    at = stats[(stats["epoch"] == epoch) & stats["gate"].isin(GATES)]
    table = at.pivot_table(index=["layer", "gate"], columns="stat", values="value")
    order = pd.MultiIndex.from_product(
        [sorted(at["layer"].unique()), GATES], names=["layer", "gate"]
    )
    columns = [c for c in ("mean", "std", "sat_left", "sat_right", "timescale") if c in table]
    return table.reindex(index=order, columns=columns).rename_axis(columns=f"epoch {epoch}")


def timescale_table(units: pd.DataFrame, window: int) -> pd.DataFrame:
    """Per epoch and layer: the forget gate's per-unit memory timescales summarised, in days.

    A unit whose timescale exceeds the input ``window`` barely forgets within a window (the state
    starts at zero each window); one below 1 day keeps almost nothing from the day before.
    """
    forget = units[units["gate"] == "forget"]
    grouped = forget.groupby(["epoch", "layer"])["timescale"]
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
