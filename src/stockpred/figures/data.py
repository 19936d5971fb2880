"""Figures of the data: prices, features and their distributions, the split on a timeline."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from stockpred.figures.common import new_figure, plain_log_axis

if TYPE_CHECKING:
    from stockpred.split import SplitDates

PART_COLORS = {"train": "C0", "validation": "C2", "test": "C3"}
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


def _rebased(prices: pd.DataFrame) -> pd.DataFrame:
    close = prices["close"].unstack("ticker")  # (dates, tickers)
    return 100 * close / close.bfill().iloc[0]


def prices_figure(prices: pd.DataFrame) -> Figure:
    """Each ticker's close rebased to 100 (log scale) and its daily log returns."""
    rebased = _rebased(prices)
    returns = np.log(prices["close"]).groupby(level="ticker").diff().unstack("ticker") * 100
    fig = new_figure(13, 6.5)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1.6, 1])
    for ticker in rebased.columns:
        top.plot(rebased.index, rebased[ticker], lw=1, label=ticker)
        bottom.plot(returns.index, returns[ticker], lw=0.5, alpha=0.7, label=ticker)
    plain_log_axis(top)
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
    fig = new_figure(3.4 * ncols, 2.6 * nrows)
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
    fig = new_figure(1.0 + 0.75 * size, 0.6 + 0.65 * size)
    ax = fig.subplots()
    image = ax.imshow(corr.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(size), corr.columns, rotation=45, ha="right")
    ax.set_yticks(range(size), corr.index)
    for i in range(size):
        for j in range(size):
            value = corr.iat[i, j]
            ax.text(
                j,
                i,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if abs(value) > 0.6 else "black",
            )
    fig.colorbar(image, ax=ax, label="Pearson correlation", shrink=0.8)
    ax.set_title("Correlation between features and the target (all tickers and dates)")
    return fig


def split_timeline_figure(prices: pd.DataFrame, split: SplitDates) -> Figure:
    """The closes on a timeline shaded by split part, with the embargoes between the parts."""
    rebased = _rebased(prices)
    dates = rebased.index
    parts = {"train": split.train, "validation": split.val, "test": split.test}
    fig = new_figure(13, 4.2)
    ax = fig.subplots()
    for ticker, shade in zip(rebased.columns, ("k", "0.45", "0.7", "0.25"), strict=False):
        ax.plot(dates, rebased[ticker], lw=0.8, color=shade, label=ticker)
    plain_log_axis(ax)
    for name, (first, last) in parts.items():
        days = int(((dates >= first) & (dates <= last)).sum())
        ax.axvspan(first, last, color=PART_COLORS[name], alpha=0.18, lw=0, label=name)
        ax.text(
            first + (last - first) / 2,
            1.02,
            f"{name}\n{days} days",
            ha="center",
            va="bottom",
            fontsize=9,
            transform=ax.get_xaxis_transform(),
        )
    gaps = [(split.train[1], split.val[0]), (split.val[1], split.test[0])]
    for i, (after, before) in enumerate(gaps):
        ax.axvspan(
            after,
            before,
            facecolor="none",
            edgecolor="0.3",
            hatch="////",
            lw=0,
            label=f"embargo ({split.embargo} trading days)" if i == 0 else None,
        )
    ax.set_xlim(dates[0], dates[-1])
    ax.set_xlabel("date")
    ax.set_ylabel("close, first day = 100 (log scale)")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Chronological split: train | embargo | validation | embargo | test", pad=30)
    return fig
