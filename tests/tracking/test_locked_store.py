"""A SQLite store locked by another process for longer than MLflow's own busy timeout (20 s)
during training: the run waits (bounded) and finishes instead of failing."""

import subprocess
import sys
from collections.abc import Sequence

import pytest
import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from stockpred import experiment, tracking
from stockpred.config import PipelineConfig
from stockpred.pipeline import run_training

HOLD_S = 25
LOCKER = f"""
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep({HOLD_S})
db.execute("COMMIT")
"""


class LockAfterFirstEpoch(Callback):
    """Starts the locker when epoch 0 ends; its metrics and the next epochs' meet the lock."""

    def __init__(self) -> None:
        self.locker: subprocess.Popen[str] | None = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.locker is None:
            db = str(tracking.store_dir() / "mlflow.db")
            self.locker = subprocess.Popen(
                [sys.executable, "-c", LOCKER, db], stdout=subprocess.PIPE, text=True
            )
            assert self.locker.stdout is not None
            assert self.locker.stdout.readline().strip() == "locked"


@pytest.mark.slow  # trains while a subprocess holds the store
def test_training_survives_a_store_locked_longer_than_mlflows_busy_timeout(
    tiny_config: PipelineConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = LockAfterFirstEpoch()
    fit = experiment.fit_forecaster

    def fit_with_lock(*args: object, callbacks: Sequence[Callback] = (), **kwargs: object):
        return fit(*args, callbacks=[*callbacks, lock], **kwargs)

    monkeypatch.setattr(experiment, "fit_forecaster", fit_with_lock)
    config = tiny_config.with_overrides(
        {
            "train.max_epochs": 3,
            "train.patience": 5,
            "tracking.experiment": "locked-store",
            "tracking.log_model": False,
            "gates.enabled": False,
        }
    )
    result = run_training(config)
    assert lock.locker is not None and lock.locker.wait(timeout=120) == 0
    run = tracking.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    history = tracking.load_metric_history(result.run_id, "val/loss")
    assert list(history["step"]) == [0, 1, 2]  # the epochs logged while locked are all there
