"""LSTM gate diagnostics: replay ``nn.LSTM`` exactly, summarise its gates, monitor them per epoch.

Training stays on the fused kernels (cuDNN on GPU); ``lstm_gate_activations`` recomputes every
gate from the weights. Torch and Lightning only: artifacts leave through an injected sink.
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

GATES = ("input", "forget", "cell", "output")  # PyTorch's order in weight_ih_l{k}: i, f, g, o
SIGMOID_GATES = ("input", "forget", "output")
# Karpathy, Johnson & Fei-Fei (2015): a sigmoid gate is left-saturated below 0.1, right above 0.9.
# The cell candidate g is a tanh in [-1, 1]; its saturation uses -0.9 / 0.9.
SATURATION = {"input": (0.1, 0.9), "forget": (0.1, 0.9), "output": (0.1, 0.9), "cell": (-0.9, 0.9)}
# Per-unit memory timescales (trading days): the shares above these are logged every epoch; a
# saturated unit (mean f = 1 in float) is counted at TIMESCALE_CAP so quantiles stay finite.
TIMESCALE_SHARES = (5, 20, 60)
TIMESCALE_CAP = 1e6


@dataclass(frozen=True)
class GateActivations:
    """Every gate, cell state and hidden state of every layer and step: each (L, B, T, H)."""

    input: torch.Tensor
    forget: torch.Tensor
    cell: torch.Tensor  # the candidate g_t
    output: torch.Tensor
    c: torch.Tensor  # cell state c_t
    h: torch.Tensor  # hidden state h_t

    def gate(self, name: str) -> torch.Tensor:
        """One gate by name (``input``, ``forget``, ``cell``, ``output``)."""
        return getattr(self, name)


def check_supported(lstm: nn.Module) -> nn.LSTM:
    """Return ``lstm`` if the replay supports it, else raise a ``ValueError`` that says why."""
    if not isinstance(lstm, nn.LSTM):
        raise TypeError(f"expected a torch.nn.LSTM, got {type(lstm).__name__}")
    if lstm.bidirectional:
        raise ValueError("bidirectional LSTMs are not supported by the gate replay")
    if lstm.proj_size:
        raise ValueError(f"LSTMs with proj_size ({lstm.proj_size}) are not supported")
    return lstm


@torch.no_grad()
def lstm_gate_activations(
    lstm: nn.LSTM, x: torch.Tensor, ablate: Mapping[int, torch.Tensor] | None = None
) -> GateActivations:
    """Replay ``lstm`` on ``x`` (its batch_first layout, zero initial state) in eval semantics.

    Returns input/forget/cell/output gates and c_t, h_t of every layer and step, shaped
    (layers, batch, time, hidden), equal to what ``nn.LSTM`` computes (no inter-layer dropout).
    The model is not modified (no mode switch, no gradients).

    ``ablate``: layer -> boolean (hidden,) mask of units whose c_t and h_t are forced to 0 at
    every step of that layer (so they reach neither the recurrence nor the layer above); the
    recurrence is otherwise exact. An all-False mask changes nothing. A (batch, hidden) mask
    silences other units in each window (several ablations in one replay).
    """
    check_supported(lstm)
    weight = lstm.all_weights[0][0]  # weight_ih_l0, typed as a tensor
    x = x.to(device=weight.device, dtype=weight.dtype)
    if x.ndim != 3:
        raise ValueError(f"expected a 3-d input batch, got shape {tuple(x.shape)}")
    if lstm.batch_first is False:
        x = x.transpose(0, 1)  # (T, B, F) -> (B, T, F)
    if x.shape[-1] != lstm.input_size:
        raise ValueError(f"input has {x.shape[-1]} features, the LSTM expects {lstm.input_size}")
    batch, steps, hidden = x.shape[0], x.shape[1], lstm.hidden_size
    layers: dict[str, list[torch.Tensor]] = {"gates": [], "c": [], "h": []}
    layer_input = x  # (B, T, F)
    for layer in range(lstm.num_layers):
        w_ih = getattr(lstm, f"weight_ih_l{layer}")  # (4H, F)
        w_hh = getattr(lstm, f"weight_hh_l{layer}")  # (4H, H)
        projected = layer_input @ w_ih.T  # (B, T, 4H), every step at once
        if lstm.bias:
            bias = getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
            projected = projected + bias
        h = x.new_zeros(batch, hidden)
        c = x.new_zeros(batch, hidden)
        keep = None
        if ablate is not None and layer in ablate:
            mask = torch.as_tensor(ablate[layer], dtype=torch.bool, device=x.device)
            if mask.shape not in {(hidden,), (batch, hidden)}:
                raise ValueError(
                    f"the ablation mask of layer {layer} has shape {tuple(mask.shape)}, "
                    f"expected ({hidden},) or ({batch}, {hidden})"
                )
            keep = (~mask).to(x.dtype)
        gate_steps, c_steps, h_steps = [], [], []
        for t in range(steps):
            z = torch.addmm(projected[:, t], h, w_hh.T)  # (B, 4H)
            act = torch.sigmoid(z)
            act[:, 2 * hidden : 3 * hidden] = torch.tanh(z[:, 2 * hidden : 3 * hidden])
            i, f, g, o = act.chunk(4, dim=1)
            c = torch.addcmul(f * c, i, g)
            h = o * torch.tanh(c)
            if keep is not None:
                c, h = c * keep, h * keep
            gate_steps.append(act)
            c_steps.append(c)
            h_steps.append(h)
        layer_input = torch.stack(h_steps, dim=1)  # (B, T, H)
        layers["gates"].append(torch.stack(gate_steps, dim=1))  # (B, T, 4H)
        layers["c"].append(torch.stack(c_steps, dim=1))
        layers["h"].append(layer_input)
    i, f, g, o = torch.stack(layers["gates"]).chunk(4, dim=-1)  # 4 x (L, B, T, H)
    return GateActivations(i, f, g, o, c=torch.stack(layers["c"]), h=torch.stack(layers["h"]))


def gate_statistics(acts: GateActivations) -> dict[str, float]:
    """Summary metrics keyed ``gates/l{layer}/{gate}/{stat}``.

    Per gate and layer: mean, std, sat_left, sat_right (fractions of all activations). The
    forget gate adds ``timescale``: the memory half-life-like decay time in steps (trading days),
    -1 / ln(mean f). The cell state adds ``norm_start``, ``norm_end`` (mean L2 norm of c_t at the
    first and last step) and ``norm_growth`` (their ratio). The per-unit memory timescales
    (``unit_timescales``) add ``gates/l{layer}/timescale/{median,q10,q90}`` and the share of units
    above 5, 20 and 60 days (``share_gt_5`` ...).
    """
    stats: dict[str, float] = {}
    taus = unit_timescales(acts)
    for layer in range(acts.h.shape[0]):
        for name in GATES:
            values = acts.gate(name)[layer].float()
            low, high = SATURATION[name]
            key = f"gates/l{layer}/{name}"
            stats[f"{key}/mean"] = float(values.mean())
            stats[f"{key}/std"] = float(values.std())
            stats[f"{key}/sat_left"] = float((values < low).float().mean())
            stats[f"{key}/sat_right"] = float((values > high).float().mean())
        stats[f"gates/l{layer}/forget/timescale"] = timescale(stats[f"gates/l{layer}/forget/mean"])
        norms = acts.c[layer].float().norm(dim=-1).mean(dim=0)  # (T,)
        start, end = float(norms[0]), float(norms[-1])
        stats[f"gates/l{layer}/cell_state/norm_start"] = start
        stats[f"gates/l{layer}/cell_state/norm_end"] = end
        stats[f"gates/l{layer}/cell_state/norm_growth"] = end / start if start > 0 else math.inf
        stats.update(timescale_summary(taus[layer], f"gates/l{layer}/timescale"))
    return stats


def unit_timescales(acts: GateActivations) -> np.ndarray:
    """(layers, hidden) each unit's memory timescale -1 / ln(mean f) in steps, the mean over
    every window and step of ``acts``; capped at ``TIMESCALE_CAP`` (a unit whose f is 1)."""
    mean = acts.forget.double().mean(dim=(1, 2)).cpu().numpy()  # (L, H)
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
    """Memory timescale in steps of a forget gate with mean ``f``: -1 / ln(f) (inf at f = 1)."""
    if mean_forget >= 1.0:
        return math.inf
    if mean_forget <= 0.0:
        return 0.0
    return -1.0 / math.log(mean_forget)


def unit_table(acts: GateActivations, epoch: int) -> pd.DataFrame:
    """Tidy per-unit statistics: one row per (layer, gate, unit)."""
    rows = []
    for layer in range(acts.h.shape[0]):
        for name in GATES:
            values = acts.gate(name)[layer].float().flatten(0, 1)  # (B*T, H)
            low, high = SATURATION[name]
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
                    "timescale": [timescale(m) for m in mean] if name == "forget" else np.nan,
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


def snapshot(acts: GateActivations, epoch: int, sample: int = 0, bins: int = 50) -> GateSnapshot:
    """Summarise ``acts`` for the per-epoch artifacts."""
    histograms, edges = {}, {}
    for name in GATES:
        low, high = (-1.0, 1.0) if name == "cell" else (0.0, 1.0)
        values = acts.gate(name).float()
        counts = torch.stack([torch.histc(v, bins=bins, min=low, max=high) for v in values])
        histograms[name] = (
            (counts / counts.sum(dim=1, keepdim=True) * bins / (high - low)).cpu().numpy()
        )
        edges[name] = np.linspace(low, high, bins + 1)
    return GateSnapshot(
        epoch=epoch,
        units=unit_table(acts, epoch),
        sample={name: acts.gate(name)[:, sample].float().cpu().numpy() for name in GATES},
        histograms=histograms,
        edges=edges,
    )


def find_lstm(module: nn.Module) -> nn.LSTM:
    """The one ``nn.LSTM`` inside ``module``; a clear error if there is none or several."""
    found = [m for m in module.modules() if isinstance(m, nn.LSTM)]
    if len(found) != 1:
        raise ValueError(
            f"GateMonitor needs exactly one torch.nn.LSTM in the LightningModule, found {len(found)}"
        )
    return check_supported(found[0])


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
        self._lstm: nn.LSTM | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.logger is None:
            raise ValueError(
                "GateMonitor logs through the trainer's logger: pass Trainer(logger=...)"
            )
        self._lstm = find_lstm(pl_module)
        if self.batch.shape[-1] != self._lstm.input_size:
            raise ValueError(
                f"GateMonitor's batch has {self.batch.shape[-1]} features, the LSTM expects "
                f"{self._lstm.input_size}"
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
            self.snapshots[int(epoch)] = GateSnapshot(epoch=int(epoch), units=units, **parts)

    def history_frame(self) -> pd.DataFrame:
        """Per-epoch statistics as a tidy frame: epoch, layer, gate, stat, value."""
        return history_to_frame(self.history)

    def _replay(self) -> GateActivations:
        assert self._lstm is not None, "GateMonitor.setup has not run"
        return lstm_gate_activations(self._lstm, self.batch)


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
