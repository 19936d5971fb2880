"""Resume: a training killed (SIGKILL) or terminated (SIGTERM) mid-run continues from its last
checkpoint in the same MLflow run, and ends as if it had never stopped.

Two real ``stockpred train`` processes start together (their imports overlap); each is
interrupted once its checkpoint holds epoch 1 or later, wherever it then is (mid-epoch, or
already evaluating). One uninterrupted run of the same config is the reference: with the
optimizer, loop counters and random number generators restored, the resumed runs' validation
losses equal its own epoch by epoch.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch

from stockpred import resume, tracking
from stockpred.cli import _note_interrupted, main
from stockpred.config import ConfigError, load_config
from stockpred.pipeline import run_training
from tests.conftest import TINY

EPOCHS = 6


def resumable_config(experiment: str, *, extras: bool = True) -> dict:
    """TINY, long enough to be interrupted mid-training: no early stop, no registry; dropout on
    (its random masks must continue too). ``extras``: gate diagnostics and the logged model,
    which do not change the training (left out where a test does not look at them)."""
    config = copy.deepcopy(TINY)
    config["model"]["dropout"] = 0.1
    config["train"].update(max_epochs=EPOCHS, patience=EPOCHS)
    config["tracking"].update(experiment=experiment, report=False, log_model=extras)
    config["gates"] = {"enabled": extras}
    config["evaluation"] = {"register_model": False}
    return config


@dataclass
class Interrupted:
    """A training process stopped by ``signum`` once its checkpoint held ``epoch`` >= 1."""

    experiment: str
    run_id: str
    epoch: int
    returncode: int
    output: str


def start_training(folder: Path, experiment: str, extras: bool) -> subprocess.Popen[str]:
    path = folder / f"{experiment}.json"
    path.write_text(json.dumps(resumable_config(experiment, extras=extras)))
    return subprocess.Popen(
        [sys.executable, "-m", "stockpred.cli", "train", "--config", str(path)],
        stdout=(folder / f"{experiment}.log").open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},  # the session's STOCKPRED_HOME; see below
    )


def checkpoint_epoch(experiment: str) -> tuple[str, int] | None:
    """The RUNNING run of ``experiment`` and the epoch its last.ckpt holds, once there is one."""
    for run_id in tracking.search_runs(experiment)["run_id"]:
        last = resume.last_checkpoint(run_id)
        if last is not None:
            try:
                return run_id, resume.checkpoint_epoch(last)
            except ValueError:  # being written
                return None
    return None


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Every training here on one torch thread: the same arithmetic in this process and the
    subprocesses (so losses compare exactly), and several times faster on a loaded 2-core
    machine than two threads each (measured: 1.6 s against 11.3 s for the reference run)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Interrupted]:
    """One training SIGKILLed and one SIGTERMed, each after its first checkpointed epoch >= 1."""
    folder = tmp_path_factory.mktemp("resume")
    plan = {signal.SIGKILL: "resume-killed", signal.SIGTERM: "resume-terminated"}
    for experiment in plan.values():  # the store and experiments first: no creation races
        tracking.experiment_id(experiment)
    procs = {  # the SIGKILLed run checks the gate diagnostics and the model, the other not
        signum: start_training(folder, name, extras=signum == signal.SIGKILL)
        for signum, name in plan.items()
    }
    seen: dict[int, tuple[str, int]] = {}
    deadline = time.monotonic() + 300
    try:
        while len(seen) < len(procs):
            assert time.monotonic() < deadline, "no checkpoint of epoch >= 1 within 300 s"
            for signum, proc in procs.items():
                if signum in seen:
                    continue
                log = (folder / f"{plan[signum]}.log").read_text()
                assert proc.poll() is None, f"training ended before it was interrupted:\n{log}"
                found = checkpoint_epoch(plan[signum])
                if found and found[1] >= 1:
                    proc.send_signal(signum)
                    seen[signum] = found
            time.sleep(0.05)
        for proc in procs.values():
            proc.wait(timeout=120)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    return {
        signum: Interrupted(
            plan[signum],
            *seen[signum],
            proc.returncode,
            (folder / f"{plan[signum]}.log").read_text(),
        )
        for signum, proc in procs.items()
    }


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    """Validation loss per epoch of the same config trained without interruption."""
    result = run_training(load_config(resumable_config("resume-reference", extras=False)))
    return last_per_step(result.run_id, "val/loss")


def last_per_step(run_id: str, key: str) -> pd.Series:
    """A metric's value per step (an epoch interrupted half-way may be logged twice)."""
    history = tracking.load_metric_history(run_id, key)
    return history.groupby("step")["value"].last()


def check_resumed(run_id: str, kept_epoch: int, reference: pd.Series) -> None:
    """The run is FINISHED, trained every epoch once from the checkpoint on, the same way as
    without the interruption, and has no checkpoints left."""
    run = tracking.client().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["resumed_from_epoch"] == str(kept_epoch)
    assert run.data.tags["resume.count"] == "1"
    assert "error" not in run.data.tags
    assert run.data.metrics["train/epochs"] == EPOCHS
    losses = last_per_step(run_id, "val/loss")
    assert list(losses.index) == list(range(EPOCHS))
    # same batches, dropout masks and optimizer state as the uninterrupted run, epoch by epoch
    pd.testing.assert_series_equal(losses, reference, rtol=1e-6, check_names=False)
    assert not resume.run_dir(run_id).exists()


def test_killed_run_is_reported_and_resumes_in_the_same_run(
    interrupted: dict[int, Interrupted], reference: pd.Series, capsys: pytest.CaptureFixture[str]
) -> None:
    killed = interrupted[signal.SIGKILL]
    assert killed.returncode == -signal.SIGKILL
    run = tracking.client().get_run(killed.run_id)
    assert run.info.status == "RUNNING"  # dangling: nothing could end it
    [found] = tracking.interrupted_runs(killed.experiment)
    assert (found.run_id, found.status, found.resumable) == (killed.run_id, "RUNNING", True)
    assert found.why == f"its process ({run.data.tags['stockpred.pid']} on " \
                        f"{run.data.tags['stockpred.host']}) is gone"  # fmt: skip
    kept = found.checkpoint_epoch
    assert kept is not None and kept >= killed.epoch

    assert main(["interrupted", "--experiment", killed.experiment]) == 0
    listing = capsys.readouterr().out
    assert killed.run_id in listing and "RUNNING" in listing and "is gone" in listing
    assert f"--resume last --experiment {killed.experiment}" in listing

    _note_interrupted(killed.experiment)  # what `stockpred train` says before a new run
    note = capsys.readouterr().err
    assert "1 interrupted run(s)" in note and f"stockpred train --resume {killed.run_id}" in note

    assert main(["train", "--resume", "last", "--experiment", killed.experiment]) == 0
    out = capsys.readouterr().out
    assert f"resuming MLflow run {killed.run_id} after epoch {kept}" in out
    assert f"(id {killed.run_id})" in out  # the summary: the same run
    check_resumed(killed.run_id, kept, reference)
    # gate diagnostics go on: metrics every epoch; the snapshot of epoch 0, taken before the
    # kill, came back from the checkpoint into the figures and tables drawn at the end
    assert list(last_per_step(killed.run_id, "gates/l0/forget/mean").index) == list(range(EPOCHS))
    gates = set(tracking.list_artifact_paths(killed.run_id, "gates"))
    assert {"gates/units_epoch_000.parquet", f"gates/units_epoch_{EPOCHS - 1:03d}.parquet"} <= gates
    history = pd.read_parquet(tracking.download_artifact(killed.run_id, "gates/history.parquet"))
    assert sorted(history["epoch"].unique()) == list(range(EPOCHS))  # the trajectories figure's
    assert tracking.load_run_record(killed.run_id)["model_uri"] is not None
    tags = tracking.client().get_run(killed.run_id).data.tags
    assert tags["resume.previous_status"] == "RUNNING"
    assert tags["stockpred.pid"] == str(os.getpid())  # the owner is now this process
    assert tracking.interrupted_runs(killed.experiment) == []


def test_sigterm_ends_the_run_killed_and_it_resumes(
    interrupted: dict[int, Interrupted], reference: pd.Series
) -> None:
    terminated = interrupted[signal.SIGTERM]
    assert terminated.returncode == 143, terminated.output
    assert f"resume it with `stockpred train --resume {terminated.run_id}`" in terminated.output
    run = tracking.client().get_run(terminated.run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["error"].startswith("Terminated: terminated by SIGTERM")
    last = resume.last_checkpoint(terminated.run_id)
    assert last is not None
    kept = resume.checkpoint_epoch(last)
    [found] = tracking.interrupted_runs(terminated.experiment)
    assert (found.run_id, found.status, found.checkpoint_epoch) == (
        terminated.run_id, "KILLED", kept
    )  # fmt: skip

    result = run_training(resume=terminated.run_id)
    assert result.run_id == terminated.run_id
    check_resumed(terminated.run_id, kept, reference)
    tags = tracking.client().get_run(terminated.run_id).data.tags
    assert tags["resume.previous_status"] == "KILLED"
    assert tags["resume.previous_error"].startswith("Terminated: terminated by SIGTERM")


def test_resume_refuses_what_it_cannot_continue(
    reference: pd.Series, capsys: pytest.CaptureFixture[str]
) -> None:
    [finished] = tracking.search_runs("resume-reference")["run_id"]
    with pytest.raises(ValueError, match="is FINISHED: there is nothing to resume"):
        run_training(resume=finished)
    with pytest.raises(LookupError, match="no MLflow run '0123abcd'"):
        run_training(resume="0123abcd")
    with pytest.raises(ValueError, match="is not an MLflow run id"):
        run_training(resume="../etc")
    with pytest.raises(LookupError, match="no interrupted run to resume in experiment 'nothing'"):
        run_training(load_config({"tracking": {"experiment": "nothing"}}), resume="last")
    assert main(["train", "--resume", finished, "--epochs", "3", "--set", "x.y=1"]) == 2
    assert "drop --epochs, --set" in capsys.readouterr().err


def test_resume_keeps_the_runs_config(tmp_path: Path) -> None:
    """A run whose process died before its first checkpoint restarts from epoch 0, in the same
    run; a config that differs from the run's is refused, naming the settings."""
    config = load_config(resumable_config("resume-early")).with_overrides(
        {"train.max_epochs": 1, "gates.enabled": False, "tracking.log_model": False}
    )
    with pytest.raises(RuntimeError, match="boom"), tracking.tracked_run(config) as run_id:
        resume.run_dir(run_id).mkdir(parents=True)  # as run_training leaves it when SIGKILLed
        raise RuntimeError("boom")
    assert tracking.client().get_run(run_id).info.status == "FAILED"
    with pytest.raises(ConfigError, match=r"train.max_epochs \(run: 1, given: 2\)"):
        run_training(config.with_overrides({"train.max_epochs": 2}), resume=run_id)
    result = run_training(config.with_overrides({"train.progress_bar": True}), resume=run_id)
    run = tracking.client().get_run(result.run_id)
    assert (result.run_id, run.info.status) == (run_id, "FINISHED")
    assert "resumed_from_epoch" not in run.data.tags  # no checkpoint: trained from epoch 0
    assert run.data.tags["resume.previous_error"] == "RuntimeError: boom"
    assert run.data.metrics["train/epochs"] == 1


def test_a_dangling_run_without_checkpoints_is_listed_and_can_be_abandoned(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """E.g. a walk-forward run whose process died: reported, not resumable, ended on request."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    owner = {"stockpred.host": socket.gethostname(), "stockpred.pid": gone.stdout.strip()}
    run_id = tracking.client().create_run(tracking.experiment_id("resume-dangling"), tags=owner)
    run_id = run_id.info.run_id
    [found] = tracking.interrupted_runs("resume-dangling")
    assert (found.run_id, found.status, found.resumable) == (run_id, "RUNNING", False)
    with pytest.raises(LookupError, match="has no checkpoint folder"):
        run_training(resume=run_id)
    assert main(["interrupted", "--experiment", "resume-dangling"]) == 0
    assert "cannot be resumed; end them with --abandon" in capsys.readouterr().out
    assert main(["interrupted", "--abandon", run_id]) == 0
    assert tracking.client().get_run(run_id).info.status == "KILLED"
    assert tracking.interrupted_runs("resume-dangling") == []
