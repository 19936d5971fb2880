"""Resume: a training killed (SIGKILL) or terminated (SIGTERM) mid-run continues from its last
checkpoint in the same MLflow run, and ends as if it had never stopped.

Three real ``stockpred train`` processes start together (their imports overlap); each is
interrupted (SIGKILL, SIGTERM, Ctrl-C) once its checkpoint holds epoch 1 or later, wherever it
then is (mid-epoch, or already evaluating). So that none can finish before it is signalled on a
fast idle machine, each waits after saving the checkpoint of epoch ``EPOCHS - 2`` (a test-side
patch, ``GUARD``) until the signal comes. One uninterrupted run of the same config is the
reference: with the optimizer, loop counters and random number generators restored, the
resumed runs' validation losses equal its own epoch by epoch.
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from stockpred import experiment as core
from stockpred import resume, tracking
from stockpred.cli import _note_interrupted, main
from stockpred.config import ConfigError, PipelineConfig, load_config
from stockpred.data.lineage import data_record
from stockpred.pipeline import DataChangedError, run_training
from stockpred.resume import checkpoints as resume_checkpoints
from stockpred.resume import interrupted as resume_runs
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


# `stockpred train`, except that after saving last.ckpt of epoch HOLD it waits for the test's
# signal: the training cannot end before it is interrupted, however fast the machine
GUARD = """
import sys, time
import pytorch_lightning as pl
from stockpred.cli import main

HOLD = int(sys.argv.pop(1))
save = pl.Trainer.save_checkpoint

def save_then_hold(self, filepath, *args, **kwargs):
    save(self, filepath, *args, **kwargs)
    if str(filepath).endswith("last.ckpt") and self.current_epoch >= HOLD:
        time.sleep(600)

pl.Trainer.save_checkpoint = save_then_hold
sys.exit(main(sys.argv[1:]))
"""


def start_training(folder: Path, experiment: str, extras: bool) -> subprocess.Popen[str]:
    path = folder / f"{experiment}.json"
    path.write_text(json.dumps(resumable_config(experiment, extras=extras)))
    return subprocess.Popen(
        [sys.executable, "-c", GUARD, str(EPOCHS - 2), "train", "--config", str(path)],
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
                return run_id, resume_checkpoints.checkpoint_epoch(last)
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
    """One training SIGKILLed, one SIGTERMed and one Ctrl-C'd (SIGINT), each after its first
    checkpointed epoch >= 1."""
    folder = tmp_path_factory.mktemp("resume")
    plan = {
        signal.SIGKILL: "resume-killed",
        signal.SIGTERM: "resume-terminated",
        signal.SIGINT: "resume-ctrl-c",
    }
    for experiment in plan.values():  # the store and experiments first: no creation races
        tracking.experiment_id(experiment)
    procs = {  # the SIGKILLed run checks the gate diagnostics and the model, the other not
        signum: start_training(folder, name, extras=signum == signal.SIGKILL)
        for signum, name in plan.items()
    }
    seen: dict[int, tuple[str, int]] = {}
    # the wait ends on each checkpoint file; the limit only bounds a hang on a loaded machine
    deadline = time.monotonic() + 900
    try:
        while len(seen) < len(procs):
            assert time.monotonic() < deadline, "no checkpoint of epoch >= 1 within 900 s"
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
            proc.wait(timeout=300)
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


@pytest.mark.slow  # trains in a subprocess it kills
def test_killed_run_is_reported_and_resumes_in_the_same_run(
    interrupted: dict[int, Interrupted], reference: pd.Series, capsys: pytest.CaptureFixture[str]
) -> None:
    killed = interrupted[signal.SIGKILL]
    assert killed.returncode == -signal.SIGKILL
    run = tracking.client().get_run(killed.run_id)
    assert run.info.status == "RUNNING"  # dangling: nothing could end it
    [found] = resume_runs.interrupted_runs(killed.experiment)
    assert (found.run_id, found.status, found.resumable) == (killed.run_id, "RUNNING", True)
    assert (
        found.why == f"its process ({run.data.tags['stockpred.pid']} on "
        f"{run.data.tags['stockpred.host']}) is gone"
    )
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
    assert resume_runs.interrupted_runs(killed.experiment) == []


@pytest.mark.slow  # trains in a subprocess it stops
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
    kept = resume_checkpoints.checkpoint_epoch(last)
    [found] = resume_runs.interrupted_runs(terminated.experiment)
    assert (found.run_id, found.status, found.checkpoint_epoch) == (
        terminated.run_id,
        "KILLED",
        kept,
    )

    result = run_training(resume=terminated.run_id)
    assert result.run_id == terminated.run_id
    check_resumed(terminated.run_id, kept, reference)
    tags = tracking.client().get_run(terminated.run_id).data.tags
    assert tags["resume.previous_status"] == "KILLED"
    assert tags["resume.previous_error"].startswith("Terminated: terminated by SIGTERM")


@pytest.mark.slow  # trains the reference run
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


@pytest.mark.slow  # trains
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


@pytest.mark.slow  # starts a subprocess
def test_a_dangling_run_without_checkpoints_is_listed_and_can_be_abandoned(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """E.g. a walk-forward run whose process died: reported, not resumable, ended on request."""
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    owner = {"stockpred.host": socket.gethostname(), "stockpred.pid": gone.stdout.strip()}
    run_id = tracking.client().create_run(tracking.experiment_id("resume-dangling"), tags=owner)
    run_id = run_id.info.run_id
    [found] = resume_runs.interrupted_runs("resume-dangling")
    assert (found.run_id, found.status, found.resumable) == (run_id, "RUNNING", False)
    with pytest.raises(LookupError, match="has no checkpoint folder"):
        run_training(resume=run_id)
    assert main(["interrupted", "--experiment", "resume-dangling"]) == 0
    assert "cannot be resumed; end them with --abandon" in capsys.readouterr().out
    assert main(["interrupted", "--abandon", run_id]) == 0
    assert tracking.client().get_run(run_id).info.status == "KILLED"
    assert resume_runs.interrupted_runs("resume-dangling") == []


@pytest.mark.slow  # trains in a subprocess it interrupts
def test_ctrl_c_ends_the_run_killed_with_its_checkpoints_and_the_resume_hint(
    interrupted: dict[int, Interrupted],
) -> None:
    """Ctrl-C during ``fit`` acts like SIGTERM (Lightning alone would ``sys.exit(1)``)."""
    stopped = interrupted[signal.SIGINT]
    assert stopped.returncode == 130, stopped.output
    assert (
        f"stockpred: interrupted by Ctrl-C (SIGINT): MLflow run {stopped.run_id} is KILLED, "
        f"its checkpoints kept; resume it with `stockpred train --resume {stopped.run_id}`"
        in stopped.output
    )
    run = tracking.client().get_run(stopped.run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["error"].startswith("KeyboardInterrupt: interrupted by Ctrl-C (SIGINT)")
    last = resume.last_checkpoint(stopped.run_id)
    assert last is not None and resume_checkpoints.checkpoint_epoch(last) >= stopped.epoch
    assert resume_runs.abandon_run(stopped.run_id) == "KILLED"  # its checkpoints go
    assert not resume.run_dir(stopped.run_id).exists()


def quick_config(experiment: str) -> PipelineConfig:
    """One epoch, nothing extra: for the tests that resume (or refuse to) without comparing."""
    return load_config(resumable_config(experiment, extras=False)).with_overrides(
        {"train.max_epochs": 1}
    )


class CtrlCAtEpoch(Callback):
    """Raises ``KeyboardInterrupt`` as Ctrl-C would where another SIGINT handler than ours
    is installed (e.g. a tool's own)."""

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt


@pytest.mark.slow  # trains
def test_a_keyboard_interrupt_in_fit_ends_the_run_killed_and_restores_sigint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lightning answers a ``KeyboardInterrupt`` in ``fit`` with ``sys.exit(1)`` and SIGINT
    ignored; ``run_training`` raises ``KeyboardInterrupt`` with the resume hint, the run is
    KILLED with its checkpoint kept, and Ctrl-C works again afterwards (e.g. in a notebook)."""
    fit = core.fit_forecaster

    def fit_with_ctrl_c(*args: object, callbacks: Sequence[Callback] = (), **kwargs: object):
        return fit(*args, callbacks=[*callbacks, CtrlCAtEpoch()], **kwargs)

    monkeypatch.setattr(core, "fit_forecaster", fit_with_ctrl_c)
    config = quick_config("resume-keyboard-interrupt").with_overrides({"train.max_epochs": 3})
    with pytest.raises(KeyboardInterrupt, match=r"is KILLED, its checkpoints kept") as caught:
        run_training(config)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    [run_id] = tracking.search_runs("resume-keyboard-interrupt")["run_id"]
    assert f"`stockpred train --resume {run_id}`" in str(caught.value)
    assert tracking.client().get_run(run_id).info.status == "KILLED"
    last = resume.last_checkpoint(run_id)
    assert last is not None and resume_checkpoints.checkpoint_epoch(last) == 0
    resume_runs.abandon_run(run_id)


def gone_pid() -> str:
    """The pid of a process that has ended."""
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return gone.stdout.strip()


def failed_run(
    config: PipelineConfig, tags: dict[str, str] | None = None, *, dangling: bool = False
) -> str:
    """A run that failed after loading its data (recorded as ``load_data`` does) and kept its
    checkpoint folder, without a checkpoint yet (resumed, it trains from epoch 0). ``dangling``:
    left RUNNING by a process that is gone instead (as after a SIGKILL), so that it is listed
    among the interrupted runs (a FAILED one is listed once it holds a checkpoint)."""
    with pytest.raises(RuntimeError, match="boom"), tracking.tracked_run(config, tags) as run_id:
        folder = resume.run_dir(run_id)
        folder.mkdir(parents=True)
        prices = core.load_prices(config.data)
        tracking.log_data_record(run_id, data_record(config, prices), prices, config.data.source)
        raise RuntimeError("boom")
    if dangling:
        tracking.set_tags(run_id, {"stockpred.pid": gone_pid()})
        tracking.client().update_run(run_id, status="RUNNING")
    return run_id


def test_resume_refuses_a_run_another_process_holds_and_leaves_its_folder() -> None:
    """E.g. a run just resumed by another process, or one whose owner is still ending it: the
    owner lock refuses the resume, and nothing of the owner's folder is touched. ``flock``
    locks belong to an open file, so a second lock in this process stands for the owner."""
    run_id = failed_run(quick_config("resume-busy"))
    with resume.owner_lock(run_id) as folder:
        with pytest.raises(resume.RunBusy, match=f"run {run_id} is being trained by another"):
            run_training(resume=run_id)
        assert (folder / resume.LOCK).read_text().split() == [
            str(os.getpid()),
            socket.gethostname(),
        ]
        with pytest.raises(resume.RunBusy):  # nor can it be abandoned under its owner
            resume_runs.abandon_run(run_id)
    assert folder.is_dir() and (folder / resume.LOCK).is_file()
    run = tracking.client().get_run(run_id)
    assert run.info.status == "FAILED" and "resume.count" not in run.data.tags
    assert resume_runs.resumable_run(run_id) == run_id


@pytest.mark.slow  # trains
def test_resume_refuses_data_that_changed_and_leaves_the_run_as_it_was(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Resume reloads the data; when they are not what the run was trained on, it stops before
    anything is logged or trained. Changed data are simulated by altering what the run recorded
    (the embedded sample never changes): its row count, then its digest (revised prices)."""
    run_id = failed_run(quick_config("resume-data-changed"), dangling=True)
    tags = tracking.client().get_run(run_id).data.tags
    rows, digest = tags["data.rows"], tags["data.digest"]
    tracking.set_tags(run_id, {"data.rows": str(int(rows) - 5)})
    with pytest.raises(DataChangedError, match=rf"rows {int(rows) - 5} -> {rows}\).*Start a new"):
        run_training(resume=run_id)
    tracking.set_tags(run_id, {"data.rows": rows, "data.digest": "0" * 16})
    assert main(["train", "--resume", run_id]) == 1
    err = capsys.readouterr().err
    assert "its data (sample:^GSPC,^IXIC:2012-01-03..2014-12-31) changed" in err
    assert "(the same rows with other values)" in err and "nothing was changed in the run" in err
    run = tracking.client().get_run(run_id)
    assert run.info.status == "RUNNING" and run.data.tags["error"] == "RuntimeError: boom"
    assert "resume.count" not in run.data.tags and run.data.tags["data.digest"] == "0" * 16
    assert "data.train_windows" not in run.data.params  # nothing trained
    assert resume.run_dir(run_id).is_dir()
    assert [r.run_id for r in resume_runs.interrupted_runs("resume-data-changed")] == [run_id]
    tracking.set_tags(run_id, {"data.digest": digest})
    assert main(["train", "--resume", run_id, "--set", "data.refresh=false"]) == 0
    assert tracking.client().get_run(run_id).info.status == "FINISHED"
    assert main(["train", "--resume", run_id, "--set", "train.patience=1"]) == 2
    assert "only --set data.refresh=false is allowed" in capsys.readouterr().err


@pytest.mark.slow  # trains on resume, starts a subprocess
def test_resume_last_passes_over_sweep_trials(caplog: pytest.LogCaptureFixture) -> None:
    """Resumed alone, a trial's result would be missing from its sweep's table: ``last`` leaves
    it to its sweep; named by id it resumes, with a warning."""
    config = quick_config("resume-sweep")
    sweep = {"mlflow.parentRunId": "f" * 32, "run.kind": "sweep_trial"}
    trial = failed_run(config, sweep, dangling=True)
    [found] = resume_runs.interrupted_runs("resume-sweep")
    assert (found.run_id, found.sweep_trial) == (trial, True)
    with pytest.raises(
        LookupError, match=r"1 interrupted sweep trial\(s\) are left to their sweep"
    ):
        resume_runs.resumable_run("last", "resume-sweep")
    alone = failed_run(config, dangling=True)
    assert resume_runs.resumable_run("last", "resume-sweep") == alone
    with caplog.at_level("WARNING", logger="stockpred.pipeline"):
        assert run_training(resume=trial).run_id == trial
    assert f"run {trial} is a trial of sweep run {'f' * 32}" in caplog.text
    assert "will not be in the sweep's trials table" in caplog.text
    assert resume_runs.resumable_run("last", "resume-sweep") == alone


def test_abandon_refuses_a_run_whose_owner_cannot_be_checked_here(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A RUNNING run started on another machine (seen through a shared tracking server) may be
    training right now: ending it takes --force."""
    owner = {"stockpred.host": "another-machine.example", "stockpred.pid": "4242"}
    run_id = tracking.client().create_run(tracking.experiment_id("resume-elsewhere"), tags=owner)
    run_id = run_id.info.run_id
    assert main(["interrupted", "--abandon", run_id]) == 1
    err = capsys.readouterr().err
    assert "cannot be checked from this machine: it may still be training" in err
    assert f"--abandon {run_id} --force" in err
    assert tracking.client().get_run(run_id).info.status == "RUNNING"
    assert main(["interrupted", "--force"]) == 2
    assert main(["interrupted", "--abandon", run_id, "--force"]) == 0
    run = tracking.client().get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["error"] == "abandoned: forced: its process unknown"
