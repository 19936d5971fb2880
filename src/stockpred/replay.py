"""Replays after training in bounded batches: memory set by ``gates.replay_mb``, not by the
universe.

A part's windows are gathered one batch at a time (``window_batches``), never all at once; a
replay keeps only running statistics (``GateAccumulator``: the per-unit table and histograms of
``gates.snapshot``) and the few windows it draws. The ablation (``ablation.ablate``) and the
report's calm and turbulent windows (``report.story.shock_windows``) replay through here.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch

from stockpred.gates import GateActivations, GateSnapshot, timescale
from stockpred.models import GateSpec
from stockpred.prepare import Prepared

# What one replayed window costs, per layer, step and unit, in float32 values: at most four
# gates (an LSTM's; a GRU has three), c_t and h_t, each held twice while a layer is stacked
# (the steps' list, then the tensor).
_VALUES_PER_UNIT_STEP = 2 * (4 + 2)
_BYTES = 4


def replay_bytes_per_window(layers: int, steps: int, hidden: int, features: int) -> int:
    """Bytes one window takes in a gate replay (its input included), the LSTM's bound."""
    return _BYTES * steps * (layers * hidden * _VALUES_PER_UNIT_STEP + features)


def replay_batch(budget_mb: float, layers: int, steps: int, hidden: int, features: int) -> int:
    """How many windows one replay batch holds within ``budget_mb`` (at least one)."""
    per_window = replay_bytes_per_window(layers, steps, hidden, features)
    return max(1, int(budget_mb * 2**20 // per_window))


def window_batches(
    prepared: Prepared, part: int, batch_size: int
) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
    """The windows of ``part`` as (x (b, T, F), ends (b,)) batches in order, each gathered only
    when it is asked for; an empty part yields nothing."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dataset = prepared.dataset(part)
    for start in range(0, len(dataset), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(dataset)))
        x, _ = dataset.__getitems__(rows)
        yield x, dataset.ends[rows].numpy()


class GateAccumulator:
    """Running per-unit statistics and histograms of replayed gates, batch by batch: after
    ``add`` of every batch, ``units`` and ``histograms`` equal ``gates.unit_table`` and
    ``gates.snapshot``'s of one replay of all the windows at once (to float rounding)."""

    def __init__(self, bins: int = 50) -> None:
        self.bins = bins
        self.count = 0  # activations per unit seen so far (windows x steps)
        self._sum: dict[str, torch.Tensor] = {}  # gate -> (L, H) float64
        self._sumsq: dict[str, torch.Tensor] = {}
        self._left: dict[str, torch.Tensor] = {}
        self._right: dict[str, torch.Tensor] = {}
        self._hist: dict[str, torch.Tensor] = {}  # gate -> (L, bins) float64 counts
        self.spec: GateSpec | None = None  # the replayed model's gates, from the first batch

    def add(self, acts: GateActivations) -> None:
        """Fold one batch's activations (each (L, B, T, H)) into the statistics."""
        spec = self.spec = acts.spec
        for name in spec.names:
            values = acts.gate(name).float().flatten(1, 2)  # (L, B*T, H)
            low, high = spec.saturation(name)
            lo, hi = spec.range(name)
            parts = {
                "_sum": values.sum(1, dtype=torch.float64),
                "_sumsq": values.double().square().sum(1),
                "_left": (values < low).sum(1, dtype=torch.float64),
                "_right": (values > high).sum(1, dtype=torch.float64),
                "_hist": torch.stack(
                    [torch.histc(v, bins=self.bins, min=lo, max=hi) for v in values]
                ).double(),
            }
            for attr, value in parts.items():
                store: dict[str, torch.Tensor] = getattr(self, attr)
                store[name] = store[name] + value.cpu() if name in store else value.cpu()
        self.count += acts.h.shape[1] * acts.h.shape[2]

    def units(self, epoch: int) -> pd.DataFrame:
        """The per-unit table of ``gates.unit_table`` over every window added."""
        if self.count == 0 or self.spec is None:
            raise ValueError("no windows were replayed")
        n, spec = self.count, self.spec
        frames = []
        for layer in range(self._sum[spec.names[0]].shape[0]):
            for name in spec.names:
                mean = (self._sum[name][layer] / n).numpy()
                # unbiased, as torch.std: (sum x^2 - n mean^2) / (n - 1)
                var = (self._sumsq[name][layer].numpy() - n * mean**2) / max(n - 1, 1)
                frames.append(
                    pd.DataFrame(
                        {
                            "epoch": epoch,
                            "layer": layer,
                            "gate": name,
                            "unit": np.arange(len(mean)),
                            "mean": mean.astype(np.float32),
                            "std": np.sqrt(np.maximum(var, 0.0)).astype(np.float32),
                            "sat_left": (self._left[name][layer] / n).numpy().astype(np.float32),
                            "sat_right": (self._right[name][layer] / n).numpy().astype(np.float32),
                            "timescale": [timescale(m) for m in mean]
                            if name == spec.memory
                            else np.nan,
                        }
                    )
                )
        return pd.concat(frames, ignore_index=True)

    def histograms(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """gate -> (L, bins) density and gate -> (bins + 1,) edges, as ``gates.snapshot``."""
        if self.spec is None:
            raise ValueError("no windows were replayed")
        densities, edges = {}, {}
        for name in self.spec.names:
            lo, hi = self.spec.range(name)
            counts = self._hist[name]
            densities[name] = (
                (counts / counts.sum(dim=1, keepdim=True) * self.bins / (hi - lo))
                .to(torch.float32)
                .numpy()
            )
            edges[name] = np.linspace(lo, hi, self.bins + 1)
        return densities, edges

    def snapshot(self, epoch: int, sample: GateActivations, index: int = 0) -> GateSnapshot:
        """A ``GateSnapshot`` whose statistics cover every window added and whose sample is
        window ``index`` of ``sample`` (a small replay of the windows to draw)."""
        densities, edges = self.histograms()
        spec = sample.spec
        return GateSnapshot(
            epoch=epoch,
            units=self.units(epoch),
            sample={name: sample.gate(name)[:, index].float().cpu().numpy() for name in spec.names},
            histograms=densities,
            edges=edges,
            spec=spec,
        )
