"""A run's checkpoint folder and its owner lock: who trains the run, and whether they live.

A run started by ``run_training`` keeps its training state in
``<project>/mlflow/checkpoints/<run_id>/`` (see ``stockpred.paths.checkpoints_dir``):
``last.ckpt`` (the full training state after the last completed epoch, ``resume.checkpoints``),
``epoch=E-step=S.ckpt`` (the best validation weights so far), and ``owner.lock``: held
(``flock``) by the process training the run, for as long as it runs. The kernel drops the lock
when that process dies, however it dies (SIGKILL, out of memory, a reboot), so ``owner_alive``
tells a live run from a dangling one without trusting a pid. No torch, no MLflow here.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
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


def run_dir(run_id: str) -> Path:
    """The checkpoint folder of MLflow run ``run_id`` (it may not exist)."""
    if not _RUN_ID.match(run_id):
        raise ValueError(f"{run_id!r} is not an MLflow run id (32 hex digits, e.g. from the UI)")
    return checkpoints_dir() / run_id


def last_checkpoint(run_id: str) -> Path | None:
    """The run's ``last.ckpt``, if it has one."""
    path = run_dir(run_id) / LAST
    return path if path.is_file() else None


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
            handle: IO[str] = path.open("r+")
        except FileNotFoundError:
            created = _create_locked(path)
            if created is None:  # another process created it first: contend for theirs
                continue
            return created
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
