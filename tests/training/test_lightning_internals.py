"""The private Lightning names ``stockpred.training.lightning_internals`` relies on: if Lightning
renames or reshapes one, this fails before a DDP run or a resume silently breaks."""

import inspect

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.environments import LightningEnvironment
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from pytorch_lightning.trainer.connectors.signal_connector import _get_sigkill_signal

from stockpred.training.lightning_internals import (
    ReturningDDPStrategy,
    ReturningLauncher,
    train_loader_generator,
)
from stockpred.windows import WindowDataset


def test_the_launcher_hooks_we_override_exist_with_the_signatures_we_use() -> None:
    for name in ("launch", "kill", "get_extra_results", "update_main_process_results"):
        assert callable(getattr(_MultiProcessingLauncher, name)), name
    recover = inspect.signature(_MultiProcessingLauncher._recover_results_in_main_process)
    assert list(recover.parameters) == ["self", "worker_output", "trainer"]
    assert callable(DDPStrategy._configure_launcher)
    assert issubclass(ReturningLauncher, _MultiProcessingLauncher)
    strategy = ReturningDDPStrategy(
        start_method="spawn", cluster_environment=LightningEnvironment()
    )
    strategy._configure_launcher()
    assert isinstance(strategy._launcher, ReturningLauncher)
    assert strategy._launcher._strategy is strategy
    assert int(_get_sigkill_signal()) > 0


def test_the_training_loaders_generator_is_found_where_resume_restores_it() -> None:
    data = WindowDataset.from_arrays(
        torch.zeros(40, 2).numpy(), torch.zeros(40).numpy(), torch.zeros(40).long().numpy(), 5
    )
    loader = data.loader(8, shuffle=True, seed=3)
    seen: list[object] = []

    class Probe(pl.Callback):
        def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            seen.append(train_loader_generator(trainer))

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
            return self.layer(batch[0][:, -1]).mean()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Probe()],
    )
    trainer.fit(Tiny(), train_dataloaders=loader)
    assert seen == [loader.generator]


def test_lightning_notices_are_quiet_and_its_other_messages_stay() -> None:
    import logging

    import lightning_utilities.core.rank_zero as rank_zero

    import stockpred.training.fit  # noqa: F401  (installs the filter, as every fit does)
    from stockpred.training.lightning_internals import _QuietNotices

    class Keep(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    keep = Keep()
    [quiet] = [f for f in rank_zero.log.filters if isinstance(f, _QuietNotices)]
    rank_zero.log.addHandler(keep)
    try:
        rank_zero.log.removeFilter(quiet)
        options = {"accelerator": "cpu", "logger": False, "limit_train_batches": 1.0}
        pl.Trainer(**options, enable_progress_bar=False)
        loud, keep.messages = keep.messages, []
        rank_zero.log.addFilter(quiet)
        pl.Trainer(**options, enable_progress_bar=False)
        rank_zero.rank_zero_info("`Trainer.fit` stopped")
    finally:
        rank_zero.log.removeHandler(keep)
        if quiet not in rank_zero.log.filters:
            rank_zero.log.addFilter(quiet)
    assert any(m.startswith("GPU available") for m in loud)  # what Lightning says unfiltered
    assert any(m.startswith("💡 Tip") for m in loud)
    assert any(m.startswith("`Trainer(limit_train_batches=1.0)`") for m in loud)
    assert keep.messages == ["`Trainer.fit` stopped"]
