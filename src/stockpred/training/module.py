"""The LightningModule that trains any ``stockpred.models`` forecaster with the task's loss."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn


class LitForecaster(pl.LightningModule):
    """Trains an injected forecaster (an ``nn.Module`` (B, T, F) -> (B,)) with the task's loss
    (default MSE); logs ``train/loss`` and ``val/loss``.

    A training batch whose target is (B, T) (``WindowDataset(sequence=True)``) is scored on
    every step after ``burn_in`` with known targets (the model's ``forward_sequence``);
    validation stays on the last step. ``gate_bias_lr``: the gate biases (the model's
    ``gate_biases``) train in their own optimizer group at that rate. A model with a
    ``forget_bias`` (its memory gate's effective bias) gets, every epoch, the largest move so far
    (``train/forget_bias_move_max``) beside the largest Adam could make
    (``train/forget_bias_move_possible``, ~lr per step for each of the two bias vectors).
    """

    def __init__(
        self,
        model: nn.Module,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        loss: nn.Module | None = None,
        *,
        burn_in: int = 0,
        gate_bias_lr: float | None = None,
    ) -> None:
        super().__init__()
        self.model: Any = model  # a Forecaster; the options below use its optional methods
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.loss = loss if loss is not None else nn.MSELoss()
        self.burn_in = burn_in
        self.gate_bias_lr = gate_bias_lr
        self._bias_start: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def on_fit_start(self) -> None:
        forget_bias = getattr(self.model, "forget_bias", None)
        if forget_bias is not None and self._bias_start is None:
            self._bias_start = forget_bias().cpu().clone()  # a resumed fit counts from the start

    def on_train_epoch_end(self) -> None:
        if self._bias_start is None:
            return
        moved = (self.model.forget_bias().cpu() - self._bias_start).abs().max()
        lr = self.gate_bias_lr or self.learning_rate
        self.log("train/forget_bias_move_max", float(moved), sync_dist=True)
        self.log(
            "train/forget_bias_move_possible", 2.0 * lr * self.trainer.global_step, sync_dist=True
        )

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        loss = self._loss(batch)
        # sync_dist: under DDP every rank sees (and early-stops on) the mean over all ranks
        self.log("val/loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        return self(batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.gate_bias_lr is None:
            return torch.optim.AdamW(
                self.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
            )
        biases = self.model.gate_biases()  # the model's gate biases
        own = {id(p) for p in biases}
        rest = [p for p in self.parameters() if id(p) not in own]
        groups: list[dict[str, Any]] = [
            {"params": rest},
            # no decay: it would pull the forget bias, i.e. the memory, towards tau ~ 1.4 d
            {"params": biases, "lr": self.gate_bias_lr, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=self.learning_rate, weight_decay=self.weight_decay)

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        if y.ndim == 1:
            return self.loss(self(x).float(), y.float())
        predicted = self.model.forward_sequence(x)[:, self.burn_in :].float()  # (B, T - burn)
        target = y[:, self.burn_in :].float()
        known = torch.isfinite(target)  # a step whose target is unknown does not count
        return self.loss(predicted[known], target[known])
