"""Resuming interrupted training: one home for all of it.

- ``lock``: a run's checkpoint folder and its owner lock (who trains it; alive or dangling);
- ``signals``: SIGTERM and Ctrl-C raise ``Terminated`` during a run, so it ends KILLED;
- ``checkpoints``: ``last.ckpt`` every epoch and the state Lightning does not save (torch);
- ``runs``: interrupted runs, the one ``--resume`` names, abandoning one (MLflow, via tracking);
- ``session``: ``open_run``, the lifecycle of a tracked training run with all of the above.

Importing the package is light (no torch, no MLflow): the CLI needs ``Terminated`` early.
"""

from stockpred.resume.lock import (
    LAST,
    LOCK,
    RunBusy,
    discard,
    discard_if_empty,
    last_checkpoint,
    owner_alive,
    owner_lock,
    pid_alive,
    run_dir,
)
from stockpred.resume.signals import Terminated, signals_raise

__all__ = [
    "LAST",
    "LOCK",
    "RunBusy",
    "Terminated",
    "discard",
    "discard_if_empty",
    "last_checkpoint",
    "owner_alive",
    "owner_lock",
    "pid_alive",
    "run_dir",
    "signals_raise",
]
