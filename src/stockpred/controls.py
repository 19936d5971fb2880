"""Synthetic markets and controls with a known answer: does the model learn what can be learned,
and do its gates remember only what there is to remember?

- Known optimum (``optimum_check``): with AR(1) daily log returns r_t = phi * r_{t-1} + e_t, the
  best forecast of tomorrow's return is phi * today's, whose MSE is var(e); predicting zero costs
  var(r) = var(e) / (1 - phi^2).
- Shuffled target (``shuffled_target_control``): the same training with the training targets
  permuted in time (features untouched). Nothing is left to remember, so the gates should stay
  near their untrained values (forget ~ 0.5, tau ~ 1.44 days with PyTorch's init).
- Planted memory (``planted_memory``): one simulated GARCH(1,1) ticker with a known persistence
  alpha + beta, the volatility task, and the network's dominant timescale - the timescale of the
  units whose silencing costs the most test QLIKE - beside the planted half-life
  ln 0.5 / ln(alpha + beta). More persistence should mean a longer dominant timescale.

The GARCH one-day forecast is sigma2_{t+1} = omega / (1 - beta) + alpha * sum_k beta^k r2_{t-k}:
an EWMA of squared returns with decay beta, so the memory a perfect filter needs is
-1 / ln(beta) days (``PlantedMemory.filter_timescale``), shorter than the persistence half-life.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from stockpred import experiment
from stockpred.ablation import (
    replay_forecast,
    validation_timescales,
    windows_to_ablate,
)
from stockpred.config import PipelineConfig, load_config
from stockpred.gates import diagnostic_indices, replay, unit_timescales
from stockpred.models import Forecaster
from stockpred.prepare import Prepared
from stockpred.split import TEST, TRAIN, VAL
from stockpred.tasks import task_for

PERSISTENCES = (0.90, 0.97, 0.99)  # half-lives 6.6, 22.8, 69.0 trading days
# Daily inputs only: the 5/22-day means and the 20-day volatility would hand the network a
# memory it did not have to keep in its cell state.
DAILY_FEATURES = ("ret_1d", "lv_parkinson")


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
    # the optimum is that of a return forecast, whatever the default task
    returns = config.with_overrides({"features.horizon": 1, "target.kind": "return"})
    outcome = experiment.run(returns, prices)
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


# ---------------------------------------------------------------- controls


def half_life(persistence: float) -> float:
    """Days for a variance shock to halve under GARCH persistence alpha + beta."""
    if not 0.0 < persistence < 1.0:
        raise ValueError(f"persistence alpha + beta must lie in (0, 1), got {persistence}")
    return math.log(0.5) / math.log(persistence)


def equal_signal_alpha(persistence: float, reference: tuple[float, float] = (0.99, 0.05)) -> float:
    """The GARCH alpha that gives ``persistence`` the same variance of the variance,
    Var(sigma2) / E[sigma2]^2 = 2 alpha^2 / (1 - (alpha + beta)^2 - 2 alpha^2), as the reference
    (persistence, alpha): at a fixed alpha a low persistence plants almost nothing to forecast
    (an oracle's QLIKE gain over a constant: 3% at 0.80 against 30% at 0.99 with alpha 0.05)."""
    half_life(persistence)
    ref_p, ref_alpha = reference
    ratio = 2 * ref_alpha**2 / (1 - ref_p**2 - 2 * ref_alpha**2)
    return math.sqrt(ratio * (1 - persistence**2) / (2 * (1 + ratio)))


def planted_config(seed: int = 0) -> PipelineConfig:
    """The planted-memory fit: one small layer, a window longer than the memory to find, PyTorch's
    init (chrono would hand the units long timescales before any data), a few epochs."""
    return load_config(
        {
            "data": {"tickers": ["GARCH"]},
            "target": {"kind": "volatility"},
            "model": {"window": 40, "hidden_size": 8, "num_layers": 1, "dropout": 0.0},
            "train": {
                "max_epochs": 8,
                "batch_size": 128,
                "patience": 3,
                "learning_rate": 3e-2,  # 1e-2 left the ordering to chance on 3 of 20 seeds
                "progress_bar": False,
                "seed": seed,
            },
            "gates": {"batch_size": 64},
        }
    )


def garch_prices(
    days: int,
    persistence: float,
    alpha: float = 0.05,
    seed: int = 0,
    ticker: str = "GARCH",
    steps: int = 16,
) -> pd.DataFrame:
    """One ticker's daily OHLCV whose variance is GARCH(1,1) with alpha + beta = ``persistence``
    (unconditional daily variance 1e-4, Gaussian shocks); open, high, low and close from a
    ``steps``-step intraday random walk with the day's variance, so the range carries it."""
    half_life(persistence)  # validates the persistence
    if not 0.0 < alpha < persistence:
        raise ValueError(f"alpha must lie in (0, persistence={persistence}), got {alpha}")
    if days < 2 or steps < 1:
        raise ValueError(f"need at least 2 days and 1 intraday step, got {days} and {steps}")
    rng = np.random.default_rng(seed)
    beta = persistence - alpha
    omega = 1e-4 * (1 - persistence)
    variance, previous, var = np.empty(days), 0.0, 1e-4
    for t in range(days):
        var = omega + alpha * previous**2 + beta * var
        variance[t] = var
        previous = math.sqrt(var) * rng.standard_normal()
    moves = rng.standard_normal((days, steps + 1)) * np.sqrt(variance / (steps + 1))[:, None]
    path = np.cumsum(moves.reshape(-1)).reshape(days, steps + 1)  # (days, steps + 1) log price
    return _daily_bars(path, ticker, rng)


def garch_series(
    days: int,
    persistence: float,
    alpha: float = 0.05,
    seed: int = 0,
    ticker: str = "GARCH",
    steps: int = 16,
) -> tuple[pd.DataFrame, pd.Series]:
    """One ticker's daily OHLCV whose close-to-close return *is* the GARCH(1,1) shock,
    r_t = sigma_t z_t with sigma2_{t+1} = omega + alpha r_t^2 + beta sigma2_t (unconditional
    variance 1e-4), and the next day's true variance sigma2_{t+1} (known at t) per row.

    Unlike ``garch_prices`` (whose variance is driven by shocks the prices never show), the
    one-day forecast here is exactly omega / (1 - beta) + alpha sum_k beta^k r2_{t-k}: an EWMA of
    the observed squared returns with decay beta, so a perfect filter of the returns needs a
    memory of -1 / ln(beta) days. The intraday path is a ``steps``-step Gaussian bridge from
    the previous close to the close, so the day's range carries its variance too."""
    half_life(persistence)
    if not 0.0 < alpha < persistence:
        raise ValueError(f"alpha must lie in (0, persistence={persistence}), got {alpha}")
    if days < 2 or steps < 1:
        raise ValueError(f"need at least 2 days and 1 intraday step, got {days} and {steps}")
    rng = np.random.default_rng(seed)
    beta = persistence - alpha
    omega = 1e-4 * (1 - persistence)
    variance = np.empty(days + 1)  # variance[t]: day t's, known at the close of day t - 1
    returns = np.empty(days)
    variance[0] = 1e-4
    shocks = rng.standard_normal(days)
    for t in range(days):
        returns[t] = math.sqrt(variance[t]) * shocks[t]
        variance[t + 1] = omega + alpha * returns[t] ** 2 + beta * variance[t]
    moves = rng.standard_normal((days, steps + 1)) * np.sqrt(variance[:-1] / (steps + 1))[:, None]
    moves += ((returns - moves.sum(axis=1)) / (steps + 1))[:, None]  # the bridge ends at r_t
    previous_close = np.concatenate([[0.0], np.cumsum(returns)[:-1]])
    path = previous_close[:, None] + np.cumsum(moves, axis=1)  # (days, steps + 1) log price
    prices = _daily_bars(path, ticker, rng)
    return prices, pd.Series(variance[1:], index=prices.index, name="variance")


def keep_features(prepared: Prepared, names: Sequence[str]) -> Prepared:
    """``prepared`` with only the feature columns ``names`` as the network's inputs (scaled as
    before); the baselines still read every feature."""
    missing = [n for n in names if n not in prepared.feature_names]
    if missing:
        raise ValueError(
            f"feature(s) {missing} are not among the prepared features "
            f"{list(prepared.feature_names)}: name existing ones"
        )
    cols = [prepared.feature_names.index(n) for n in names]
    return replace(
        prepared,
        features=np.ascontiguousarray(prepared.features[:, cols]),
        feature_names=tuple(names),
        feature_mean=prepared.feature_mean[cols],
        feature_scale=prepared.feature_scale[cols],
        full_features=prepared.baseline_features,
    )


def shuffle_train_target(
    prepared: Prepared, seed: int = 0, *, across_tickers: bool = False
) -> Prepared:
    """``prepared`` with each ticker's training targets permuted in time (model target and
    realised value alike); features, validation and test rows untouched.

    ``across_tickers``: one permutation over every ticker's training rows. Within a ticker a
    permutation keeps that ticker's mean target, which a long window of its inputs can estimate:
    on pooled persistent series that still rewards memory (measured in ``benchmarks.memory``)."""
    rng = np.random.default_rng(seed)
    target, actual = prepared.target.copy(), prepared.actual.copy()
    pools = [prepared.tickers == t for t in np.unique(prepared.tickers)]
    for pool in [np.ones(len(target), dtype=bool)] if across_tickers else pools:
        rows = np.flatnonzero(pool & (prepared.labels == TRAIN) & np.isfinite(target))
        order = rng.permutation(rows)
        target[rows], actual[rows] = target[order], actual[order]
    return replace(prepared, target=target, actual=actual)


# ---------------------------------------------------------------- timescales


class InitialTimescales(Callback):
    """Records every unit's tau on ``batch`` when training starts: the untrained network."""

    def __init__(self, batch: torch.Tensor) -> None:
        super().__init__()
        self.batch = batch  # (B, T, F)
        self.timescales: np.ndarray | None = None  # (layers, hidden)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.timescales = unit_timescales(replay(pl_module, self.batch))


def _fit_with_initial(prepared: Prepared, config: PipelineConfig) -> tuple[Forecaster, np.ndarray]:
    """Train; return the best-epoch model and the untrained units' tau on the diagnostic
    validation windows."""
    val = prepared.dataset(VAL)
    batch, _ = val.__getitems__(diagnostic_indices(len(val), config.gates.batch_size))
    initial = InitialTimescales(batch)
    fitted = experiment.fit(prepared, config, callbacks=[initial])
    assert initial.timescales is not None
    return fitted.model, initial.timescales


@dataclass(frozen=True)
class GateControl:
    """Per-unit tau (layers, hidden) untrained, trained, and trained on a shuffled target."""

    untrained: np.ndarray
    trained: np.ndarray
    shuffled: np.ndarray

    def table(self) -> pd.DataFrame:
        """Per layer: the median tau of each arm (trading days)."""
        return pd.DataFrame(
            {
                "layer": np.arange(len(self.trained)),
                "untrained": np.median(self.untrained, axis=1),
                "trained": np.median(self.trained, axis=1),
                "shuffled": np.median(self.shuffled, axis=1),
            }
        )


def shuffled_target_control(
    prepared: Prepared, config: PipelineConfig, seed: int = 0
) -> GateControl:
    """Train on ``prepared`` and on its shuffled-target twin (same init, same batches); tau of
    the best-epoch weights on the validation diagnostic windows, and of the untrained net."""
    trained, untrained = _fit_with_initial(prepared, config)
    shuffled, _ = _fit_with_initial(shuffle_train_target(prepared, seed), config)
    size = config.gates.batch_size
    return GateControl(
        untrained=untrained,
        trained=validation_timescales(trained, prepared, size),
        shuffled=validation_timescales(shuffled, prepared, size),
    )


# ---------------------------------------------------------------- planted memory


def unit_importance(
    model: Forecaster, prepared: Prepared, config: PipelineConfig, timescales: np.ndarray
) -> pd.DataFrame:
    """One row per unit: layer, unit, tau, and the test loss increase when that unit alone is
    silenced in the replay (``ablation.replay_forecast``)."""
    model = model.eval()
    x, actual = windows_to_ablate(prepared)
    task = task_for(config)

    def loss(ablate: dict[int, torch.Tensor] | None) -> float:
        return task.ablation_loss(actual, prepared.unscale(replay_forecast(model, x, ablate)))

    base = loss(None)
    layers, hidden = timescales.shape
    rows = []
    for layer in range(layers):
        for unit in range(hidden):
            mask = torch.zeros(hidden, dtype=torch.bool)
            mask[unit] = True
            rows.append((layer, unit, float(timescales[layer, unit]), loss({layer: mask}) - base))
    return pd.DataFrame(rows, columns=["layer", "unit", "tau", "delta_loss"])


def dominant_timescale(importance: pd.DataFrame) -> float:
    """The importance-weighted median tau: half the total loss increase comes from units with a
    shorter timescale (units whose silencing does not hurt carry no weight); NaN if none hurts."""
    useful = importance[importance["delta_loss"] > 0].sort_values("tau")
    if useful.empty:
        return math.nan
    weight = useful["delta_loss"].to_numpy()
    share = np.cumsum(weight) / weight.sum()
    return float(useful["tau"].to_numpy()[np.searchsorted(share, 0.5)])


@dataclass(frozen=True)
class PlantedMemory:
    """One planted-memory fit: what was planted, what the network kept, and how well it did."""

    persistence: float
    alpha: float
    seed: int
    dominant: float  # the importance-weighted median tau (``dominant_timescale``)
    median: float  # the median tau of every unit
    test_loss: float  # the LSTM's test QLIKE
    importance: pd.DataFrame

    @property
    def half_life(self) -> float:
        return half_life(self.persistence)

    @property
    def filter_timescale(self) -> float:
        """-1 / ln(beta): the decay of the GARCH forecast's EWMA of squared returns."""
        return -1.0 / math.log(self.persistence - self.alpha)

    def row(self) -> dict[str, float]:
        return {
            "persistence": self.persistence,
            "seed": self.seed,
            "half_life": self.half_life,
            "filter_timescale": self.filter_timescale,
            "dominant_tau": self.dominant,
            "median_tau": self.median,
            "test_qlike": self.test_loss,
        }


def planted_memory(
    persistence: float,
    config: PipelineConfig,
    *,
    days: int = 3000,
    alpha: float | None = None,
    seed: int = 0,
    features: Sequence[str] | None = DAILY_FEATURES,
) -> PlantedMemory:
    """Simulate ``days`` of GARCH(1,1) with ``persistence`` (``alpha``: default
    ``equal_signal_alpha``), train the volatility task on it (``features``: the inputs kept; None
    keeps all), measure each unit's tau on the validation windows and its importance on the test
    windows."""
    alpha = equal_signal_alpha(persistence) if alpha is None else alpha
    config = config.with_overrides({"target.kind": "volatility", "data.tickers": ["GARCH"]})
    prepared = experiment.build(garch_prices(days, persistence, alpha, seed), config)
    if features is not None:
        prepared = keep_features(prepared, features)
    fitted = experiment.fit(prepared, config)
    model = fitted.model
    taus = validation_timescales(model, prepared, config.gates.batch_size)
    importance = unit_importance(model, prepared, config, taus)
    test = prepared.dataset(TEST)
    loss = task_for(config).ablation_loss(
        prepared.actual[test.ends.numpy()],
        prepared.unscale(replay_forecast(model, test.__getitems__(torch.arange(len(test)))[0])),
    )
    return PlantedMemory(
        persistence=persistence,
        alpha=alpha,
        seed=seed,
        dominant=dominant_timescale(importance),
        median=float(np.median(taus)),
        test_loss=loss,
        importance=importance,
    )


def _daily_bars(path: np.ndarray, ticker: str, rng: np.random.Generator) -> pd.DataFrame:
    """Daily OHLCV of ``ticker`` from an intraday log-price path (days, steps + 1) that starts
    at the open and ends at the close, on business days from 2000-01-03."""
    days = len(path)
    index = pd.MultiIndex.from_arrays(
        [pd.bdate_range("2000-01-03", periods=days).astype("datetime64[ns]"), [ticker] * days],
        names=["date", "ticker"],
    )
    columns = {
        "open": 100 * np.exp(path[:, 0]),
        "high": 100 * np.exp(path.max(axis=1)),
        "low": 100 * np.exp(path.min(axis=1)),
        "close": 100 * np.exp(path[:, -1]),
        "volume": rng.integers(1000, 10_000, days),
    }
    return pd.DataFrame(columns, index=index)
