"""The forecaster: a plain ``nn.Module`` LSTM and the LightningModule that trains it.

Torch and Lightning only (no Prefect, no MLflow), so it runs on a bare GPU box, in a notebook,
or in a DDP worker.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn


class LSTMForecaster(nn.Module):
    """Stacked ``nn.LSTM`` over a window of features, a linear head on the last hidden state."""

    def __init__(
        self, num_features: int, hidden_size: int = 64, num_layers: int = 2, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            input_size=num_features,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.head = nn.Linear(hidden_size, 1)

    def architecture(self) -> dict[str, int | float]:
        """The constructor's arguments: with the state dict, all a load needs (no pickle)."""
        return {
            "num_features": self.lstm.input_size,
            "hidden_size": self.lstm.hidden_size,
            "num_layers": self.lstm.num_layers,
            "dropout": float(self.lstm.dropout),
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, F) -> prediction (B,) of the (scaled) forward return."""
        out, _ = self.lstm(x)  # (B, T, H), the top layer's hidden states
        return self.head(out[:, -1]).squeeze(-1)  # (B,)


class LitForecaster(pl.LightningModule):
    """Trains an injected ``LSTMForecaster`` with the task's loss (default MSE); logs
    ``train/loss`` and ``val/loss``."""

    def __init__(
        self,
        model: LSTMForecaster,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        loss: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.loss = loss if loss is not None else nn.MSELoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

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
        return torch.optim.AdamW(
            self.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return self.loss(self(x).float(), y.float())
