"""Thread count: one torch thread on a 2-core machine, torch's own elsewhere, restored after."""

import torch

from stockpred.config import TrainConfig
from stockpred.training import devices


def test_auto_threads_are_one_on_two_cores_and_torchs_default_above(monkeypatch) -> None:
    monkeypatch.setattr(devices.os, "cpu_count", lambda: 2)
    assert devices.resolve_threads("auto") == 1
    monkeypatch.setattr(devices.os, "cpu_count", lambda: 16)
    assert devices.resolve_threads("auto") == torch.get_num_threads()
    assert devices.resolve_threads(3) == 3
    assert TrainConfig().num_threads == "auto" and TrainConfig(num_threads=4).num_threads == 4
