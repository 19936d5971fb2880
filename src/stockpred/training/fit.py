"""Fit the forecaster with a Lightning ``Trainer``: early stopping, best-checkpoint restore, seeded.

Torch and Lightning only. What a resumable run adds (``last.ckpt`` every epoch, the random
generators' state) comes in through ``callbacks`` and ``resume_from`` (``stockpred.resume``).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import (
    Callback,
    EarlyStopping,
    ModelCheckpoint,
    ModelSummary,
    TQDMProgressBar,
)
from pytorch_lightning.loggers import Logger
from torch import nn

import stockpred.training.devices as devices
from stockpred.models import Forecaster, build_model
from stockpred.training.lightning_internals import quiet_lightning_notices, trainer_strategy
from stockpred.training.module import LitForecaster
from stockpred.windows import WindowDataset

if TYPE_CHECKING:  # the config (pydantic) is not imported by a bare GPU check
    from stockpred.config import ModelConfig, TrainConfig

# Lightning's hints that do not apply to an in-memory dataset served by single gathers.
for _pattern in (
    ".*does not have many workers.*",
    ".*Checkpoint directory.*exists and is not empty.*",
    ".*isinstance.treespec, LeafSpec.*",  # Lightning 2.6 on torch 2.13, harmless
):
    warnings.filterwarnings("ignore", message=_pattern)
quiet_lightning_notices()  # the litlogger tip and "GPU available: False, used: False" lines


class EpochBar(TQDMProgressBar):
    """Lightning's progress bar, counting epochs from 1 out of the maximum (``Epoch 6/6`` on the
    last of 6; Lightning's own shows the 0-based index, ``Epoch 5``)."""

    def init_train_tqdm(self) -> Any:
        """The training bar, its ``Epoch N`` descriptions relabelled as they are set."""
        bar = super().init_train_tqdm()
        describe = bar.set_description

        def relabel(desc: str | None = None, refresh: bool = True) -> None:
            number = (desc or "").removeprefix("Epoch ")
            if desc and desc != number and number.isdigit():
                desc = epoch_label(int(number), self.trainer.max_epochs)
            describe(desc, refresh)

        bar.set_description = relabel
        return bar


def epoch_label(epoch: int, max_epochs: int | None) -> str:
    """``Epoch 6/6`` for the 0-based ``epoch`` 5 of 6 (``Epoch 6`` with no maximum)."""
    return f"Epoch {epoch + 1}" + (f"/{max_epochs}" if max_epochs and max_epochs > 0 else "")


class UncountedFlops(logging.Filter):
    """Lightning's model summary counts FLOPs only from an example input, which this model has
    not: it printed ``0 Total Flops`` and a column of zeros. Drop both (unknown, not zero)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        lines = text.split("\n")
        total = [line for line in lines if line.rstrip().endswith("Total Flops")]
        if not total or total[0].split()[0] != "0":
            return True
        header = next((line.split(" | ") for line in lines if " | " in line), [])
        column = [i for i, name in enumerate(header) if name.strip() == "FLOPs"]
        kept = []
        for line in lines:
            if line in total:
                continue
            if column and " | " in line:
                cells = line.split(" | ")
                line = " | ".join(c for i, c in enumerate(cells) if i != column[0])
            kept.append(line)
        record.msg, record.args = "\n".join(kept), ()
        return True


_summary_log = logging.getLogger("pytorch_lightning.callbacks.model_summary")
if not any(isinstance(f, UncountedFlops) for f in _summary_log.filters):
    _summary_log.addFilter(UncountedFlops())


@dataclass(frozen=True)
class FitResult:
    """The best model (weights restored from the best epoch) and how training went."""

    model: Forecaster
    best_epoch: int
    epochs_trained: int
    best_val_loss: float
    batch_size: int = 0  # per device and step, as resolved
    precision: str = ""
    strategy: str = ""
    world_size: int = 1  # processes that trained (one per device)
    # the outputs (scaled) on every validation window at the kept epoch, in order, as training
    # computed them; None where they were not kept (see ``ValidationOutputs``)
    val_predictions: np.ndarray | None = None


def fit_forecaster(
    train: WindowDataset,
    val: WindowDataset,
    model_config: ModelConfig,
    train_config: TrainConfig,
    *,
    logger: Logger | bool = False,
    callbacks: Sequence[Callback] = (),
    checkpoint_dir: str | Path | None = None,
    resume_from: str | Path | None = None,
    loss: nn.Module | None = None,
) -> FitResult:
    """Train the ``model.arch`` forecaster on ``train``, stop early on ``val/loss``, restore the best epoch.

    With ``checkpoint_dir`` the best-epoch checkpoints persist there (every epoch's, until the
    caller deletes the folder); without it they live in a temporary folder. ``resume_from``: a
    full Lightning checkpoint to continue training from. ``loss``: the task's training loss on
    the scaled target (default MSE).
    """
    if len(train) == 0 or len(val) == 0:
        raise ValueError(
            f"no windows to train on (train {len(train)}, val {len(val)}): the date range is "
            f"too short for a window of {model_config.window} days"
        )
    threads = torch.get_num_threads()
    torch.set_num_threads(devices.resolve_threads(train_config.num_threads))
    try:
        return _fit(
            train,
            val,
            model_config,
            train_config,
            logger,
            callbacks,
            checkpoint_dir,
            resume_from,
            loss,
        )
    finally:
        torch.set_num_threads(threads)


def _fit(
    train: WindowDataset,
    val: WindowDataset,
    model_config: ModelConfig,
    train_config: TrainConfig,
    logger: Logger | bool,
    callbacks: Sequence[Callback],
    checkpoint_dir: str | Path | None,
    resume_from: str | Path | None,
    loss: nn.Module | None,
) -> FitResult:
    pl.seed_everything(train_config.seed, workers=True, verbose=False)
    accelerator = train_config.accelerator
    strategy = devices.resolve_strategy(train_config.strategy, accelerator, train_config.devices)
    precision = devices.resolve_precision(
        train_config.precision, accelerator, fork_safe=strategy == "ddp_fork"
    )
    batch_size = devices.resolve_batch_size(train_config.batch_size, accelerator)
    pin_memory = devices.uses_cuda(
        accelerator
    )  # page-locked batches: Lightning copies non_blocking
    net = build_model(train.num_features, model_config)
    module = LitForecaster(
        net,
        train_config.learning_rate,
        train_config.weight_decay,
        loss,
        burn_in=train_config.burn_in,
        gate_bias_lr=train_config.gate_bias_lr,
    )
    with _checkpoint_folder(checkpoint_dir) as ckpt_dir:
        checkpoint = ModelCheckpoint(
            dirpath=ckpt_dir,
            monitor="val/loss",
            mode="min",
            save_weights_only=True,
            **_best_checkpoint_options(checkpoint_dir),
        )
        stopper = EarlyStopping(monitor="val/loss", mode="min", patience=train_config.patience)
        outputs = ValidationOutputs()
        trainer = pl.Trainer(
            accelerator=accelerator,
            devices=train_config.devices,
            strategy=trainer_strategy(strategy),
            precision=precision,  # type: ignore[arg-type]
            max_epochs=train_config.max_epochs,
            limit_train_batches=train_config.limit_train_batches,
            gradient_clip_val=train_config.gradient_clip or None,
            callbacks=[
                checkpoint,
                stopper,
                outputs,
                # the plain summary (its log line can be cleaned: UncountedFlops), not the rich one
                *([EpochBar(), ModelSummary()] if train_config.progress_bar else []),
                *callbacks,
            ],
            logger=logger,
            enable_progress_bar=train_config.progress_bar,
            enable_model_summary=False,  # ours above, with the progress bar
            log_every_n_steps=1,
            deterministic="warn",
            num_sanity_val_steps=0,
        )
        trainer.fit(
            module,
            train_dataloaders=train.loader(
                batch_size,
                shuffle=True,
                seed=train_config.seed if strategy == "auto" else None,  # DDP: see loader
                pin_memory=pin_memory,
            ),
            val_dataloaders=val.loader(batch_size * 4, shuffle=False, pin_memory=pin_memory),
            ckpt_path=str(resume_from) if resume_from else None,
        )
        best_path = checkpoint.best_model_path
        if best_path:
            state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
        best_score = checkpoint.best_model_score
    best_epoch = _best_epoch(best_path)
    net = net.cpu().eval()  # the module's own network, the best epoch's weights loaded
    return FitResult(
        model=net,
        best_epoch=best_epoch,
        epochs_trained=trainer.current_epoch,
        best_val_loss=float(best_score) if best_score is not None else float("nan"),
        batch_size=batch_size,
        precision=precision,
        strategy=strategy,
        world_size=trainer.world_size,
        val_predictions=outputs.at(best_epoch, len(val), exact=_full_precision(precision))
        if trainer.world_size == 1
        else None,
    )


class ValidationOutputs(Callback):
    """Keeps the model's outputs on the validation windows of the epoch with the lowest
    ``val/loss`` seen (the epoch ``ModelCheckpoint`` keeps: ties go to the earlier one), so that
    evaluation need not run the model over them again.

    A forward hook on the network, live only inside each validation step, records that step's
    output; the gate monitor's and other callbacks' forward passes are not recorded.
    """

    def __init__(self) -> None:
        self.best_epoch = -1
        self.best_loss = float("inf")
        self._best: torch.Tensor | None = None
        self._batches: list[torch.Tensor] = []
        self._step: list[torch.Tensor] = []
        self._handle: torch.utils.hooks.RemovableHandle | None = None
        self._complete = True

    def at(self, epoch: int, windows: int, *, exact: bool) -> np.ndarray | None:
        """The kept outputs as float64 if they are ``epoch``'s, cover ``windows`` windows and
        were computed in full precision (``exact``); else None (e.g. a resumed run whose kept
        epoch ran before the interruption)."""
        if not exact or self._best is None or epoch != self.best_epoch:
            return None
        if len(self._best) != windows:
            return None
        return self._best.numpy().astype(np.float64)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._batches = []
        self._complete = not trainer.sanity_checking

    def on_validation_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *_: Any
    ) -> None:
        self._step = []
        network = getattr(pl_module, "model", pl_module)
        self._handle = network.register_forward_hook(self._record)

    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, _outputs: Any, batch: Any, *_: Any
    ) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        rows = len(batch[1])
        if len(self._step) == 1 and len(self._step[0]) == rows:
            self._batches.append(self._step[0])
        else:  # not one forward pass of this batch: the epoch's outputs cannot be trusted
            self._complete = False
        self._step = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loss = trainer.callback_metrics.get("val/loss")
        if loss is None or not self._complete or not self._batches:
            return
        value = float(loss)
        if value < self.best_loss:  # strictly lower, as ModelCheckpoint's "min"
            self.best_loss, self.best_epoch = value, trainer.current_epoch
            self._best = torch.cat(self._batches)
        self._batches = []

    def _record(self, _module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        self._step.append(output.detach().float().cpu())


def _full_precision(precision: str) -> bool:
    """Whether validation ran in float32 or better, as ``predict`` does (mixed precision's
    outputs differ from a float32 predict in the third digit)."""
    return precision in {"32", "32-true", "64", "64-true"}


@torch.no_grad()
def predict(model: torch.nn.Module, dataset: WindowDataset, batch_size: int = 4096) -> np.ndarray:
    """The model's outputs for every window of ``dataset``, in order, as float64."""
    model.eval()
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, len(dataset), batch_size):
        x, _ = dataset.__getitems__(torch.arange(start, min(start + batch_size, len(dataset))))
        outputs.append(model(x.to(device)).float().cpu())
    if not outputs:
        return np.empty(0)
    return torch.cat(outputs).numpy().astype(np.float64)


def _best_epoch(path: str) -> int:
    # ModelCheckpoint names files "epoch=E-step=S.ckpt"
    for part in path.rsplit("/", 1)[-1].split("-"):
        if part.startswith("epoch="):
            return int(part.removeprefix("epoch="))
    return -1


def _checkpoint_folder(folder: str | Path | None) -> contextlib.AbstractContextManager[str]:
    if folder is None:
        return tempfile.TemporaryDirectory(prefix="stockpred-ckpt-")
    Path(folder).mkdir(parents=True, exist_ok=True)
    return contextlib.nullcontext(str(folder))


def _best_checkpoint_options(folder: str | Path | None) -> dict[str, Any]:
    """Persistent: keep every epoch's weights until the run ends (deleting the previous best
    before ``last.ckpt`` is rewritten would leave a process killed in between pointing at a
    deleted file), one name per epoch."""
    if folder is None:
        return {"save_top_k": 1}
    return {"save_top_k": -1, "enable_version_counter": False}
