"""Figures of tracked runs: loss curves, runs and sweeps compared (the notebooks' and sweeps')."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from stockpred.figures.common import new_figure


def loss_curves_figure(history: pd.DataFrame) -> Figure:
    """``train/loss`` and ``val/loss`` per epoch (``tracking.load_metric_history`` layout)."""
    fig = new_figure(7.5, 4)
    ax = fig.subplots()
    for key, color in (("train/loss", "C0"), ("val/loss", "C1")):
        part = history[history["key"] == key].sort_values("step")
        ax.plot(part["step"], part["value"], marker="o", color=color, label=key)
    val = history[history["key"] == "val/loss"]
    if not val.empty:
        best = val.loc[val["value"].idxmin()]
        ax.axvline(best["step"], color="0.5", ls=":", label=f"best epoch ({int(best['step'])})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE, target in training-set std units")
    ax.set_title("Training and validation loss")
    ax.legend()
    return fig


def run_comparison_figure(
    scores: pd.DataFrame,
    colors: Mapping[str, str] | None = None,
    *,
    second: str = "dir_acc",
    second_line: float | None = 0.5,
) -> Figure:
    """Per run, each model's test score relative to its task's reference forecast (``relative``,
    named in ``relative_name``: rmse_vs_zero, qlike_vs_har) and, where logged, the score
    ``second`` (default directional accuracy, dashed at ``second_line``), as
    ``report.model_scores`` lays them out; runs of different tasks and models side by side
    (``colors``: the task's, so each model has its colour in every figure)."""
    value = _relative_column(scores)
    labels = list(dict.fromkeys(scores["label"]))
    models = list(dict.fromkeys(scores["model"]))
    height = 0.8 / len(models)
    has_second = second in scores and scores[second].notna().any()
    fig = new_figure(13 if has_second else 7.5, 1.2 + 0.28 * len(labels) * len(models))
    axes = fig.subplots(1, 2 if has_second else 1, sharey=True, squeeze=False)[0]
    left = axes[0]
    positions = np.arange(len(labels))
    for k, model in enumerate(models):
        part = scores[scores["model"] == model].set_index("label").reindex(labels)
        offset = positions + (k - (len(models) - 1) / 2) * height
        color = (colors or {}).get(model, f"C{k}")
        left.barh(offset, part[value], height=height, color=color, label=model)
        if has_second:
            axes[1].barh(offset, part[second], height=height, color=color, label=model)
    left.axvline(1, color="k", lw=0.8, ls="--")
    left.set_yticks(positions, labels, fontsize=8)
    left.invert_yaxis()
    values = scores[value].dropna()
    if not values.empty:
        spread = max(abs(values - 1).max(), 0.002)
        left.set_xlim(1 - 1.3 * spread, 1 + 1.3 * spread)
    names = _relative_names(scores, value)
    left.set_xlabel(f"test {names} (below 1 beats the reference)")
    left.set_title("Error relative to the task's reference forecast")
    if has_second:
        if second_line is not None:
            axes[1].axvline(second_line, color="k", lw=0.8, ls="--")
        axes[1].set_xlabel(f"test {second}")
        axes[1].set_title(second)
    left.legend(fontsize=8, loc="lower right")
    fig.suptitle("The network against its baselines on each run's test period")
    return fig


def _relative_column(frame: pd.DataFrame) -> str:
    """``relative`` (the run's own task's relative score); ``rmse_vs_zero`` in older layouts."""
    return "relative" if "relative" in frame else "rmse_vs_zero"


def _relative_names(frame: pd.DataFrame, value: str) -> str:
    """The relative scores' names in ``frame`` (``relative_name``), e.g. ``qlike_vs_har``."""
    if "relative_name" not in frame:
        return value
    return " or ".join(str(n) for n in dict.fromkeys(frame["relative_name"].dropna()))


def sweep_figure(
    runs: pd.DataFrame,
    x: str = "window",
    hue: str | None = "hidden_size",
    y: str = "relative",
) -> Figure:
    """``y`` against the setting ``x``, one line per value of ``hue``: a sweep at a glance
    (default: the LSTM's relative score of each run's task, dashed at the reference's 1)."""
    if y == "relative" and y not in runs:
        y = "rmse_vs_zero"
    fig = new_figure(7.5, 4.2)
    ax = fig.subplots()
    groups: Mapping[object, pd.DataFrame] = (
        dict(tuple(runs.groupby(hue, dropna=False))) if hue else {None: runs}
    )
    for value, part in groups.items():
        ordered = part.sort_values(x)
        ax.plot(ordered[x], ordered[y], marker="o", label=f"{hue} = {value}" if hue else None)
    what = y
    if y == "relative" or "_vs_" in y:  # a relative score: the reference forecast scores 1
        ax.axhline(1, color="k", lw=0.8, ls="--", label="reference forecast")
        what = f"test {_relative_names(runs, y)}"
    ax.margins(y=0.15)
    ax.set_ylabel(what)
    ax.set_xlabel(x)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    ax.set_title(f"{what}, by {x}")
    return fig


def sweep_trials_figure(table: pd.DataFrame, selection_metric: str, test_metric: str) -> Figure:
    """Validation (selection) and test RMSE relative to the zero forecast per trial; the
    dashed line at 1.0 is the zero forecast, the best trial is outlined."""
    swept = [c for c in table.columns if "." in c]
    labels = [
        f"{t}\n" + "\n".join(f"{c.rpartition('.')[2]}={_short(row[c])}" for c in swept)
        for t, (_, row) in zip(table["trial"], table.iterrows(), strict=True)
    ]
    x = np.arange(len(table))
    fig = new_figure(max(6.0, 1.1 * len(table) + 2), 4.6)
    ax = fig.subplots()
    val = table[selection_metric].to_numpy(dtype=float)
    test = table[test_metric].to_numpy(dtype=float)
    bars = ax.bar(x - 0.2, val, 0.4, label="validation (selects the best)", color="C0")
    ax.bar(x + 0.2, test, 0.4, label="test (shown, not used to select)", color="C1", alpha=0.6)
    ax.axhline(1.0, color="k", lw=0.8, ls="--", label="zero forecast")
    if np.isfinite(val).any():
        best = int(np.nanargmin(val))
        bars[best].set_edgecolor("k")
        bars[best].set_linewidth(2)
        finite = np.concatenate([val[np.isfinite(val)], test[np.isfinite(test)], [1.0]])
        spread = max(finite.max() - 1, 1 - finite.min(), 0.001)
        ax.set_ylim(1 - 1.4 * spread, 1 + 1.4 * spread)
    for i in np.flatnonzero(table["status"].to_numpy() != "FINISHED"):
        ax.annotate("failed", (x[i], 1.0), ha="center", va="bottom", color="C3")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_xlabel("trial")
    ax.set_ylabel("RMSE / RMSE(zero forecast)  (lower is better)")
    ax.set_title("sweep: LSTM error relative to the zero forecast per trial")
    ax.legend(fontsize=8)
    return fig


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
