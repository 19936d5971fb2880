"""Memory measured by use: how far back a forecaster's inputs still change its forecast and loss.

Model-generic: every measure needs only the network's forward, ``(B, T, F) -> (B,)``.

- The **truncation curve** (``truncation_curve``): the task's loss when each window keeps only
  its last k steps, divided by the full-window loss, for k = 1..T. Earlier steps are *zeroed*,
  which in the train-scaled input space is the training mean of every feature: the network still
  runs T steps from its usual zero state, so the curve measures what the history's *content*
  is worth, not the shock of a sequence shorter than any it was trained on. ``k_within`` gives
  ``memory/k90``: the shortest k from which every longer window is within 1% of the full loss.
- **Saliency by lag** (``saliency_by_lag``): mean over windows of sum over features of
  |d forecast / d input| at lag k (lag 0 = the forecast date), from one backward pass;
  ``decay_timescale`` fits ln s(k) = a - k / tau from the peak down to 1% of it
  (``memory/saliency_tau``). An EWMA with decay lambda gives s(k) ~ lambda^k, tau = -1/ln lambda.
- The **memory-value curve** (``ewma_value_curve``): before any training, the loss of the best
  exponential-memory predictor of the run's own target against its timescale tau on the training
  rows, so a reader knows whether memory can pay on this data at all (``memory/best_ewma_tau``).

``MemoryMonitor`` logs the first two for the untrained network and after every validation epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch import nn

Forward = Callable[[torch.Tensor], torch.Tensor]  # (B, T, F) -> (B,)
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (predicted, target) -> scalar

WITHIN = 0.01  # k90: the loss within 1% of the full window's
SALIENCY_FLOOR = 0.01  # the exponential fit stops where saliency falls below 1% of its peak
TIMESCALE_CAP = 1e6  # a flat or rising saliency: no decay within the window
# (k, B, T, F) elements per forward of the truncation curve: one pass at the default sizes
# (window 66, 128 windows, 25 features: 1.4e7), chunks of k beyond it (window 250: ~6e7 each)
CHUNK_ELEMENTS = 1 << 26
TAU_GRID = tuple(float(t) for t in np.geomspace(0.5, 256.0, 46))  # memory-value curve, days
SHORT_MEMORY = 1.5  # days: about an untrained LSTM's forget timescale


def truncated_windows(x: torch.Tensor, ks: Sequence[int] | None = None) -> torch.Tensor:
    """(len(ks) * B, T, F): ``x`` (B, T, F) with every step before its last k zeroed, k-major
    (rows [i * B, (i + 1) * B) keep the last ``ks[i]`` steps; default k = 1..T)."""
    batch, steps, width = x.shape
    ks = list(range(1, steps + 1)) if ks is None else list(ks)
    keep = (
        torch.arange(steps, device=x.device)[None, :]
        >= steps - torch.tensor(ks, device=x.device)[:, None]
    )  # (K, T): step t survives cut k iff t >= T - k
    return (x[None] * keep[:, None, :, None].to(x.dtype)).reshape(len(ks) * batch, steps, width)


@torch.no_grad()
def truncation_curve(
    forward: Forward, x: torch.Tensor, target: torch.Tensor, loss: Loss
) -> np.ndarray:
    """(T,) loss with the last k = 1..T steps kept over the full-window loss (index k - 1), all
    cuts of a chunk in one batched forward (one pass at the usual sizes)."""
    batch, steps, width = x.shape
    per_chunk = max(1, CHUNK_ELEMENTS // max(1, batch * steps * width))
    losses = []
    for start in range(1, steps + 1, per_chunk):
        ks = list(range(start, min(steps, start + per_chunk - 1) + 1))
        predicted = forward(truncated_windows(x, ks)).reshape(len(ks), batch)  # (K, B)
        losses += [float(loss(predicted[i].float(), target.float())) for i in range(len(ks))]
    full = losses[-1]  # k = T keeps every step: the full window
    return np.asarray(losses) / full if full > 0 else np.full(steps, np.nan)


def k_within(curve: np.ndarray, tolerance: float = WITHIN) -> int:
    """The shortest k from which every longer window's loss ratio is <= 1 + ``tolerance`` (a
    lone dip below it earlier does not count as memory no longer needed)."""
    worse = np.flatnonzero(~(np.asarray(curve) <= 1.0 + tolerance))  # NaN counts as worse
    return int(worse[-1]) + 2 if len(worse) else 1


def saliency_by_lag(forward: Forward, x: torch.Tensor) -> np.ndarray:
    """(T,) mean over windows of sum over features of |d forecast / d input| at lag k = 0..T-1
    (lag 0 is the last step), from one backward pass over the batch (windows are independent, so
    the gradient of the summed forecast holds every window's own)."""
    inputs = x.detach().clone().requires_grad_(True)
    # cuDNN's RNN backward refuses eval mode: the diagnostic pass runs on the native kernels
    with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
        (grad,) = torch.autograd.grad(forward(inputs).float().sum(), inputs)
    by_step = grad.abs().sum(dim=-1).mean(dim=0)  # (T,), oldest step first
    return by_step.flip(0).double().cpu().numpy()


def decay_timescale(saliency: np.ndarray, floor: float = SALIENCY_FLOOR) -> float:
    """tau of the exponential fit ln s(k) = a - k / tau from the peak lag to the last lag before
    s falls below ``floor`` x peak (least squares); 0 when only one lag matters,
    ``TIMESCALE_CAP`` when s does not decay (or peaks at the oldest lag)."""
    s = np.asarray(saliency, dtype=np.float64)
    if not np.isfinite(s).all() or s.max() <= 0:
        return math.nan
    peak = int(np.argmax(s))
    if peak == len(s) - 1:  # the oldest step matters most: no decay inside the window
        return TIMESCALE_CAP
    below = np.flatnonzero(s[peak:] < floor * s[peak])
    end = peak + (int(below[0]) if len(below) else len(s) - peak)  # exclusive
    if end - peak < 2:  # the next lag already falls below the floor: a one-step memory
        return 0.0
    lags = np.arange(peak, end, dtype=np.float64)
    slope = np.polyfit(lags, np.log(s[peak:end]), 1)[0]
    return TIMESCALE_CAP if slope >= 0 else float(min(-1.0 / slope, TIMESCALE_CAP))


@dataclass(frozen=True)
class MemoryProfile:
    """Both measures of one network at one epoch (-1: untrained)."""

    epoch: int
    truncation: np.ndarray  # (T,) loss ratio, index k - 1
    saliency: np.ndarray  # (T,) by lag, index = lag

    @property
    def k90(self) -> int:
        """The shortest window within 1% of the full window's loss (``k_within``)."""
        return k_within(self.truncation)

    @property
    def saliency_tau(self) -> float:
        """The exponential decay time of the saliency, in steps (``decay_timescale``)."""
        return decay_timescale(self.saliency)

    def metrics(self, prefix: str = "memory") -> dict[str, float]:
        """``memory/k90``, ``memory/saliency_tau`` and the loss ratio at 5 and 22 days."""
        out = {f"{prefix}/k90": float(self.k90), f"{prefix}/saliency_tau": self.saliency_tau}
        for k in (5, 22):
            if k <= len(self.truncation):
                out[f"{prefix}/truncation_k{k}"] = float(self.truncation[k - 1])
        return out


def memory_profile(
    forward: Forward, x: torch.Tensor, target: torch.Tensor, loss: Loss, epoch: int = -1
) -> MemoryProfile:
    """The truncation curve and saliency by lag of ``forward`` on the windows ``x``."""
    return MemoryProfile(
        epoch, truncation_curve(forward, x, target, loss), saliency_by_lag(forward, x)
    )


def network_of(module: nn.Module) -> nn.Module:
    """The plain forecaster inside a LightningModule (its ``model``), else ``module`` itself."""
    inner = getattr(module, "model", None)
    return inner if isinstance(inner, nn.Module) else module


class MemoryMonitor(Callback):
    """Log the memory a network uses on fixed diagnostic windows: untrained (``memory/untrained/
    k90`` ...) when training starts, then after every validation epoch (``memory/k90``,
    ``memory/saliency_tau``, ``memory/truncation_k5`` ..., step = epoch). ``profiles`` keeps
    every epoch's curves for the figures. Under DDP only rank 0 computes and logs."""

    def __init__(self, batch: torch.Tensor, target: torch.Tensor, loss: Loss) -> None:
        super().__init__()
        if batch.ndim != 3 or len(batch) == 0 or target.shape != batch.shape[:1]:
            raise ValueError(
                f"MemoryMonitor needs a (batch, time, features) batch and a (batch,) target, got "
                f"{tuple(batch.shape)} and {tuple(target.shape)}"
            )
        self.batch, self.target, self.loss = batch, target, loss
        self.history: list[dict[str, float]] = []  # {"epoch": e, "memory/k90": ...}
        self.profiles: dict[int, MemoryProfile] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.logger is None:
            raise ValueError(
                "MemoryMonitor logs through the trainer's logger: pass Trainer(logger=...)"
            )

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or -1 in self.profiles:  # a resumed fit keeps its own
            return
        profile = self._profile(pl_module, -1)
        assert trainer.logger is not None
        trainer.logger.log_metrics(profile.metrics("memory/untrained"), step=0)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        epoch = trainer.current_epoch
        metrics = self._profile(pl_module, epoch).metrics()
        assert trainer.logger is not None
        trainer.logger.log_metrics(metrics, step=epoch)
        self.history.append({"epoch": epoch, **metrics})

    def _profile(self, pl_module: pl.LightningModule, epoch: int) -> MemoryProfile:
        network = network_of(pl_module)
        was_training = network.training
        network.eval()  # no dropout: the network as it forecasts
        try:
            x = self.batch.to(pl_module.device)
            y = self.target.to(pl_module.device)
            profile = memory_profile(network, x, y, self.loss, epoch)
        finally:
            network.train(was_training)
        self.profiles[epoch] = profile
        return profile

    def kept(self, model: nn.Module, epoch: int) -> dict[str, float]:
        """Both measures of the model training kept (its best epoch's weights, ``epoch``) as
        ``memory/kept/k90`` ...: the per-epoch keys end at the last epoch, which early stopping
        may not keep."""
        network = network_of(model)
        device = next(network.parameters()).device
        was_training = network.training
        network.eval()
        try:
            x, y = self.batch.to(device), self.target.to(device)
            profile = memory_profile(network, x, y, self.loss, epoch)
        finally:
            network.train(was_training)
        return {**profile.metrics("memory/kept"), "memory/kept/epoch": float(epoch)}

    def rank_zero_state(self) -> dict[str, Any]:
        """What rank 0 collected, for the main process after a spawned DDP fit."""
        return self.state_dict()

    def load_rank_zero_state(self, state: dict[str, Any]) -> None:
        """Take over what rank 0 collected (see ``rank_zero_state``)."""
        self.load_state_dict(state)

    def state_dict(self) -> dict[str, Any]:
        """History and curves, saved in Lightning checkpoints (tensors and plain values)."""
        return {
            "history": [dict(row) for row in self.history],
            "profiles": {
                epoch: {
                    "truncation": torch.from_numpy(p.truncation.copy()),
                    "saliency": torch.from_numpy(p.saliency.copy()),
                }
                for epoch, p in self.profiles.items()
            },
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take back what ``state_dict`` saved (a resumed fit)."""
        self.history = [dict(row) for row in state_dict["history"]]
        self.profiles = {
            int(epoch): MemoryProfile(
                int(epoch), saved["truncation"].numpy(), saved["saliency"].numpy()
            )
            for epoch, saved in state_dict["profiles"].items()
        }

    def frame(self) -> pd.DataFrame:
        """Every kept curve, tidy: epoch, measure (truncation | saliency), k, value."""
        return profiles_frame(self.profiles.values())


def profiles_frame(profiles: Iterable[MemoryProfile]) -> pd.DataFrame:
    """Curves as a tidy frame: epoch, measure, k (window length or lag), value."""
    parts = []
    for p in profiles:
        steps = len(p.truncation)
        parts.append(
            pd.DataFrame(
                {
                    "epoch": p.epoch,
                    "measure": ["truncation"] * steps + ["saliency"] * steps,
                    "k": np.concatenate([np.arange(1, steps + 1), np.arange(steps)]),
                    "value": np.concatenate([p.truncation, p.saliency]),
                }
            )
        )
    columns = ["epoch", "measure", "k", "value"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


# ---------------------------------------------------------------- the memory-value curve


def ewma(values: np.ndarray, groups: np.ndarray, tau: float) -> np.ndarray:
    """Per group (contiguous rows, e.g. one ticker), the exponentially weighted mean with decay
    lambda = exp(-1/tau) of ``values`` up to and including each row (causal; weights renormalised
    over the history seen, so early rows are not biased towards zero)."""
    lam = math.exp(-1.0 / tau)
    series = pd.Series(np.asarray(values, dtype=np.float64))
    return (
        series.groupby(np.asarray(groups))
        .transform(lambda s: s.ewm(alpha=1.0 - lam, adjust=True, ignore_na=True).mean())
        .to_numpy()
    )


def qlike_at_best_level(actual: np.ndarray, memory: np.ndarray) -> float:
    """Mean QLIKE of ``actual`` against c x ``memory`` at the QLIKE-optimal level c =
    mean(actual / memory) (fitted on the same rows: the curve is a training-data property)."""
    ratio = actual / memory
    c = float(np.mean(ratio))
    scaled = ratio / c
    return float(np.mean(scaled - np.log(scaled) - 1.0))


def mse_at_best_line(actual: np.ndarray, memory: np.ndarray) -> float:
    """Mean squared error of ``actual`` against the least-squares line a + b x ``memory``."""
    design = np.column_stack([np.ones_like(memory), memory])
    coef, *_ = np.linalg.lstsq(design, actual, rcond=None)
    return float(np.mean((actual - design @ coef) ** 2))


LOSSES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "qlike": qlike_at_best_level,
    "mse": mse_at_best_line,
}


def ewma_value_curve(
    daily: np.ndarray,
    actual: np.ndarray,
    groups: np.ndarray,
    rows: np.ndarray,
    loss: str = "qlike",
    taus: Sequence[float] = TAU_GRID,
) -> pd.Series:
    """The loss of the best exponential-memory predictor of ``actual`` (the run's target as
    realised) from the daily quantity ``daily`` (e.g. the daily variance), against its timescale
    tau, scored on ``rows`` only (the training windows): indexed by tau, plus ``SHORT_MEMORY``."""
    if loss not in LOSSES:
        raise ValueError(f"unknown memory-value loss {loss!r}: expected one of {sorted(LOSSES)}")
    score = LOSSES[loss]
    grid = sorted({*map(float, taus), SHORT_MEMORY})
    values = {}
    for tau in grid:
        memory = ewma(daily, groups, tau)[rows]
        target = np.asarray(actual, dtype=np.float64)[rows]
        ok = np.isfinite(memory) & np.isfinite(target)
        if loss == "qlike":
            ok &= (memory > 0) & (target > 0)
        values[tau] = score(target[ok], memory[ok]) if ok.sum() > 2 else math.nan
    return pd.Series(values, name=f"train/{loss}").rename_axis("tau")


def value_metrics(curve: pd.Series) -> dict[str, float]:
    """``memory/best_ewma_tau`` (the curve's argmin) and ``memory/ewma_excess_1_5d`` (the loss at
    tau = 1.5 days over the best, minus 1: what a short memory costs on this data)."""
    finite = curve.dropna()
    if finite.empty:
        return {}
    best = float(finite.idxmin())
    out = {"memory/best_ewma_tau": best, "memory/best_ewma_loss": float(finite.min())}
    if SHORT_MEMORY in finite.index and finite.min() > 0:
        out["memory/ewma_excess_1_5d"] = float(finite[SHORT_MEMORY] / finite.min() - 1.0)
    return out
