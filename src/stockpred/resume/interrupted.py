"""Interrupted runs: which can be resumed here, the one ``--resume`` names, giving up on one.

MLflow only through ``stockpred.tracking``; the checkpoint folders and their lock through
``stockpred.resume.lock``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
from dataclasses import dataclass
from typing import Any

from stockpred import tracking
from stockpred.resume.checkpoints import checkpoint_epoch
from stockpred.resume.lock import (
    RunBusy,
    discard,
    last_checkpoint,
    owner_lock,
    pid_alive,
    run_dir,
)
from stockpred.resume.lock import owner_alive as lock_held
from stockpred.text import printable

RESUMABLE_STATUSES = ("RUNNING", "FAILED", "KILLED")


@dataclass(frozen=True)
class InterruptedRun:
    """A run that stopped before it finished, and whether ``stockpred train --resume`` can
    continue it here."""

    run_id: str
    run_name: str
    status: str  # RUNNING (its process is gone), FAILED or KILLED
    started: str  # local time, YYYY-MM-DD HH:MM
    why: str
    checkpoint_epoch: int | None  # the last completed epoch saved; None: starts from epoch 0
    resumable: bool  # its checkpoint folder is on this machine
    sweep_trial: bool = False  # a trial of a sweep: ``--resume last`` passes it over

    @property
    def resume_command(self) -> str:
        """The command that continues it."""
        return f"stockpred train --resume {self.run_id}"


def owner_alive(run: Any) -> bool | None:
    """Whether the process that owns a RUNNING run is alive: its checkpoint folder's lock when
    the folder is here, else its pid when it ran on this machine; None when it cannot tell."""
    alive = lock_held(run.info.run_id)
    if alive is not None:
        return alive
    host, pid = (
        run.data.tags.get(tracking.OWNER_HOST_TAG),
        run.data.tags.get(tracking.OWNER_PID_TAG),
    )
    if not pid or host != socket.gethostname():
        return None
    return pid_alive(int(pid))


def interrupted_runs(experiment: str = "stockpred", max_results: int = 200) -> list[InterruptedRun]:
    """Runs of ``experiment`` that stopped before finishing, newest first: RUNNING runs whose
    process is gone (dangling after a SIGKILL, a crash or a reboot), and FAILED or KILLED runs
    that kept a checkpoint. A RUNNING run whose owner may be alive (started on another machine
    and with no checkpoint folder here) is left out."""
    out = []
    for run in tracking.unfinished_runs(experiment, max_results):
        run_id, status, tags = run.info.run_id, run.info.status, run.data.tags
        has_folder = run_dir(run_id).is_dir()
        last = last_checkpoint(run_id)
        if status == "RUNNING":
            if owner_alive(run) is not False:
                continue
            owner = f"{tags.get(tracking.OWNER_PID_TAG, '?')} on {tags.get(tracking.OWNER_HOST_TAG, '?')}"
            why = f"its process ({owner}) is gone"
        elif status in RESUMABLE_STATUSES and last is not None:
            why = tags.get("error", status)
        else:
            continue
        try:
            epoch = checkpoint_epoch(last) if last else None
        except ValueError as exc:
            epoch, why = None, f"{why}; {exc}"
        started = dt.datetime.fromtimestamp(run.info.start_time / 1000)  # local time
        trial = tags.get("run.kind") == tracking.SWEEP_TRIAL
        out.append(
            InterruptedRun(
                run_id,
                printable(run.info.run_name),  # a shared store's names: never raw on a terminal
                status,
                f"{started:%Y-%m-%d %H:%M}",
                why,
                epoch,
                has_folder,
                trial,
            )
        )
    return out


def resumable_run(ref: str, experiment: str = "stockpred") -> str:
    """The id of the run that ``--resume REF`` continues: ``REF`` itself, or for ``last`` the
    newest resumable interrupted run of ``experiment`` that is not a sweep's trial (resumed on
    its own, a trial's result would be missing from its sweep's table: name it to resume it).
    Raises ``LookupError``/``ValueError`` saying why not (finished, unknown, trained elsewhere,
    still running)."""
    if ref == "last":
        found = [run for run in interrupted_runs(experiment) if run.resumable]
        alone = [run for run in found if not run.sweep_trial]
        if not alone:
            trials = (
                f"; {len(found)} interrupted sweep trial(s) are left to their sweep (resume "
                "one by its id)"
                if found
                else ""
            )
            raise LookupError(
                f"no interrupted run to resume in experiment {experiment!r} at {tracking.tracking_uri()}"
                f"{trials} (`stockpred interrupted --experiment {experiment}` lists them)"
            )
        return alone[0].run_id
    folder = run_dir(ref)  # checks that it looks like a run id
    run = tracking.get_run(ref)
    status = run.info.status
    if run.info.lifecycle_stage != "active":
        raise ValueError(f"run {ref} is deleted; restore it in the MLflow UI to resume it")
    if status == "FINISHED":
        raise ValueError(f"run {ref} is FINISHED: there is nothing to resume")
    if not folder.is_dir():
        raise LookupError(
            f"run {ref} ({status}) has no checkpoint folder {folder}: only runs trained by "
            "`stockpred train` (run_training) on this machine, and not finished, can be resumed"
        )
    if status == "RUNNING" and owner_alive(run):
        raise RunBusy(
            f"run {ref} is still RUNNING in a live process (pid {run.data.tags.get(tracking.OWNER_PID_TAG)}"
            f" on {run.data.tags.get(tracking.OWNER_HOST_TAG)}): wait for it, or stop it first"
        )
    return ref


def abandon_run(run_id: str, force: bool = False) -> str:
    """Give up on an interrupted run: a dangling RUNNING one ends KILLED; its checkpoints are
    deleted. Returns its status now.

    Refuses a RUNNING run unless its process is known to be gone (``owner_alive`` is False); a
    run whose owner cannot be checked from here (started on another machine, seen through a
    shared tracking server) needs ``force``, and its process may well still be training it.
    """
    run_dir(run_id)  # checks that it looks like a run id
    run = tracking.get_run(run_id)
    if run.info.status == "RUNNING":
        alive = owner_alive(run)
        tags = run.data.tags
        owner = f"pid {tags.get(tracking.OWNER_PID_TAG, '?')} on {tags.get(tracking.OWNER_HOST_TAG, '?')}"
        if alive:
            raise RunBusy(f"run {run_id} is RUNNING in a live process ({owner}): stop it")
        if alive is None and not force:
            raise RunBusy(
                f"run {run_id} is RUNNING and whether its process ({owner}) is alive cannot be "
                "checked from this machine: it may still be training. Stop it there, or, if you "
                f"know it is gone, `stockpred interrupted --abandon {run_id} --force`"
            )
    with contextlib.ExitStack() as stack:
        if run_dir(run_id).is_dir():  # RunBusy while a process trains or resumes it
            stack.enter_context(owner_lock(run_id))
        if run.info.status == "RUNNING":
            why = "its process was gone" if alive is False else "forced: its process unknown"
            tracking.end_run(run_id, "KILLED", f"abandoned: {why}")
        discard(run_id)  # under the lock: nobody can be using the folder
    return str(tracking.get_run(run_id).info.status)
