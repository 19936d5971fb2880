"""The default volatility run judged at the literature's standard, per index and pooled.

Trains the default volatility config (``stockpred train --target volatility``: 2 x 64 LSTM,
window 60, QLIKE loss, up to 15 epochs; ``--epochs`` to shorten, ``--universe`` for the stocks)
untracked, then prints: each ticker's test QLIKE of the per-series HAR, the plain pooled HAR (one
OLS over every ticker, as before per-series fits) and the scaled panel HAR (``har_pooled``); the
verdict against the strongest baseline, pooled and per ticker (DM t, p); the model confidence set
at 10% and 25% on QLIKE (all tickers and each); the per-ticker DM win/tie/loss counts. Results in
benchmarks/results/volatility_eval.json.

    .venv/bin/python -m benchmarks.volatility_eval [--epochs 15] [--universe indices]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--universe", default="indices")
    args = parser.parse_args()

    import numpy as np

    from stockpred import experiment
    from stockpred.config import load_config
    from stockpred.features import variance_feature
    from stockpred.split import TEST, TRAIN
    from stockpred.tasks import Part, task_for
    from stockpred.tasks.base import key_part, mcs_pvalues
    from stockpred.tasks.volatility.baselines import raw_feature
    from stockpred.variance import ols, ols_predict, qlike

    overrides: dict[str, Any] = {
        "target": {"kind": "volatility"},
        "data": {"universe": args.universe},
        "train": {"max_epochs": args.epochs, "progress_bar": False},
    }
    config = load_config(overrides)
    task = task_for(config)
    started = time.perf_counter()
    outcome = experiment.run(config)
    seconds = time.perf_counter() - started
    evaluation, prepared = outcome.evaluation, outcome.prepared
    metrics, predictions = evaluation.metrics, evaluation.predictions

    # the plain pooled HAR (one OLS over every ticker's training windows, no per-ticker scale)
    train = Part.of(prepared, TRAIN)
    design = np.column_stack(
        [
            np.exp(raw_feature(prepared, variance_feature(config.target.estimator, d)))
            for d in (1, 5, 22)
        ]
    )
    coef = ols(design[train.rows], prepared.actual[train.rows])
    test_rows = Part.of(prepared, TEST).rows  # the rows of the predictions, in their order
    plain = np.maximum(ols_predict(coef, design[test_rows]), 1e-8)

    out: dict[str, Any] = {
        "config": {"epochs": args.epochs, "universe": args.universe},
        "seconds": seconds,
        "test": [str(predictions["date"].min())[:10], str(predictions["date"].max())[:10]],
        "per_ticker": {},
    }
    print(f"trained and scored in {seconds:.0f} s; test {out['test'][0]}..{out['test'][1]}")
    print(f"{'ticker':<8}{'HAR per series':>16}{'HAR pooled (plain)':>20}{'har_pooled':>12}")
    for ticker, part in predictions.groupby("ticker", sort=False):
        at = (predictions["ticker"] == ticker).to_numpy()
        row = {
            "har": qlike(part["actual"], part["har"]),
            "har_plain_pooled": qlike(part["actual"], plain[at]),
            "har_pooled": qlike(part["actual"], part["har_pooled"]),
        }
        out["per_ticker"][str(ticker)] = row
        print(
            f"{ticker:<8}{row['har']:>16.4f}{row['har_plain_pooled']:>20.4f}"
            f"{row['har_pooled']:>12.4f}"
        )
    verdict = task.verdict(metrics)
    out["verdict"] = verdict.sentence() if verdict else None
    print("\nall tickers: " + (out["verdict"] or "no verdict"))
    for ticker in predictions["ticker"].unique():
        key = key_part(str(ticker))
        scores = {
            m: metrics[f"baseline/{m}/test/qlike/{key}"]
            for m in task.baseline_names
            if f"baseline/{m}/test/qlike/{key}" in metrics
        }
        if not scores:
            continue
        best = min(scores, key=lambda m: scores[m])
        lstm = metrics[f"test/qlike/{key}"]
        t = metrics.get(f"test/dm_vs_{best}/{key}/t", float("nan"))
        p = metrics.get(f"test/dm_vs_{best}/{key}/p", float("nan"))
        line = (
            f"{ticker}: LSTM {lstm:.4f} vs the strongest baseline here, {best}, "
            f"{scores[best]:.4f} (ratio {lstm / scores[best]:.3f}; DM t {t:+.2f}, p {p:.3f})"
        )
        out["per_ticker"][str(ticker)]["verdict"] = line
        out["per_ticker"][str(ticker)]["scores"] = {**scores, "lstm": lstm}
        print(line)
    out["mcs"] = {}
    for (loss, scope), pvalues in mcs_pvalues(metrics).items():
        members = {a: [m for m, p in pvalues.items() if p >= a] for a in (0.10, 0.25)}
        out["mcs"][f"{loss}/{scope}"] = {"pvalues": pvalues, "members": members}
        if loss == "qlike":
            print(
                f"MCS {loss} {scope}: 10% {members[0.10]}; 25% {members[0.25]}; "
                f"LSTM p {pvalues.get('lstm', float('nan')):.3f}"
            )
    counts = {
        m: [metrics.get(f"test/dm_vs_{m}/{k}") for k in ("wins", "ties", "losses")]
        for m in task.baseline_names
    }
    out["dm_counts"] = counts
    print("per-ticker DM at 5% (LSTM wins/ties/losses):", counts)
    out["table"] = task.summary_rows(metrics)
    print("\n".join(out["table"]))
    RESULTS.mkdir(exist_ok=True)
    name = f"volatility_eval_{args.universe}.json"
    (RESULTS / name).write_text(json.dumps(out, indent=2, default=float))
    print(f"written benchmarks/results/{name}")


if __name__ == "__main__":
    main()
