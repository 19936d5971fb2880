"""What gate diagnostics cost: the same training with and without ``GateMonitor``, side by side.

Both arms train the default config on the embedded sample for the same number of epochs (no early
stopping) and log epoch metrics into a throwaway MLflow store, so the "with" arm pays for the
replay, the statistics and logging ~60 extra metrics per epoch. Arms alternate within each repeat;
the figure is the median of the paired ratios. Drawing the figures and the ablation by timescale
band (``stockpred.ablation.ablate`` on the test windows) happen once after training and are
reported separately, relative to one epoch.

    .venv/bin/python -m benchmarks.gate_overhead [--repeats 5] [--epochs 4] [--memory]

``--memory`` adds a third arm, the gate monitor plus ``stockpred.memory.MemoryMonitor`` (the
truncation curve and saliency by lag, untrained and every epoch), timed in the same rotation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument(
        "--memory", action="store_true", help="a third arm: gates plus the memory measures"
    )
    args = parser.parse_args()
    os.environ["STOCKPRED_HOME"] = tempfile.mkdtemp(prefix="stockpred-bench-")
    os.environ.pop("MLFLOW_TRACKING_URI", None)

    import torch

    from stockpred import ablation, experiment, tracking
    from stockpred.config import PipelineConfig
    from stockpred.figures.gate_plots import gate_artifacts
    from stockpred.gates import GateMonitor
    from stockpred.split import TRAIN

    config = PipelineConfig()
    config = config.with_overrides(
        {
            "target.kind": "return",  # as the published figures were measured
            "train.max_epochs": args.epochs,
            "train.patience": args.epochs + 1,
            "train.progress_bar": False,
            "tracking.experiment": "bench",
        }
    )
    prepared = experiment.build(experiment.load_prices(config.data), config)
    window = config.model.window
    train = prepared.dataset(TRAIN)
    diagnostics = experiment.gate_diagnostics(prepared, config.gates)
    assert diagnostics is not None
    batch = diagnostics.monitor.batch

    fitted: list[Any] = []

    def fit(with_gates: bool, with_memory: bool = False) -> tuple[float, GateMonitor | None]:
        monitor = (
            GateMonitor(batch, artifact_epochs=config.gates.artifact_epochs) if with_gates else None
        )
        memory = experiment.memory_diagnostics(prepared, config) if with_memory else None
        with tracking.tracked_run(config) as run_id:
            started = time.perf_counter()
            result = experiment.fit(
                prepared,
                config,
                logger=tracking.lightning_logger(run_id),
                callbacks=[c for c in (monitor, memory) if c is not None],
            )
            seconds = time.perf_counter() - started
            fitted[:] = [result]
            return seconds, monitor

    fit(True, args.memory)  # warm-up: imports, first-touch allocations
    pairs, monitor, memory_ratios = [], None, []
    arms = ("none", "gates", "memory") if args.memory else ("none", "gates")
    for repeat in range(args.repeats):
        order = arms[repeat % len(arms) :] + arms[: repeat % len(arms)]  # rotate who goes first
        seconds = {}
        for arm in order:
            seconds[arm], mon = fit(arm != "none", arm == "memory")
            monitor = mon or monitor
        pairs.append((seconds["none"], seconds["gates"]))
        line = (
            f"repeat {repeat}: without {seconds['none']:.2f} s, with {seconds['gates']:.2f} s, "
            f"ratio {seconds['gates'] / seconds['none']:.3f}"
        )
        if args.memory:
            memory_ratios.append(seconds["memory"] / seconds["none"])
            line += f"; gates + memory {seconds['memory']:.2f} s, ratio {memory_ratios[-1]:.3f}"
        print(line, flush=True)
    assert monitor is not None
    started = time.perf_counter()
    rendered = list(gate_artifacts(monitor, None))
    for _, item in rendered:
        if hasattr(item, "savefig"):
            item.savefig(Path(tempfile.mkdtemp()) / "f.png")
    render = time.perf_counter() - started
    started = time.perf_counter()
    bands = ablation.ablate(fitted[0].model, prepared, config)
    ablate_seconds = time.perf_counter() - started

    ratios = [with_ / without for without, with_ in pairs]
    epoch = statistics.median(without for without, _ in pairs) / args.epochs
    result = {
        "benchmark": "gate_overhead",
        "config": {
            "epochs": args.epochs,
            "repeats": args.repeats,
            "window": window,
            "hidden_size": config.model.hidden_size,
            "layers": config.model.num_layers,
            "batch_size": config.train.batch_size,
            "diagnostic_batch": len(batch),
            "train_windows": len(train),
        },
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "epoch_seconds_without": epoch,
        "render_seconds": render,
        "render_in_epochs": render / epoch,
        "ablation_seconds": ablate_seconds,
        "ablation_in_epochs": ablate_seconds / epoch,
        "ablation_bands": bands.table.to_dict(orient="records"),
        "memory_ratio_median": statistics.median(memory_ratios) if memory_ratios else None,
        "memory_ratios": memory_ratios,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    print(
        f"\ngate diagnostics, training time with / without: median {result['ratio_median']:.3f} "
        f"(min {result['ratio_min']:.3f}, max {result['ratio_max']:.3f}) over {args.repeats} pairs; "
        f"target <= 1.05"
    )
    if memory_ratios:
        print(
            f"gate + memory diagnostics (truncation curve and saliency, one pass each), training "
            f"time with / without: median {statistics.median(memory_ratios):.3f} over "
            f"{len(memory_ratios)} repeats; target <= 1.10"
        )
    print(
        f"artifacts drawn after training: {render:.1f} s = {result['render_in_epochs']:.1f} epochs "
        f"of {epoch:.2f} s"
    )
    print(
        f"ablation by timescale band after training ({len(bands.table)} bands, "
        f"{int(bands.table['units'].sum())} units): {ablate_seconds:.1f} s = "
        f"{result['ablation_in_epochs']:.2f} epochs"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gate_overhead.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
