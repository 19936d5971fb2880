"""The known-optimum check at full size: AR(1) returns (phi = 0.3) and pure noise, several seeds.

The LSTM (the default model config) must close >= 80% of the MSE gap between the zero forecast
and the Bayes-optimal phi * r_t on AR(1) data, and must not beat zero on noise.

    .venv/bin/python -m benchmarks.synthetic_optimum [--days 8000] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=8000)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()

    from stockpred.config import load_config
    from stockpred.controls import ar1_prices, optimum_check

    config = load_config(
        {
            "data": {"tickers": ["SYN"]},
            "gates": {"enabled": False},
            "train": {"progress_bar": False},
        }
    )
    rows = []
    for seed in range(args.seeds):
        for phi in (0.3, 0.0):
            check = optimum_check(ar1_prices(args.days, phi, seed=seed), phi, config)
            row = {
                "seed": seed,
                "phi": phi,
                "rows": check.rows,
                "mse_lstm": check.mse_lstm,
                "mse_zero": check.mse_zero,
                "mse_optimal": check.mse_optimal,
                "lstm_vs_zero": check.mse_lstm / check.mse_zero,
                "gap_closed": check.gap_closed if phi else None,
            }
            rows.append(row)
            gap = f"gap closed {row['gap_closed']:.3f} (target >= 0.8)" if phi else "no structure"
            print(
                f"seed {seed} phi {phi}: MSE lstm/zero {row['lstm_vs_zero']:.4f}, {gap}", flush=True
            )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "synthetic_optimum.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
