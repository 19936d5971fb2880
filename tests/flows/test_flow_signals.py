"""Ctrl-C and SIGTERM end ``python -m flows.train_flow`` (``make run``'s flow) within seconds, in
one line, with the MLflow run KILLED and resumable, as ``stockpred train`` does.

Two real flow processes (each with its own temporary Prefect server) train until their checkpoint
holds epoch 1, then wait there (a test-side patch, as in the resume tests) until the test's
signal comes: the handshake is the checkpoint file, never a sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stockpred import resume, tracking
from stockpred.resume import checkpoints as resume_checkpoints
from tests.resume.test_resume import resumable_config

ROOT = Path(__file__).resolve().parents[2]
GUARD = """
import sys, time
import pytorch_lightning as pl
from flows.train_flow import main

save = pl.Trainer.save_checkpoint

def save_then_hold(self, filepath, *args, **kwargs):
    save(self, filepath, *args, **kwargs)
    if str(filepath).endswith("last.ckpt") and self.current_epoch >= 1:
        time.sleep(600)

pl.Trainer.save_checkpoint = save_then_hold
sys.exit(main(sys.argv[1:]))
"""
STOP_LIMIT_S = 60  # seconds from the signal to the exit, on a loaded 2-core machine


def _checkpointed(experiment: str) -> str | None:
    for run_id in tracking.search_runs(experiment)["run_id"]:
        last = resume.last_checkpoint(run_id)
        if last is not None:
            try:
                if resume_checkpoints.checkpoint_epoch(last) >= 1:
                    return run_id
            except ValueError:  # being written
                return None
    return None


@pytest.mark.timeout(2 * 600)  # a flow's imports, server and training on a loaded machine
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_ends_the_train_flow_in_seconds_with_one_line(tmp_path, signum) -> None:
    experiment = f"flow-{signal.Signals(signum).name.lower()}"
    tracking.experiment_id(experiment)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(resumable_config(experiment, extras=False)))
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "OMP_NUM_THREADS": "1"}
    log = tmp_path / "flow.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", GUARD, "--config", str(config), "--no-progress"],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=env,
        start_new_session=True,  # its own process group, as a shell's foreground job
    )
    try:
        deadline = time.monotonic() + 600
        while (run_id := _checkpointed(experiment)) is None:
            assert proc.poll() is None, f"the flow ended before the signal:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no checkpoint in 600 s:\n{log.read_text()}"
            time.sleep(0.1)
        # Ctrl-C in a terminal signals the whole foreground group (the flow's temporary Prefect
        # server too); SIGTERM (kill, a scheduler) goes to the one process
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        sent = time.monotonic()
        code = proc.wait(timeout=STOP_LIMIT_S)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = log.read_text()
    assert code == (130 if signum == signal.SIGINT else 128 + signal.SIGTERM), output
    assert took < STOP_LIMIT_S
    assert "Traceback" not in output, output
    last = output.strip().splitlines()[-1]
    assert last.startswith("stockpred: "), output
    assert f"MLflow run {run_id} is KILLED" in last, output
    assert tracking.client().get_run(run_id).info.status == "KILLED"
    assert resume.last_checkpoint(run_id) is not None  # resumable
