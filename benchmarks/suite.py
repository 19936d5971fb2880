"""Every stage's cost, measured side by side: ``make bench`` (or ``python -m benchmarks.suite``).

Prints one table (median and spread over repeats) and writes ``results/suite.json``. This machine
is shared and noisy, so each figure is a ratio or a side-by-side comparison in one run.

    .venv/bin/python -m benchmarks.suite [--only NAME ...] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, save, spread, synthetic_market, timed

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
# the jobs train the return task, as the published figures were measured (the default is volatility)
RETURNS = ["--target", "return"]
HEAVY = ("torch", "pytorch_lightning", "lightning", "prefect", "mlflow")


def training_overhead(quick: bool) -> dict[str, Any]:
    """1. A Lightning training epoch vs a bare PyTorch loop: same windows, net, optimiser."""
    import pytorch_lightning as pl
    import torch

    from stockpred.config import ModelConfig, TrainConfig
    from stockpred.models import LSTMForecaster
    from stockpred.training import LitForecaster, fit_forecaster
    from stockpred.windows import WindowDataset

    rows, features, window, batch = 12_000, 9, 60, 256
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(rows, features, generator=gen).numpy()
    y = torch.randn(rows, generator=gen).numpy()
    data = WindowDataset.from_arrays(x, y, torch.zeros(rows, dtype=torch.long).numpy(), window)
    model_cfg = ModelConfig(window=window, hidden_size=64, num_layers=2, dropout=0.0)
    epochs = 2 if quick else 3
    train_cfg = TrainConfig(
        max_epochs=epochs, batch_size=batch, patience=100, progress_bar=False, gradient_clip=0.0
    )

    class EpochClock(pl.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_epoch_start(self, trainer, module) -> None:
            self._start = time.perf_counter()

        def on_train_epoch_end(self, trainer, module) -> None:
            self.times.append(time.perf_counter() - self._start)

    def lightning_epoch() -> float:
        clock = EpochClock()
        fit_forecaster(
            data,
            data.__class__(data.features, data.target, data.ends[:256], window),
            model_cfg,
            train_cfg,
            callbacks=[clock],
        )
        return min(clock.times[1:])  # epoch 0 pays warm-up

    def bare_epoch() -> float:
        torch.manual_seed(0)
        module = LitForecaster(LSTMForecaster(features, 64, 2, 0.0))
        optimiser = module.configure_optimizers()
        loader = data.loader(batch, shuffle=True, seed=0)
        times = []
        for _ in range(epochs):
            started = time.perf_counter()
            for xb, yb in loader:
                optimiser.zero_grad()
                loss = torch.nn.functional.mse_loss(module(xb), yb)
                loss.backward()
                optimiser.step()
            times.append(time.perf_counter() - started)
        return min(times[1:])

    ratios, bare_times = [], []
    for repeat in range(2 if quick else 4):
        first, second = (
            (bare_epoch, lightning_epoch) if repeat % 2 else (lightning_epoch, bare_epoch)
        )
        a, b = first(), second()
        lightning, bare = (b, a) if repeat % 2 else (a, b)
        ratios.append(lightning / bare)
        bare_times.append(bare)
    return {
        "ratio": spread(ratios),
        "bare_epoch_s": spread(bare_times),
        "target": "<= 1.05",
        "met": spread(ratios)["median"] <= 1.05,
    }


def data_path(quick: bool) -> dict[str, Any]:
    """2. Windows over 500 tickers x 5,000 days x 20 features, window 60: memory, build, loader."""
    tickers = 100 if quick else 500
    code = f"""
import time, json, numpy as np, torch
from stockpred.windows import WindowDataset

def status(key):  # kB from /proc: VmRSS now, VmHWM the peak since the last reset
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1e3

tickers, days, feats, window = {tickers}, 5000, 20, 60
open("/proc/self/clear_refs", "w").write("5")  # reset the peak
base = status("VmRSS")
rng = np.random.default_rng(0)
x = rng.standard_normal((tickers * days, feats), dtype=np.float32)
y = rng.standard_normal(tickers * days, dtype=np.float32)
groups = np.repeat(np.arange(tickers), days)
after_matrix = status("VmRSS")
t = time.perf_counter(); ds = WindowDataset.from_arrays(x, y, groups, window); build = time.perf_counter() - t
peak = status("VmHWM")
loader = ds.loader(256, shuffle=True, seed=0)
it = iter(loader); t = time.perf_counter(); n = 0
for xb, yb in it:
    n += 1
    if n == 400: break
per_batch = (time.perf_counter() - t) / n
net = torch.nn.LSTM(feats, 64, 2, batch_first=True); head = torch.nn.Linear(64, 1)
opt = torch.optim.AdamW([*net.parameters(), *head.parameters()])
steps = []
for xb, yb in list(loader.__iter__().__next__() for _ in range(1)) * 6:
    t = time.perf_counter(); opt.zero_grad()
    loss = torch.nn.functional.mse_loss(head(net(xb)[0][:, -1]).squeeze(-1), yb); loss.backward(); opt.step()
    steps.append(time.perf_counter() - t)
print(json.dumps(dict(windows=len(ds), matrix_mb=x.nbytes / 1e6, rss_matrix_mb=after_matrix - base,
    rss_peak_over_matrix=(peak - base) / (x.nbytes / 1e6), build_s=build, loader_batch_s=per_batch,
    train_step_s=float(np.median(steps[1:])), batches=len(ds) // 256)))
"""
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["loader_share_of_epoch"] = result["loader_batch_s"] / result["train_step_s"]
    result["target"] = "peak <= 1.5x matrix; loader <= 2% of training"
    result["met"] = (
        result["rss_peak_over_matrix"] <= 1.5 and result["loader_share_of_epoch"] <= 0.02
    )
    return result


def feature_engineering(quick: bool) -> dict[str, Any]:
    """3. make_features + make_target at 50, 200, 500 tickers x 5,000 days."""
    from stockpred.features import make_features, make_target

    sizes = (50, 200) if quick else (50, 200, 500)
    out: dict[str, Any] = {}
    for tickers in sizes:
        prices = synthetic_market(tickers, 5000)
        seconds = [timed(lambda p=prices: (make_features(p), make_target(p))) for _ in range(2)]
        out[str(tickers)] = {"seconds": min(seconds), "rows_per_s": len(prices) / min(seconds)}
    per_ticker = [v["seconds"] / int(k) for k, v in out.items()]
    out["cost_per_ticker_growth"] = per_ticker[-1] / per_ticker[0]  # 1.0 = perfectly linear
    out["target"] = "500 tickers <= 10 s, linear"
    out["met"] = out.get("500", out[str(sizes[-1])])["seconds"] <= 10
    return out


def gate_diagnostics(quick: bool) -> dict[str, Any]:
    """4. Epoch time with vs without GateMonitor (benchmarks.gate_overhead)."""
    reps, epochs = ("3", "3") if quick else ("7", "5")
    subprocess.run(
        [PY, "-m", "benchmarks.gate_overhead", "--repeats", reps, "--epochs", epochs],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    result = json.loads((RESULTS / "gate_overhead.json").read_text())
    return {
        "ratio_median": result["ratio_median"],
        "ratio_min": result["ratio_min"],
        "ratio_max": result["ratio_max"],
        "target": "<= 1.05",
        "met": result["ratio_median"] <= 1.05,
    }


def orchestration(quick: bool) -> dict[str, Any]:
    """5. The default main job three ways, alternated in one run:

    - ``untracked``: the job's own ``stockpred`` calls, no Prefect, no MLflow (benchmarks.untracked_job);
    - ``tracked``: ``stockpred train``: the same job logged to MLflow (params, epoch and gate metrics,
      artifacts, the model, the registry), no Prefect; the diagnostics report renders in a
      background process after the run (``tracking.report=background``), waited for off the clock;
    - ``flow``: ``python -m flows.train_flow``: the tracked job as a Prefect flow (temporary server);
    - ``flow_server``: the same flow against an already running Prefect server (as under ``make serve``);
    - ``flow_server_no_report``: that, without the diagnostics report (``tracking.report=off``).
    """
    import tempfile

    env = {
        **os.environ,
        "STOCKPRED_HOME": tempfile.mkdtemp(prefix="stockpred-bench-orch-"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MPLBACKEND": "Agg",
    }
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        env.pop(key, None)
    arms = {
        "untracked": [PY, "-m", "benchmarks.untracked_job"],
        "tracked": [str(Path(PY).parent / "stockpred"), "train", "--no-progress", *RETURNS],
        "flow": [PY, "-m", "flows.train_flow", "--no-progress", *RETURNS],
        "flow_server": [PY, "-m", "flows.train_flow", "--no-progress", *RETURNS],
        "flow_server_no_report": [
            PY,
            "-m",
            "flows.train_flow",
            "--no-progress",
            "--set",
            "tracking.report=off",
            *RETURNS,
        ],
    }
    server, server_env = _prefect_server(env)
    try:
        rounds = []
        for repeat in range(1 if quick else 2):
            names = list(arms) if repeat % 2 == 0 else list(arms)[::-1]
            times = {}
            for name in names:
                run_env = server_env if name.startswith("flow_server") else env
                times[name] = timed(
                    lambda c=arms[name], e=run_env: subprocess.run(
                        c, cwd=ROOT, env=e, check=True, capture_output=True
                    )
                )
                # the report renders in the background after the run: let it finish, off the
                # clock, so that it does not slow the next arm on a small machine
                _wait_for_reports(env["STOCKPRED_HOME"])
            rounds.append(times)
    finally:
        server.terminate()
        server.wait(timeout=30)
    seconds = {name: spread([r[name] for r in rounds]) for name in arms}

    def share(slow: str, fast: str) -> dict[str, float]:
        return spread([(r[slow] - r[fast]) / r[slow] for r in rounds])

    total = share("flow", "untracked")
    return {
        "seconds": seconds,
        "overhead_share": total,
        "tracking_share": share("tracked", "untracked"),
        "prefect_share": share("flow", "tracked"),
        "overhead_share_running_server": share("flow_server", "untracked"),
        "overhead_share_running_server_no_report": share("flow_server_no_report", "untracked"),
        "target": "<= 15% of the job's wall time",
        "met": total["median"] <= 0.15,
    }


def _wait_for_reports(home: str, timeout: float = 600) -> None:
    """Until no run in ``home``'s store has its diagnostics report pending and no report process
    is left (on this machine: another user's renders are waited for too)."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{home}/mlflow/mlflow.db")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = [e.experiment_id for e in client.search_experiments()]
        pending = client.search_runs(ids, "tags.`report.status` = 'pending'") if ids else []
        if not pending and not _renderers():
            return
        time.sleep(1)


def _renderers() -> int:
    """Report processes still alive (one exits a few seconds after attaching its report)."""
    alive = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            alive += b"stockpred.report.background" in cmdline.read_bytes()
        except OSError:  # it ended while we looked
            continue
    return alive


def _prefect_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """A Prefect server on a free local port (SQLite in a temp folder), started and healthy."""
    import socket
    import tempfile
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server_env = {**env, "PREFECT_HOME": tempfile.mkdtemp(prefix="stockpred-bench-prefect-")}
    server = subprocess.Popen(
        [
            str(Path(PY).parent / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=server_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError("the benchmark's Prefect server did not start") from None
            time.sleep(0.5)
    return server, {**server_env, "PREFECT_API_URL": api}


def cold_start(quick: bool) -> dict[str, Any]:
    """6. ``stockpred --help`` vs ``python -c pass``; --help must import nothing heavy."""
    cli = [str(Path(PY).parent / "stockpred"), "--help"]
    help_s = [timed(lambda: subprocess.run(cli, capture_output=True, check=True)) for _ in range(5)]
    bare_s = [timed(lambda: subprocess.run([PY, "-c", "pass"], check=True)) for _ in range(5)]
    trace = subprocess.run(
        [
            PY,
            "-X",
            "importtime",
            "-c",
            "from stockpred.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in trace.stderr.splitlines()
        if "|" in line
    }
    heavy = sorted(imported & set(HEAVY))
    return {
        "help_s": spread(help_s),
        "python_pass_s": spread(bare_s),
        "ratio": spread(help_s)["median"] / spread(bare_s)["median"],
        "heavy_imports": heavy,
        "target": "--help imports none of torch, lightning, prefect, mlflow",
        "met": not heavy,
    }


def cache_read(quick: bool) -> dict[str, Any]:
    """7. 50 tickers x 20 years from the Parquet cache (benchmarks.cache_read)."""
    subprocess.run(
        [PY, "-m", "benchmarks.cache_read", "--repeats", "3" if quick else "7"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    result = json.loads((RESULTS / "cache_read.json").read_text())
    seconds = {k: v["median"] for k, v in result["seconds"].items()}
    return {**seconds, "rows": result["rows"], "target": "reported", "met": True}


BENCHMARKS = {
    "training_overhead": training_overhead,
    "data_path": data_path,
    "feature_engineering": feature_engineering,
    "gate_diagnostics": gate_diagnostics,
    "orchestration": orchestration,
    "cold_start": cold_start,
    "cache_read": cache_read,
}


def headline(name: str, r: dict[str, Any]) -> str:
    """One line per benchmark for the table."""
    if name == "training_overhead":
        return f"Lightning / bare epoch: {r['ratio']['median']:.3f} ({r['ratio']['min']:.3f}-{r['ratio']['max']:.3f})"
    if name == "data_path":
        return (
            f"{r['windows']:,} windows: peak {r['rss_peak_over_matrix']:.2f}x the {r['matrix_mb']:.0f} MB "
            f"matrix, built in {r['build_s']:.2f} s; loader {100 * r['loader_share_of_epoch']:.2f}% of a step"
        )
    if name == "feature_engineering":
        sizes = [k for k in r if k.isdigit()]
        return (
            "; ".join(f"{k}: {r[k]['seconds']:.2f} s" for k in sizes)
            + f"; per-ticker cost x{r['cost_per_ticker_growth']:.2f} from smallest to largest"
        )
    if name == "gate_diagnostics":
        return (
            f"with / without: {r['ratio_median']:.3f} ({r['ratio_min']:.3f}-{r['ratio_max']:.3f})"
        )
    if name == "orchestration":
        t = {k: v["median"] for k, v in r["seconds"].items()}
        return (
            f"untracked {t['untracked']:.1f} s, tracked {t['tracked']:.1f} s, flow {t['flow']:.1f} s "
            f"(on a running server {t['flow_server']:.1f} s): overhead "
            f"{100 * r['overhead_share']['median']:.0f}% of the flow's time (MLflow "
            f"{100 * r['tracking_share']['median']:.0f}%, Prefect {100 * r['prefect_share']['median']:.0f}%; "
            f"{100 * r['overhead_share_running_server']['median']:.0f}% on a running server, "
            f"{100 * r['overhead_share_running_server_no_report']['median']:.0f}% there without the "
            f"report: {t['flow_server_no_report']:.1f} s)"
        )
    if name == "cold_start":
        return (
            f"--help {r['help_s']['median']:.2f} s vs python -c pass {r['python_pass_s']['median']:.2f} s; "
            f"heavy imports: {r['heavy_imports'] or 'none'}"
        )
    return f"load_prices {r['load_prices']:.3f} s, files {r['cache_files_read']:.3f} s, one file {r['one_parquet_file']:.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller sizes")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    }
    for name in args.only or list(BENCHMARKS):
        print(f"running {name} ...", flush=True)
        results[name] = BENCHMARKS[name](args.quick)
        save("suite", results)
    print(f"\n{'benchmark':<20} {'target':<48} {'met':<5} figure")
    for name in args.only or list(BENCHMARKS):
        r = results[name]
        print(f"{name:<20} {r['target']:<48} {r['met']!s:<5} {headline(name, r)}")


if __name__ == "__main__":
    main()
