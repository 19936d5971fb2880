"""Test-period metrics for the LSTM and the naive baselines it must beat, and the comparison figure."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and directional accuracy (share of rows where "predicted up" == "went up").

    A prediction of exactly zero counts as "not up", so the zero baseline's directional accuracy
    is the share of non-positive returns.
    """
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    if actual.shape != predicted.shape or actual.size == 0:
        raise ValueError(f"need equal, non-empty shapes, got {actual.shape} and {predicted.shape}")
    error = predicted - actual
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "dir_acc": float(np.mean((predicted > 0) == (actual > 0))),
    }


def fit_ridge(
    train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray
) -> Ridge:
    """Ridge regression on the same (scaled) features, alpha chosen on the validation rows."""
    best: tuple[float, Ridge] | None = None
    for alpha in RIDGE_ALPHAS:
        ridge = Ridge(alpha=alpha).fit(train_x, train_y)
        mse = float(np.mean((ridge.predict(val_x) - val_y) ** 2))
        if best is None or mse < best[0]:
            best = (mse, ridge)
    assert best is not None
    return best[1]


def comparison_table(metrics: dict[str, dict[str, float]]) -> pd.DataFrame:
    """One row per model, one column per metric, plus RMSE relative to the zero baseline."""
    table = pd.DataFrame(metrics).T.rename_axis("model").reset_index()
    if "zero" in metrics:
        table["rmse_vs_zero"] = table["rmse"] / metrics["zero"]["rmse"]
    return table


def predicted_vs_actual_figure(
    predictions: pd.DataFrame, horizon: int, model: str = "lstm"
) -> Figure:
    """Per ticker, realised vs predicted forward returns over the test period, and a scatter."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    tickers = list(dict.fromkeys(predictions["ticker"]))
    fig, axes = plt.subplots(
        len(tickers),
        2,
        figsize=(13, 3.4 * len(tickers)),
        squeeze=False,
        gridspec_kw={"width_ratios": [3, 1]},
    )
    for row, ticker in zip(axes, tickers, strict=True):
        part = predictions[predictions["ticker"] == ticker]
        ax_time, ax_scatter = row
        ax_time.plot(part["date"], part["actual"] * 100, lw=0.6, color="0.6", label="realised")
        ax_time.plot(part["date"], part[model] * 100, lw=1.0, color="C0", label=model.upper())
        if "ridge" in part:
            ax_time.plot(part["date"], part["ridge"] * 100, lw=0.8, color="C1", label="ridge")
        ax_time.axhline(0, color="k", lw=0.5)
        ax_time.set_title(f"{ticker}: {horizon}-day forward log return, test period")
        ax_time.set_xlabel("date")
        ax_time.set_ylabel("return (%)")
        ax_time.legend(loc="upper left", fontsize=8)
        ax_scatter.scatter(part[model] * 100, part["actual"] * 100, s=4, alpha=0.4)
        ax_scatter.axhline(0, color="k", lw=0.5)
        ax_scatter.axvline(0, color="k", lw=0.5)
        ax_scatter.set_xlabel(f"{model.upper()} predicted (%)")
        ax_scatter.set_ylabel("realised (%)")
        corr = np.corrcoef(part[model], part["actual"])[0, 1] if len(part) > 2 else np.nan
        ax_scatter.set_title(f"predicted vs realised (corr {corr:+.3f})")
    fig.tight_layout()
    return fig
