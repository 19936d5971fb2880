"""The volatility task's evaluation figures: forecasts against the realised volatility, and the
model confidence set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from stockpred.figures.common import new_figure
from stockpred.forecast_tests import MCS_ALPHAS
from stockpred.tasks.base import LSTM
from stockpred.variance import annual_vol, qlike

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def best_baseline_per_ticker(predictions: pd.DataFrame, baselines: Sequence[str]) -> dict[str, str]:
    """Each ticker's baseline with the lowest test QLIKE on that ticker."""
    out: dict[str, str] = {}
    for ticker, part in predictions.groupby("ticker", sort=False):
        scores = {
            name: qlike(part["actual"][ok], part[name][ok])
            for name in baselines
            if name in part and (ok := part[name].notna() & part["actual"].notna()).any()
        }
        if scores:
            out[str(ticker)] = min(scores, key=lambda name: scores[name])
    return out


def volatility_comparison_figure(
    predictions: pd.DataFrame,
    scores: Mapping[str, Mapping[str, float]],
    colors: Mapping[str, str],
    horizon: int,
    max_tickers: int = 3,
) -> Figure:
    """Forecast vs realised annualised volatility over the test period, one row per ticker with
    three lines only (realised, the LSTM and that ticker's best baseline by QLIKE), beside a bar
    chart of every model's QLIKE relative to the strongest baseline's."""
    tickers = list(dict.fromkeys(predictions["ticker"]))[:max_tickers]
    models = [m for m in scores if m in predictions]
    baselines = [m for m in models if m != LSTM]
    best_of = best_baseline_per_ticker(predictions, baselines)
    fig = new_figure(13, 3.2 * len(tickers))
    grid = fig.add_gridspec(len(tickers), 2, width_ratios=(3, 1))
    for i, ticker in enumerate(tickers):
        ax = fig.add_subplot(grid[i, 0])
        part = predictions[predictions["ticker"] == ticker].sort_values("date")
        dates = pd.to_datetime(part["date"])
        ax.plot(dates, 100 * annual_vol(part["actual"]), color="0.6", lw=0.7, label="realised")
        best = best_of.get(str(ticker))
        if best is not None:
            ax.plot(
                dates,
                100 * annual_vol(part[best]),
                color=colors.get(best, "C1"),
                lw=1.0,
                label=f"{best} (best baseline here)",
            )
        if LSTM in part:
            ax.plot(dates, 100 * annual_vol(part[LSTM]), color=colors.get(LSTM), lw=1.2, label=LSTM)
        ax.set_ylabel("annualised vol (%)")
        ax.set_title(f"{ticker}: {horizon}-day realised variance as annualised volatility")
        ax.legend(ncol=3, fontsize=7, loc="upper left")
    bars = fig.add_subplot(grid[:, 1])
    qlikes = {m: scores[m]["qlike"] for m in models}
    finite = {m: v for m, v in qlikes.items() if m in baselines and np.isfinite(v)}
    strongest = min(finite, key=lambda m: finite[m]) if finite else None
    denominator = qlikes[strongest] if strongest else float("nan")
    order = sorted(models, key=lambda m: qlikes[m])
    bars.barh(
        order,
        [qlikes[m] / denominator for m in order],
        color=[colors.get(m, "0.5") for m in order],
    )
    bars.axvline(1.0, color="0.3", lw=0.8, ls="--")
    bars.invert_yaxis()
    bars.set_xlabel(f"QLIKE / {strongest}'s (below 1 beats the strongest baseline)")
    bars.set_title("test QLIKE, all tickers, best first")
    return fig


def mcs_figure(pvalues: Mapping[str, Mapping[str, float]], loss: str) -> Figure:
    """Every model's model-confidence-set p-value per scope (all tickers, then each ticker):
    a model is in the set at level alpha where its bar reaches the alpha line."""
    scopes = list(pvalues)
    models = list(dict.fromkeys(m for values in pvalues.values() for m in values))
    fig = new_figure(4 + 2.2 * len(scopes), 0.9 + 0.28 * len(models))
    axes = fig.subplots(1, len(scopes), sharey=True, squeeze=False)[0]
    for ax, scope in zip(axes, scopes, strict=True):
        values = [pvalues[scope].get(m, np.nan) for m in models]
        colors = ["C0" if m == LSTM else "0.55" for m in models]
        ax.barh(models, values, color=colors)
        for alpha, style in zip(MCS_ALPHAS, ("--", ":"), strict=True):
            ax.axvline(alpha, color="C3", lw=0.8, ls=style, label=f"alpha {alpha:.2f}")
        ax.set_xlim(0, 1.02)
        ax.set_title(scope, fontsize=9)
        ax.set_xlabel("MCS p-value")
    axes[0].invert_yaxis()
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Model confidence set on {loss} (in the set at alpha: p >= alpha)", fontsize=10)
    return fig
