"""Resuming interrupted training: where a run's checkpoints live, who owns the run, SIGTERM.

A run started by ``run_training`` keeps its training state in
``<project>/mlflow/checkpoints/<run_id>/`` (see ``stockpred.paths.checkpoints_dir``):

- ``last.ckpt``: the full training state after the last completed epoch (weights, optimizer,
  epoch and loop counters, early-stopping, checkpoint and gate-monitor state, random number
  generators), rewritten after every epoch;
- ``epoch=E-step=S.ckpt``: the best validation weights so far;
- ``owner.lock``: held (``flock``) by the process training the run, for as long as it runs. The
  kernel drops the lock when that process dies, however it dies (SIGKILL, out of memory, a
  reboot), so ``owner_alive`` tells a live run from a dangling one without trusting a pid.

The folder is deleted when the run finishes; it stays when the run fails or is killed, so
``stockpred train --resume RUN_ID`` can continue from ``last.ckpt``. No MLflow here (that is
``stockpred.tracking``), no torch at import.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from stockpred.paths import checkpoints_dir

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; liveness falls back to the owner's pid
    fcntl = None  # type: ignore[assignment]

LAST = "last.ckpt"
LOCK = "owner.lock"
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class RunBusy(ValueError):
    """The run is being trained by a live process."""


class Terminated(BaseException):
    """SIGTERM arrived (``kill``, a scheduler, a Prefect cancellation): unwind like Ctrl-C.

    A ``BaseException``, like ``KeyboardInterrupt``, so ``except Exception`` blocks do not
    swallow it; ``tracking`` ends the MLflow run KILLED and the checkpoints stay for a resume.
    """

    def __init__(self, message: str = "terminated by SIGTERM") -> None:
        super().__init__(message)


def run_dir(run_id: str) -> Path:
    """The checkpoint folder of MLflow run ``run_id`` (it may not exist)."""
    if not _RUN_ID.match(run_id):
        raise ValueError(f"{run_id!r} is not an MLflow run id (32 hex digits, e.g. from the UI)")
    return checkpoints_dir() / run_id


def last_checkpoint(run_id: str) -> Path | None:
    """The run's ``last.ckpt``, if it has one."""
    path = run_dir(run_id) / LAST
    return path if path.is_file() else None


def checkpoint_epoch(path: Path) -> int:
    """The last completed epoch saved in a Lightning checkpoint (training continues after it)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign file
        raise ValueError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); delete it to "
            "retrain the run from its first epoch"
        ) from exc
    return int(state["epoch"])


@contextlib.contextmanager
def owner_lock(run_id: str) -> Iterator[Path]:
    """Create the run's checkpoint folder and hold its owner lock; yield the folder.

    Raises ``RunBusy`` if another live process holds it (two processes must never train the
    same run). The lock file records this process's pid and host, for messages.
    """
    folder = run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / LOCK).open("a+")
    try:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                owner = handle.read().strip() or "unknown"
                raise RunBusy(
                    f"run {run_id} is being trained by another process right now (pid and "
                    f"host: {owner}); wait for it to end, or stop it first"
                ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {socket.gethostname()}\n")
        handle.flush()
        yield folder
    finally:
        handle.close()  # releases the lock


def owner_alive(run_id: str) -> bool | None:
    """Whether a live process on this machine holds the run's owner lock; None if the run has
    no lock file here (not trained here, or before this feature) or locks are unavailable."""
    try:
        path = run_dir(run_id) / LOCK
    except ValueError:
        return None
    if fcntl is None or not path.is_file():
        return None
    with path.open() as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (pids are reused: a hint only)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def discard(run_id: str) -> None:
    """Delete the run's checkpoint folder (after it finished, or when it is abandoned)."""
    shutil.rmtree(run_dir(run_id), ignore_errors=True)


def discard_if_empty(run_id: str) -> None:
    """Delete the run's folder if it holds no checkpoint (a run that failed before training)."""
    folder = run_dir(run_id)
    if folder.is_dir() and not any(folder.glob("*.ckpt")):
        discard(run_id)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM raises ``Terminated`` in the main thread instead of killing the
    process outright, so the run is recorded as KILLED and its checkpoints stay.

    Installed only from the main thread and only over the default handler: an orchestrator's
    own handler (Prefect raises its ``TerminationSignal``) is left in charge. Lightning adds its
    SIGTERM notice in front of this handler during ``fit`` and restores it afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def _raise(signum: int, _frame: object) -> None:
        raise Terminated(f"terminated by {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
