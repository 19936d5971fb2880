"""Controls of the gate story: a shuffled target, and planted GARCH memory of known persistence.

1. Shuffled target, on the embedded sample (volatility task, the default model): the same
   training with the training targets permuted in time; per layer, the median unit timescale
   tau untrained, trained, and trained on the shuffled target (target: shuffled ~ untrained).
2. Planted memory: one simulated GARCH(1,1) ticker per persistence alpha + beta (0.90, 0.97,
   0.99; alpha from ``equal_signal_alpha``), the small planted-memory model
   (``synthetic.planted_config``), several seeds: the network's dominant timescale (the
   importance-weighted median tau, ``synthetic.dominant_timescale``) beside the planted half-life
   and the ideal filter's memory -1 / ln(beta) (target: dominant tau rises with persistence).

    .venv/bin/python -m benchmarks.gate_controls [--epochs 3] [--seeds 3] [--days 3000]
        [--init chrono]  (the shuffled-target control with chrono init)
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks.common import save


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="shuffled-target control epochs")
    parser.add_argument("--seeds", type=int, default=3, help="planted-memory seeds")
    parser.add_argument("--days", type=int, default=3000, help="planted-memory days")
    parser.add_argument(
        "--init", choices=("default", "chrono"), default="default", help="control's model.init"
    )
    args = parser.parse_args()

    import numpy as np

    from stockpred import experiment
    from stockpred.config import load_config
    from stockpred.controls import (
        PERSISTENCES,
        planted_config,
        planted_memory,
        shuffled_target_control,
    )

    config = load_config(
        {
            "target": {"kind": "volatility"},
            "model": {"init": args.init},
            "train": {
                "max_epochs": args.epochs,
                "patience": args.epochs + 1,
                "progress_bar": False,
            },
        }
    )
    prepared = experiment.build(experiment.load_prices(config.data), config)
    control = shuffled_target_control(prepared, config)
    table = control.table()
    print(
        f"\nshuffled-target control: embedded sample, volatility, {config.model.num_layers} x "
        f"{config.model.hidden_size} units, {args.init} init, {args.epochs} epochs; median tau "
        "(trading days)"
    )
    print(table.round(3).to_string(index=False))

    rows = []
    for persistence in PERSISTENCES:
        for seed in range(args.seeds):
            fit = planted_memory(persistence, planted_config(seed), days=args.days, seed=seed)
            rows.append(fit.row())
            print(
                f"persistence {persistence} seed {seed}: dominant tau {fit.dominant:.2f}, "
                f"median tau {fit.median:.2f}, test QLIKE {fit.test_loss:.3f}",
                flush=True,
            )
    planted = []
    for persistence in PERSISTENCES:
        mine = [r for r in rows if r["persistence"] == persistence]
        planted.append(
            {
                "persistence": persistence,
                "half_life": mine[0]["half_life"],
                "filter_timescale": mine[0]["filter_timescale"],
                "dominant_tau": statistics.median(r["dominant_tau"] for r in mine),
                "median_tau": statistics.median(r["median_tau"] for r in mine),
                "test_qlike": statistics.median(r["test_qlike"] for r in mine),
            }
        )
    dominant = [p["dominant_tau"] for p in planted]
    ordered = bool(np.all(np.diff(dominant) > 0))
    print(f"\nplanted memory: GARCH(1,1), {args.days} days, median over {args.seeds} seeds")
    print("  alpha+beta  half-life  filter -1/ln(beta)  dominant tau  median tau  test QLIKE")
    for p in planted:
        print(
            f"  {p['persistence']:10.2f}  {p['half_life']:9.1f}  {p['filter_timescale']:18.1f}"
            f"  {p['dominant_tau']:12.2f}  {p['median_tau']:10.2f}  {p['test_qlike']:10.3f}"
        )
    print(f"dominant tau rises with persistence: {'yes' if ordered else 'NO'}")
    save(
        "gate_controls",
        {
            "benchmark": "gate_controls",
            "config": {
                "epochs": args.epochs,
                "seeds": args.seeds,
                "days": args.days,
                "init": args.init,
            },
            "shuffled_target": table.to_dict(orient="records"),
            "planted_memory": planted,
            "planted_runs": rows,
            "ordered": ordered,
        },
    )


if __name__ == "__main__":
    main()
