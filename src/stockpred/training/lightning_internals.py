"""The one module that uses Lightning's private API, each use explained; a test
(``tests/training/test_lightning_internals.py``) breaks when Lightning changes one of them.

- ``_MultiProcessingLauncher`` (subclassed), its ``_recover_results_in_main_process`` (overridden)
  and its ``_strategy``; ``DDPStrategy._configure_launcher`` / ``_launcher`` / ``_start_method``:
  Lightning's ``ddp_spawn``/``ddp_fork`` return only the weights and ``callback_metrics`` from the
  workers, and never stop them when the main process is interrupted. ``ReturningLauncher`` sends
  back the epochs run and the callbacks' state, and stops the workers.
- ``_get_sigkill_signal``: the signal Lightning itself kills stuck workers with (SIGKILL; SIGTERM
  on Windows).
- ``Trainer.fit_loop._data_source``: the training loader given to ``fit``, before Lightning draws
  from its generator (``train_loader_generator``, for restoring the batch order on resume).
- ``lightning_utilities.core.rank_zero.log``: the logger Lightning's ``rank_zero_info`` writes
  to (``quiet_lightning_notices`` filters it).
"""

from __future__ import annotations

import logging
import pickle
import re
import signal
import time
from typing import Any

import lightning_utilities.core.rank_zero as rank_zero
import pytorch_lightning as pl
import torch
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from pytorch_lightning.trainer.connectors.signal_connector import _get_sigkill_signal

# Notices Lightning prints on every Trainer that say nothing about the run: the litlogger and
# litmodels adverts, the device inventory (the devices used are the run's params), and the echo
# of limit_train_batches=1.0 (all batches: the default, passed explicitly).
NOTICES = re.compile(r"💡 Tip|(GPU|TPU|HPU) available|`Trainer\(limit_train_batches=1.0\)`")


class _QuietNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not NOTICES.match(record.getMessage())


def quiet_lightning_notices() -> None:
    """Drop Lightning's ``NOTICES`` (once per process; its other messages stay)."""
    if not any(isinstance(f, _QuietNotices) for f in rank_zero.log.filters):
        rank_zero.log.addFilter(_QuietNotices())


WORKER_GRACE_S = 5.0  # how long stopped workers get to exit on SIGTERM before SIGKILL


class ReturningLauncher(_MultiProcessingLauncher):
    """Lightning's ``ddp_spawn``/``ddp_fork`` launcher that also sends back what the main
    process reads after ``fit`` and Lightning does not return: the epochs run, every
    callback's ``state_dict`` (best checkpoint score...), and the ``rank_zero_state()`` of
    callbacks that define it (the ``GateMonitor``'s history and snapshots); and that stops its
    workers when the main process is interrupted."""

    def launch(
        self, function: Any, *args: Any, trainer: pl.Trainer | None = None, **kwargs: Any
    ) -> Any:
        """Lightning's launch; on any exception in this process while the workers run (SIGTERM
        raising ``Terminated``, Ctrl-C, an error) the workers are stopped before it propagates.

        Lightning registers its SIGTERM handling only inside the workers and, when the main
        process is interrupted, never stops them: non-daemonic, they kept training (rank 0
        logging into an MLflow run already ended KILLED, rewriting its checkpoints) and the
        interpreter waited for them at exit."""
        try:
            return super().launch(function, *args, trainer=trainer, **kwargs)
        except BaseException:
            self.stop_workers()
            raise

    def stop_workers(self, grace_s: float = WORKER_GRACE_S) -> None:
        """SIGTERM to every live worker, ``grace_s`` seconds for all to exit, then SIGKILL to
        the rest (a rank stuck in a collective whose peer is gone never exits by itself). A
        second interruption during the wait goes straight to SIGKILL."""
        try:
            self.kill(signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            for proc in self.procs:
                proc.join(max(0.0, deadline - time.monotonic()))
        finally:
            self.kill(_get_sigkill_signal())  # no-op for workers that exited
            for proc in self.procs:
                proc.join(1.0)  # reap

    def get_extra_results(self, trainer: pl.Trainer) -> dict[str, Any]:
        extra = super().get_extra_results(trainer)
        callbacks: dict[int, tuple[str, Any]] = {}
        for index, callback in enumerate(trainer.callbacks):  # type: ignore[attr-defined]
            if hasattr(callback, "rank_zero_state"):
                callbacks[index] = ("rank_zero_state", callback.rank_zero_state())
            elif state := callback.state_dict():
                callbacks[index] = ("state_dict", state)
        state = {"epochs": trainer.fit_loop.epoch_progress.state_dict(), "callbacks": callbacks}
        extra["stockpred_state"] = pickle.dumps(state)  # bytes: no tensor memory sharing
        return extra

    def update_main_process_results(self, trainer: pl.Trainer, extra: dict[str, Any]) -> None:
        super().update_main_process_results(trainer, extra)
        state = pickle.loads(extra["stockpred_state"])  # our own worker's output
        trainer.fit_loop.epoch_progress.load_state_dict(state["epochs"])
        for index, (kind, value) in state["callbacks"].items():
            callback = trainer.callbacks[index]  # type: ignore[attr-defined]
            if kind == "rank_zero_state":
                callback.load_rank_zero_state(value)
            else:
                callback.load_state_dict(value)

    def _recover_results_in_main_process(self, worker_output: Any, trainer: pl.Trainer) -> None:
        # Lightning loads rank 0's last weights onto the device they were saved from: that
        # would initialise CUDA here, and a later ddp_fork fit in this kernel could not fork.
        if worker_output.weights_path is not None:
            state = torch.load(worker_output.weights_path, map_location="cpu", weights_only=True)
            trainer.lightning_module.load_state_dict(state, strict=False)
            self._strategy.checkpoint_io.remove_checkpoint(worker_output.weights_path)
        super()._recover_results_in_main_process(worker_output._replace(weights_path=None), trainer)


class ReturningDDPStrategy(DDPStrategy):
    """DDP in worker processes started by ``spawn`` or ``fork``, results returned (see above)."""

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        self._launcher = ReturningLauncher(self, start_method=self._start_method)  # type: ignore[arg-type]  # spawn or fork only: see trainer_strategy


def trainer_strategy(strategy: str) -> str | DDPStrategy:
    if strategy in ("ddp_spawn", "ddp_fork"):
        return ReturningDDPStrategy(start_method=strategy.removeprefix("ddp_"))  # type: ignore[arg-type]
    return strategy


def train_loader_generator(trainer: pl.Trainer) -> torch.Generator | None:
    """The random generator of the training loader given to ``fit`` (None if it has none)."""
    source = getattr(trainer.fit_loop, "_data_source", None)
    return getattr(getattr(source, "instance", None), "generator", None)
