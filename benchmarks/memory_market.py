"""Where the market's memory lives: ``all`` vs ``daily`` inputs at horizons 1, 5 and 22.

The memory study of the memory issue on the embedded data pooled over the indices and the stocks
(``--universe all``: ^GSPC ^IXIC AAPL GOOG IBM MSFT FB, through 2013-03-01), the volatility task.
Each arm is one ordinary tracked run, ``stockpred train`` with the arm's ``features.include``
(``all``: every feature, the multi-day means included; ``daily``: same-day quantities only) and
horizon, into a throwaway MLflow store; the table is read back from the runs: the LSTM's test
QLIKE, its ratio to HAR and to the strongest baseline (named), the memory it uses (k90 and the
saliency decay, untrained -> the kept epoch), the gates' median forget timescale, and the
memory-value optimum of the target (the best EWMA's tau). A window of 66 days is at least 3x the
longest horizon. Results in benchmarks/results/memory_market.json.

    .venv/bin/python -m benchmarks.memory_market [--epochs 8] [--horizons 1 5 22]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
SETS = ("all", "daily")


def command(feature_set: str, horizon: int, args: argparse.Namespace) -> list[str]:
    """The arm's ``stockpred train`` command line."""
    return [
        str(Path(sys.executable).with_name("stockpred")), "train",
        "--universe", "all", "--end", args.end,
        "--target", "volatility", "--horizon", str(horizon),
        "--window", str(args.window), "--layers", "1", "--hidden-size", str(args.hidden),
        "--epochs", str(args.epochs), "--seed", str(args.seed),
        "--no-model", "--no-progress",
        "--experiment", "memory-market", "--run-name", f"{feature_set}-h{horizon}",
        "--set", f"features.include={feature_set}",
        "--set", f"gates.memory_windows={args.diagnostic}",
        "--set", "tracking.report=off",
    ]  # fmt: skip


def first(metrics: dict[str, float], *keys: str) -> float:
    """The first of ``keys`` the run logged (NaN if none)."""
    return next((float(metrics[k]) for k in keys if k in metrics), float("nan"))


def row_of(run: Any) -> dict[str, Any]:
    """One table row from a finished run."""
    m = run.data.metrics
    return {
        "qlike": first(m, "test/qlike"),
        "vs_har": first(m, "test/qlike_vs_har"),
        "vs_best": first(m, "test/qlike_vs_best"),
        "best": run.data.tags.get("verdict.best_baseline", "?"),
        "k90": first(m, "memory/kept/k90", "memory/k90"),
        "k90_untrained": first(m, "memory/untrained/k90"),
        "saliency_tau": first(m, "memory/kept/saliency_tau", "memory/saliency_tau"),
        "saliency_tau_untrained": first(m, "memory/untrained/saliency_tau"),
        "truncation_k5": first(m, "memory/kept/truncation_k5", "memory/truncation_k5"),
        "gate_tau": first(m, "gates/kept/l0/timescale/median", "gates/l0/timescale/median"),
        "best_ewma_tau": first(m, "memory/best_ewma_tau"),
        "best_epoch": first(m, "train/best_epoch"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--horizons", type=int, nargs="+", default=[1, 5, 22])
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--window", type=int, default=66)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--diagnostic", type=int, default=128, help="memory windows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--end", default="2013-03-01")
    args = parser.parse_args()

    import mlflow

    out: dict[str, Any] = {"config": vars(args), "arms": {}}
    with tempfile.TemporaryDirectory(prefix="memory-market-") as tmp:
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db"}
        for horizon in args.horizons:
            for feature_set in args.sets:
                cmd = command(feature_set, horizon, args)
                started = time.perf_counter()
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
                seconds = time.perf_counter() - started
                if done.returncode != 0:
                    sys.exit(f"{feature_set} h={horizon} failed:\n{done.stderr[-3000:]}")
                print(f"{feature_set} h={horizon}: {seconds:.0f} s", flush=True)
                out["arms"][f"{feature_set}/h{horizon}"] = {"seconds": seconds}
        client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
        experiment = client.get_experiment_by_name("memory-market")
        assert experiment is not None
        for run in client.search_runs([experiment.experiment_id]):
            name = run.info.run_name  # "all-h5"
            feature_set, h = name.rsplit("-h", 1)
            out["arms"][f"{feature_set}/h{h}"].update(row_of(run))
    header = (
        "| inputs | h | test QLIKE | vs HAR | vs best (name) | k90 untrained → kept "
        "| saliency τ untrained → kept (d) | loss at k=5 | gate median τ (d) | best EWMA τ (d) |"
    )
    lines = [header, "|" + "---|" * 10]
    for horizon in args.horizons:
        for feature_set in args.sets:
            r = out["arms"][f"{feature_set}/h{horizon}"]
            lines.append(
                f"| {feature_set} | {horizon} | {r['qlike']:.4f} | {r['vs_har']:.3f} "
                f"| {r['vs_best']:.3f} ({r['best']}) | {r['k90_untrained']:.0f} → {r['k90']:.0f} "
                f"| {r['saliency_tau_untrained']:.1f} → {r['saliency_tau']:.1f} "
                f"| {r['truncation_k5']:.3f} | {r['gate_tau']:.2f} | {r['best_ewma_tau']:.1f} |"
            )
    out["table"] = lines
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "memory_market.json").write_text(json.dumps(out, indent=2, default=float))
    print("written benchmarks/results/memory_market.json")


if __name__ == "__main__":
    main()
