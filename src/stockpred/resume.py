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
from typing import IO

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
    """SIGTERM (``kill``, a scheduler, a Prefect cancellation) or Ctrl-C arrived during a run:
    unwind it, ending the MLflow run KILLED with its checkpoints kept for a resume.

    A ``BaseException`` so ``except Exception`` blocks do not swallow it, and deliberately not a
    ``KeyboardInterrupt``: Lightning turns a ``KeyboardInterrupt`` inside ``fit`` into
    ``sys.exit(1)`` (leaving SIGINT ignored), but re-raises any other exception.
    ``run_training`` re-raises a Ctrl-C as ``KeyboardInterrupt`` once the run is ended.
    """

    def __init__(self, message: str = "terminated by SIGTERM", signum: int = signal.SIGTERM):
        super().__init__(message)
        self.signum = int(signum)


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
    same run). The lock file records this process's pid and host, for messages. ``flock`` locks
    belong to an open file: a second ``owner_lock`` of the same run in this process is refused
    too. A new lock file appears at its path already locked (it is linked into place), so no
    other process ever sees an unlocked lock file of a live run, and a lock taken on a file that
    a finishing owner deleted meanwhile is let go and taken again on the current one.
    """
    handle = _locked_handle(run_id)
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {socket.gethostname()}\n")
        handle.flush()
        yield run_dir(run_id)
    finally:
        handle.close()  # releases the lock


def _locked_handle(run_id: str) -> IO[str]:
    folder = run_dir(run_id)
    path = folder / LOCK
    for _ in range(10):
        folder.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            return path.open("a+")
        try:
            handle = path.open("r+")
        except FileNotFoundError:
            handle = _create_locked(path)
            if handle is None:  # another process created it first: contend for theirs
                continue
            return handle
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise RunBusy(
                f"run {run_id} is being trained by another process right now (pid and "
                f"host: {owner}); wait for it to end, or stop it first"
            ) from None
        if _same_file(handle, path):
            return handle
        handle.close()  # the owner deleted the folder as we locked: lock the current file
    raise RunBusy(f"run {run_id}: its owner lock keeps changing hands; try again")


def _create_locked(path: Path) -> IO[str] | None:
    """A new lock file at ``path``, locked before it appears there; None if one appeared first."""
    assert fcntl is not None
    draft = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    handle = draft.open("w+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else has it
        os.link(draft, path)  # atomic, and fails if the path exists
    except FileExistsError:
        handle.close()
        return None
    except OSError:  # no hard links on this file system: lock the file at the path instead
        handle.close()
        handle = path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
    except BaseException:
        handle.close()
        raise
    finally:
        draft.unlink(missing_ok=True)
    return handle


def _same_file(handle: IO[str], path: Path) -> bool:
    try:
        here, there = os.fstat(handle.fileno()), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


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
def signals_raise() -> Iterator[None]:
    """While inside, SIGTERM and Ctrl-C (SIGINT) raise ``Terminated`` in the main thread, so the
    run is recorded as KILLED, its checkpoints stay, and ``fit`` unwinds like any error.

    Installed only from the main thread, and only over Python's own handlers (SIGTERM's default,
    SIGINT's ``default_int_handler``, which Jupyter kernels also use while a cell runs): an
    orchestrator's handler (Prefect raises its ``TerminationSignal``) stays in charge. Both
    handlers are restored on the way out, whatever happened inside (Lightning ignores SIGINT
    after a ``KeyboardInterrupt`` in ``fit``; a notebook must get its Ctrl-C back). Lightning
    adds its SIGTERM notice in front of this handler during ``fit`` and restores it afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, _frame: object) -> None:
        if signum == signal.SIGINT:
            raise Terminated("interrupted by Ctrl-C (SIGINT)", signum)
        raise Terminated(f"terminated by {signal.Signals(signum).name}", signum)

    ours = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}
    previous = {signum: signal.getsignal(signum) for signum in ours}
    try:
        for signum, default in ours.items():
            if previous[signum] is default:
                signal.signal(signum, _raise)
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:  # None: installed from C; cannot be put back from Python
                signal.signal(signum, handler)


sigterm_raises = signals_raise  # the earlier name
