"""Planted-memory recovery: does memory measured by use find a memory we planted?

Pooled synthetic GARCH(1,1) series (``stockpred.controls.garch_series``: the close-to-close
return is the GARCH shock, so the ideal one-day forecast is an EWMA of squared returns with decay
beta and needs -1 / ln(beta) days of memory: 16.2 at beta = 0.94), one network (1 layer), arms:

- A: returns in, the true next-day log variance out (MSE);
- B: returns in, the next day's noisy Parkinson variance out (QLIKE, the volatility task);
- C: B plus the daily log range (``lv_parkinson``);
- D: C plus its 5- and 22-day means;

inits: forget timescale from below (tau ~ 1: all forget biases logit(e^-1)), above (tau ~ 64),
PyTorch's default, chrono. Controls: A with a shuffled training target, a beta sweep (persistence
0.90 / 0.97 / 0.99 at equal signal: beta 0.746 / 0.884 / 0.94), a frozen-bias sweep (arm C with
every forget bias held at tau in {1, 2, 4, ..., 64}: the best validation loss is the data's
preferred tau). Each fit reports the saliency tau and k90 (``stockpred.memory``) untrained and
trained, the median gate tau, the validation loss and the largest forget-bias move beside the
largest Adam allows (lr x steps). One verdict line per criterion, then results/memory.json.

    .venv/bin/python -m benchmarks.memory                      # the full grid (make bench-memory)
    .venv/bin/python -m benchmarks.memory --series 16 --days 1500 --epochs 6 --frozen 1 4 16 64
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import save

ARMS = {
    "A": ("ret_1d",),
    "B": ("ret_1d",),
    "C": ("ret_1d", "lv_parkinson"),
    "D": ("ret_1d", "lv_parkinson", "lv_parkinson_5d", "lv_parkinson_22d"),
}
INITS = {"below": 1.0, "above": 64.0, "default": None, "chrono": None}
BETA_PERSISTENCE = 0.99  # with equal_signal_alpha: alpha 0.05, beta 0.94
SWEEP = (0.90, 0.97, 0.99)  # persistences of the beta sweep (beta 0.746, 0.884, 0.94)
TOLERANCE = 0.25  # A's saliency tau within +-25% of -1/ln(beta)


def market(series: int, days: int, persistence: float, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """``series`` pooled GARCH tickers (distinct seeds) and their next-day true variance."""
    from stockpred.controls import equal_signal_alpha, garch_series

    alpha = equal_signal_alpha(persistence)
    parts = [
        garch_series(days, persistence, alpha, seed=seed * 1000 + i, ticker=f"G{i:03d}")
        for i in range(series)
    ]
    return pd.concat([p for p, _ in parts]), pd.concat([v for _, v in parts])


def prepared_arm(prices: pd.DataFrame, variance: pd.Series, arm: str, window: int) -> Any:
    """The volatility task's prepared data with the arm's inputs (A: the true variance target)."""
    from stockpred import experiment
    from stockpred.config import load_config
    from stockpred.controls import keep_features

    tickers = sorted(prices.index.get_level_values("ticker").unique())
    config = load_config(
        {
            "data": {"tickers": tickers},
            "target": {"kind": "volatility"},
            "model": {"window": window},
        }
    )
    prepared = keep_features(experiment.build(prices, config), ARMS[arm])
    if arm == "A":  # the true next-day log variance, scaled on training rows, purged like B's
        order = pd.MultiIndex.from_arrays(
            [prepared.dates, prepared.tickers], names=["date", "ticker"]
        )
        log_var = np.log(variance.reindex(order).to_numpy())
        log_var[~np.isfinite(prepared.actual)] = np.nan
        train = log_var[(prepared.labels == 0) & np.isfinite(log_var)]
        mean, scale = float(train.mean()), float(train.std())
        prepared = replace(
            prepared,
            target=((log_var - mean) / scale).astype(np.float32),
            actual=np.exp(log_var),
            target_mean=mean,
            target_scale=scale,
        )
    return prepared


def set_forget_timescale(lstm: Any, tau: float) -> None:
    """Every unit's forget bias at logit(e^{-1/tau}) (bias_ih; bias_hh's slice zeroed)."""
    import torch

    f = math.exp(-1.0 / tau)
    hidden = lstm.hidden_size
    with torch.no_grad():
        lstm.bias_ih_l0[hidden : 2 * hidden] = math.log(f / (1 - f))
        lstm.bias_hh_l0[hidden : 2 * hidden] = 0.0


def fit(
    prepared: Any,
    arm: str,
    init: str,
    args: argparse.Namespace,
    *,
    frozen: float | None = None,
    shuffled: bool = False,
) -> dict[str, Any]:
    """Train one network; its memory untrained and trained, loss, gate tau, bias moves."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.loggers import CSVLogger

    from stockpred.controls import shuffle_train_target
    from stockpred.gates import diagnostic_indices, lstm_gate_activations, unit_timescales
    from stockpred.memory import MemoryMonitor
    from stockpred.models import LSTMForecaster
    from stockpred.split import TRAIN, VAL
    from stockpred.tasks.volatility.task import QLikeLoss
    from stockpred.training import LitForecaster

    started = time.perf_counter()
    # across tickers: a within-ticker shuffle keeps each series' mean level, which a long window
    # estimates (it showed a 17-day memory in A); pooled, nothing is left to remember
    data = shuffle_train_target(prepared, args.seed, across_tickers=True) if shuffled else prepared
    loss = torch.nn.MSELoss() if arm == "A" else QLikeLoss(data.target_mean, data.target_scale)
    pl.seed_everything(args.seed, verbose=False)
    train = data.dataset(TRAIN, sequence=args.loss_steps == "all")
    val = data.dataset(VAL)
    net = LSTMForecaster(
        train.num_features,
        args.hidden,
        1,
        init="chrono" if init == "chrono" else "default",
        chrono_max=args.window,
    )
    tau0 = frozen if frozen is not None else INITS.get(init)
    if tau0 is not None:
        set_forget_timescale(net.lstm, tau0)
    hidden = args.hidden
    if frozen is not None:  # the forget biases stay where they were set
        for name in ("bias_ih_l0", "bias_hh_l0"):
            mask = torch.ones(4 * hidden)
            mask[hidden : 2 * hidden] = 0.0
            getattr(net.lstm, name).register_hook(lambda g, m=mask: g * m)
    bias0 = forget_bias(net.lstm).clone()
    x, y = val.__getitems__(diagnostic_indices(len(val), args.diagnostic))
    monitor = MemoryMonitor(x, y, loss)
    module = LitForecaster(
        net, args.lr, 0.0, loss, burn_in=args.burn_in, gate_bias_lr=args.gate_bias_lr
    )
    with tempfile.TemporaryDirectory() as logs:
        trainer = pl.Trainer(
            max_epochs=args.epochs,
            logger=CSVLogger(logs),
            callbacks=[monitor],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            gradient_clip_val=1.0,
            log_every_n_steps=50,
        )
        trainer.fit(
            module,
            train.loader(args.batch, shuffle=True, seed=args.seed),
            val.loader(4096, shuffle=False),
        )
    net.eval()
    moved = (forget_bias(net.lstm) - bias0).abs()
    taus = unit_timescales(lstm_gate_activations(net.lstm, x))[0]
    untrained, trained = monitor.profiles[-1], monitor.profiles[max(monitor.profiles)]
    return {
        "arm": arm,
        "init": init,
        "frozen_tau": frozen,
        "shuffled": shuffled,
        "saliency_tau_untrained": untrained.saliency_tau,
        "saliency_tau": trained.saliency_tau,
        "k90_untrained": untrained.k90,
        "k90": trained.k90,
        "truncation_k5": float(trained.truncation[4]),
        "gate_tau_median": float(np.median(taus)),
        "val_loss": float(trainer.callback_metrics["val/loss"]),
        "bias_move_max": float(moved.max()),
        "bias_move_mean": float(moved.mean()),
        # bias_ih and bias_hh each move ~lr per Adam step
        "bias_move_possible": 2 * (args.gate_bias_lr or args.lr) * trainer.global_step,
        "seconds": time.perf_counter() - started,
    }


def forget_bias(lstm: Any) -> Any:
    """The effective forget bias per unit (bias_ih + bias_hh)."""
    hidden = lstm.hidden_size
    return (lstm.bias_ih_l0 + lstm.bias_hh_l0)[hidden : 2 * hidden].detach()


def memory_value(prepared: Any) -> float:
    """The data's best EWMA tau for C's target (the memory-value curve on training rows)."""
    from stockpred import experiment
    from stockpred.config import load_config
    from stockpred.memory import value_metrics

    config = load_config({"target": {"kind": "volatility"}})
    value = experiment.memory_value(prepared, config)
    assert value is not None
    return value_metrics(value[0])["memory/best_ewma_tau"]


def verdicts(rows: list[dict[str, Any]], planted: dict[float, float], c_value: float) -> list[str]:
    """One line per success criterion: PASS or FAIL with the figures behind it."""
    frame = pd.DataFrame(rows)
    target = planted[BETA_PERSISTENCE]
    out = []

    def pick(**where: Any) -> pd.DataFrame:
        mask = np.ones(len(frame), dtype=bool)
        for key, value in where.items():
            mask &= (frame[key] == value).to_numpy()
        return frame[mask]

    a = pick(arm="A", shuffled=False, persistence=BETA_PERSISTENCE)
    a = a[a["frozen_tau"].isna()]
    bracket = a[a["init"].isin(["below", "above"])]
    ok = len(bracket) == 2 and all(
        abs(t / target - 1) <= TOLERANCE for t in bracket["saliency_tau"]
    )
    shown = ", ".join(f"{r.init} {r.saliency_tau:.1f}" for r in bracket.itertuples())
    out.append(
        f"{'PASS' if ok else 'FAIL'} A at beta 0.94: both bracketing inits end with saliency tau "
        f"within +-25% of {target:.1f} d ({shown})"
    )
    sweep = frame[(frame["arm"] == "A") & (frame["init"] == "default") & ~frame["shuffled"]]
    sweep = sweep[sweep["frozen_tau"].isna()].sort_values("persistence")
    values = sweep["saliency_tau"].to_list()
    ordered = len(values) == len(SWEEP) and all(np.diff(values) > 0)
    out.append(
        f"{'PASS' if ordered else 'FAIL'} memory rank-orders with beta (A, default init): "
        + ", ".join(
            f"beta-memory {planted[p]:.1f} d -> tau {t:.1f}, k90 {k}"
            for p, t, k in zip(
                sweep["persistence"], sweep["saliency_tau"], sweep["k90"], strict=True
            )
        )
    )
    c = pick(arm="C", init="default", shuffled=False, persistence=BETA_PERSISTENCE)
    c = c[c["frozen_tau"].isna()]
    d = pick(arm="D", init="default", shuffled=False, persistence=BETA_PERSISTENCE)
    if len(c):
        tau_c = float(c["saliency_tau"].iloc[0])
        near = 1 / 1.5 <= tau_c / c_value <= 1.5
        out.append(
            f"{'PASS' if near else 'FAIL'} C settles near the memory-value optimum (within x1.5): "
            f"saliency tau {tau_c:.1f} d vs best EWMA tau {c_value:.1f} d"
        )
    if len(c) and len(d):
        rc, rd = c.iloc[0], d.iloc[0]
        collapsed = rd["saliency_tau"] < rc["saliency_tau"] and rd["k90"] <= rc["k90"]
        out.append(
            f"{'PASS' if collapsed else 'FAIL'} D collapses (its memory moves to the inputs): "
            f"saliency tau {rd['saliency_tau']:.1f} vs C {rc['saliency_tau']:.1f} d, k90 "
            f"{rd['k90']} vs {rc['k90']}"
        )
    s = frame[frame["shuffled"]]
    if len(s):
        row = s.iloc[0]
        none = row["saliency_tau"] <= 1.25 * row["saliency_tau_untrained"]
        out.append(
            f"{'PASS' if none else 'FAIL'} shuffled target shows no memory beyond untrained "
            f"(tau <= 1.25x): trained {row['saliency_tau']:.1f} vs untrained "
            f"{row['saliency_tau_untrained']:.1f} d (k90 {row['k90']} vs {row['k90_untrained']})"
        )
    frozen = frame[frame["frozen_tau"].notna()]
    if len(frozen):
        best = frozen.loc[frozen["val_loss"].idxmin()]
        out.append(
            f"INFO frozen-bias sweep (C): preferred tau {best['frozen_tau']:g} d; val loss "
            + ", ".join(
                f"{t:g}: {v:.4f}"
                for t, v in zip(frozen["frozen_tau"], frozen["val_loss"], strict=True)
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=64)
    parser.add_argument("--days", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--window", type=int, default=64, help=">= 3 x 16.2 days")
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--diagnostic", type=int, default=256, help="windows of the measures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arms", nargs="+", default=list(ARMS))
    parser.add_argument("--inits", nargs="+", default=list(INITS))
    parser.add_argument("--frozen", nargs="*", type=float, default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--loss-steps", choices=("last", "all"), default="last")
    parser.add_argument("--burn-in", type=int, default=0, help="with --loss-steps all")
    parser.add_argument("--gate-bias-lr", type=float, default=None)
    parser.add_argument("--no-sweep", action="store_true", help="skip the beta sweep")
    parser.add_argument("--no-shuffled", action="store_true", help="skip the shuffled control")
    args = parser.parse_args()

    import torch

    from stockpred.controls import equal_signal_alpha

    torch.set_num_threads(1)  # measured faster on small loaded machines (REFERENCE.md)
    planted = {p: -1.0 / math.log(p - equal_signal_alpha(p)) for p in SWEEP}
    rows: list[dict[str, Any]] = []

    def record(row: dict[str, Any], persistence: float) -> None:
        row["persistence"] = persistence
        rows.append(row)
        print(
            f"  {row['arm']} {row['init']:<8} frozen={row['frozen_tau']} shuffled={row['shuffled']}"
            f" beta-memory {planted[persistence]:5.1f} d | saliency tau "
            f"{row['saliency_tau_untrained']:6.2f} -> {row['saliency_tau']:6.2f} | k90 "
            f"{row['k90_untrained']:3d} -> {row['k90']:3d} | k5 ratio {row['truncation_k5']:.3f}"
            f" | gate tau {row['gate_tau_median']:5.2f} | val {row['val_loss']:.4f} | bias move "
            f"{row['bias_move_max']:.2f} of {row['bias_move_possible']:.2f} | {row['seconds']:.0f}s",
            flush=True,
        )

    prices, variance = market(args.series, args.days, BETA_PERSISTENCE, args.seed)
    prepared = {arm: prepared_arm(prices, variance, arm, args.window) for arm in args.arms}
    c_value = memory_value(prepared["C"]) if "C" in prepared else math.nan
    print(
        f"planted: beta-memory {planted[BETA_PERSISTENCE]:.1f} d; C's best EWMA tau {c_value:.1f} d"
    )
    for arm in args.arms:
        for init in args.inits if arm == "A" else ["default"]:
            record(fit(prepared[arm], arm, init, args), BETA_PERSISTENCE)
    if not args.no_shuffled and "A" in prepared:
        record(fit(prepared["A"], "A", "default", args, shuffled=True), BETA_PERSISTENCE)
    if not args.no_sweep:
        for persistence in SWEEP:
            if persistence == BETA_PERSISTENCE and "default" in args.inits:
                continue  # already fitted above
            p, v = market(args.series, args.days, persistence, args.seed)
            record(fit(prepared_arm(p, v, "A", args.window), "A", "default", args), persistence)
    if "C" in prepared:
        for tau in args.frozen:
            record(fit(prepared["C"], "C", "default", args, frozen=tau), BETA_PERSISTENCE)
    lines = verdicts(rows, planted, c_value)
    print("\n".join(lines))
    path = save(
        "memory",
        {
            "args": vars(args),
            "planted": planted,
            "c_value": c_value,
            "rows": rows,
            "verdicts": lines,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
