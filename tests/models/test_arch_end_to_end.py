"""``stockpred train --set model.arch=gru``: trains, logs, registers, predicts and reports with
gate diagnostics, like the LSTM; a model without gates trains with diagnostics off (one line)."""

import datetime as dt
import json
import warnings

import pytest
import torch

from stockpred import experiment, models, tracking
from stockpred.cli import main
from stockpred.config import load_config
from stockpred.models import Forecaster, GRUForecaster
from stockpred.predict import InSampleWarning, predict_next
from stockpred.report import background
from tests.conftest import TINY

EXPERIMENT = "arch-gru"
REGISTERED = "gru-accept"


def test_a_gru_trains_logs_registers_predicts_and_reports_with_gate_diagnostics(tmp_path) -> None:
    config = {
        **TINY,
        "train": {**TINY["train"], "max_epochs": 2},
        "tracking": {"experiment": EXPERIMENT, "report": "inline"},
        "evaluation": {"registered_name": REGISTERED},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    argv = ["train", "--config", str(path), "--register", "--target", "volatility"]
    assert main([*argv, "--set", "model.arch=gru"]) == 0

    [run_id] = tracking.search_runs(EXPERIMENT)["run_id"]
    run = tracking.get_run(run_id)
    assert run.data.params["model.arch"] == "gru"
    metrics = run.data.metrics
    assert {"gates/l0/update/mean", "gates/l1/update/timescale", "test/qlike"} <= set(metrics)
    assert "gates/l0/forget/mean" not in metrics
    assert "gates/ablation/base_loss" in metrics  # the ablation replayed the GRU
    assert "gates/heatmap_epoch_001.png" in tracking.list_artifact_paths(run_id, "gates")
    model = tracking.load_model(tracking.load_run_record(run_id)["model_uri"])
    assert isinstance(model, GRUForecaster)  # weights-only: the architecture names its class
    assert run.data.tags[background.STATUS_TAG] == background.ATTACHED
    html = (tracking.download_artifact(run_id, background.ARTIFACT)).read_text()
    assert "GRU, 2 layer(s) x 8 units" in html and "update" in html

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InSampleWarning)  # the champion was fit through 2014
        forecast = predict_next(REGISTERED, dt.date(2014, 12, 31))
    assert sorted(forecast["ticker"]) == ["^GSPC", "^IXIC"]
    assert (forecast["run_id"] == run_id).all() and (forecast["model_version"] == "1").all()


class Linear(Forecaster):
    """A model without gates: a linear head on the window's last step."""

    arch = "lstm"  # stands in for a registered name (the config accepts only those)

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.head = torch.nn.Linear(num_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x[:, -1]).squeeze(-1)


def test_a_model_without_gates_trains_with_diagnostics_off_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(models.MODELS, "lstm", Linear)
    config = load_config(TINY)
    assert config.gates.enabled
    adjusted = experiment.gates_for_model(config)
    assert not adjusted.gates.enabled
    assert capsys.readouterr().err == (
        "stockpred: model.arch=lstm has no gates: training with gate diagnostics off "
        "(gates.enabled=false)\n"
    )
    with pytest.raises(TypeError, match="has no gates to replay"):
        Linear(3).gate_activations(torch.zeros(1, 2, 3))
    monkeypatch.undo()
    assert experiment.gates_for_model(config) is config  # a gated model: unchanged, silent
    assert capsys.readouterr().err == ""
