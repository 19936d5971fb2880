"""The volatility task on the embedded sample: the LSTM and every baseline, per index.

^GSPC and ^IXIC 1999-2018 (test = the last 15% of dates, about 2016-2018), Parkinson target,
horizons 1 and 5 days, several seeds: the LSTM (1 layer, 32 units, window 66, QLIKE loss,
pooled over both indices) and each baseline's test QLIKE relative to HAR's, and the
Diebold-Mariano t of each model's QLIKE vs HAR and vs HARX (negative: the model is better), per
index. Baselines are deterministic (the same for every seed); the LSTM's numbers are the mean
over seeds (and its spread). Results in benchmarks/results/volatility.json.

    .venv/bin/python -m benchmarks.volatility [--seeds 3] [--epochs 15] [--horizons 1 5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def per_index(predictions: Any, horizon: int) -> dict[str, dict[str, dict[str, float]]]:
    """{ticker: {model: {qlike_vs_har, dm_vs_har, dm_vs_harx}}} from one run's predictions."""
    from stockpred.tasks.volatility import dm_tests
    from stockpred.variance import qlike

    out: dict[str, dict[str, dict[str, float]]] = {}
    models = [c for c in predictions.columns if c not in ("date", "ticker", "actual")]
    for ticker, part in predictions.groupby("ticker"):
        har = qlike(part["actual"], part["har"])
        rows: dict[str, dict[str, float]] = {}
        for model in models:
            row = {"qlike_vs_har": qlike(part["actual"], part[model]) / har}
            for against in ("har", "harx"):
                if model != against:
                    row[f"dm_vs_{against}"] = dm_tests(part, horizon, model)[against][0]
            rows[model] = row
        out[str(ticker)] = rows
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--horizons", type=int, nargs="+", default=[1, 5])
    args = parser.parse_args()

    import numpy as np

    from stockpred import experiment
    from stockpred.config import load_config

    results: dict[str, Any] = {"seeds": args.seeds, "epochs": args.epochs, "horizons": {}}
    for horizon in args.horizons:
        runs = []
        for seed in range(args.seeds):
            config = load_config(
                {
                    "target": {"kind": "volatility", "estimator": "parkinson", "loss": "qlike"},
                    "features": {"horizon": horizon},
                    "model": {"window": 66, "hidden_size": 32, "num_layers": 1, "dropout": 0.0},
                    "train": {"max_epochs": args.epochs, "seed": seed, "progress_bar": False},
                    "gates": {"enabled": False},
                }
            )
            started = time.perf_counter()
            outcome = experiment.run(config)
            dates = outcome.evaluation.predictions["date"]
            runs.append(per_index(outcome.evaluation.predictions, horizon))
            print(
                f"h={horizon} seed={seed}: {time.perf_counter() - started:.0f} s, test "
                f"{str(dates.min())[:10]}..{str(dates.max())[:10]}",
                flush=True,
            )
        table: dict[str, Any] = {}
        for ticker, models in runs[0].items():
            table[ticker] = {}
            for model, row in models.items():
                values = {k: [r[ticker][model][k] for r in runs] for k in row}
                table[ticker][model] = {k: float(np.mean(v)) for k, v in values.items()}
                if model == "lstm":
                    table[ticker][model]["qlike_vs_har_sd"] = float(np.std(values["qlike_vs_har"]))
        results["horizons"][str(horizon)] = table
        print(f"\nhorizon {horizon} day(s): QLIKE / HAR's, DM t vs HAR and vs HARX")
        print(f"{'model':<9}" + "".join(f"{t:>26}" for t in table))
        for model in next(iter(table.values())):
            cells = []
            for ticker in table:
                r = table[ticker][model]
                cells.append(
                    f"{r['qlike_vs_har']:>10.3f}{r.get('dm_vs_har', float('nan')):>8.2f}"
                    f"{r.get('dm_vs_harx', float('nan')):>8.2f}"
                )
            print(f"{model:<9}" + "".join(cells))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "volatility.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
