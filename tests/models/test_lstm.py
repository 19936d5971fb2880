import subprocess
import sys

import numpy as np
import pytest
import torch

from stockpred.config import ModelConfig, TrainConfig
from stockpred.models import LSTMForecaster
from stockpred.training import LitForecaster, fit_forecaster, predict
from stockpred.training.devices import resolve_precision
from stockpred.windows import WindowDataset


def test_it_maps_a_batch_of_windows_to_one_prediction_each() -> None:
    model = LSTMForecaster(num_features=5, hidden_size=7, num_layers=3, dropout=0.2)
    out = model(torch.randn(4, 11, 5))
    assert out.shape == (4,)
    assert model.lstm.num_layers == 3 and model.lstm.batch_first


@pytest.mark.slow  # starts a Python subprocess
def test_the_model_module_imports_neither_prefect_nor_mlflow() -> None:
    code = (
        "import sys, stockpred.models, stockpred.training, stockpred.windows, stockpred.experiment;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'mlflow'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _learnable(rows: int, seed: int) -> WindowDataset:
    """The target is the mean of the window's first feature: an LSTM can learn it."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2)).astype(np.float32)
    window = 6
    y = np.full(rows, np.nan, dtype=np.float32)
    y[window - 1 :] = np.convolve(x[:, 0], np.ones(window) / window, mode="valid") * 3
    return WindowDataset.from_arrays(x, y, np.zeros(rows, dtype=np.int64), window)


MODEL = ModelConfig(window=6, hidden_size=16, num_layers=1, dropout=0.0)
TRAIN = TrainConfig(max_epochs=6, batch_size=32, learning_rate=1e-2, patience=3, progress_bar=False)


@pytest.mark.slow  # trains several epochs
def test_it_learns_a_learnable_signal_and_restores_the_best_epoch() -> None:
    train, val = _learnable(600, 0), _learnable(200, 1)
    fit = fit_forecaster(train, val, MODEL, TRAIN)
    pred = predict(fit.model, val)
    mse = float(np.mean((pred - val.target[val.ends].numpy()) ** 2))
    variance = float(val.target[val.ends].var())
    assert mse < 0.5 * variance  # far better than predicting the mean
    assert mse == pytest.approx(fit.best_val_loss, rel=1e-4)  # the weights are the best epoch's
    assert 0 <= fit.best_epoch < fit.epochs_trained <= TRAIN.max_epochs


@pytest.mark.slow  # trains twice (40 steps)
def test_the_same_seed_gives_the_same_model() -> None:
    train, val = _learnable(300, 2), _learnable(100, 3)
    short = TRAIN.model_copy(update={"max_epochs": 2})
    first = fit_forecaster(train, val, MODEL, short)
    second = fit_forecaster(train, val, MODEL, short)
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_it_explains_an_empty_dataset() -> None:
    empty = WindowDataset(torch.zeros(3, 2), torch.zeros(3), torch.zeros(0), 6)
    with pytest.raises(ValueError, match="too short for a window of 6"):
        fit_forecaster(empty, empty, MODEL, TRAIN)


def test_precision_is_full_float_on_cpu_unless_asked() -> None:
    assert resolve_precision("auto", "cpu") == "32-true"
    assert resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"


def test_the_lightning_module_logs_grouped_losses() -> None:
    module = LitForecaster(LSTMForecaster(2, 4, 1))
    assert isinstance(module.configure_optimizers(), torch.optim.AdamW)


def test_the_fit_builds_the_net_with_the_configured_chrono_init() -> None:
    train, val = _learnable(120, 0), _learnable(40, 1)
    model = ModelConfig(window=6, hidden_size=8, num_layers=2, dropout=0.0, init="chrono")
    config = TrainConfig(max_epochs=1, batch_size=64, progress_bar=False, learning_rate=1e-4)
    nets = [fit_forecaster(train, val, model, config).model for _ in range(2)]
    torch.testing.assert_close(nets[0].state_dict(), nets[1].state_dict())  # seeded
    for layer in range(2):
        lstm = nets[0].lstm
        forget = (getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}"))[8:16]
        assert 0.2 < float(forget.mean()) < float(torch.log(torch.tensor(5.0)))  # log U(1, 5)
