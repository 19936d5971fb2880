"""Loading a registered model never unpickles it: a malicious pickle in its place is not run."""

import os
import pickle
from pathlib import Path

import pytest
import torch

from stockpred import tracking
from stockpred.config import PipelineConfig
from stockpred.models import LSTMForecaster


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


def _poison(folder: Path, marker: Path) -> None:
    """Replace every pickle MLflow wrote for the model with the payload."""
    pickles = list((folder / "data").glob("*.pth"))
    assert pickles, "MLflow's pickled copy was not where this test expects it"
    for path in pickles:
        path.write_bytes(pickle.dumps(Payload(marker)))


def test_a_forecaster_loads_from_its_weights_and_a_poisoned_pickle_is_never_run(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    model = LSTMForecaster(3, hidden_size=4, num_layers=2).eval()
    uri, folder = _logged(model, 3)
    marker = tmp_path / "marker"
    _poison(folder, marker)
    loaded = tracking.load_model(uri)
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(loaded(x), model(x))
    assert not marker.exists()
    # the pickle really is the payload: unpickling it (what MLflow's loader does) runs it
    pickle.loads(next((folder / "data").glob("*.pth")).read_bytes())
    assert marker.read_text() == "pwned"


def test_a_model_without_a_weights_only_copy_is_refused_unless_opted_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, folder = _logged(torch.nn.Linear(3, 1), 3)
    marker = tmp_path / "marker"
    _poison(folder, marker)
    monkeypatch.delenv("STOCKPRED_ALLOW_PICKLE", raising=False)
    with pytest.raises(tracking.UnsafeModelError, match="STOCKPRED_ALLOW_PICKLE=1"):
        tracking.load_model(uri)
    assert not marker.exists() and "STOCKPRED_ALLOW_PICKLE" not in os.environ
