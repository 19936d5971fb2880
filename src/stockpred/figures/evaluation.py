"""Figures of a task's evaluation: forecasts against outcomes, models beside their baselines,
walk-forward folds. The model list and colours come from the task (``ForecastTask.colors``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from stockpred.figures.common import new_figure
from stockpred.metrics import correlation, strategy_returns

MAX_TICKER_ROWS = 6  # more tickers: the 3 best and 3 worst by correlation, not one row each


def shown_tickers(predictions: pd.DataFrame, model: str, limit: int = MAX_TICKER_ROWS) -> list[str]:
    """Every ticker when there are at most ``limit``; else the best and worst halves of ``limit``
    by the correlation of ``model``'s forecast with the outcome (a figure that stays readable
    and costs the same at 500 tickers as at 5)."""
    tickers = list(dict.fromkeys(predictions["ticker"]))
    if len(tickers) <= limit:
        return tickers
    corr = predictions.groupby("ticker", sort=False).apply(
        lambda part: correlation(part[model], part["actual"])
    )
    ranked = list(corr.sort_values(ascending=False, na_position="last").index)
    return ranked[: limit // 2] + ranked[-(limit - limit // 2) :]


def predicted_vs_actual_figure(
    predictions: pd.DataFrame, horizon: int, model: str = "lstm"
) -> Figure:
    """Per ticker, realised vs predicted forward returns over the test period, and a scatter.

    Forecasts are a small fraction of realised moves, so they get their own axis (right, blue)
    rather than vanishing on the realised series' scale.
    """
    tickers = shown_tickers(predictions, model)
    many = predictions["ticker"].nunique() > len(tickers)
    fig = new_figure(13, 3.4 * len(tickers) + (0.4 if many else 0))
    axes = fig.subplots(len(tickers), 2, squeeze=False, width_ratios=[3, 1])
    for row, ticker in zip(axes, tickers, strict=True):
        part = predictions[predictions["ticker"] == ticker]
        ax_time, ax_scatter = row
        ax_time.plot(part["date"], part["actual"] * 100, lw=0.6, color="0.6", label="realised")
        ax_time.axhline(0, color="k", lw=0.5)
        ax_time.set_ylabel("realised return (%)")
        ax_fc = ax_time.twinx()
        ax_fc.plot(part["date"], part[model] * 100, lw=1.0, color="C0", label=model.upper())
        ax_fc.set_ylabel(f"{model.upper()} forecast (%)", color="C0")
        ax_fc.tick_params(axis="y", colors="C0")
        ax_time.set_title(f"{ticker}: {horizon}-day forward log return, test period")
        ax_time.set_xlabel("date")
        ax_scatter.scatter(part[model] * 100, part["actual"] * 100, s=4, alpha=0.4)
        ax_scatter.axhline(0, color="k", lw=0.5)
        ax_scatter.axvline(0, color="k", lw=0.5)
        ax_scatter.set_xlabel(f"{model.upper()} predicted (%)")
        ax_scatter.set_ylabel("realised (%)")
        corr = correlation(part[model], part["actual"])  # NaN for a constant forecast
        shown = "n/a" if np.isnan(corr) else f"{corr:+.3f}"
        ax_scatter.set_title(f"predicted vs realised (corr {shown})")
    if many:
        fig.suptitle(
            f"{len(tickers)} of {predictions['ticker'].nunique()} tickers: the best and worst by "
            "correlation of forecast and outcome"
        )
    return fig


def comparison_figure(
    predictions: pd.DataFrame,
    table: pd.DataFrame,
    horizon: int,
    cost_bps: float,
    colors: Mapping[str, str],
    reference: str = "zero",
) -> Figure:
    """The LSTM beside its baselines: error relative to the ``reference`` forecast's, direction
    with 95% CI, and strategy wealth."""
    models = list(table["model"])
    shade = [colors.get(m, "C9") for m in models]
    relative = table[f"rmse_vs_{reference}"]
    fig = new_figure(16, 4.4)
    ax_err, ax_dir, ax_pnl = fig.subplots(1, 3, width_ratios=[1, 1, 1.6])
    ax_err.bar(models, relative, color=shade)
    ax_err.axhline(1.0, color="k", lw=0.8, ls="--")
    low = min(relative.min(), 1.0)
    ax_err.set_ylim(low - (1.0 - low) * 0.5 - 0.002, relative.max() + 0.004)
    ax_err.set_title(f"test RMSE relative to the {reference} forecast")
    ax_err.set_ylabel(f"RMSE / RMSE({reference})  (lower is better)")
    acc = table["dir_acc"]
    error_bars = [acc - table["dir_acc_low"], table["dir_acc_high"] - acc]
    ax_dir.bar(models, acc, color=shade, yerr=error_bars, capsize=4)
    ax_dir.axhline(0.5, color="k", lw=0.8, ls="--")
    ax_dir.set_ylim(0.35, 0.65)
    ax_dir.set_title("directional accuracy (95% Wilson CI)")
    ax_dir.set_ylabel("share of periods with the right sign")
    for model, color in zip(models, shade, strict=True):
        if model in ("zero", "mean"):
            continue  # constant forecasts: flat or always-long, shown by buy-and-hold
        net = strategy_returns(predictions, model, "long_short", horizon, cost_bps)["net"]
        wealth = np.cumprod(1 + net.to_numpy())
        ax_pnl.plot(net.index, wealth, color=color, label=f"{model} long/short")
    hold = strategy_returns(predictions, "lstm", "buy_hold", horizon, cost_bps)["net"]
    ax_pnl.plot(
        hold.index, np.cumprod(1 + hold.to_numpy()), color="k", lw=1.2, label="buy and hold"
    )
    ax_pnl.set_title(f"sign strategies, net of {cost_bps:g} bp per unit turnover")
    ax_pnl.set_ylabel("wealth (start = 1)")
    ax_pnl.set_xlabel("date")
    ax_pnl.legend(fontsize=8)
    return fig


def fold_figure(
    folds: pd.DataFrame, models: list[str], colors: Mapping[str, str], relative: str
) -> Figure:
    """Per walk-forward fold (labelled with its test dates), each model's relative error and,
    for the return task, its long/short Sharpe.

    ``relative``: the task's relative score column, e.g. ``rmse_vs_zero`` or ``qlike_vs_har``.
    """
    models = [m for m in models if m in set(folds["model"])]
    fold_ids = sorted(folds["fold"].unique())
    first = folds.drop_duplicates("fold").set_index("fold")
    labels = [
        f"fold {k}\n{first.loc[k, 'test_start']}\nto {first.loc[k, 'test_end']}"
        if "test_start" in first
        else f"fold {k}"
        for k in fold_ids
    ]
    width = 0.8 / len(models)
    metric, reference = relative.split("_vs_", 1) if "_vs_" in relative else (relative, "")
    panels = [(relative, f"test {metric.upper()} / {metric.upper()}({reference})")]
    if "sharpe" in folds:
        panels.append(("sharpe", "long/short Sharpe (annualised, net)"))
    fig = new_figure(7 * len(panels) + 1, 5.2)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for panel, (column, label) in zip(axes, panels, strict=True):
        for i, model in enumerate(models):
            values = folds[folds["model"] == model].sort_values("fold")[column].to_numpy()
            panel.bar(
                np.arange(len(fold_ids)) + i * width,
                values,
                width,
                label=model,
                color=colors.get(model, f"C{i}"),
            )
        panel.axhline(1.0 if column == relative else 0.0, color="k", lw=0.8, ls="--")
        panel.set_xticks(np.arange(len(fold_ids)) + 0.4 - width / 2, labels, fontsize=11)
        panel.tick_params(axis="y", labelsize=11)
        panel.set_xlabel("walk-forward fold: its test period", fontsize=12)
        panel.set_ylabel(label, fontsize=12)
        panel.set_title(f"{label} per walk-forward fold", fontsize=13)
    if folds[relative].notna().any():
        values = folds[relative]
        spread = max(values.max() - 1, 1 - values.min(), 0.001)
        axes[0].set_ylim(1 - 1.3 * spread, 1 + 1.3 * spread)
    axes[0].legend(fontsize=10, ncols=min(len(models), 4))
    return fig
