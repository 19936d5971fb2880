"""``make bench-scale``: ``stockpred train`` end to end on synthetic universes of N tickers x D
days vs a bare PyTorch loop over the same training windows plus one validation pass.

For each N: ``stockpred synth`` writes the universe (the ``files`` source); the two arms then run
alternately as subprocesses (pipeline first in even repeats, the bare loop first in odd ones),
each timed from start to exit, its peak RSS read from the kernel's accounting of that process.
The pipeline's own stage times (``time/<stage>_s``, logged to its run) give the per-stage
seconds, the per-ticker cost growth from the smallest to the largest N and the share of
evaluation + tracking. The diagnostics report renders in the background after the run; the
benchmark waits for it between arms (so it does not slow the next one) and does not count it.

    python -m benchmarks.scale [--tickers 50 200 500] [--days 5000] [--repeats 2] [--threads 1]
                               [--cap-above 200 --cap-steps 200]

The issue's sizes are the defaults: 50 and 200 tickers x 5,000 days train one full epoch; above
``--cap-above`` tickers (500) both arms cap the optimizer steps at ``--cap-steps`` (the pipeline's
``train.limit_train_batches``, the bare loop's ``--max-steps``) and everything else runs in full,
so the non-training stages are measured at full size. On 2 cores this takes hours: pass smaller
sizes (``--tickers 4 24 --days 1000``) for a quick look. The date and the load average at the start
and the end of each size are recorded with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import save

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
STAGES = (
    "load_data",
    "build_features",
    "prepare_data",
    "train_model",
    "evaluate_model",
    "log_trained_model",
    "render_diagnostics",
)
# what is not the LSTM's own work: scoring, figures, ablation, model logging, the report stage
EVALUATION_AND_TRACKING = ("evaluate_model", "log_trained_model", "render_diagnostics")


def _capped(tickers: int, args: argparse.Namespace) -> bool:
    """Whether this size caps the optimizer steps (the issue's 500-ticker universe)."""
    return bool(args.cap_steps) and tickers > args.cap_above


def _network(args: argparse.Namespace) -> list[str]:
    return [
        f"model.hidden_size={args.hidden}",
        f"model.num_layers={args.layers}",
        f"model.window={args.window}",
        f"train.batch_size={args.batch}",
        "train.max_epochs=1",
        f"train.num_threads={args.threads}",
    ]


def _measure(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) of that process, and its stdout."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed:\n{text[-3000:]}")
    return wall, usage.ru_maxrss / 1024, text  # ru_maxrss: kB on Linux


def _windows(path: Path, start: str, end: str, args: argparse.Namespace) -> dict[str, int]:
    """Rows, features and train/val windows of the pipeline's prepared data (not timed)."""
    from stockpred import experiment
    from stockpred.config import load_config
    from stockpred.split import TRAIN, VAL

    config = load_config(
        {
            "data": {"source": "files", "path": str(path), "tickers": ["*"]},
            "model": {"window": args.window},
            "target": {"kind": "return"},
        }
    ).with_overrides({"data.start": start, "data.end": end})
    prepared = experiment.build(experiment.load_prices(config.data), config)
    return {
        "rows": len(prepared.features),
        "features": len(prepared.feature_names),
        "train": len(prepared.dataset(TRAIN)),
        "val": len(prepared.dataset(VAL)),
    }


def _stage_seconds(run_id: str) -> dict[str, float]:
    from stockpred import tracking

    metrics = tracking.get_run(run_id).data.metrics
    return {s: metrics[f"time/{s}_s"] for s in STAGES if f"time/{s}_s" in metrics}


def _wait_for_report(run_id: str, timeout: float = 600) -> str:
    """The run's ``report.status`` once it is no longer pending and its process has exited."""
    from stockpred import tracking

    deadline = time.monotonic() + timeout
    while True:
        status = tracking.get_run(run_id).data.tags.get("report.status", "none")
        if (status != "pending" and not _renderer_alive(run_id)) or time.monotonic() > deadline:
            return status
        time.sleep(1)


def _renderer_alive(run_id: str) -> bool:
    """Whether the run's report process still exists (it exits a few seconds after attaching)."""
    mine = str(os.getpid())
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.parent.name != mine and run_id.encode() in cmdline.read_bytes():
                return True
        except OSError:  # it ended while we looked
            continue
    return False


def run_size(
    tickers: int, args: argparse.Namespace, env: dict[str, str], warm_up: bool = False
) -> dict[str, Any]:
    """Both arms at one universe size, alternated ``args.repeats`` times (after one pipeline run
    that is not counted, with ``warm_up``)."""
    folder = Path(tempfile.mkdtemp(prefix=f"stockpred-scale-{tickers}-"))
    synth = [PY, "-m", "stockpred.cli", "synth", "--tickers", str(tickers)]
    synth += ["--days", str(args.days), "--out", str(folder)]
    _, _, said = _measure(synth, env)
    line = next(s for s in said.splitlines() if s.startswith("train on it with"))
    start, end = line.split("--start ")[1].split()[0], line.split("--end ")[1].split()[0]
    counts = _windows(folder, start, end, args)
    pipeline = [PY, "-m", "stockpred.cli", "train", "--no-progress", "--target", "return"]
    pipeline += ["--source", "files"]  # the return task, as the published figures
    pipeline += ["--path", str(folder), "--tickers", "*", "--start", start, "--end", end]
    for setting in _network(args):
        pipeline += ["--set", setting]
    if _capped(tickers, args):
        pipeline += ["--set", f"train.limit_train_batches={args.cap_steps}"]
    bare = [PY, "-m", "benchmarks.bare_loop", "--window", str(args.window)]
    bare += ["--hidden", str(args.hidden), "--layers", str(args.layers)]
    bare += ["--batch", str(args.batch), "--threads", str(args.threads)]
    for name in ("rows", "features", "train", "val"):
        bare += [f"--{name}", str(counts[name])]
    if _capped(tickers, args):
        bare += ["--max-steps", str(args.cap_steps)]
    load_before = os.getloadavg()[0]
    if warm_up:  # a fresh store creates its tables (~1 min here) and the disk cache is cold
        _, _, text = _measure(pipeline, env)
        _wait_for_report(text.split("(id ")[1].split(")")[0])
    rounds = []
    for repeat in range(args.repeats):
        arms = ("pipeline", "bare") if repeat % 2 == 0 else ("bare", "pipeline")
        got: dict[str, Any] = {}
        for arm in arms:
            wall, rss, text = _measure(pipeline if arm == "pipeline" else bare, env)
            got[f"{arm}_s"], got[f"{arm}_rss_mb"] = wall, rss
            if arm == "bare":
                got["bare_loop_s"] = json.loads(text.strip().splitlines()[-1])["loop_s"]
            else:
                run_id = text.split("(id ")[1].split(")")[0]
                got["stages"] = _stage_seconds(run_id)
                got["report"] = _wait_for_report(run_id)  # off the clock, before the next arm
        rounds.append(got)
        print(
            f"  {tickers} tickers, repeat {repeat}: pipeline {got['pipeline_s']:.1f} s "
            f"({got['pipeline_rss_mb']:.0f} MB), bare {got['bare_s']:.1f} s "
            f"({got['bare_rss_mb']:.0f} MB; loop {got['bare_loop_s']:.1f} s)",
            flush=True,
        )

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    stages = {s: statistics.median(r["stages"].get(s, 0.0) for r in rounds) for s in STAGES}
    return {
        "tickers": tickers,
        "days": args.days,
        "capped_steps": args.cap_steps if _capped(tickers, args) else None,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        **{f"{k}_windows" if k in ("train", "val") else k: v for k, v in counts.items()},
        "pipeline_s": median("pipeline_s"),
        "bare_s": median("bare_s"),
        "bare_loop_s": median("bare_loop_s"),
        "wall_ratio": statistics.median(r["pipeline_s"] / r["bare_s"] for r in rounds),
        "wall_ratio_vs_loop": statistics.median(r["pipeline_s"] / r["bare_loop_s"] for r in rounds),
        "pipeline_rss_mb": median("pipeline_rss_mb"),
        "bare_rss_mb": median("bare_rss_mb"),
        "rss_ratio": statistics.median(r["pipeline_rss_mb"] / r["bare_rss_mb"] for r in rounds),
        "stages_s": stages,
        "outside_stages_s": median("pipeline_s") - sum(stages.values()),
        "evaluation_tracking_share": statistics.median(
            sum(r["stages"].get(s, 0.0) for s in EVALUATION_AND_TRACKING) / r["pipeline_s"]
            for r in rounds
        ),
        "reports": [r["report"] for r in rounds],
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickers", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument("--days", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cap-above", type=int, default=200, help="cap steps above this size")
    parser.add_argument("--cap-steps", type=int, default=200, help="the cap (0: never cap)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--window", type=int, default=60)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1, help="train.num_threads of both arms")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="stockpred-bench-scale-")
    env = {**os.environ, "STOCKPRED_HOME": home, "MPLBACKEND": "Agg"}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.pop("MLFLOW_TRACKING_URI", None)
    os.environ.update(STOCKPRED_HOME=home)  # this process reads the runs' stage times there
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    sizes = []
    for tickers in sorted(args.tickers):
        print(f"{tickers} tickers x {args.days} days ...", flush=True)
        sizes.append(run_size(tickers, args, env, warm_up=not sizes))
        save("scale", {"args": vars(args), "cpus": os.cpu_count(), "sizes": sizes})
    small, large = sizes[0], sizes[-1]
    growth = {
        s: (large["stages_s"][s] / large["tickers"]) / (small["stages_s"][s] / small["tickers"])
        for s in STAGES
        if small["stages_s"][s] > 0.05  # a stage of a few ms has no per-ticker cost to speak of
    }
    growth["wall"] = (large["pipeline_s"] / large["tickers"]) / (
        small["pipeline_s"] / small["tickers"]
    )
    result = {"args": vars(args), "cpus": os.cpu_count(), "sizes": sizes, "growth": growth}
    path = save("scale", result)
    print(_table(result))
    print(f"results: {path}")


def _table(result: dict[str, Any]) -> str:
    lines = [
        "| tickers x days | train / val windows | stockpred train | bare loop (process; loop) "
        "| wall ratio (vs process; vs loop) | peak RSS pipeline / bare | eval + tracking share |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["sizes"]:
        lines.append(
            f"| {r['tickers']} x {r['days']} | {r['train_windows']:,} / {r['val_windows']:,} "
            f"| {r['pipeline_s']:.1f} s | {r['bare_s']:.1f} s; {r['bare_loop_s']:.1f} s "
            f"| {r['wall_ratio']:.2f}x; {r['wall_ratio_vs_loop']:.2f}x "
            f"| {r['pipeline_rss_mb']:.0f} / {r['bare_rss_mb']:.0f} MB ({r['rss_ratio']:.2f}x) "
            f"| {100 * r['evaluation_tracking_share']:.0f}% |"
            + (f" (steps capped at {r['capped_steps']})" if r.get("capped_steps") else "")
            + f" load {r['load_average'][0]:.1f}-{r['load_average'][1]:.1f}, {r['date']}"
        )
    lines.append("")
    lines.append(
        "stage seconds (median): "
        + "; ".join(
            f"{r['tickers']}: "
            + ", ".join(f"{s} {v:.1f}" for s, v in r["stages_s"].items())
            + f", outside stages {r['outside_stages_s']:.1f}"
            for r in result["sizes"]
        )
    )
    lines.append(
        "per-ticker cost, largest / smallest N: "
        + ", ".join(f"{k} {v:.2f}" for k, v in result["growth"].items())
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
