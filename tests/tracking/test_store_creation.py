"""Two processes starting on a new, empty store at the same moment both run: the store's tables
are created once, under a file lock beside the database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CHILD = """
import sys, time
from pathlib import Path
from stockpred import tracking
from stockpred.config import PipelineConfig

config = PipelineConfig().with_overrides({"tracking.experiment": "first-run"})
print("ready", flush=True)
go = Path(sys.argv[1])
while not go.exists():  # the barrier: both start their first MLflow call together
    time.sleep(0.01)
with tracking.tracked_run(config) as run_id:
    tracking.log_metrics(run_id, {"x": 1.0})
print("finished", run_id, flush=True)
"""


def test_two_processes_starting_on_an_empty_store_both_finish(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "STOCKPRED_HOME": str(home), "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", child.communicate()[1]
    assert not (home / "mlflow" / "mlflow.db").exists()  # nothing created before the barrier
    go.touch()
    outcomes = [child.communicate(timeout=600) for child in children]
    for child, (out, err) in zip(children, outcomes, strict=True):
        assert child.returncode == 0, err[-2000:]
        assert out.startswith("finished "), out
    run_ids = {out.split()[1] for out, _ in outcomes}
    assert len(run_ids) == 2
    assert (home / "mlflow" / "mlflow.db.lock").exists()
