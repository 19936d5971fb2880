"""Figures of a gated model's gates (LSTM, GRU), sized and labelled to read well in the MLflow UI.

Each figure reads the model's gates from what it draws (a snapshot's ``spec``, or the gate names
of a units table or history): the LSTM's i, f, g, o or the GRU's r, z, n, and the memory gate
(forget f, update z) whose mean gives the timescale.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from stockpred.figures.common import new_figure, plain_log_axis
from stockpred.gates import TIMESCALE_CAP, GateMonitor, GateSnapshot
from stockpred.models import MODELS, GateSpec

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# colours by a gate's place in its model's order: the LSTM's input C0, forget C3, cell C2,
# output C1; the GRU's reset C0, update C3 (the memory gate red in both), new C2
PALETTE = ("C0", "C3", "C2", "C1", "C4", "C5")


def gate_spec(gates: Iterable[str]) -> GateSpec:
    """The registered model's gates among which are ``gates`` (e.g. a units table's ``gate``
    column, which may hold only the memory gate's rows)."""
    names = set(gates)
    for model in MODELS.values():
        if model.gate_spec is not None and names <= set(model.gate_spec.names):
            return model.gate_spec
    raise ValueError(f"no registered model has the gates {sorted(names)}")


def colors(spec: GateSpec) -> dict[str, str]:
    """One colour per gate of ``spec``, the same in every figure."""
    return dict(zip(spec.names, PALETTE, strict=False))


def _symbol(spec: GateSpec) -> str:
    """The memory gate's letter (f, z) from its label."""
    return spec.label(spec.memory).split()[-1]


def _units_spec(units: pd.DataFrame) -> GateSpec:
    return gate_spec(units["gate"].unique())


def _history_spec(history: pd.DataFrame) -> GateSpec:
    return gate_spec(history.loc[history["stat"] == "mean", "gate"].unique())


def saturation_figure(units: pd.DataFrame) -> Figure:
    """Per layer and gate, one point per unit at (fraction left-, fraction right-saturated).

    When no unit of any gate ever saturated, one note says so instead of panels of points all at
    (0, 0); a panel whose gate did not saturate says so in its corner.
    """
    layers = sorted(units["layer"].unique())
    epoch = int(units["epoch"].iloc[0])
    spec = _units_spec(units)
    if not (units[["sat_left", "sat_right"]].to_numpy() > 0).any():
        return _nothing_saturated(epoch, spec)
    gates, color = spec.names, colors(spec)
    fig = new_figure(3.3 * len(gates), 3.2 * len(layers))
    axes = fig.subplots(len(layers), len(gates), squeeze=False, sharex=True, sharey=True)
    for row, layer in zip(axes, layers, strict=True):
        for ax, gate in zip(row, gates, strict=True):
            part = units[(units["layer"] == layer) & (units["gate"] == gate)]
            ax.plot([0, 1], [1, 0], color="0.8", lw=0.8)  # left + right = 1: always saturated
            ax.scatter(part["sat_left"], part["sat_right"], s=14, alpha=0.7, color=color[gate])
            if not (part[["sat_left", "sat_right"]].to_numpy() > 0).any():
                ax.text(0.5, 0.5, "no unit saturated", ha="center", transform=ax.transAxes)
            ax.set_xlim(-0.03, 1.03)
            ax.set_ylim(-0.03, 1.03)
            low, high = spec.saturation(gate)
            ax.set_title(f"layer {layer} · {spec.label(gate)}", fontsize=10)
            ax.set_xlabel(f"fraction left-saturated (< {low})")
            ax.set_ylabel(f"fraction right-saturated (> {high})")
    fig.suptitle(f"Gate saturation per unit, epoch {epoch} (Karpathy et al. 2015)", fontsize=12)
    return fig


NOTHING_SATURATED = "No unit saturated"


def _nothing_saturated(epoch: int, spec: GateSpec) -> Figure:
    """The saturation figure of an epoch in which no gate activation crossed its thresholds."""
    sigmoid = ", ".join(spec.label(g) for g in spec.names if g not in spec.tanh)
    tanh = ", ".join(spec.label(g) for g in spec.names if g in spec.tanh)
    fig = new_figure(8, 1.6)
    ax = fig.subplots()
    ax.set_axis_off()
    ax.text(
        0.5,
        0.5,
        f"{NOTHING_SATURATED} at epoch {epoch}: every activation of {sigmoid} "
        f"stayed\nbetween 0.1 and 0.9 and of {tanh} between -0.9 and 0.9, so all units "
        "mix softly\n(no unit acts as an on/off switch).",
        ha="center",
        va="center",
        fontsize=11,
        transform=ax.transAxes,
    )
    fig.suptitle(f"Gate saturation per unit, epoch {epoch} (Karpathy et al. 2015)", fontsize=12)
    return fig


def unit_order(snap: GateSnapshot) -> dict[int, np.ndarray]:
    """Per layer, the units from the highest mean memory-gate activation (forget f, update z:
    longest memory) down: the row order of the heatmaps, the same for every gate of a layer so
    rows line up."""
    gate = snap.spec.memory
    memory = snap.units[snap.units["gate"] == gate] if len(snap.units) else snap.units
    order = {}
    for layer in range(snap.sample[gate].shape[0]):
        mine = memory[memory["layer"] == layer] if len(memory) else memory
        if len(mine):
            means = mine.sort_values("unit")["mean"].to_numpy()
        else:  # no unit table: the window's own memory-gate means
            means = snap.sample[gate][layer].mean(axis=0)
        order[layer] = np.argsort(-means, kind="stable")
    return order


def heatmap_figure(
    snap: GateSnapshot, price_path: np.ndarray | None = None, label: str = "one input window"
) -> Figure:
    """Each gate's activation over time steps x units for one window, the input path above;
    units sorted per layer by mean memory gate (``unit_order``), longest memory on top."""
    spec = snap.spec
    gates = spec.names
    layers, steps, _ = snap.sample[spec.memory].shape
    fig = new_figure(4.2 * layers + 1.5, 2.0 + 2.3 * len(gates))
    grid = fig.add_gridspec(1 + len(gates), layers, height_ratios=[1.0] + [1.4] * len(gates))
    days = np.arange(-steps + 1, 1)
    order = unit_order(snap)
    top = fig.add_subplot(grid[0, :])
    if price_path is not None and len(price_path) == steps:
        top.plot(days, price_path, color="k", lw=1.2)
        top.set_ylabel("close (start = 100)")
    else:
        top.text(0.5, 0.5, "input price path not available", ha="center", transform=top.transAxes)
    top.set_xlim(days[0] - 0.5, days[-1] + 0.5)
    top.set_title(f"Gate activations over {label}, epoch {snap.epoch}")
    top.set_xlabel("trading day relative to the forecast date")
    for layer in range(layers):
        for row, gate in enumerate(gates, start=1):
            ax = fig.add_subplot(grid[row, layer])
            values = snap.sample[gate][layer].T[order[layer]]  # (H, T), sorted units
            low, high = spec.range(gate)
            image = ax.imshow(
                values,
                aspect="auto",
                cmap="viridis",
                vmin=low,
                vmax=high,
                interpolation="nearest",
                extent=(days[0] - 0.5, days[-1] + 0.5, values.shape[0] - 0.5, -0.5),
            )
            ax.set_title(f"layer {layer} · {spec.label(gate)}", fontsize=10)
            ax.set_ylabel(f"units by mean {_symbol(spec)}\n(longest memory on top)", fontsize=8)
            ax.set_xlabel("trading day")
            fig.colorbar(image, ax=ax, label="activation", fraction=0.046, pad=0.02)
    return fig


def trajectory_figure(history: pd.DataFrame) -> Figure:
    """Gate means, saturation fractions and the memory gate's timescale over epochs, per layer.

    Honest ranges: means on the gates' full range (-1 to 1), fractions from 0, timescales from 0
    to at least twice their largest value, with the span over the epochs written in the panel,
    so a flat line of noise (1.406 to 1.412 days) does not look like a trend.
    """
    layers = sorted(history["layer"].unique())
    spec = _history_spec(history)
    color = colors(spec)
    stats = (
        ("mean", "mean activation"),
        ("sat_right", "fraction right-saturated"),
        ("sat_left", "fraction left-saturated"),
    )
    fig = new_figure(16, 3.3 * len(layers))
    axes = fig.subplots(len(layers), len(stats) + 1, squeeze=False)
    for row, layer in zip(axes, layers, strict=True):
        mine = history[history["layer"] == layer]
        for ax, (stat, label) in zip(row[:-1], stats, strict=True):
            top = 0.0
            for gate in spec.names:
                part = mine[(mine["gate"] == gate) & (mine["stat"] == stat)].sort_values("epoch")
                top = max(top, float(part["value"].max()) if len(part) else 0.0)
                ax.plot(
                    part["epoch"],
                    part["value"],
                    marker="o",
                    ms=3,
                    color=color[gate],
                    label=spec.label(gate),
                )
            if stat == "mean":
                ax.set_ylim(-1.02, 1.02)  # a tanh candidate spans -1..1, the sigmoid gates 0..1
            else:
                ax.set_ylim(0.0, max(0.05, min(1.0, 1.15 * top)))
            ax.set_title(f"layer {layer} · {label}", fontsize=10)
            ax.set_ylabel(label)
        _timescale_panel(row[-1], mine, layer, spec)
        for ax in row:
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        row[0].legend(fontsize=8)
    fig.suptitle("Gate statistics over training (fixed batch of validation windows)", fontsize=12)
    return fig


def _timescale_panel(ax: Axes, mine: pd.DataFrame, layer: int, spec: GateSpec) -> None:
    """tau of the mean memory gate (and the median unit's) over epochs, from 0, span written."""
    gate, symbol = spec.memory, _symbol(spec)
    tau = mine[(mine["gate"] == gate) & (mine["stat"] == "timescale")].sort_values("epoch")
    ax.plot(
        tau["epoch"],
        tau["value"],
        marker="o",
        ms=3,
        color=colors(spec)[gate],
        label=f"mean {symbol}",
    )
    median = mine[(mine["gate"] == "timescale") & (mine["stat"] == "median")].sort_values("epoch")
    if len(median):
        ax.plot(median["epoch"], median["value"], ls="--", color="0.3", lw=1, label="median unit")
        ax.legend(fontsize=8, loc="lower right")
    values = pd.concat([tau["value"], median["value"]]).astype(float)
    values = values[np.isfinite(values)]
    if len(values):
        low, high = float(values.min()), float(values.max())
        ax.set_ylim(0.0, max(2.0 * high, 2.0))
        ax.text(
            0.02,
            0.95,
            f"span over epochs: {low:.3g}–{high:.3g} days",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
        )
    ax.set_title(f"layer {layer} · {gate}-gate memory timescale", fontsize=10)
    ax.set_ylabel(f"τ = -1 / ln(mean {symbol})  (trading days)")


def histogram_figure(snap: GateSnapshot) -> Figure:
    """Histograms of each gate's activations over the diagnostic batch, per layer."""
    spec = snap.spec
    gates, color = spec.names, colors(spec)
    layers = snap.histograms[spec.memory].shape[0]
    fig = new_figure(3.3 * len(gates), 2.8 * layers)
    axes = fig.subplots(layers, len(gates), squeeze=False)
    for layer, row in enumerate(axes):
        for ax, gate in zip(row, gates, strict=True):
            edges = snap.edges[gate]
            ax.stairs(snap.histograms[gate][layer], edges, fill=True, color=color[gate])
            for threshold in spec.saturation(gate):
                ax.axvline(threshold, color="k", lw=0.6, ls="--")
            ax.set_xlim(edges[0], edges[-1])
            ax.set_title(f"layer {layer} · {spec.label(gate)}", fontsize=10)
            ax.set_xlabel("activation")
            ax.set_ylabel("density")
    fig.suptitle(
        f"Gate activation distributions, epoch {snap.epoch} (dashed: saturation thresholds)",
        fontsize=12,
    )
    return fig


def gate_artifacts(
    monitor: GateMonitor, price_path: np.ndarray | None = None, label: str = "one input window"
) -> Iterator[tuple[str, Figure | pd.DataFrame]]:
    """Every artifact of a monitored fit as (artifact file, figure or table), figures drawn lazily."""
    for epoch, snap in sorted(monitor.snapshots.items()):
        tag = f"epoch_{epoch:03d}"
        yield f"gates/units_{tag}.parquet", snap.units
        yield f"gates/saturation_{tag}.png", saturation_figure(snap.units)
        yield f"gates/heatmap_{tag}.png", heatmap_figure(snap, price_path, label)
        yield f"gates/histograms_{tag}.png", histogram_figure(snap)
    if monitor.snapshots:
        first, last = min(monitor.snapshots), max(monitor.snapshots)
        units = pd.concat([monitor.snapshots[e].units for e in sorted({first, last})])
        window = int(monitor.batch.shape[1])
        yield (
            f"gates/timescale_spectrum_epoch_{last:03d}.png",
            timescale_spectrum_figure(units, window),
        )
    if monitor.history:
        history = monitor.history_frame()
        yield "gates/history.parquet", history
        yield "gates/trajectories.png", trajectory_figure(history)


def timescale_figure(units: pd.DataFrame, window: int) -> Figure:
    """Per layer, every unit's memory-gate timescale, sorted, one line per epoch in ``units``."""
    spec = _units_spec(units)
    forget = units[units["gate"] == spec.memory]
    layers = sorted(forget["layer"].unique())
    fig = new_figure(5.5 * len(layers), 4)
    axes = np.atleast_1d(fig.subplots(1, len(layers), sharey=True))
    for ax, layer in zip(axes, layers, strict=True):
        for epoch, part in forget[forget["layer"] == layer].groupby("epoch"):
            days = np.sort(part["timescale"].clip(upper=1e4).to_numpy())[::-1]
            ax.plot(np.arange(len(days)), days, marker="o", ms=3, label=f"epoch {epoch}")
        ax.axhline(window, color="k", ls="--", lw=0.8, label=f"input window ({window} days)")
        ax.axhline(1, color="0.5", ls=":", lw=0.8, label="1 day")
        plain_log_axis(ax)
        ax.set_xlabel("unit, sorted by timescale")
        ax.set_title(f"layer {layer}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel(f"memory timescale -1 / ln(mean {_symbol(spec)}) (trading days)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{spec.memory.capitalize()}-gate memory timescale per unit")
    return fig


UNTRAINED_TIMESCALE = -1.0 / np.log(0.5)  # 1.44 days: a memory gate at sigmoid(0) = 0.5


def timescale_spectrum_figure(units: pd.DataFrame, window: int) -> Figure:
    """Per layer, the units sorted by memory timescale (log axis), one line per epoch in
    ``units`` (the first and last logged), against 1.44 days (untrained, f = 0.5) and the input
    window."""
    spec = _units_spec(units)
    forget = units[units["gate"] == spec.memory]
    layers = sorted(forget["layer"].unique())
    fig = new_figure(5.5 * len(layers), 4.2)
    axes = np.atleast_1d(fig.subplots(1, len(layers), sharey=True))
    for ax, layer in zip(axes, layers, strict=True):
        mine = forget[forget["layer"] == layer]
        for epoch, part in mine.groupby("epoch"):
            days = np.sort(part["timescale"].astype(float).clip(upper=TIMESCALE_CAP).to_numpy())
            rank = np.arange(1, len(days) + 1)
            ax.plot(rank, days, marker="o", ms=3, lw=1.2, label=f"epoch {epoch}")
        ax.axhline(UNTRAINED_TIMESCALE, color="0.5", ls=":", lw=0.9, label="untrained (1.44 d)")
        ax.axhline(window, color="k", ls="--", lw=0.8, label=f"input window ({window} d)")
        plain_log_axis(ax)
        ax.set_xlabel("unit rank (sorted by timescale)")
        ax.set_title(f"layer {layer}", fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel(f"memory timescale τ = -1 / ln(mean {_symbol(spec)})  (trading days, log)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Memory-timescale spectrum per unit (fixed batch of validation windows)")
    return fig


def ablation_figure(table: pd.DataFrame, loss_name: str = "loss") -> Figure:
    """One bar per timescale band: the change of the test loss per unit silenced (a band of many
    units is not taller for its size alone), labelled with the band's units and total change."""
    fig = new_figure(6.5, 4)
    ax = fig.subplots()
    positions = np.arange(len(table))
    deltas = table["delta_loss"].to_numpy(dtype=float)
    units = table["units"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_unit = np.where(units > 0, deltas / units, 0.0)
    colors = ["C3" if d > 0 else "C0" for d in per_unit]
    bars = ax.bar(positions, per_unit, color=colors)
    labels = [
        f"{int(u)} units\nΔ {d:+.2g}" if u > 0 else "0 units"
        for u, d in zip(units, deltas, strict=True)
    ]
    ax.bar_label(bars, labels=labels, fontsize=8)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(
        positions, [_band_label(lo, hi) for lo, hi in zip(table["low"], table["high"], strict=True)]
    )
    ax.set_xlabel("units ablated: memory-timescale band τ (trading days)")
    ax.set_ylabel(f"Δ test {loss_name} per unit silenced")
    ax.set_title("Ablation by memory timescale, per unit (above 0: the band's memory is used)")
    return fig


def _band_label(low: float, high: float) -> str:
    if low <= 0 and not np.isfinite(high):
        return "all"
    if low <= 0:
        return f"< {high:g}"
    return f"> {low:g}" if not np.isfinite(high) else f"{low:g}–{high:g}"
