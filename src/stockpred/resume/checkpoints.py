"""What a resumable fit saves and restores: ``last.ckpt`` after every epoch, and the state
Lightning's checkpoint does not carry (the random generators, early stopping that fired).

``callbacks(folder)`` and ``resume_from(folder)`` go into ``fit_forecaster``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint

from stockpred.resume.lock import LAST
from stockpred.training.devices import cuda_available
from stockpred.training.lightning_internals import train_loader_generator

LAST_NAME = LAST.removesuffix(".ckpt")  # ModelCheckpoint's filename (it adds .ckpt)


def checkpoint_epoch(path: Path) -> int:
    """The last completed epoch saved in a Lightning checkpoint (training continues after it)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign file
        raise ValueError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); delete it to "
            "retrain the run from its first epoch"
        ) from exc
    return int(state["epoch"])


def callbacks(folder: Path) -> list[Callback]:
    """``last.ckpt`` after every epoch (weights, optimizer, loops and callback state;
    Lightning's own ``save_last`` only writes when the best checkpoint does), and the random
    number generators' state inside it."""
    last = ModelCheckpoint(
        dirpath=str(folder),
        filename=LAST_NAME,
        monitor=None,
        save_top_k=1,
        enable_version_counter=False,
    )
    return [last, ResumeState()]


def resume_from(folder: Path) -> Path | None:
    """The checkpoint a fit in ``folder`` continues from (None: it starts afresh)."""
    path = folder / LAST
    return path if path.is_file() else None


class ResumeState(Callback):
    """Carries what a resumed fit needs beyond Lightning's own checkpoint state.

    - The random number generators (torch's global one: dropout; the training loader's: batch
      order), saved with every checkpoint and restored when the resumed fit starts, before
      Lightning draws from them, so a resumed run trains on the same batches with the same
      dropout masks as one never stopped (checked: equal validation losses, epoch by epoch).
    - Early stopping that had already fired: the stopped flag is not in Lightning's checkpoint,
      so a run interrupted after it stopped (e.g. during evaluation) would train one more epoch.
    """

    def __init__(self) -> None:
        self._generator: torch.Generator | None = None
        self._restored: dict[str, Any] | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The loader given to fit, before Lightning draws from its generator to start the first
        # epoch's iterator (``trainer.train_dataloader`` exists only after that draw).
        self._generator = train_loader_generator(trainer)
        if self._restored is not None:
            state, self._restored = self._restored, None
            torch.set_rng_state(state["torch"])
            if self._generator is not None and state["loader"] is not None:
                self._generator.set_state(state["loader"])
            if state["cuda"] and cuda_available():
                torch.cuda.set_rng_state_all(state["cuda"])

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if any(isinstance(c, EarlyStopping) and c.stopped_epoch > 0 for c in trainer.callbacks):  # type: ignore[attr-defined]
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        cuda = torch.cuda.is_initialized()  # never initialise CUDA to ask
        return {
            "torch": torch.get_rng_state(),
            "loader": self._generator.get_state() if self._generator is not None else None,
            "cuda": torch.cuda.get_rng_state_all() if cuda else [],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restored = dict(state_dict)
