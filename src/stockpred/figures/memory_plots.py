"""Figures of the memory a network uses (``stockpred.memory``): the truncation curve and saliency
by lag per epoch, and the memory-value curve of the data."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from stockpred.figures.common import new_figure, plain_log_axis
from stockpred.memory import SHORT_MEMORY, MemoryProfile


def memory_figure(profiles: Iterable[MemoryProfile]) -> Figure:
    """Left: loss with the window cut to its last k days over the full window's, per epoch
    (k90 marked); right: mean |d forecast / d input| by lag, normalised, with its decay time."""
    fig = new_figure(11, 4)
    left, right = fig.subplots(1, 2)
    shown = sorted(profiles, key=lambda p: p.epoch)
    for i, profile in enumerate(shown):
        last = i == len(shown) - 1
        untrained = profile.epoch < 0
        color = "0.55" if untrained else "C3" if last else "C0"
        alpha = 1.0 if untrained or last else 0.25 + 0.5 * i / max(1, len(shown))
        name = "untrained" if untrained else f"epoch {profile.epoch}"
        k = np.arange(1, len(profile.truncation) + 1)
        left.plot(
            k,
            profile.truncation,
            color=color,
            alpha=alpha,
            lw=1.4 if last else 1.0,
            label=f"{name}: k90 = {profile.k90}" if untrained or last else None,
        )
        saliency = profile.saliency / profile.saliency.max()
        right.plot(
            np.arange(len(saliency)),
            saliency,
            color=color,
            alpha=alpha,
            label=f"{name}: τ = {profile.saliency_tau:.3g} d" if untrained or last else None,
        )
    left.axhline(1.01, color="k", lw=0.8, ls=":")
    left.set_xlabel("days kept (the last k of the window; earlier ones at their training mean)")
    left.set_ylabel("loss / full-window loss")
    left.set_title("Truncation: what the history is worth")
    left.legend(fontsize=8)
    plain_log_axis(right, "y")
    right.set_xlabel("lag (days before the forecast date)")
    right.set_ylabel("mean |∂ forecast / ∂ input|, / max")
    right.set_title("Saliency by lag: how far back the forecast looks")
    right.legend(fontsize=8)
    return fig


def memory_value_figure(curve: pd.Series, loss_name: str = "QLIKE") -> Figure:
    """The loss of the best exponential-memory predictor of the target against its timescale
    on the training rows: where memory pays, and what a short memory costs."""
    fig = new_figure(6.5, 4)
    ax = fig.subplots()
    finite = curve.dropna()
    ax.plot(finite.index, finite.to_numpy(), color="C0", marker=".")
    if not finite.empty:
        best = float(finite.idxmin())
        ax.axvline(best, color="C3", lw=1, label=f"best τ = {best:.3g} d")
        if SHORT_MEMORY in finite.index:
            excess = finite[SHORT_MEMORY] / finite.min() - 1
            ax.axvline(
                SHORT_MEMORY,
                color="0.55",
                lw=1,
                ls="--",
                label=f"τ = {SHORT_MEMORY:g} d: +{100 * excess:.1f}%",
            )
        ax.legend(fontsize=8)
    plain_log_axis(ax, "x")
    ax.set_xlabel("memory timescale τ of the EWMA (trading days)")
    ax.set_ylabel(f"training {loss_name} at the best level")
    ax.set_title("Memory value: what an exponential memory of τ days earns on this data")
    return fig
