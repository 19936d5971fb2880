"""The fit keeps the validation outputs of the epoch it keeps, as a fresh predict would give them."""

import numpy as np
import pytest
import torch
from torch import nn

from stockpred import experiment
from stockpred.config import load_config
from stockpred.prepare import Prepared
from stockpred.split import VAL
from stockpred.training import predict
from stockpred.training.fit import ValidationOutputs
from tests.conftest import TINY

CONFIG = load_config({**TINY, "train": {**TINY["train"], "max_epochs": 4}})


@pytest.fixture(scope="module")
def prepared() -> Prepared:
    return experiment.build(experiment.load_prices(CONFIG.data), CONFIG)


@pytest.mark.slow  # trains (60 steps)
def test_the_kept_epochs_validation_outputs_equal_a_fresh_predict_of_its_weights(
    prepared: Prepared,
) -> None:
    fitted = experiment.fit(prepared, CONFIG)
    # the kept epoch is not the last one: outputs of the last epoch would differ
    assert 0 <= fitted.best_epoch < fitted.epochs_trained - 1
    val = prepared.dataset(VAL)
    assert fitted.val_predictions is not None and fitted.val_predictions.shape == (len(val),)
    np.testing.assert_allclose(
        fitted.val_predictions, predict(fitted.model, val), rtol=1e-6, atol=1e-7
    )


class _Trainer:
    """The three things ``ValidationOutputs`` reads of a Trainer."""

    def __init__(self) -> None:
        self.sanity_checking = False
        self.current_epoch = 0
        self.callback_metrics: dict[str, torch.Tensor] = {}


def _epoch(
    keeper: ValidationOutputs, trainer: _Trainer, net: nn.Module, loss: float, passes: int = 1
) -> torch.Tensor:
    """One validation epoch of two batches of 3 windows; ``passes`` forwards in each step."""
    keeper.on_validation_epoch_start(trainer, net)  # type: ignore[arg-type]
    outputs = []
    for _ in range(2):
        x = torch.randn(3, 4)
        keeper.on_validation_batch_start(trainer, net, (x, x[:, 0]), 0)  # type: ignore[arg-type]
        outputs += [net(x) for _ in range(passes)][:1]
        keeper.on_validation_batch_end(trainer, net, None, (x, x[:, 0]), 0)  # type: ignore[arg-type]
    trainer.callback_metrics = {"val/loss": torch.tensor(loss)}
    keeper.on_validation_end(trainer, net)  # type: ignore[arg-type]
    trainer.current_epoch += 1
    return torch.cat(outputs).detach()


def test_it_keeps_the_lowest_loss_epochs_outputs_and_nothing_it_cannot_vouch_for() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 1), nn.Flatten(0))  # (B, 4) -> (B,)
    trainer, keeper = _Trainer(), ValidationOutputs()
    first = _epoch(keeper, trainer, net, loss=1.0)
    _epoch(keeper, trainer, net, loss=2.0)
    _epoch(keeper, trainer, net, loss=1.0)  # a tie: the earlier epoch stays kept, as checkpoints do
    _epoch(keeper, trainer, net, loss=0.5, passes=2)  # another forward inside the step: untrusted
    assert keeper.best_epoch == 0
    kept = keeper.at(0, 6, exact=True)
    assert kept is not None and kept.dtype == np.float64
    np.testing.assert_array_equal(kept, first.numpy())
    assert keeper.at(3, 6, exact=True) is None  # not the kept epoch (e.g. before a resume)
    assert keeper.at(0, 7, exact=True) is None  # not every validation window
    assert keeper.at(0, 6, exact=False) is None  # mixed precision
    net(torch.randn(2, 4))  # outside a validation step: no hook left behind
    assert keeper.at(0, 6, exact=True) is not None


def test_the_bar_counts_epochs_from_one_and_the_summary_claims_no_flops(
    prepared: Prepared, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from stockpred.training.fit import epoch_label

    assert epoch_label(5, 6) == "Epoch 6/6" and epoch_label(0, -1) == "Epoch 1"
    config = CONFIG.with_overrides(
        {"train.max_epochs": 2, "train.patience": 3, "train.progress_bar": True}
    )
    with caplog.at_level(logging.INFO, logger="pytorch_lightning.callbacks.model_summary"):
        experiment.fit(prepared, config)
    captured = capfd.readouterr()
    bar = captured.err + captured.out
    assert "Epoch 1/2" in bar and "Epoch 2/2" in bar and "Epoch 0" not in bar
    summary = "\n".join(r.getMessage() for r in caplog.records if "Total params" in r.getMessage())
    assert "Total params" in summary  # the summary is still shown, without a FLOPs count
    assert "Flops" not in summary and "FLOPs" not in summary
