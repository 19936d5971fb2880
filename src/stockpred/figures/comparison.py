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


def run_comparison_figure(scores: pd.DataFrame, colors: Mapping[str, str] | None = None) -> Figure:
    """Per run, each model's test RMSE relative to the zero forecast and directional accuracy
    (``colors``: the task's, so each model has its colour in every figure)."""
    labels = list(dict.fromkeys(scores["label"]))
    models = list(dict.fromkeys(scores["model"]))
    height = 0.8 / len(models)
    fig = new_figure(13, 1.2 + 0.28 * len(labels) * len(models))
    left, right = fig.subplots(1, 2, sharey=True)
    positions = np.arange(len(labels))
    for k, model in enumerate(models):
        part = scores[scores["model"] == model].set_index("label").reindex(labels)
        offset = positions + (k - (len(models) - 1) / 2) * height
        color = (colors or {}).get(model, f"C{k}")
        left.barh(offset, part["rmse_vs_zero"], height=height, color=color, label=model)
        right.barh(offset, part["dir_acc"], height=height, color=color, label=model)
    left.axvline(1, color="k", lw=0.8, ls="--")
    right.axvline(0.5, color="k", lw=0.8, ls="--")
    left.set_yticks(positions, labels, fontsize=8)
    left.invert_yaxis()
    values = scores["rmse_vs_zero"].dropna()
    if not values.empty:
        spread = max(abs(values - 1).max(), 0.002)
        left.set_xlim(1 - 1.3 * spread, 1 + 1.3 * spread)
    left.set_xlabel("test RMSE / zero forecast's RMSE (below 1 beats it)")
    right.set_xlabel("directional accuracy (share of days, 0.5 = coin flip)")
    left.set_title("Error relative to predicting 0")
    right.set_title("Direction right")
    left.legend(fontsize=8, loc="lower right")
    fig.suptitle("LSTM against its baselines on each run's test period")
    return fig


def sweep_figure(
    runs: pd.DataFrame,
    x: str = "window",
    hue: str | None = "hidden_size",
    y: str = "rmse_vs_zero",
) -> Figure:
    """``y`` against the setting ``x``, one line per value of ``hue``: a sweep at a glance."""
    fig = new_figure(7.5, 4.2)
    ax = fig.subplots()
    groups: Mapping[object, pd.DataFrame] = (
        dict(tuple(runs.groupby(hue, dropna=False))) if hue else {None: runs}
    )
    for value, part in groups.items():
        ordered = part.sort_values(x)
        ax.plot(ordered[x], ordered[y], marker="o", label=f"{hue} = {value}" if hue else None)
    what = y
    if y == "rmse_vs_zero":
        ax.axhline(1, color="k", lw=0.8, ls="--", label="zero forecast")
        what = "LSTM test RMSE / zero forecast's"
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
