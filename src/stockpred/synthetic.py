"""Synthetic markets with a known optimum, to check that the model learns what can be learned.

With AR(1) daily log returns r_t = phi * r_{t-1} + e_t, the best forecast of tomorrow's return is
phi * today's, whose MSE is var(e); predicting zero costs var(r) = var(e) / (1 - phi^2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stockpred import experiment
from stockpred.config import PipelineConfig


def ar1_prices(
    days: int, phi: float, sigma: float = 0.01, seed: int = 0, ticker: str = "SYN"
) -> pd.DataFrame:
    """Daily OHLCV whose close-to-close log returns follow AR(1) with coefficient ``phi``."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0.0, sigma, days)
    returns = np.empty(days)
    returns[0] = shocks[0] / np.sqrt(1 - phi**2)
    for t in range(1, days):
        returns[t] = phi * returns[t - 1] + shocks[t]
    close = 100 * np.exp(np.cumsum(returns))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0, sigma / 2, days))
    index = pd.MultiIndex.from_arrays(
        [pd.bdate_range("2000-01-03", periods=days), [ticker] * days], names=["date", "ticker"]
    )
    columns = {
        "open": open_,
        "high": np.maximum(open_, close) * (1 + spread),
        "low": np.minimum(open_, close) * (1 - spread),
        "close": close,
        "volume": rng.integers(10**5, 10**6, days),
    }
    return pd.DataFrame(columns, index=index)


@dataclass(frozen=True)
class OptimumCheck:
    """Test-period MSEs of the LSTM, the zero forecast and the Bayes-optimal phi * r_t."""

    mse_lstm: float
    mse_zero: float
    mse_optimal: float
    rows: int

    @property
    def gap_closed(self) -> float:
        """Share of the zero-to-optimal MSE gap the LSTM closed (1 = optimal, 0 = zero)."""
        return (self.mse_zero - self.mse_lstm) / (self.mse_zero - self.mse_optimal)


def optimum_check(prices: pd.DataFrame, phi: float, config: PipelineConfig) -> OptimumCheck:
    """Train on ``prices`` with ``config`` and compare the LSTM with zero and the optimum."""
    outcome = experiment.run(config.with_overrides({"features.horizon": 1}), prices)
    frame = outcome.evaluation.predictions
    today = np.log(prices["close"]).groupby(level="ticker").diff()  # r_t, known at t
    at = pd.MultiIndex.from_arrays([frame["date"], frame["ticker"]])
    optimal = phi * today.loc[at].to_numpy()
    actual = frame["actual"].to_numpy()
    return OptimumCheck(
        mse_lstm=float(np.mean((frame["lstm"].to_numpy() - actual) ** 2)),
        mse_zero=float(np.mean(actual**2)),
        mse_optimal=float(np.mean((optimal - actual) ** 2)),
        rows=len(frame),
    )
