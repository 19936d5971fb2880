"""GPU check: training throughput of the default LSTM, and the gate replay against cuDNN.

    python benchmarks/gpu_check.py [--epochs 3] [--batch-sizes 256,1024] [--json out.json]
    python benchmarks/gpu_check.py --epochs 1 --tiny        # a seconds-long smoke run (CPU too)

Imports only torch, pytorch_lightning, numpy, pandas and the standard library (plus
``stockpred.models``, ``stockpred.gates`` and ``stockpred.windows`` from ``src/``, which import
nothing else), so it runs on a bare GPU image: no prefect, mlflow or pydantic needed.

1. Trains the default forecaster (2-layer LSTM, 64 hidden units, 60-day windows of 9 features)
   on synthetic windows with the training path's settings on CUDA: bf16-mixed where supported,
   pinned memory, non-blocking copies; reports the median epoch time and samples/s per batch size.
2. Replays the gates (``stockpred.gates.lstm_gate_activations``, float32) and compares h and c of
   every layer and step with what ``nn.LSTM`` (cuDNN) returns (outputs, h_n, c_n):
   - float32, TF32 off: the same arithmetic up to summation order: |err| <= 1e-5.
   - TF32 on (cuDNN's default for RNNs on Ampere and later): its matmuls round inputs to a 10-bit
     mantissa (relative 2^-11 = 4.9e-4), errors that the 60-step recurrence carries along:
     |err| <= 5e-3 + 5e-3 |ref|.
   - bf16 autocast (what bf16-mixed training computes): an 8-bit mantissa (relative 2^-9 =
     2e-3 per rounding) in the matmuls and activations: |err| <= 5e-2 + 5e-2 |ref|. The gate
     diagnostics replay the float32 master weights, so they describe the float32 model; this
     bounds how far that is from what bf16 training computed.
Exits 1 if a check fails. On a machine without CUDA it says so and runs on the CPU (float32 only).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from stockpred.gates import lstm_gate_activations
from stockpred.models import LSTMForecaster
from stockpred.training import LitForecaster
from stockpred.windows import WindowDataset

FEATURES = 9  # the default feature set
FULL = {"hidden": 64, "layers": 2, "window": 60, "check_batch": 256}
TINY = {"hidden": 16, "layers": 2, "window": 20, "check_batch": 16}
# (atol, rtol): |replay - cuDNN| <= atol + rtol * |cuDNN|; see the module docstring
TOLERANCES = {"fp32, TF32 off": (1e-5, 0.0), "TF32 on": (5e-3, 5e-3), "bf16 autocast": (5e-2, 5e-2)}


class EpochTimer(pl.Callback):
    """Wall time of every training epoch (the GPU synchronised at both ends)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _sync()
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _sync()
        self.seconds.append(time.perf_counter() - self._start)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def synthetic(windows: int, window: int, seed: int = 0) -> WindowDataset:
    """``windows`` windows over 5,000-row groups (like tickers); the target is learnable."""
    rng = np.random.default_rng(seed)
    per_group = 5000
    groups = -(-windows // (per_group - window + 1))
    rows = groups * per_group
    x = rng.standard_normal((rows, FEATURES), dtype=np.float32)
    y = np.convolve(x[:, 0], np.ones(5) / 5, mode="full")[:rows].astype(np.float32)
    group = np.repeat(np.arange(groups), per_group)
    data = WindowDataset.from_arrays(x, y, group, window)
    return WindowDataset(data.features, data.target, data.ends[:windows], window)


def train_throughput(
    data: WindowDataset, sizes: dict[str, int], batch: int, epochs: int, cuda: bool, precision: str
) -> dict[str, Any]:
    """Train ``epochs`` epochs; median epoch time and samples/s."""
    pl.seed_everything(0, verbose=False)
    net = LSTMForecaster(FEATURES, sizes["hidden"], sizes["layers"], dropout=0.1)
    timer = EpochTimer()
    trainer = pl.Trainer(
        accelerator="cuda" if cuda else "cpu",
        devices=1,
        precision=precision,  # type: ignore[arg-type]
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[timer],
    )
    loader = data.loader(batch, shuffle=True, seed=0, pin_memory=cuda)
    trainer.fit(LitForecaster(net), train_dataloaders=loader)
    # the first epoch includes cuDNN's and the allocator's warm-up: the median of the rest
    steady = timer.seconds[1:] or timer.seconds
    median = statistics.median(steady)
    return {
        "batch_size": batch,
        "epoch_s": median,
        "samples_per_s": len(data) / median,
        "epochs_s": timer.seconds,
        "loss": float(trainer.callback_metrics["train/loss"]),
    }


def replay_checks(sizes: dict[str, int], device: torch.device, bf16: bool) -> list[dict[str, Any]]:
    """Gate replay (float32) vs ``nn.LSTM``'s outputs, h_n and c_n under each arithmetic."""
    torch.manual_seed(0)
    lstm = nn.LSTM(FEATURES, sizes["hidden"], sizes["layers"], batch_first=True).to(device).eval()
    x = torch.randn(sizes["check_batch"], sizes["window"], FEATURES, device=device)
    cuda = device.type == "cuda"
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    results = []
    for name, (atol, rtol) in TOLERANCES.items():
        if not cuda and name != "fp32, TF32 off":
            results.append({"check": name, "skipped": "needs CUDA"})
            continue
        if name == "bf16 autocast" and not bf16:
            results.append({"check": name, "skipped": "this GPU has no bf16"})
            continue
        tf32 = name == "TF32 on"
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        with (
            torch.no_grad(),
            torch.autocast("cuda", torch.bfloat16, enabled=name == "bf16 autocast"),
        ):
            out, (h_n, c_n) = lstm(x)
        torch.backends.cuda.matmul.allow_tf32 = False  # the replay: float32 throughout
        acts = lstm_gate_activations(lstm, x)
        pairs = {
            "outputs": (acts.h[-1], out),
            "h_n": (acts.h[:, :, -1], h_n),
            "c_n": (acts.c[:, :, -1], c_n),
        }
        worst, excess = 0.0, -np.inf
        for replay, ref in pairs.values():
            ref = ref.float()
            err = (replay - ref).abs()
            worst = max(worst, float(err.max()))
            excess = max(excess, float((err - atol - rtol * ref.abs()).max()))
        results.append(
            {"check": name, "max_abs_err": worst, "atol": atol, "rtol": rtol, "ok": excess <= 0}
        )
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-sizes", default=None, help="default: 256,1024 on CUDA; 256 on CPU")
    parser.add_argument("--windows", type=int, default=None, help="default 100,000 (CPU 10,000)")
    parser.add_argument("--tiny", action="store_true", help="small model and data (smoke test)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    sizes = TINY if args.tiny else FULL
    device = torch.device("cuda" if cuda else "cpu")
    report: dict[str, Any] = {"torch": torch.__version__, "lightning": pl.__version__}
    if cuda:
        bf16 = torch.cuda.is_bf16_supported()
        report |= {
            "device": torch.cuda.get_device_name(0),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "bf16": bf16,
        }
        print(
            f"device      {report['device']}: CUDA {report['cuda']}, cuDNN {report['cudnn']}, "
            f"bf16 {'supported' if bf16 else 'not supported'}"
        )
    else:
        bf16 = False
        report["device"] = "cpu"
        print(
            "device      CPU: no CUDA device, so this ran on the CPU (a smoke run; the numbers "
            "below are not GPU numbers, and the TF32/bf16 checks are skipped)"
        )
    print(f"versions    torch {torch.__version__}, pytorch-lightning {pl.__version__}")

    precision = "bf16-mixed" if bf16 else "32-true"
    windows = args.windows or (100_000 if cuda and not args.tiny else 10_000)
    windows = min(windows, 1_000) if args.tiny else windows
    default_sizes = "256,1024" if cuda and not args.tiny else "256" if not args.tiny else "64"
    batches = [int(b) for b in (args.batch_sizes or default_sizes).split(",")]
    data = synthetic(windows, sizes["window"])
    print(
        f"training    LSTM {sizes['layers']}x{sizes['hidden']}, window {sizes['window']}, "
        f"{FEATURES} features, {len(data):,} windows, {precision}"
        f"{', pinned memory, non-blocking copies' if cuda else ''}, {args.epochs} epoch(s)"
    )
    report["training"] = []
    for batch in batches:
        row = train_throughput(data, sizes, batch, args.epochs, cuda, precision)
        report["training"].append(row)
        print(
            f"  batch {batch:>5}: epoch {row['epoch_s']:.3f} s (median), "
            f"{row['samples_per_s']:,.0f} samples/s, final train loss {row['loss']:.4f}"
        )

    print(
        f"gate replay vs nn.LSTM{' (cuDNN)' if cuda else ''}: outputs, h_n, c_n of "
        f"{sizes['check_batch']} windows x {sizes['window']} steps; pass if "
        "|err| <= atol + rtol |ref|"
    )
    report["replay"] = replay_checks(sizes, device, bf16)
    for row in report["replay"]:
        if "skipped" in row:
            print(f"  {row['check']:<15} skipped ({row['skipped']})")
            continue
        print(
            f"  {row['check']:<15} max |err| {row['max_abs_err']:.2e}   atol {row['atol']:.0e}"
            f" rtol {row['rtol']:.0e}   {'ok' if row['ok'] else 'FAILED'}"
        )
    failed = [row["check"] for row in report["replay"] if row.get("ok") is False]
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    print(f"FAILED: {', '.join(failed)}" if failed else "all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
