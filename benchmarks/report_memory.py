"""The memory of evaluation and of the background report at scale (issue 27).

For each N tickers x D days of a ``stockpred.universe`` synthetic universe: one training run
(one epoch, ``train.limit_train_batches`` capped, ``tracking.report=off``) in a child process
whose stages each reset and read the kernel's peak-RSS counter (``/proc/self/clear_refs``,
``VmHWM``): evaluation's extra peak over training is the evaluate stage's peak minus the
training stage's. Then the run's report is rendered by ``python -m stockpred.report.background``
under ``--memory-gb``, its process tree's resident memory (the renderer and its kernel) sampled
every 0.2 s: the peak of their sum and of the largest process.

    python -m benchmarks.report_memory [--tickers 50 200] [--days 5000] [--memory-gb 2]

Linux only (``/proc``). Results in ``benchmarks/results/report_memory.json``.
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

from benchmarks.common import save

ROOT = Path(__file__).resolve().parents[1]

# the child: train and evaluate with a per-stage peak RSS
_TRAIN = """
import json, sys
from pathlib import Path
from stockpred.config import load_config
from stockpred.pipeline import run_training

def rss(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # MB
    raise KeyError(field)

peaks = {}
def runner(stage):
    def run(*args, **kwargs):
        before = rss("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        try:
            return stage(*args, **kwargs)
        finally:
            peaks[stage.__name__] = {"before_mb": before, "peak_mb": rss("VmHWM")}
    return run

result = run_training(load_config(json.loads(sys.argv[1])), runner=runner)
print("RESULT " + json.dumps({"run_id": result.run_id, "stages": peaks}))
"""


def _config(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "data": {"source": "files", "path": str(path), "tickers": ["*"]},
        "train": {
            "max_epochs": 1,
            "limit_train_batches": args.train_batches,
            "progress_bar": False,
            "num_threads": args.threads,
        },
        "tracking": {"experiment": "bench-report-memory", "report": "off"},
    }


def _tree_rss_mb(root: int) -> tuple[float, float]:
    """Resident MB of ``root`` and its descendants: (sum, largest process)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid = int(stat.parent.name)
            children.setdefault(int(fields[1]), []).append(pid)
            rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, ValueError, IndexError):
            continue
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    sizes = [rss.get(pid, 0.0) for pid in tree]
    return sum(sizes), max(sizes)


def _render(run_id: str, env: dict[str, str], memory_gb: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "stockpred.report.background", run_id]
    command += ["--memory-gb", str(memory_gb), "--timeout", "3000"]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        total = largest = 0.0
        while process.poll() is None:
            now_total, now_largest = _tree_rss_mb(process.pid)
            total, largest = max(total, now_total), max(largest, now_largest)
            time.sleep(0.2)
        log.seek(0)
        text = log.read().decode(errors="replace")
    return {
        "exit": process.returncode,
        "wall_s": time.perf_counter() - started,
        "peak_tree_rss_mb": total,
        "peak_process_rss_mb": largest,
        "last_line": text.strip().splitlines()[-1] if text.strip() else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickers", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--days", type=int, default=5000)
    parser.add_argument("--memory-gb", type=float, default=2.0)
    parser.add_argument("--train-batches", type=int, default=20, help="optimizer steps cap")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    from stockpred.universe import synthetic_universe, write_universe

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-report-memory-") as scratch:
        env = {
            **os.environ,
            "STOCKPRED_HOME": str(Path(scratch) / "home"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{Path(scratch) / 'home' / 'mlflow' / 'mlflow.db'}",
            "PYTHONPATH": str(ROOT / "src"),
        }
        (Path(scratch) / "home" / "mlflow").mkdir(parents=True)
        for tickers in args.tickers:
            data = Path(scratch) / f"u{tickers}"
            write_universe(synthetic_universe(tickers, args.days, seed=0), data)
            config = json.dumps(_config(data, args))
            out = subprocess.run(
                [sys.executable, "-c", _TRAIN, config],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if not line:
                raise RuntimeError(f"training failed:\n{out.stderr[-3000:]}")
            trained = json.loads(line[0].removeprefix("RESULT "))
            stages = trained["stages"]
            extra = stages["evaluate_model"]["peak_mb"] - stages["train_model"]["peak_mb"]
            render = _render(trained["run_id"], env, args.memory_gb)
            row = {
                "tickers": tickers,
                "days": args.days,
                "train_peak_mb": stages["train_model"]["peak_mb"],
                "evaluate_peak_mb": stages["evaluate_model"]["peak_mb"],
                "evaluation_extra_over_training_mb": extra,
                "render": render,
                "load_average": os.getloadavg(),
            }
            print(json.dumps(row), flush=True)
            results.append(row)
    save("report_memory", {"args": vars(args), "results": results})


if __name__ == "__main__":
    main()
