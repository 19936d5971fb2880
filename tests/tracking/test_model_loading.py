"""Loading a logged model never unpickles it: stockpred's loader and MLflow's own pyfunc loader
both rebuild the forecaster from its weights; a malicious pickle placed beside it is not run."""

import os
import pickle
import shutil
import warnings
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pytest
import torch

from stockpred import tracking
from stockpred.config import PipelineConfig
from stockpred.models import LSTMForecaster
from stockpred.tracking.writers import WEIGHTS_FOLDER


class Payload:
    """Unpickling this writes a file: what an attacker's model version would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (self.marker, "pwned"))


def _logged(model: torch.nn.Module, features: int) -> tuple[str, Path]:
    config = PipelineConfig().with_overrides({"tracking.experiment": "model-loading"})
    with tracking.tracked_run(config) as run_id:
        uri = tracking.log_model(run_id, model, torch.zeros(2, 5, features).numpy())
    model_id = uri.removeprefix("models:/")
    location = tracking.client().get_logged_model(model_id).artifact_location
    return uri, Path(location.removeprefix("file://"))


def _pickles(folder: Path) -> list[Path]:
    """Every file under ``folder`` that an unpickler would read (pickle or torch's zip)."""
    found = []
    for path in folder.rglob("*"):
        head = path.read_bytes()[:2] if path.is_file() else b""
        if head in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK"):
            found.append(path)
    return found


def test_mlflows_copy_is_code_and_weights_and_predicts_as_stockpreds_loader(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    model = LSTMForecaster(3, hidden_size=4, num_layers=2).eval()
    uri, folder = _logged(model, 3)
    # the only torch file is the weights-only state dict: no pickled module, no cloudpickle
    assert [p.relative_to(folder) for p in _pickles(folder)] == [
        Path(WEIGHTS_FOLDER) / "state_dict.pt"
    ]
    assert "python_model.pkl" not in {p.name for p in folder.rglob("*")}
    assert "model_code_path" in (folder / "MLmodel").read_text()
    x = torch.randn(7, 5, 3)
    ours = tracking.load_model(uri)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        served = mlflow.pyfunc.load_model(uri)
        predicted = served.predict(x.numpy())
    # MLflow's type-hint check is skipped (served_model's opt-out), so it has nothing to say
    assert not [w for w in caught if "type hint" in str(w.message)], [
        str(w.message) for w in caught
    ]
    with torch.no_grad():
        expected = ours(x).numpy()
    np.testing.assert_allclose(predicted, expected, rtol=1e-6)
    np.testing.assert_allclose(expected, model(x).detach().numpy(), rtol=1e-6)
    # a pickle dropped where MLflow's pytorch flavour kept one is never read by either loader
    marker = tmp_path / "marker"
    (folder / "data").mkdir()
    (folder / "data" / "model.pth").write_bytes(pickle.dumps(Payload(marker)))
    tracking.load_model(uri)
    mlflow.pyfunc.load_model(uri).predict(x.numpy())
    assert not marker.exists()
    pickle.loads((folder / "data" / "model.pth").read_bytes())  # the payload is real
    assert marker.read_text() == "pwned"


def test_a_model_without_a_weights_only_copy_is_refused_unless_opted_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what an older stockpred logged: MLflow's pickle only (here a poisoned one)
    uri, folder = _logged(LSTMForecaster(3, hidden_size=2, num_layers=1), 3)
    shutil.rmtree(folder / WEIGHTS_FOLDER)
    marker = tmp_path / "marker"
    (folder / "data").mkdir()
    (folder / "data" / "model.pth").write_bytes(pickle.dumps(Payload(marker)))
    monkeypatch.delenv("STOCKPRED_ALLOW_PICKLE", raising=False)
    with pytest.raises(tracking.UnsafeModelError, match="STOCKPRED_ALLOW_PICKLE=1"):
        tracking.load_model(uri)
    assert not marker.exists() and "STOCKPRED_ALLOW_PICKLE" not in os.environ


def test_a_model_without_an_architecture_is_not_logged_as_a_pickle() -> None:
    config = PipelineConfig().with_overrides({"tracking.experiment": "model-loading"})
    with (
        pytest.raises(TypeError, match="Linear has no architecture"),
        tracking.tracked_run(config) as run_id,
    ):
        tracking.log_model(run_id, torch.nn.Linear(3, 1), torch.zeros(2, 3).numpy())
