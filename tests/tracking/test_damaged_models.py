"""A damaged model version is one line naming the file, the version and the fix; loading it
never runs code (weights-only loads), and weights holding NaN or inf are refused at load."""

from __future__ import annotations

import io
import json
import pickle
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from stockpred import tracking
from stockpred.config import PipelineConfig
from stockpred.models import LSTMForecaster
from stockpred.tracking.writers import ARCHITECTURE_FILE, WEIGHTS_FILE

NAME = "damaged-test"
FIX = (
    "retrain it (`stockpred train --register`) or point the champion alias at another version "
    "(the MLflow UI's model page, or MlflowClient().set_registered_model_alias)"
)
H = 10**5  # a hidden size whose weights would need 480 GB: refused before anything is allocated


class Payload:
    """Unpickling this writes a file: what an attacker's weights would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (self.marker, "pwned"))


@pytest.fixture(scope="module")
def logged() -> Iterator[tuple[Path, bytes, bytes]]:
    """One registered version of a tiny forecaster: (its files' folder, weights, architecture)."""
    torch.manual_seed(0)
    model = LSTMForecaster(3, hidden_size=4, num_layers=2).eval()
    config = PipelineConfig().with_overrides({"tracking.experiment": "damaged-models"})
    with tracking.tracked_run(config) as run_id:
        uri = tracking.log_model(run_id, model, torch.zeros(2, 5, 3).numpy())
    client = tracking.client()
    client.create_registered_model(NAME)
    model_id = uri.removeprefix("models:/")
    version = client.create_model_version(NAME, uri, run_id=run_id, model_id=model_id)
    assert str(version.version) == "1"
    client.set_registered_model_alias(NAME, tracking.CHAMPION, "1")
    location = client.get_logged_model(model_id).artifact_location
    folder = Path(location.removeprefix("file://")) / "artifacts"
    weights, shape = folder / WEIGHTS_FILE, folder / ARCHITECTURE_FILE
    yield folder, weights.read_bytes(), shape.read_bytes()


def _state(**change: torch.Tensor | None) -> dict[str, torch.Tensor]:
    state = LSTMForecaster(3, hidden_size=4, num_layers=2).state_dict()
    for key, value in change.items():
        if value is None:
            del state[key]
        else:
            state[key] = value
    return state


def _saved(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _nonfinite(value: float) -> bytes:
    state = _state()
    state["head.bias"] = torch.tensor([value])
    return _saved(state)


# case -> (what replaces the weights, what replaces the architecture, the line's distinctive part)
Damage = Callable[[bytes, Path], bytes | None]
CASES: dict[str, tuple[Damage, Damage, str]] = {
    "truncated weights": (
        lambda w, m: w[: len(w) // 2],
        lambda a, m: a,
        f"{WEIGHTS_FILE} is not a weights file (RuntimeError: PytorchStreamReader failed",
    ),
    "weights cut below their tensors' size": (
        lambda w, m: w[:100],
        lambda a, m: a,
        "needs 1,236 bytes of weights but state_dict.pt holds 100",
    ),
    "random-byte weights": (
        lambda w, m: bytes(range(256)) * (len(w) // 256 + 1),
        lambda a, m: a,
        f"{WEIGHTS_FILE} is not a weights file",
    ),
    "empty weights": (lambda w, m: b"", lambda a, m: a, "holds 0"),
    "wrong-shape weights": (
        lambda w, m: _saved(_state(**{"head.weight": torch.zeros(4, 1)})),
        lambda a, m: a,
        "size mismatch for head.weight",
    ),
    "missing-key weights": (
        lambda w, m: _saved(_state(**{"head.bias": None})),
        lambda a, m: a,
        'Missing key(s) in state_dict: "head.bias"',
    ),
    "a raw pickle as weights": (
        lambda w, m: pickle.dumps(Payload(m)) + b"\0" * len(w),
        lambda a, m: a,
        f"{WEIGHTS_FILE} is not a weights file",
    ),
    "a torch zip that would run code": (
        lambda w, m: _saved({"lstm.weight_ih_l0": Payload(m)}) + b"\0" * len(w),
        lambda a, m: a,
        f"{WEIGHTS_FILE} is not a weights file",
    ),
    "a tensor, not a state dict": (
        lambda w, m: _saved(torch.zeros(1000)),
        lambda a, m: a,
        "holds a Tensor, not named tensors",
    ),
    "weights file missing": (lambda w, m: None, lambda a, m: a, f"{WEIGHTS_FILE} is missing"),
    "architecture with an extra key": (
        lambda w, m: w,
        lambda a, m: json.dumps({**json.loads(a), "exec": "import os"}).encode(),
        "has keys the model does not take (exec)",
    ),
    "architecture with a huge hidden size": (
        lambda w, m: w,
        lambda a, m: json.dumps({**json.loads(a), "hidden_size": H}).encode(),
        f"needs {4 * (12 * H * H + 29 * H + 1):,} bytes of weights",
    ),
    "architecture with a hidden size past any storage": (
        lambda w, m: w,
        lambda a, m: json.dumps({**json.loads(a), "hidden_size": 10**12}).encode(),
        f"{ARCHITECTURE_FILE} does not build a model (Storage size calculation overflowed",
    ),
    "architecture not JSON": (lambda w, m: w, lambda a, m: b"{not json", "is not JSON"),
    "architecture a huge file": (
        lambda w, m: w,
        lambda a, m: b" " * 100_000 + a,
        f"{ARCHITECTURE_FILE} is 100,",
    ),
    "architecture file missing": (
        lambda w, m: w,
        lambda a, m: None,
        f"{ARCHITECTURE_FILE} is missing",
    ),
    "NaN weights": (
        lambda w, m: _nonfinite(float("nan")),
        lambda a, m: a,
        "holds 1 NaN or infinite weights",
    ),
    "inf weights": (
        lambda w, m: _nonfinite(float("inf")),
        lambda a, m: a,
        "holds 1 NaN or infinite weights",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_model_is_one_line_naming_file_version_and_fix(
    case: str, logged: tuple[Path, bytes, bytes], tmp_path: Path
) -> None:
    folder, weights, shape = logged
    damage_weights, damage_shape, expected = CASES[case]
    marker = tmp_path / "marker"
    for path, original, damage in (
        (folder / WEIGHTS_FILE, weights, damage_weights),
        (folder / ARCHITECTURE_FILE, shape, damage_shape),
    ):
        damaged = damage(original, marker)
        if damaged is None:
            path.unlink()
        else:
            path.write_bytes(damaged)
    try:
        with pytest.raises(tracking.DamagedModelError) as raised:
            tracking.load_model(f"models:/{NAME}@champion")
    finally:
        (folder / WEIGHTS_FILE).write_bytes(weights)
        (folder / ARCHITECTURE_FILE).write_bytes(shape)
    line = str(raised.value)
    assert "\n" not in line and line.startswith(f"{NAME} v1 (models:/{NAME}@champion): "), line
    assert expected in line and line.endswith(f"; {FIX}"), line
    assert not marker.exists()  # nothing it held ran
    if "NaN" in case or "inf" in case:
        assert isinstance(raised.value, tracking.NonFiniteModelError)
    tracking.load_model(f"models:/{NAME}@champion")  # restored: the same version loads again


def test_a_champion_whose_run_was_deleted_is_one_line(logged: tuple[Path, bytes, bytes]) -> None:
    from stockpred.predict import load_champion

    client = tracking.client()
    run_id = client.get_model_version(NAME, "1").run_id
    client.delete_run(run_id)
    try:
        with pytest.raises(tracking.DamagedModelError) as raised:
            load_champion(NAME)
    finally:
        client.restore_run(run_id)
    assert str(raised.value) == f"{NAME} v1: its run {run_id} was deleted; {FIX}"


def test_a_champion_whose_run_is_gone_is_one_line(
    logged: tuple[Path, bytes, bytes], tmp_path: Path
) -> None:
    # what `mlflow gc` leaves: the run's row and its artifacts removed, the version kept
    client = tracking.client()
    run_id = client.get_model_version(NAME, "1").run_id
    with pytest.raises(tracking.DamagedModelError, match=f"its run {run_id} has no readable"):
        artifacts = Path(client.get_run(run_id).info.artifact_uri.removeprefix("file://"))
        moved = tmp_path / "artifacts"
        shutil.move(artifacts, moved)
        try:
            tracking.load_version_run(f"{NAME} v1", run_id)
        finally:
            shutil.move(moved, artifacts)
