"""Figures the notebooks show: prices, features, the split, losses, timescales, run comparisons.

Each function returns a ``matplotlib.figure.Figure`` built without pyplot, so it leaves the
notebook's backend alone, is shown once when a cell returns it, and is never left open.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from stockpred.split import SplitDates

PART_COLORS = {"train": "C0", "validation": "C2", "test": "C3"}
MODEL_COLORS = {"lstm": "C0", "zero": "0.6", "mean": "C2", "ridge": "C1"}
# feature name prefix -> what its values measure (axis labels)
FEATURE_UNITS = {
    "ret_": "log return",
    "vol_": "std of daily log returns",
    "rsi_": "RSI scaled to [-1, 1]",
    "ema_spread_": "(fast EMA - slow EMA) / close",
    "volume_z_": "z-score of log volume",
    "hl_range": "log(high / low)",
    "oc_return": "log(close / open)",
    "target": "forward log return",
}


def feature_unit(name: str) -> str:
    """What a feature column measures, for axis labels (``""`` when unknown)."""
    return next((unit for prefix, unit in FEATURE_UNITS.items() if name.startswith(prefix)), "")


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained", facecolor="white")


def _plain_log_axis(ax: Axes) -> None:
    """A log y axis labelled 50, 100, 200 rather than 5 x 10^1."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _rebased(prices: pd.DataFrame) -> pd.DataFrame:
    close = prices["close"].unstack("ticker")  # (dates, tickers)
    return 100 * close / close.bfill().iloc[0]


def prices_figure(prices: pd.DataFrame) -> Figure:
    """Each ticker's close rebased to 100 (log scale) and its daily log returns."""
    rebased = _rebased(prices)
    returns = np.log(prices["close"]).groupby(level="ticker").diff().unstack("ticker") * 100
    fig = _figure(13, 6.5)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1.6, 1])
    for ticker in rebased.columns:
        top.plot(rebased.index, rebased[ticker], lw=1, label=ticker)
        bottom.plot(returns.index, returns[ticker], lw=0.5, alpha=0.7, label=ticker)
    _plain_log_axis(top)
    top.set_ylabel("close, first day = 100 (log scale)")
    top.set_title("Daily close per ticker, rebased to 100 on the first day")
    top.legend(loc="upper left")
    bottom.axhline(0, color="k", lw=0.5)
    bottom.set_ylabel("daily log return (%)")
    bottom.set_xlabel("date")
    bottom.set_title("Daily log returns: calm and turbulent periods cluster")
    return fig


def feature_histograms_figure(frame: pd.DataFrame, clip: float = 0.005) -> Figure:
    """One histogram per column and ticker, over the central 1 - 2 * ``clip`` of the values."""
    columns = list(frame.columns)
    ncols = 4
    nrows = -(-len(columns) // ncols)
    fig = _figure(3.4 * ncols, 2.6 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    tickers = frame.index.get_level_values("ticker")
    for ax, name in zip(axes, columns, strict=False):
        values = frame[name].dropna()
        low, high = values.quantile([clip, 1 - clip])
        if not high > low:  # a constant column
            low, high = low - 0.5, high + 0.5
        bins = np.linspace(low, high, 50)
        for ticker in pd.unique(tickers):
            part = values[values.index.get_level_values("ticker") == ticker]
            inside = part[(part >= low) & (part <= high)]
            ax.hist(inside, bins=bins, alpha=0.55, density=True, label=ticker)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(feature_unit(name), fontsize=8)
        ax.set_ylabel("density", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(5))
    for ax in axes[len(columns) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8)
    share = f"{100 * (1 - 2 * clip):g}"
    fig.suptitle(f"Distribution of each column per ticker (central {share}% of values)")
    return fig


def correlation_figure(frame: pd.DataFrame) -> Figure:
    """Pearson correlations between the columns of ``frame``, annotated."""
    corr = frame.corr()
    size = len(corr)
    fig = _figure(1.0 + 0.75 * size, 0.6 + 0.65 * size)
    ax = fig.subplots()
    image = ax.imshow(corr.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(size), corr.columns, rotation=45, ha="right")
    ax.set_yticks(range(size), corr.index)
    for i in range(size):
        for j in range(size):
            value = corr.iat[i, j]
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if abs(value) > 0.6 else "black")  # fmt: skip
    fig.colorbar(image, ax=ax, label="Pearson correlation", shrink=0.8)
    ax.set_title("Correlation between features and the target (all tickers and dates)")
    return fig


def split_timeline_figure(prices: pd.DataFrame, split: SplitDates) -> Figure:
    """The closes on a timeline shaded by split part, with the embargoes between the parts."""
    rebased = _rebased(prices)
    dates = rebased.index
    parts = {"train": split.train, "validation": split.val, "test": split.test}
    fig = _figure(13, 4.2)
    ax = fig.subplots()
    for ticker, shade in zip(rebased.columns, ("k", "0.45", "0.7", "0.25"), strict=False):
        ax.plot(dates, rebased[ticker], lw=0.8, color=shade, label=ticker)
    _plain_log_axis(ax)
    for name, (first, last) in parts.items():
        days = int(((dates >= first) & (dates <= last)).sum())
        ax.axvspan(first, last, color=PART_COLORS[name], alpha=0.18, lw=0, label=name)
        ax.text(first + (last - first) / 2, 1.02, f"{name}\n{days} days", ha="center",
                va="bottom", fontsize=9, transform=ax.get_xaxis_transform())  # fmt: skip
    gaps = [(split.train[1], split.val[0]), (split.val[1], split.test[0])]
    for i, (after, before) in enumerate(gaps):
        ax.axvspan(after, before, facecolor="none", edgecolor="0.3", hatch="////", lw=0,
                   label=f"embargo ({split.embargo} trading days)" if i == 0 else None)  # fmt: skip
    ax.set_xlim(dates[0], dates[-1])
    ax.set_xlabel("date")
    ax.set_ylabel("close, first day = 100 (log scale)")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Chronological split: train | embargo | validation | embargo | test", pad=30)
    return fig


def loss_curves_figure(history: pd.DataFrame) -> Figure:
    """``train/loss`` and ``val/loss`` per epoch (``tracking.load_metric_history`` layout)."""
    fig = _figure(7.5, 4)
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


def timescale_figure(units: pd.DataFrame, window: int) -> Figure:
    """Per layer, every unit's forget-gate timescale, sorted, one line per epoch in ``units``."""
    forget = units[units["gate"] == "forget"]
    layers = sorted(forget["layer"].unique())
    fig = _figure(5.5 * len(layers), 4)
    axes = np.atleast_1d(fig.subplots(1, len(layers), sharey=True))
    for ax, layer in zip(axes, layers, strict=True):
        for epoch, part in forget[forget["layer"] == layer].groupby("epoch"):
            days = np.sort(part["timescale"].clip(upper=1e4).to_numpy())[::-1]
            ax.plot(np.arange(len(days)), days, marker="o", ms=3, label=f"epoch {epoch}")
        ax.axhline(window, color="k", ls="--", lw=0.8, label=f"input window ({window} days)")
        ax.axhline(1, color="0.5", ls=":", lw=0.8, label="1 day")
        _plain_log_axis(ax)
        ax.set_xlabel("unit, sorted by timescale")
        ax.set_title(f"layer {layer}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("memory timescale -1 / ln(mean f) (trading days)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Forget-gate memory timescale per unit")
    return fig


def run_comparison_figure(scores: pd.DataFrame) -> Figure:
    """Per run, each model's test RMSE relative to the zero forecast and directional accuracy."""
    labels = list(dict.fromkeys(scores["label"]))
    models = list(dict.fromkeys(scores["model"]))
    height = 0.8 / len(models)
    fig = _figure(13, 1.2 + 0.28 * len(labels) * len(models))
    left, right = fig.subplots(1, 2, sharey=True)
    positions = np.arange(len(labels))
    for k, model in enumerate(models):
        part = scores[scores["model"] == model].set_index("label").reindex(labels)
        offset = positions + (k - (len(models) - 1) / 2) * height
        color = MODEL_COLORS.get(model, f"C{k}")
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
    runs: pd.DataFrame, x: str = "window", hue: str | None = "hidden_size",
    y: str = "rmse_vs_zero",
) -> Figure:  # fmt: skip
    """``y`` against the setting ``x``, one line per value of ``hue``: a sweep at a glance."""
    fig = _figure(7.5, 4.2)
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
