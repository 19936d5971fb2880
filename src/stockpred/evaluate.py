"""Test-period metrics for the LSTM and the naive baselines it must beat, and the comparison figure."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression, Ridge

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


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (e.g. directional accuracy)."""
    from scipy.stats import norm

    if trials == 0:
        return float("nan"), float("nan")
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / trials
    centre = (p + z**2 / (2 * trials)) / (1 + z**2 / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / (1 + z**2 / trials)
    return float(centre - half), float(centre + half)


def information_coefficients(frame: pd.DataFrame, prediction: str) -> dict[str, float]:
    """IC (Pearson) and rank IC (Spearman) of ``prediction`` vs ``actual``.

    Cross-sectional when there are several tickers (per date across tickers, averaged over
    dates); time-series otherwise (over all rows). ``ic_cross_sectional`` says which (1 or 0).
    A constant prediction has no IC (NaN).
    """
    tickers = frame["ticker"].nunique()
    if tickers >= 3:
        by_date = frame.groupby("date")
        ic = by_date.apply(lambda g: _corr(g[prediction], g["actual"], "pearson"))
        rank = by_date.apply(lambda g: _corr(g[prediction], g["actual"], "spearman"))
        return {"ic": float(ic.mean()), "rank_ic": float(rank.mean()), "ic_cross_sectional": 1.0}
    return {
        "ic": _corr(frame[prediction], frame["actual"], "pearson"),
        "rank_ic": _corr(frame[prediction], frame["actual"], "spearman"),
        "ic_cross_sectional": 0.0,
    }


def _corr(a: pd.Series, b: pd.Series, method: str) -> float:
    if len(a) < 3 or a.nunique() < 2 or b.nunique() < 2:
        return float("nan")
    return float(a.corr(b, method=method))


def strategy_returns(
    frame: pd.DataFrame, prediction: str, rule: str, horizon: int, cost_bps: float
) -> pd.Series:
    """Per-period net returns of an equal-weight sign strategy on ``prediction``.

    ``rule``: ``long_flat`` (hold when the forecast is up), ``long_short`` (sign of the forecast),
    ``buy_hold`` (always long). Positions are rebalanced every ``horizon`` days (non-overlapping
    periods); costs are ``cost_bps`` per unit of position change.
    """
    periods = sorted(frame["date"].unique())[::horizon]
    part = frame[frame["date"].isin(periods)].sort_values(["ticker", "date"])
    forecast = part[prediction].to_numpy()
    position = {
        "long_flat": (forecast > 0).astype(float),
        "long_short": np.sign(forecast),
        "buy_hold": np.ones(len(part)),
    }[rule]
    part = part.assign(position=position)
    previous = part.groupby("ticker")["position"].shift(1).fillna(0.0)
    cost = (part["position"] - previous).abs() * cost_bps / 1e4
    part = part.assign(net=part["position"] * np.expm1(part["actual"]) - cost,
                       turnover=(part["position"] - previous).abs())  # fmt: skip
    return part.groupby("date").agg(net=("net", "mean"), turnover=("turnover", "mean"))


def strategy_stats(returns: pd.DataFrame, horizon: int) -> dict[str, float]:
    """Annualised return and volatility, Sharpe, max drawdown and mean turnover per period."""
    per_year = 252 / horizon
    net = returns["net"].to_numpy()
    wealth = np.cumprod(1 + net)
    drawdown = 1 - wealth / np.maximum.accumulate(np.concatenate([[1.0], wealth]))[1:]
    ann_return = float(wealth[-1] ** (per_year / len(net)) - 1) if len(net) else float("nan")
    ann_vol = float(net.std(ddof=1) * np.sqrt(per_year)) if len(net) > 1 else float("nan")
    return {
        "ann_return": ann_return,
        "ann_vol": ann_vol,
        "sharpe": float(net.mean() / net.std(ddof=1) * np.sqrt(per_year))
        if ann_vol
        else float("nan"),
        "max_drawdown": float(drawdown.max()) if len(net) else float("nan"),
        "turnover": float(returns["turnover"].mean()),
    }


def score(frame: pd.DataFrame, prediction: str, horizon: int, cost_bps: float) -> dict[str, float]:
    """Every test metric of one model's predictions (columns date, ticker, actual, <prediction>)."""
    metrics = regression_metrics(frame["actual"], frame[prediction])
    hits = int(((frame[prediction] > 0) == (frame["actual"] > 0)).sum())
    metrics["dir_acc_low"], metrics["dir_acc_high"] = wilson_interval(hits, len(frame))
    metrics.update(information_coefficients(frame, prediction))
    for rule in ("long_flat", "long_short"):
        stats = strategy_stats(
            strategy_returns(frame, prediction, rule, horizon, cost_bps), horizon
        )
        metrics.update({f"{rule}/{k}": v for k, v in stats.items()})
    metrics["sharpe"] = metrics["long_short/sharpe"]
    return metrics


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


def fit_autoregression(lagged_train: np.ndarray, train_y: np.ndarray) -> LinearRegression:
    """AR(p) by least squares: the target on the last p one-day returns (a classical baseline)."""
    return LinearRegression().fit(lagged_train, train_y)


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
        corr = _corr(part[model], part["actual"], "pearson")  # NaN for a constant forecast
        shown = "n/a" if np.isnan(corr) else f"{corr:+.3f}"
        ax_scatter.set_title(f"predicted vs realised (corr {shown})")
    fig.tight_layout()
    return fig


def comparison_figure(
    predictions: pd.DataFrame, table: pd.DataFrame, horizon: int, cost_bps: float
) -> Figure:
    """The LSTM beside its baselines: error vs zero, direction with 95% CI, and strategy wealth."""
    import matplotlib.pyplot as plt

    models = list(table["model"])
    colors = [f"C{i}" for i in range(len(models))]
    fig, (ax_err, ax_dir, ax_pnl) = plt.subplots(1, 3, figsize=(16, 4.4),
                                                 gridspec_kw={"width_ratios": [1, 1, 1.6]})  # fmt: skip
    ax_err.bar(models, table["rmse_vs_zero"], color=colors)
    ax_err.axhline(1.0, color="k", lw=0.8, ls="--")
    low = min(table["rmse_vs_zero"].min(), 1.0)
    ax_err.set_ylim(low - (1.0 - low) * 0.5 - 0.002, table["rmse_vs_zero"].max() + 0.004)
    ax_err.set_title("test RMSE relative to the zero forecast")
    ax_err.set_ylabel("RMSE / RMSE(zero)  (lower is better)")
    acc = table["dir_acc"]
    ax_dir.bar(models, acc, color=colors,
               yerr=[acc - table["dir_acc_low"], table["dir_acc_high"] - acc], capsize=4)  # fmt: skip
    ax_dir.axhline(0.5, color="k", lw=0.8, ls="--")
    ax_dir.set_ylim(0.35, 0.65)
    ax_dir.set_title("directional accuracy (95% Wilson CI)")
    ax_dir.set_ylabel("share of periods with the right sign")
    for model, color in zip(models, colors, strict=True):
        if model in ("zero", "mean"):
            continue  # constant forecasts: flat or always-long, shown by buy-and-hold
        net = strategy_returns(predictions, model, "long_short", horizon, cost_bps)["net"]
        ax_pnl.plot(
            net.index, np.cumprod(1 + net.to_numpy()), color=color, label=f"{model} long/short"
        )
    hold = strategy_returns(predictions, "lstm", "buy_hold", horizon, cost_bps)["net"]
    ax_pnl.plot(
        hold.index, np.cumprod(1 + hold.to_numpy()), color="k", lw=1.2, label="buy and hold"
    )
    ax_pnl.set_title(f"sign strategies, net of {cost_bps:g} bp per unit turnover")
    ax_pnl.set_ylabel("wealth (start = 1)")
    ax_pnl.set_xlabel("date")
    ax_pnl.legend(fontsize=8)
    fig.tight_layout()
    return fig
