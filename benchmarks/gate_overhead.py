"""What gate diagnostics cost: the same training with and without ``GateMonitor``, side by side.

Both arms train the default config on the embedded sample for the same number of epochs (no early
stopping) and log epoch metrics into a throwaway MLflow store, so the "with" arm pays for the
replay, the statistics and logging ~60 extra metrics per epoch. Arms alternate within each repeat;
the figure is the median of the paired ratios. Drawing the figures and the ablation by timescale
band (``stockpred.ablation.ablate`` on the test windows) happen once after training and are
reported separately, relative to one epoch.

    .venv/bin/python -m benchmarks.gate_overhead [--repeats 5] [--epochs 4]
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

    def fit(with_gates: bool) -> tuple[float, GateMonitor | None]:
        monitor = (
            GateMonitor(batch, artifact_epochs=config.gates.artifact_epochs) if with_gates else None
        )
        with tracking.tracked_run(config) as run_id:
            started = time.perf_counter()
            result = experiment.fit(
                prepared,
                config,
                logger=tracking.lightning_logger(run_id),
                callbacks=[monitor] if monitor else [],
            )
            seconds = time.perf_counter() - started
            fitted[:] = [result]
            return seconds, monitor

    fit(True)  # warm-up: imports, first-touch allocations
    pairs, monitor = [], None
    for repeat in range(args.repeats):
        order = (False, True) if repeat % 2 == 0 else (True, False)
        seconds = {}
        for with_gates in order:
            seconds[with_gates], mon = fit(with_gates)
            monitor = mon or monitor
        pairs.append((seconds[False], seconds[True]))
        print(
            f"repeat {repeat}: without {seconds[False]:.2f} s, with {seconds[True]:.2f} s, "
            f"ratio {seconds[True] / seconds[False]:.3f}",
            flush=True,
        )
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
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    print(
        f"\ngate diagnostics, training time with / without: median {result['ratio_median']:.3f} "
        f"(min {result['ratio_min']:.3f}, max {result['ratio_max']:.3f}) over {args.repeats} pairs; "
        f"target <= 1.05"
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
