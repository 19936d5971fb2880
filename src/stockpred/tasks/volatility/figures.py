"""The volatility task's evaluation figures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

from stockpred.figures.common import new_figure
from stockpred.tasks.base import LSTM
from stockpred.variance import annual_vol

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def volatility_comparison_figure(
    predictions: pd.DataFrame,
    scores: Mapping[str, Mapping[str, float]],
    colors: Mapping[str, str],
    horizon: int,
    max_tickers: int = 3,
) -> Figure:
    """Forecast vs realised annualised volatility over the test period (one row per ticker, the
    LSTM and the baselines), beside a bar chart of each model's QLIKE relative to HAR."""
    tickers = list(dict.fromkeys(predictions["ticker"]))[:max_tickers]
    fig = new_figure(13, 3.2 * len(tickers))
    grid = fig.add_gridspec(len(tickers), 2, width_ratios=(3, 1))
    models = [m for m in scores if m in predictions]
    for i, ticker in enumerate(tickers):
        ax = fig.add_subplot(grid[i, 0])
        part = predictions[predictions["ticker"] == ticker].sort_values("date")
        dates = pd.to_datetime(part["date"])
        ax.plot(dates, 100 * annual_vol(part["actual"]), color="0.2", lw=0.8, label="realised")
        for model in models:
            ax.plot(
                dates,
                100 * annual_vol(part[model]),
                color=colors.get(model),
                lw=1.6 if model == LSTM else 0.8,
                alpha=1.0 if model in (LSTM, "har") else 0.6,
                label=model,
            )
        ax.set_ylabel("annualised vol (%)")
        ax.set_title(f"{ticker}: {horizon}-day realised variance as annualised volatility")
        if i == 0:
            ax.legend(ncol=5, fontsize=7, loc="upper left")
    bars = fig.add_subplot(grid[:, 1])
    har = scores.get("har", {}).get("qlike", float("nan"))
    relative = [scores[m]["qlike"] / har for m in models]
    bars.barh(models, relative, color=[colors.get(m, "0.5") for m in models])
    bars.axvline(1.0, color="0.3", lw=0.8, ls="--")
    bars.invert_yaxis()
    bars.set_xlabel("QLIKE / HAR's (below 1 beats HAR)")
    bars.set_title("test QLIKE relative to HAR")
    return fig
