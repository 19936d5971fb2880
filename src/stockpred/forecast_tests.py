"""Tests of forecast superiority: Diebold-Mariano (Newey-West), the panel DM over many series,
per-series DM win/tie/loss counts, and the model confidence set (Hansen, Lunde & Nason 2011).

Every test takes losses (lower is better), so one module serves every task and every loss:

- ``diebold_mariano(a, b, h)``: t and two-sided p of mean(a - b) with a HAC variance of lag
  max(h - 1, 1); negative t: ``a`` has the lower loss.
- ``panel_dm(frame, a, b, h)``: the same on the cross-sectional mean loss differential per date
  (the mean over series of a - b on each date, HAC in time), the usual panel test when the series
  share calendar dates (their cross-correlation is then inside the per-date mean).
- ``dm_counts(frame, a, b, h)``: per series DM at 5%: how many series ``a`` wins, ties, loses.
- ``model_confidence_set(losses, ...)``: every model's MCS p-value (the T_max statistic, circular
  block bootstrap, sequential elimination of the worst model); the set at level alpha is every
  model whose p-value is >= alpha. p-values are monotone in the elimination order: a model
  eliminated later never has a lower p-value than one eliminated before it, and the last model
  standing has p = 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

DM_LEVEL = 0.05  # the per-series DM counts' significance level
MCS_ALPHAS = (0.10, 0.25)


def newey_west_variance(x: np.ndarray, lags: int) -> float:
    """The HAC (Newey-West, Bartlett weights) long-run variance of the mean of ``x``."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    d = x - x.mean()
    gamma0 = float(d @ d) / n
    total = gamma0
    for lag in range(1, min(lags, n - 1) + 1):
        weight = 1.0 - lag / (lags + 1.0)
        total += 2.0 * weight * float(d[lag:] @ d[:-lag]) / n
    return total / n


def diebold_mariano(
    loss_a: np.ndarray, loss_b: np.ndarray, horizon: int = 1
) -> tuple[float, float]:
    """Diebold-Mariano t-statistic and two-sided p-value of mean(loss_a - loss_b), with a HAC
    (Newey-West) variance of lag max(h - 1, 1). Negative t: ``a`` has the lower loss."""
    diff = np.asarray(loss_a, float) - np.asarray(loss_b, float)
    diff = diff[np.isfinite(diff)]
    if len(diff) < 3:
        return float("nan"), float("nan")
    variance = newey_west_variance(diff, max(horizon - 1, 1))
    if not variance > 0:
        return float("nan"), float("nan")
    t = float(diff.mean() / math.sqrt(variance))
    return t, float(2 * norm.sf(abs(t)))


def panel_dm(losses: pd.DataFrame, a: str, b: str, horizon: int = 1) -> tuple[float, float]:
    """DM (t, p) of the cross-sectional mean loss differential: ``losses`` has columns ``date``,
    ``a`` and ``b`` (one row per series and date); a - b is averaged over series per date, then
    tested with a Newey-West variance in time. Negative t: ``a`` has the lower loss."""
    diff = (losses[a] - losses[b]).groupby(losses["date"]).mean()
    return diebold_mariano(diff.to_numpy(), np.zeros(len(diff)), horizon)


def dm_counts(
    losses: pd.DataFrame, a: str, b: str, horizon: int = 1, level: float = DM_LEVEL
) -> tuple[int, int, int]:
    """Per series (``losses["ticker"]``), DM of ``a`` against ``b`` at ``level``: the number of
    series where ``a`` is significantly better (wins), not significantly different (ties, also
    where no test could be computed) and significantly worse (losses)."""
    wins = ties = lost = 0
    for _, one in losses.groupby("ticker", sort=False):
        t, p = diebold_mariano(one[a].to_numpy(), one[b].to_numpy(), horizon)
        if np.isfinite(p) and p < level:
            wins, lost = (wins + 1, lost) if t < 0 else (wins, lost + 1)
        else:
            ties += 1
    return wins, ties, lost


@dataclass(frozen=True)
class ConfidenceSet:
    """Each model's MCS p-value, and the order models were eliminated in (worst first)."""

    pvalues: dict[str, float]
    eliminated: tuple[str, ...]

    def members(self, alpha: float) -> tuple[str, ...]:
        """The set at level ``alpha``: models whose p-value is at least ``alpha``, in the order
        the losses listed them."""
        return tuple(m for m, p in self.pvalues.items() if p >= alpha)


def block_bootstrap_counts(
    n: int, replications: int, block: int, rng: np.random.Generator
) -> np.ndarray:
    """(B, n) how many times each observation is drawn by each circular block bootstrap
    replication (blocks of ``block`` consecutive rows, wrapping at the end): a resampled mean
    is then ``counts @ x / n``, one matrix product for every replication."""
    block = max(1, min(block, n))
    blocks = -(-n // block)
    starts = rng.integers(0, n, size=(replications, blocks))
    rows = (starts[:, :, None] + np.arange(block)).reshape(replications, -1)[:, :n] % n
    counts = np.zeros((replications, n))
    np.add.at(counts, (np.arange(replications)[:, None], rows), 1.0)
    return counts


def model_confidence_set(
    losses: pd.DataFrame,
    *,
    replications: int = 1000,
    block: int = 10,
    seed: int = 0,
) -> ConfidenceSet:
    """Hansen, Lunde & Nason's model confidence set on ``losses`` (rows: dates, columns:
    models; rows with a missing loss dropped) with the T_max statistic: while models remain,
    test equal predictive ability with t_i = d_i / se(d_i) (d_i: model i's mean loss minus the
    mean over the remaining models; se from the block bootstrap), eliminate the model with the
    largest t_i, and give it the p-value max(its test's p, every earlier p). A model whose loss
    equals every other's on every date is never eliminated on evidence: p = 1."""
    clean = losses.dropna()
    models = list(clean.columns)
    if len(models) < 2 or len(clean) < 3:
        return ConfidenceSet({m: 1.0 for m in models}, ())
    x = clean.to_numpy(dtype=np.float64)  # (T, M)
    n = len(x)
    counts = block_bootstrap_counts(n, replications, block, np.random.default_rng(seed))
    mean = x.mean(axis=0)  # (M,)
    boot = counts @ x / n  # (B, M): resampled means
    # rounding leaves ~1e-17 differences between equal losses: below this they are equal
    tiny = 1e-10 * float(np.abs(x).max() or 1.0)
    alive = list(range(len(models)))
    pvalues: dict[str, float] = {}
    order: list[str] = []
    running = 0.0
    while len(alive) > 1:
        d = mean[alive] - mean[alive].mean()  # (m,)
        d_boot = boot[:, alive] - boot[:, alive].mean(axis=1, keepdims=True)  # (B, m)
        centred = d_boot - d
        se = np.sqrt((centred**2).mean(axis=0))
        if not (se > tiny).any():
            break  # the remaining losses are equal on every date: nothing to eliminate
        se = np.where(se > tiny, se, np.inf)  # an exactly tied model cannot be the worst
        t = d / se
        worst = int(np.argmax(t))
        p = float((np.max(centred / se, axis=1) >= t[worst]).mean())
        running = max(running, p)
        name = models[alive.pop(worst)]
        pvalues[name], order = running, [*order, name]
    for i in alive:
        pvalues[models[i]] = 1.0
    return ConfidenceSet({m: pvalues[m] for m in models}, tuple(order))
