"""Fit the forecaster with a Lightning ``Trainer``: early stopping, best-checkpoint restore, seeded."""

from __future__ import annotations

import contextlib
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import Logger
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from pytorch_lightning.trainer.connectors.signal_connector import _get_sigkill_signal

from stockpred.config import ModelConfig, TrainConfig
from stockpred.model import LitForecaster, LSTMForecaster
from stockpred.windows import WindowDataset

# Lightning's hints that do not apply to an in-memory dataset served by single gathers.
for _pattern in (
    ".*does not have many workers.*",
    ".*Checkpoint directory.*exists and is not empty.*",
    ".*isinstance.treespec, LeafSpec.*",  # Lightning 2.6 on torch 2.13, harmless
):
    warnings.filterwarnings("ignore", message=_pattern)


@dataclass(frozen=True)
class FitResult:
    """The best model (weights restored from the best epoch) and how training went."""

    model: LSTMForecaster
    best_epoch: int
    epochs_trained: int
    best_val_loss: float
    batch_size: int = 0  # per device and step, as resolved
    precision: str = ""
    strategy: str = ""
    world_size: int = 1  # processes that trained (one per device)


CPU_BATCH_SIZE = 256
GPU_BATCH_SIZE = 1024  # per GPU: a 2x64 LSTM step on 256 windows leaves a GPU mostly idle


def cuda_available() -> bool:
    """Whether this machine has a CUDA GPU, asked without initialising CUDA in this process.

    ``torch.cuda.device_count()`` asks NVML, so ``ddp_fork`` workers forked later can still use
    CUDA. ``torch.cuda.is_available()`` does so only while ``PYTORCH_NVML_BASED_CUDA_CHECK=1``
    (lightning_fabric sets it on import; the user's code can unset it), else it initialises the
    CUDA driver, which "poisons fork". Where NVML cannot answer (e.g. MIG devices) torch falls
    back to the driver, as in Lightning's own device checks.
    """
    return torch.cuda.device_count() > 0


def uses_cuda(accelerator: str) -> bool:
    """Whether Lightning trains on CUDA GPUs with this ``accelerator`` setting (fork-safe)."""
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and cuda_available())


def resolve_precision(precision: str, accelerator: str, *, fork_safe: bool = False) -> str:
    """``auto`` means bf16 mixed precision on CUDA that supports it, else full float32.

    ``fork_safe``: ask in a subprocess, as asking torch here would initialise CUDA in this
    process, which forked (``ddp_fork``) workers then could not use.
    """
    if precision != "auto":
        return precision
    if uses_cuda(accelerator) and cuda_available() and _bf16_supported(fork_safe):
        return "bf16-mixed"
    return "32-true"


def _bf16_supported(fork_safe: bool) -> bool:
    if not fork_safe:
        return torch.cuda.is_bf16_supported()
    probe = "import torch; print(int(torch.cuda.is_bf16_supported()))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300
    )
    return done.stdout.strip() == "1"


def resolve_batch_size(batch_size: int | str, accelerator: str) -> int:
    """``auto``: ``GPU_BATCH_SIZE`` windows per step on CUDA, ``CPU_BATCH_SIZE`` elsewhere."""
    if batch_size != "auto":
        return int(batch_size)
    return GPU_BATCH_SIZE if uses_cuda(accelerator) else CPU_BATCH_SIZE


def device_count(accelerator: str, devices: int | str) -> int:
    """How many devices (one process each) Lightning trains on; ``auto`` mirrors Lightning:
    every CUDA GPU (one in a notebook), else one."""
    if devices != "auto":
        return int(devices)
    if uses_cuda(accelerator) and not interactive():
        return torch.cuda.device_count()
    return 1


def interactive() -> bool:
    """A notebook or interactive interpreter (Lightning's test: no spawned workers there)."""
    return hasattr(sys, "ps1") or bool(sys.flags.interactive)


def resolve_strategy(strategy: str, accelerator: str, devices: int | str) -> str:
    """``auto`` on one device; on several never Lightning's ``ddp``, which re-runs ``sys.argv``
    per rank (the whole pipeline: a new MLflow run each) and cannot start from a notebook or a
    Prefect task. ``auto`` picks ``ddp_spawn`` (fresh worker processes), or ``ddp_fork`` in a
    notebook, where Lightning refuses spawn."""
    if device_count(accelerator, devices) <= 1:
        return "auto"
    if strategy == "auto":
        strategy = "ddp_fork" if interactive() else "ddp_spawn"
    if strategy == "ddp_fork" and uses_cuda(accelerator) and torch.cuda.is_initialized():
        raise ValueError(
            "CUDA is already in use in this process (e.g. an earlier GPU run in this notebook), "
            "so training on several GPUs cannot fork its workers: restart the kernel first, "
            "train on one GPU (train.devices=1), or run `stockpred train --devices N` in a shell"
        )
    if strategy == "ddp_spawn" and interactive():
        raise ValueError(
            "train.strategy=ddp_spawn cannot start worker processes from a notebook or an "
            "interactive session: use train.strategy=auto (or ddp_fork) there"
        )
    return strategy


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
        self._launcher = ReturningLauncher(self, start_method=self._start_method)


def _trainer_strategy(strategy: str) -> str | DDPStrategy:
    if strategy in ("ddp_spawn", "ddp_fork"):
        return ReturningDDPStrategy(start_method=strategy.removeprefix("ddp_"))  # type: ignore[arg-type]
    return strategy


def fit_forecaster(
    train: WindowDataset,
    val: WindowDataset,
    model_config: ModelConfig,
    train_config: TrainConfig,
    *,
    logger: Logger | bool = False,
    callbacks: Sequence[Callback] = (),
    checkpoint_dir: str | Path | None = None,
) -> FitResult:
    """Train an ``LSTMForecaster`` on ``train``, stop early on ``val/loss``, restore the best epoch.

    With ``checkpoint_dir`` the checkpoints persist there: the best weights, and ``last.ckpt``,
    the full training state after every epoch; if ``last.ckpt`` is already there, training
    continues from it (a resumed run). Without it they live in a temporary folder.
    """
    if len(train) == 0 or len(val) == 0:
        raise ValueError(
            f"no windows to train on (train {len(train)}, val {len(val)}): the date range is "
            f"too short for a window of {model_config.window} days"
        )
    pl.seed_everything(train_config.seed, workers=True, verbose=False)
    accelerator = train_config.accelerator
    strategy = resolve_strategy(train_config.strategy, accelerator, train_config.devices)
    precision = resolve_precision(
        train_config.precision, accelerator, fork_safe=strategy == "ddp_fork"
    )
    batch_size = resolve_batch_size(train_config.batch_size, accelerator)
    pin_memory = uses_cuda(accelerator)  # page-locked batches: Lightning copies non_blocking
    net = LSTMForecaster(
        train.num_features, model_config.hidden_size, model_config.num_layers, model_config.dropout
    )
    module = LitForecaster(net, train_config.learning_rate, train_config.weight_decay)
    with _checkpoint_folder(checkpoint_dir) as ckpt_dir:
        checkpoint = ModelCheckpoint(
            dirpath=ckpt_dir, monitor="val/loss", mode="min", save_weights_only=True,
            **_best_checkpoint_options(checkpoint_dir),
        )  # fmt: skip
        stopper = EarlyStopping(monitor="val/loss", mode="min", patience=train_config.patience)
        trainer = pl.Trainer(
            accelerator=accelerator,
            devices=train_config.devices,
            strategy=_trainer_strategy(strategy),
            precision=precision,  # type: ignore[arg-type]
            max_epochs=train_config.max_epochs,
            limit_train_batches=train_config.limit_train_batches,
            gradient_clip_val=train_config.gradient_clip or None,
            callbacks=[checkpoint, stopper, *_resume_callbacks(checkpoint_dir), *callbacks],
            logger=logger,
            enable_progress_bar=train_config.progress_bar,
            enable_model_summary=train_config.progress_bar,
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
            ckpt_path=_resume_from(checkpoint_dir),
        )
        best_path = checkpoint.best_model_path
        if best_path:
            state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
        best_score = checkpoint.best_model_score
    best_epoch = _best_epoch(best_path)
    net = module.model.cpu().eval()
    return FitResult(
        model=net,
        best_epoch=best_epoch,
        epochs_trained=trainer.current_epoch,
        best_val_loss=float(best_score) if best_score is not None else float("nan"),
        batch_size=batch_size,
        precision=precision,
        strategy=strategy,
        world_size=trainer.world_size,
    )


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


# Resumable training (``stockpred.resume``): where checkpoints go, and the state they carry.
LAST_CHECKPOINT = "last"  # last.ckpt: the full training state after the latest epoch


def _checkpoint_folder(folder: str | Path | None) -> contextlib.AbstractContextManager[str]:
    if folder is None:
        return tempfile.TemporaryDirectory(prefix="stockpred-ckpt-")
    Path(folder).mkdir(parents=True, exist_ok=True)
    return contextlib.nullcontext(str(folder))


def _resume_callbacks(folder: str | Path | None) -> list[Callback]:
    """With a persistent folder: ``last.ckpt`` after every epoch (weights, optimizer, loops and
    callback state; Lightning's own ``save_last`` only writes when the best checkpoint does),
    and the random number generators' state inside it."""
    if folder is None:
        return []
    last = ModelCheckpoint(
        dirpath=str(folder),
        filename=LAST_CHECKPOINT,
        monitor=None,
        save_top_k=1,
        enable_version_counter=False,
    )
    return [last, ResumeState()]


def _best_checkpoint_options(folder: str | Path | None) -> dict[str, Any]:
    """Persistent: keep every epoch's weights until the run ends (deleting the previous best
    before ``last.ckpt`` is rewritten would leave a process killed in between pointing at a
    deleted file), one name per epoch."""
    if folder is None:
        return {"save_top_k": 1}
    return {"save_top_k": -1, "enable_version_counter": False}


def _resume_from(folder: str | Path | None) -> str | None:
    if folder is None:
        return None
    path = Path(folder) / f"{LAST_CHECKPOINT}.ckpt"
    return str(path) if path.is_file() else None


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
        source = getattr(trainer.fit_loop, "_data_source", None)
        self._generator = getattr(getattr(source, "instance", None), "generator", None)
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
