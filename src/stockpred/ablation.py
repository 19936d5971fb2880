"""Ablation by memory timescale: which units' memory does the forecast use?

After training, every unit gets its memory timescale tau = -1 / ln(mean memory gate) (LSTM:
forget f; GRU: update z) on the gate diagnostics' validation windows (``stockpred.gates.unit_timescales``), with the trained
(best-epoch) weights. The units are grouped into bands by tau (``gates.ablation_bands``: < 2,
2-10, 10-50, > 50 trading days by default). For each band the test windows are replayed with
those units' state (LSTM: c_t and h_t; GRU: h_t) forced to 0 in their layer at every step (the
model's ``gate_activations`` with ``ablate``; exact otherwise), and the task's test loss
(``ForecastTask.ablation_loss``: QLIKE of the variance forecasts for volatility, MSE for returns)
is compared with the intact model's (its own fused kernels; a band without units is not
replayed).

Torch, numpy and pandas only: the pipeline logs the result (``ABLATION_PREFIX`` metrics, the
``gates/ablation.png`` figure).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from stockpred.config import PipelineConfig
from stockpred.gates import diagnostic_indices, unit_timescales
from stockpred.models import Forecaster
from stockpred.prepare import Prepared
from stockpred.replay import replay_batch, window_batches
from stockpred.split import TEST, VAL
from stockpred.tasks import task_for

# Not under "gates/": readers of a run split every "gates/..." metric key into
# gates/l{layer}/{gate}/{stat} (``tracking.readback.load_gate_stats``).
ABLATION_PREFIX = "gates/ablation"


@dataclass(frozen=True)
class Band:
    """Units whose timescale lies in [low, high) trading days."""

    name: str
    low: float
    high: float

    def contains(self, taus: np.ndarray) -> np.ndarray:
        return (taus >= self.low) & (taus < self.high)


def bands(edges: Sequence[float]) -> list[Band]:
    """Edges (2, 10, 50) -> bands lt_2, 2_10, 10_50, gt_50 (no edges: one band, ``all``)."""
    if not edges:
        return [Band("all", 0.0, np.inf)]
    cuts = [float(e) for e in edges]
    out = [Band(f"lt_{cuts[0]:g}", 0.0, cuts[0])]
    out += [Band(f"{a:g}_{b:g}", a, b) for a, b in itertools.pairwise(cuts)]
    out.append(Band(f"gt_{cuts[-1]:g}", cuts[-1], np.inf))
    return out


def masks(taus: np.ndarray, band: Band) -> dict[int, torch.Tensor]:
    """layer -> boolean (hidden,) mask of the units of ``band`` (``taus``: (layers, hidden))."""
    return {layer: torch.from_numpy(band.contains(row)) for layer, row in enumerate(taus)}


@torch.no_grad()
def model_forecast(model: Forecaster, x: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    """(B,) the model's own (scaled) outputs on ``x`` (its fused LSTM, no replay); float64."""
    weight = model.head.weight
    outputs = [
        model(x[start : start + batch_size].to(weight.device, weight.dtype)).float().cpu()
        for start in range(0, len(x), batch_size)
    ]
    return torch.cat(outputs).numpy().astype(np.float64) if outputs else np.empty(0)


@torch.no_grad()
def replay_forecast(
    model: Forecaster,
    x: torch.Tensor,
    ablate: dict[int, torch.Tensor] | None = None,
    batch_size: int = 1024,
) -> np.ndarray:
    """(B,) the model's (scaled) outputs on ``x`` through the gate replay, ``ablate``'s units
    forced to 0 (see the model's ``gate_activations``); float64."""
    outputs = []
    for start in range(0, len(x), batch_size):
        acts = model.gate_activations(x[start : start + batch_size], ablate)
        last = acts.h[-1][:, -1]  # (B, H) the top layer's last hidden state
        outputs.append(model.readout(last).float().cpu())
    if not outputs:
        return np.empty(0)
    return torch.cat(outputs).numpy().astype(np.float64)


@dataclass(frozen=True)
class Ablation:
    """Per band: how many units, the ablated test loss and its change over the intact replay."""

    table: pd.DataFrame  # band, low, high, units, loss, delta_loss
    base_loss: float
    timescales: np.ndarray  # (layers, hidden) the tau the bands were drawn from
    loss_name: str = "mse"

    def metrics(self) -> dict[str, float]:
        """``gates/ablation/<band>/delta_loss``, ``.../units`` and ``gates/ablation/base_loss``."""
        out = {f"{ABLATION_PREFIX}/base_loss": self.base_loss}
        for row in self.table.itertuples():
            out[f"{ABLATION_PREFIX}/{row.band}/delta_loss"] = float(row.delta_loss)
            out[f"{ABLATION_PREFIX}/{row.band}/units"] = float(row.units)
        return out


def validation_timescales(model: Forecaster, prepared: Prepared, size: int) -> np.ndarray:
    """(layers, hidden) unit timescales of ``model`` on up to ``size`` evenly spaced validation
    windows (the gate diagnostics' batch)."""
    val = prepared.dataset(VAL)
    x, _ = val.__getitems__(diagnostic_indices(len(val), size))
    return unit_timescales(model.gate_activations(x))


def windows_to_ablate(prepared: Prepared) -> tuple[torch.Tensor, np.ndarray]:
    """Every test window (B, T, F) and the actual target each one forecasts (B,), in target units;
    an empty test period is a clear error."""
    test = prepared.dataset(TEST)
    if len(test) == 0:
        raise ValueError("the test period holds no complete window to ablate on")
    x, _ = test.__getitems__(torch.arange(len(test)))
    return x, prepared.actual[test.ends.numpy()]


def band_replay(
    model: Forecaster, x: torch.Tensor, chosen: Sequence[dict[int, torch.Tensor]]
) -> np.ndarray:
    """(bands, B) the replayed (scaled) outputs on ``x`` with each band's units silenced: one
    replay of every band at once (the windows repeated band after band, a (bands x B, hidden)
    mask per layer), not one pass per band."""
    if not chosen:
        return np.empty((0, len(x)))
    batch = len(x)
    stacked = {
        layer: torch.cat([masks[layer].expand(batch, -1) for masks in chosen])
        for layer in chosen[0]
    }
    repeated = x.repeat(len(chosen), 1, 1)  # (bands x B, T, F), band-major
    outputs = replay_forecast(model, repeated, stacked, batch_size=max(1, len(repeated)))
    return outputs.reshape(len(chosen), batch)


def ablate(
    model: Forecaster,
    prepared: Prepared,
    config: PipelineConfig,
    timescales: np.ndarray | None = None,
) -> Ablation:
    """Ablate ``model``'s units band by band on the test windows (see the module docstring).

    ``timescales``: (layers, hidden) tau per unit; default: measured on the validation windows.
    The test windows stream in batches that fit ``gates.replay_mb`` with every band in the same
    pass (``band_replay``): the memory does not grow with the universe, only the forecasts do.
    """
    model = model.eval()
    if timescales is None:
        timescales = validation_timescales(model, prepared, config.gates.batch_size)
    taus = np.asarray(timescales, dtype=np.float64)
    if taus.shape != (model.num_layers, model.hidden_size):
        raise ValueError(f"expected (layers, hidden) timescales, got shape {taus.shape}")
    task = task_for(config)
    every = [(band, masks(taus, band)) for band in bands(config.gates.ablation_bands)]
    units = {band.name: int(sum(int(m.sum()) for m in chosen.values())) for band, chosen in every}
    # a band without units is the intact model, so it is not replayed
    replayed = [(band, chosen) for band, chosen in every if units[band.name]]
    rows_per_batch = replay_batch(
        config.gates.replay_mb,
        model.num_layers,
        prepared.window,
        model.hidden_size,
        prepared.features.shape[1],
    )
    windows = max(1, rows_per_batch // max(1, len(replayed)))
    actual, intact, ablated = [], [], []
    for x, ends in window_batches(prepared, TEST, windows):
        actual.append(prepared.actual[ends])
        # the intact forecast through the model's own fused kernels (equal to the replay to
        # float rounding, several times faster)
        intact.append(model_forecast(model, x, batch_size=windows))
        ablated.append(band_replay(model, x, [chosen for _, chosen in replayed]))
    if not actual:
        raise ValueError("the test period holds no complete window to ablate on")
    realised = np.concatenate(actual)

    def loss(forecast: np.ndarray) -> float:
        return task.ablation_loss(realised, prepared.unscale(forecast))

    base = loss(np.concatenate(intact))
    losses = dict(
        zip(
            [band.name for band, _ in replayed],
            [loss(row) for row in np.concatenate(ablated, axis=1)],
            strict=True,
        )
    )
    rows = []
    for band, _ in every:
        value = losses.get(band.name, base)
        rows.append((band.name, band.low, band.high, units[band.name], value, value - base))
    table = pd.DataFrame(rows, columns=["band", "low", "high", "units", "loss", "delta_loss"])
    return Ablation(table, base, taus, task.ablation_loss_name)
