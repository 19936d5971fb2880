"""``benchmarks/gpu_check.py`` runs on a bare image (no prefect, mlflow or pydantic) and on CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from benchmarks import gpu_check

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
FORBIDDEN = {"prefect", "mlflow", "pydantic"}


@pytest.mark.slow  # runs the script in a subprocess
def test_it_runs_on_cpu_says_so_and_imports_only_the_training_core(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            str(SCRIPT),
            "--epochs",
            "2",
            "--tiny",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    # -X importtime writes one "import time: ... | package.module" line per imported module
    imported = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert {"torch", "pytorch_lightning", "numpy", "pandas", "stockpred"} <= imported
    assert not imported & FORBIDDEN
    text = done.stdout
    assert "CPU: no CUDA device, so this ran on the CPU" in text
    assert "samples/s" in text and "epoch" in text
    assert "fp32, TF32 off" in text and "TF32 on         skipped (needs CUDA)" in text
    assert text.rstrip().endswith("all checks passed")
    report = json.loads(out.read_text())
    assert report["device"] == "cpu"
    (row,) = report["training"]
    assert row["samples_per_s"] > 0 and len(row["epochs_s"]) == 2
    assert report["replay"][0]["ok"] is True
    assert report["replay"][0]["max_abs_err"] < 1e-5


def test_a_replay_outside_its_tolerance_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(gpu_check.TOLERANCES, "fp32, TF32 off", (-1.0, 0.0))  # nothing passes
    monkeypatch.setattr(gpu_check, "train_throughput", lambda *a, **k: _no_training(a[2]))
    assert gpu_check.main(["--tiny", "--epochs", "1"]) == 1
    (row, *_) = gpu_check.replay_checks(gpu_check.TINY, torch.device("cpu"), False)
    assert row["ok"] is False


def _no_training(batch: int) -> dict[str, object]:
    return {
        "batch_size": batch,
        "epoch_s": 1.0,
        "samples_per_s": 1.0,
        "epochs_s": [1.0],
        "loss": 0.0,
    }
