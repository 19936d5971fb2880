"""Scores of forecasts against what happened: errors, direction, information coefficients, and
the sign strategies a return forecast implies. Plain numpy/pandas; every task scores with these."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm


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
        ic = by_date.apply(lambda g: correlation(g[prediction], g["actual"], "pearson"))
        rank = by_date.apply(lambda g: correlation(g[prediction], g["actual"], "spearman"))
        return {"ic": float(ic.mean()), "rank_ic": float(rank.mean()), "ic_cross_sectional": 1.0}
    return {
        "ic": correlation(frame[prediction], frame["actual"], "pearson"),
        "rank_ic": correlation(frame[prediction], frame["actual"], "spearman"),
        "ic_cross_sectional": 0.0,
    }


def correlation(a: pd.Series, b: pd.Series, method: str = "pearson") -> float:
    """Pearson or Spearman correlation; NaN for fewer than 3 rows or a constant side."""
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
    part = part.assign(
        net=part["position"] * np.expm1(part["actual"]) - cost,
        turnover=(part["position"] - previous).abs(),
    )
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


def comparison_table(
    scores: dict[str, dict[str, float]], reference: str, metric: str
) -> pd.DataFrame:
    """One row per model, one column per score, plus ``<metric>_vs_<reference>``: each model's
    ``metric`` relative to the reference model's (below 1 beats it)."""
    table = pd.DataFrame(scores).T.rename_axis("model").reset_index()
    if reference in scores:
        table[f"{metric}_vs_{reference}"] = table[metric] / scores[reference][metric]
    return table
