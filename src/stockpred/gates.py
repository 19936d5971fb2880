"""Gate diagnostics of any gated model (LSTM, GRU): summarise the exact replay of its gates,
monitor them per epoch.

Training stays on the fused kernels (cuDNN on GPU); the model's ``gate_activations`` recomputes
every gate from the weights (``stockpred.models``). Torch and Lightning only: artifacts leave
through an injected sink.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch import nn

from stockpred.models.forecaster import Forecaster, GateActivations, GateSpec, find_forecaster
from stockpred.models.lstm import LSTM_GATES, check_supported, lstm_gate_activations

# The LSTM's gates, as before models other than the LSTM existed; a replay carries its own
# model's (``GateActivations.spec``).
GATES = LSTM_GATES.names  # PyTorch's order in weight_ih_l{k}: i, f, g, o
SIGMOID_GATES = ("input", "forget", "output")
SATURATION = {name: LSTM_GATES.saturation(name) for name in GATES}
# Per-unit memory timescales (trading days): the shares above these are logged every epoch; a
# saturated unit (mean memory gate = 1 in float) is counted at TIMESCALE_CAP so quantiles stay
# finite.
TIMESCALE_SHARES = (5, 20, 60)
TIMESCALE_CAP = 1e6

__all__ = [
    "GATES",
    "GateActivations",
    "GateMonitor",
    "GateSnapshot",
    "GateSpec",
    "check_supported",
    "gate_statistics",
    "lstm_gate_activations",
    "replay",
    "timescale",
    "unit_table",
    "unit_timescales",
]


def replay(
    model: nn.Module, x: torch.Tensor, ablate: Mapping[int, torch.Tensor] | None = None
) -> GateActivations:
    """The exact gate replay of ``model`` (a ``Forecaster``, or a module holding one) on ``x``."""
    return find_forecaster(model).gate_activations(x, ablate)


def gate_statistics(acts: GateActivations) -> dict[str, float]:
    """Summary metrics keyed ``gates/l{layer}/{gate}/{stat}``.

    Per gate and layer: mean, std, sat_left, sat_right (fractions of all activations). The
    memory gate (LSTM: forget f; GRU: update z) adds ``timescale``: the memory half-life-like
    decay time in steps (trading days), -1 / ln(mean gate). The state (LSTM: ``cell_state`` c_t;
    GRU: ``hidden_state`` h_t) adds ``norm_start``, ``norm_end`` (mean L2 norm at the first and
    last step) and ``norm_growth`` (their ratio). The per-unit memory timescales
    (``unit_timescales``) add ``gates/l{layer}/timescale/{median,q10,q90}`` and the share of units
    above 5, 20 and 60 days (``share_gt_5`` ...).
    """
    spec = acts.spec
    stats: dict[str, float] = {}
    taus = unit_timescales(acts)
    for layer in range(acts.h.shape[0]):
        for name in spec.names:
            values = acts.gate(name)[layer].float()
            low, high = spec.saturation(name)
            key = f"gates/l{layer}/{name}"
            stats[f"{key}/mean"] = float(values.mean())
            stats[f"{key}/std"] = float(values.std())
            stats[f"{key}/sat_left"] = float((values < low).float().mean())
            stats[f"{key}/sat_right"] = float((values > high).float().mean())
        memory = f"gates/l{layer}/{spec.memory}"
        stats[f"{memory}/timescale"] = timescale(stats[f"{memory}/mean"])
        norms = acts.state[layer].float().norm(dim=-1).mean(dim=0)  # (T,)
        start, end = float(norms[0]), float(norms[-1])
        stats[f"gates/l{layer}/{spec.state}/norm_start"] = start
        stats[f"gates/l{layer}/{spec.state}/norm_end"] = end
        stats[f"gates/l{layer}/{spec.state}/norm_growth"] = end / start if start > 0 else math.inf
        stats.update(timescale_summary(taus[layer], f"gates/l{layer}/timescale"))
    return stats


def unit_timescales(acts: GateActivations) -> np.ndarray:
    """(layers, hidden) each unit's memory timescale -1 / ln(mean m) in steps, m the memory gate
    (LSTM: forget; GRU: update), the mean over every window and step of ``acts``; capped at
    ``TIMESCALE_CAP`` (a unit whose m is 1)."""
    mean = acts.memory.double().mean(dim=(1, 2)).cpu().numpy()  # (L, H)
    mean = np.clip(mean, 0.0, 1.0)
    with np.errstate(divide="ignore"):
        tau = np.where(mean >= 1.0, TIMESCALE_CAP, -1.0 / np.log(np.where(mean < 1, mean, 0.5)))
    return np.minimum(tau, TIMESCALE_CAP)


def timescale_summary(taus: np.ndarray, prefix: str) -> dict[str, float]:
    """The distribution of one layer's unit timescales: median, q10, q90, share_gt_5/20/60."""
    taus = np.asarray(taus, dtype=np.float64)
    out = {
        f"{prefix}/median": float(np.median(taus)),
        f"{prefix}/q10": float(np.quantile(taus, 0.1)),
        f"{prefix}/q90": float(np.quantile(taus, 0.9)),
    }
    out.update({f"{prefix}/share_gt_{d}": float(np.mean(taus > d)) for d in TIMESCALE_SHARES})
    return out


def timescale(mean_forget: float) -> float:
    """Memory timescale in steps of a memory gate (forget f, update z) with mean ``m``:
    -1 / ln(m) (inf at m = 1)."""
    if mean_forget >= 1.0:
        return math.inf
    if mean_forget <= 0.0:
        return 0.0
    return -1.0 / math.log(mean_forget)


def unit_table(acts: GateActivations, epoch: int) -> pd.DataFrame:
    """Tidy per-unit statistics: one row per (layer, gate, unit); ``timescale`` on the memory
    gate's rows."""
    spec = acts.spec
    rows = []
    for layer in range(acts.h.shape[0]):
        for name in spec.names:
            values = acts.gate(name)[layer].float().flatten(0, 1)  # (B*T, H)
            low, high = spec.saturation(name)
            mean = values.mean(0).cpu().numpy()
            frame = pd.DataFrame(
                {
                    "epoch": epoch,
                    "layer": layer,
                    "gate": name,
                    "unit": np.arange(values.shape[1]),
                    "mean": mean,
                    "std": values.std(0).cpu().numpy(),
                    "sat_left": (values < low).float().mean(0).cpu().numpy(),
                    "sat_right": (values > high).float().mean(0).cpu().numpy(),
                    "timescale": [timescale(m) for m in mean] if name == spec.memory else np.nan,
                }
            )
            rows.append(frame)
    return pd.concat(rows, ignore_index=True)


@dataclass(frozen=True)
class GateSnapshot:
    """What the figures of one epoch need, kept small (no full activation tensors)."""

    epoch: int
    units: pd.DataFrame  # per-unit table, see ``unit_table``
    sample: dict[str, np.ndarray]  # gate -> (L, T, H) activations of one window
    histograms: dict[str, np.ndarray]  # gate -> (L, bins) density over the diagnostic batch
    edges: dict[str, np.ndarray]  # gate -> (bins + 1,) bin edges
    spec: GateSpec = LSTM_GATES  # the model's gates (names, memory gate, ranges, labels)


def snapshot(acts: GateActivations, epoch: int, sample: int = 0, bins: int = 50) -> GateSnapshot:
    """Summarise ``acts`` for the per-epoch artifacts."""
    spec = acts.spec
    histograms, edges = {}, {}
    for name in spec.names:
        low, high = spec.range(name)
        values = acts.gate(name).float()
        counts = torch.stack([torch.histc(v, bins=bins, min=low, max=high) for v in values])
        histograms[name] = (
            (counts / counts.sum(dim=1, keepdim=True) * bins / (high - low)).cpu().numpy()
        )
        edges[name] = np.linspace(low, high, bins + 1)
    return GateSnapshot(
        epoch=epoch,
        units=unit_table(acts, epoch),
        sample={name: acts.gate(name)[:, sample].float().cpu().numpy() for name in spec.names},
        histograms=histograms,
        edges=edges,
        spec=spec,
    )


def spec_state(spec: GateSpec) -> dict[str, Any]:
    """``spec`` as plain values (a ``weights_only`` checkpoint holds no dataclass)."""
    return {
        "names": list(spec.names),
        "memory": spec.memory,
        "tanh": sorted(spec.tanh),
        "labels": dict(spec.labels),
        "state": spec.state,
    }


def spec_from_state(state: dict[str, Any] | None) -> GateSpec:
    """The ``GateSpec`` ``spec_state`` saved (none saved: the LSTM's, as before the GRU)."""
    if state is None:
        return LSTM_GATES
    return GateSpec(
        names=tuple(state["names"]),
        memory=str(state["memory"]),
        tanh=frozenset(state["tanh"]),
        labels=dict(state["labels"]),
        state=str(state["state"]),
    )


def find_gated(module: nn.Module) -> Forecaster:
    """The one gated ``Forecaster`` inside ``module``; a clear error if there is none."""
    found = [m for m in module.modules() if isinstance(m, Forecaster)]
    if len(found) != 1:
        raise ValueError(
            "GateMonitor needs exactly one stockpred forecaster (stockpred.models) in the "
            f"LightningModule, found {len(found)}"
        )
    if not found[0].has_gates:
        raise ValueError(
            f"the {found[0].arch} model has no gates to monitor: set gates.enabled=false"
        )
    return found[0]


class GateMonitor(Callback):
    """Log gate statistics of a fixed diagnostic batch after every validation epoch.

    Metrics go through the trainer's logger (``gates/l0/forget/mean`` ..., step = epoch). At the
    epochs in ``artifact_epochs`` and at the last epoch it keeps a ``GateSnapshot`` in
    ``snapshots``; figures are drawn from those after training, so the epochs stay fast. Under DDP
    only rank 0 computes and logs; with worker processes (``ddp_spawn``/``ddp_fork``) its
    ``history`` and ``snapshots`` come back to this object through ``load_rank_zero_state``.
    """

    def __init__(
        self, batch: torch.Tensor, *, artifact_epochs: Iterable[int] = (), sample_index: int = 0
    ) -> None:
        super().__init__()
        if batch.ndim != 3 or len(batch) == 0:
            raise ValueError(
                f"GateMonitor needs a (batch, time, features) batch, got {tuple(batch.shape)}"
            )
        if not 0 <= sample_index < len(batch):
            raise ValueError(f"sample_index {sample_index} is outside the batch of {len(batch)}")
        self.batch = batch  # (B, T, F), the same windows every epoch
        self.artifact_epochs = frozenset(artifact_epochs)
        self.sample_index = sample_index
        self.history: list[dict[str, float]] = []  # one row per epoch: {"epoch": e, **stats}
        self.snapshots: dict[int, GateSnapshot] = {}
        self._model: Forecaster | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.logger is None:
            raise ValueError(
                "GateMonitor logs through the trainer's logger: pass Trainer(logger=...)"
            )
        self._model = find_gated(pl_module)
        if self.batch.shape[-1] != self._model.num_features:
            raise ValueError(
                f"GateMonitor's batch has {self.batch.shape[-1]} features, the "
                f"{self._model.arch} model expects {self._model.num_features}"
            )

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        epoch = trainer.current_epoch
        acts = self._replay()
        stats = gate_statistics(acts)
        assert trainer.logger is not None
        trainer.logger.log_metrics({**stats, "epoch": epoch}, step=epoch)
        self.history.append({"epoch": epoch, **stats})
        if epoch in self.artifact_epochs:
            self.snapshots[epoch] = snapshot(acts, epoch, self.sample_index)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not self.history:
            return
        last = int(self.history[-1]["epoch"])
        if last not in self.snapshots:  # the weights are still the last epoch's here
            self.snapshots[last] = snapshot(self._replay(), last, self.sample_index)

    def kept(self, model: Forecaster, epoch: int) -> dict[str, float]:
        """The memory-gate timescales of the model training kept (its best epoch's weights,
        ``epoch``) as ``gates/kept/l{layer}/timescale/median`` ... (the per-epoch keys end at the
        last epoch); its snapshot joins ``snapshots`` so its tables and figures are logged too."""
        device = next(model.parameters()).device
        with torch.no_grad():
            acts = model.gate_activations(self.batch.to(device))
        if epoch not in self.snapshots:
            self.snapshots[epoch] = snapshot(acts, epoch, self.sample_index)
        out = {"gates/kept/epoch": float(epoch)}
        for layer, taus in enumerate(unit_timescales(acts)):
            out.update(timescale_summary(taus, f"gates/kept/l{layer}/timescale"))
        return out

    def rank_zero_state(self) -> dict[str, Any]:
        """What rank 0 collected, for the main process after a ``ddp_spawn``/``ddp_fork`` fit
        (its workers' callbacks are copies; ``stockpred.train`` sends this back)."""
        return {"history": self.history, "snapshots": self.snapshots}

    def load_rank_zero_state(self, state: dict[str, Any]) -> None:
        """Take over what rank 0 collected (see ``rank_zero_state``)."""
        self.history = list(state["history"])
        self.snapshots = dict(state["snapshots"])

    def state_dict(self) -> dict[str, Any]:
        """History and snapshots, saved in Lightning checkpoints so a resumed run keeps the
        epochs trained before the interruption (tensors and plain values: ``weights_only``)."""
        snapshots = {}
        for epoch, shot in self.snapshots.items():
            saved: dict[str, Any] = {"units": shot.units.to_dict(orient="list")}
            for part in ("sample", "histograms", "edges"):
                arrays = getattr(shot, part).items()
                saved[part] = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays}
            saved["spec"] = spec_state(shot.spec)
            snapshots[epoch] = saved
        return {"history": [dict(row) for row in self.history], "snapshots": snapshots}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take back what ``state_dict`` saved (Lightning calls it when a fit resumes)."""
        self.history = [dict(row) for row in state_dict["history"]]
        self.snapshots = {}
        for epoch, saved in state_dict["snapshots"].items():
            parts = {
                part: {k: v.numpy() for k, v in saved[part].items()}
                for part in ("sample", "histograms", "edges")
            }
            units = pd.DataFrame(saved["units"])
            spec = spec_from_state(saved.get("spec"))
            self.snapshots[int(epoch)] = GateSnapshot(int(epoch), units, **parts, spec=spec)

    def history_frame(self) -> pd.DataFrame:
        """Per-epoch statistics as a tidy frame: epoch, layer, gate, stat, value."""
        return history_to_frame(self.history)

    def _replay(self) -> GateActivations:
        assert self._model is not None, "GateMonitor.setup has not run"
        return self._model.gate_activations(self.batch)


def history_to_frame(rows: Iterable[dict[str, float]]) -> pd.DataFrame:
    """``[{"epoch": e, "gates/l0/forget/mean": v, ...}]`` -> epoch, layer, gate, stat, value."""
    records: list[dict[str, Any]] = []
    for row in rows:
        epoch = int(row["epoch"])
        for key, value in row.items():
            if key == "epoch":
                continue
            _, layer, gate, stat = key.split("/")
            records.append(
                {
                    "epoch": epoch,
                    "layer": int(layer[1:]),
                    "gate": gate,
                    "stat": stat,
                    "value": value,
                }
            )
    return pd.DataFrame.from_records(records, columns=["epoch", "layer", "gate", "stat", "value"])


def diagnostic_indices(count: int, size: int) -> torch.Tensor:
    """Up to ``size`` indices spread evenly over ``count`` windows: the same batch every epoch."""
    if count == 0:
        raise ValueError("no validation windows to build the gate diagnostic batch from")
    return torch.linspace(0, count - 1, min(size, count)).round().long().unique()
