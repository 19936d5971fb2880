"""The forecaster: a plain ``nn.Module`` LSTM and the LightningModule that trains it.

Torch and Lightning only (no Prefect, no MLflow), so it runs on a bare GPU box, in a notebook,
or in a DDP worker.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

INITS = ("default", "chrono")


class LSTMForecaster(nn.Module):
    """Stacked ``nn.LSTM`` over a window of features, a linear head on the last hidden state."""

    def __init__(
        self,
        num_features: int,
        hidden_size: int = 64,
        num_layers: int = 2,
        dropout: float = 0.0,
        *,
        init: str = "default",
        chrono_max: int | None = None,
    ) -> None:
        """``init``: ``default`` (PyTorch's) or ``chrono`` (``chrono_init`` with T_max
        ``chrono_max``, required then; drawn from torch's global generator, so seeded runs
        repeat). The init is not part of ``architecture``: a load restores the weights."""
        super().__init__()
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}: expected one of {INITS}")
        if init == "chrono" and chrono_max is None:
            raise ValueError("init='chrono' needs chrono_max (T_max, e.g. the window length)")
        self.lstm = nn.LSTM(
            input_size=num_features,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.head = nn.Linear(hidden_size, 1)
        if init == "chrono":
            assert chrono_max is not None
            chrono_init(self.lstm, chrono_max)

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

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, F) -> the prediction at every step (B, T) (the last column is ``forward``'s)."""
        out, _ = self.lstm(x)  # (B, T, H)
        return self.head(out).squeeze(-1)  # (B, T)

    def gate_biases(self) -> list[nn.Parameter]:
        """The gate bias vectors (``bias_ih``/``bias_hh`` of every layer: i, f, g, o slices)."""
        return [p for name, p in self.lstm.named_parameters() if name.startswith("bias_")]

    def forget_bias(self) -> torch.Tensor:
        """(layers * hidden,) the effective forget-gate bias of every unit (both biases added),
        the one that sets a unit's memory timescale."""
        hidden = self.lstm.hidden_size
        return torch.cat(
            [
                (getattr(self.lstm, f"bias_ih_l{k}") + getattr(self.lstm, f"bias_hh_l{k}"))[
                    hidden : 2 * hidden
                ]
                for k in range(self.lstm.num_layers)
            ]
        ).detach()


@torch.no_grad()
def chrono_init(lstm: nn.LSTM, t_max: int, generator: torch.Generator | None = None) -> None:
    """Chrono initialisation (Tallec & Ollivier 2018), every layer: forget bias b_f =
    log U(1, t_max - 1) per unit, input bias b_i = -b_f, so the memory timescales spread up to
    about ``t_max`` steps. PyTorch adds ``bias_ih`` and ``bias_hh``: the values go into
    ``bias_ih_l{k}`` and the same slices of ``bias_hh_l{k}`` are zeroed."""
    if t_max < 2:
        raise ValueError(f"chrono init needs t_max >= 2, got {t_max}")
    if not lstm.bias:
        raise ValueError("chrono init sets gate biases: the LSTM has none (bias=False)")
    hidden = lstm.hidden_size
    forget, input_ = slice(hidden, 2 * hidden), slice(0, hidden)  # gate order i, f, g, o
    for layer in range(lstm.num_layers):
        bias_ih = getattr(lstm, f"bias_ih_l{layer}")
        bias_hh = getattr(lstm, f"bias_hh_l{layer}")
        uniform = torch.rand(hidden, generator=generator, dtype=torch.float64)
        b_f = torch.log1p(uniform * (t_max - 2))  # log U(1, t_max - 1)
        assert float(b_f.max()) <= math.log(max(t_max - 1, 1)) + 1e-12
        bias_ih[forget] = b_f.to(bias_ih.dtype)
        bias_ih[input_] = -b_f.to(bias_ih.dtype)
        bias_hh[forget] = 0.0
        bias_hh[input_] = 0.0


class LitForecaster(pl.LightningModule):
    """Trains an injected ``LSTMForecaster`` with the task's loss (default MSE); logs
    ``train/loss`` and ``val/loss``.

    A training batch whose target is (B, T) (``WindowDataset(sequence=True)``) is scored on
    every step after ``burn_in`` with known targets (``forward_sequence``); validation stays on
    the last step. ``gate_bias_lr``: the gate biases train in their own optimizer group at that
    rate; every epoch logs the largest forget-bias move so far (``train/forget_bias_move_max``)
    beside the largest Adam could make (``train/forget_bias_move_possible``, ~lr per step for
    each of the two bias vectors).
    """

    def __init__(
        self,
        model: LSTMForecaster,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        loss: nn.Module | None = None,
        *,
        burn_in: int = 0,
        gate_bias_lr: float | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.loss = loss if loss is not None else nn.MSELoss()
        self.burn_in = burn_in
        self.gate_bias_lr = gate_bias_lr
        self._bias_start: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def on_fit_start(self) -> None:
        if self._bias_start is None:  # a resumed fit keeps counting from the first start
            self._bias_start = self.model.forget_bias().cpu().clone()

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
        biases = self.model.gate_biases()
        own = {id(p) for p in biases}
        rest = [p for p in self.parameters() if id(p) not in own]
        groups: list[dict[str, Any]] = [
            {"params": rest},
            # no decay: it would pull the forget bias, i.e. the memory, towards tau ~ 1.4 d
            {"params": biases, "lr": self.gate_bias_lr, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(
            groups,
            lr=self.learning_rate,
            weight_decay=self.weight_decay,
        )

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        if y.ndim == 1:
            return self.loss(self(x).float(), y.float())
        predicted = self.model.forward_sequence(x)[:, self.burn_in :].float()  # (B, T - burn)
        target = y[:, self.burn_in :].float()
        known = torch.isfinite(target)  # a step whose target is unknown does not count
        return self.loss(predicted[known], target[known])
