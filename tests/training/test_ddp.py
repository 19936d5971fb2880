"""Multi-process training: DDP over two CPU processes (gloo), started the way users start it.

``stockpred train --devices 2`` runs in a subprocess against the session's test store; the run
must look like a single-device run: one MLflow run, each metric logged once per epoch (rank 0),
the gate diagnostics and the model. The strategy resolution is unit-checked with a fake CUDA.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DistributedSampler

from stockpred import tracking
from stockpred.config import TrainConfig, load_config
from stockpred.pipeline import run_training
from stockpred.training import devices as training
from stockpred.training import fit_forecaster
from stockpred.windows import WindowDataset
from tests.conftest import TINY

EPOCHS = 2
CONFIG = {
    **TINY,
    "train": {**TINY["train"], "max_epochs": EPOCHS, "patience": EPOCHS},
    "evaluation": {"register_model": False},
}


def _runs(experiment: str) -> list[dict[str, Any]]:
    runs = tracking.search_runs(experiment)
    return runs.to_dict("records")


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``stockpred train --accelerator cpu --devices 2`` in a subprocess; its one MLflow run."""
    folder = tmp_path_factory.mktemp("ddp")
    config = folder / "tiny.json"
    config.write_text(json.dumps({**CONFIG, "tracking": {**TINY["tracking"], "experiment": "ddp"}}))
    command = [
        str(Path(sys.executable).parent / "stockpred"),
        "train",
        "--config",
        str(config),
        "--accelerator",
        "cpu",
        "--devices",
        "2",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=os.environ)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    runs = _runs("ddp")
    assert len(runs) == 1, f"expected one MLflow run, found {len(runs)}"
    return runs[0]


@pytest.fixture(scope="module")
def single_run() -> dict[str, Any]:
    """The same config on one process, for comparison."""
    config = load_config({**CONFIG, "tracking": {**TINY["tracking"], "experiment": "single"}})
    result = run_training(config.with_overrides({"train.accelerator": "cpu", "train.devices": 1}))
    return _runs("single")[0] | {"run_id": result.run_id}


@pytest.mark.slow  # trains through the CLI in worker processes
def test_a_two_process_run_finishes_as_one_mlflow_run_with_its_model(ddp_run) -> None:
    run = ddp_run
    assert run["status"] == "FINISHED"
    assert run["model_uri"] is not None
    assert run["tags.train.resolved.strategy"] == "ddp_spawn"
    assert run["tags.train.resolved.world_size"] == "2"
    # what Lightning's launcher alone does not send back from rank 0
    assert run["metrics.train/epochs"] == EPOCHS
    assert run["metrics.train/best_epoch"] in range(EPOCHS)
    assert math.isfinite(run["metrics.val/best_loss"])


@pytest.mark.slow  # trains through the CLI in worker processes
def test_every_epoch_metric_is_logged_once_by_rank_zero(ddp_run) -> None:
    run_id = ddp_run["run_id"]
    keys = ("val/loss", "train/loss", "gates/l0/forget/mean", "gates/l1/cell_state/norm_end")
    history = tracking.load_metric_history(run_id, *keys)
    for key in keys:
        assert history.loc[history["key"] == key, "step"].tolist() == list(range(EPOCHS)), key


@pytest.mark.slow  # trains through the CLI in worker processes
def test_it_logs_what_a_single_device_run_logs(ddp_run, single_run) -> None:
    ddp = ddp_run
    metrics = {k for k, v in ddp.items() if k.startswith("metrics.") and v == v}
    assert metrics == {k for k, v in single_run.items() if k.startswith("metrics.") and v == v}
    gates = tracking.list_artifact_paths(ddp["run_id"], "gates")
    assert gates == tracking.list_artifact_paths(single_run["run_id"], "gates")
    assert {
        "gates/history.parquet",
        "gates/trajectories.png",
        f"gates/units_epoch_{EPOCHS - 1:03d}.parquet",
    } <= set(gates)
    history = tracking.load_gate_stats(ddp["run_id"])
    assert sorted(history["epoch"].unique()) == list(range(EPOCHS))


@pytest.fixture
def cuda(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fake CUDA machine with ``gpus`` GPUs; ``notebook`` makes it an interactive session."""

    class Fake:
        def __init__(self) -> None:
            self.gpus = 4
            self.notebook = False
            self.bf16 = True

    def not_fork_safe() -> bool:  # initialises CUDA unless PYTORCH_NVML_BASED_CUDA_CHECK=1
        raise AssertionError("torch.cuda.is_available() before ddp_fork: use cuda_available()")

    fake = Fake()
    monkeypatch.setattr(torch.cuda, "is_available", not_fork_safe)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: fake.gpus)  # NVML: fork-safe
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: fake.bf16)
    monkeypatch.setattr(training, "interactive", lambda: fake.notebook)
    return fake


def test_cuda_is_detected_without_initialising_it(cuda) -> None:
    """What ``fit_forecaster`` asks before forking workers never calls ``is_available()``."""
    assert training.cuda_available() and training.uses_cuda("auto")
    assert training.resolve_batch_size("auto", "auto") == training.GPU_BATCH_SIZE
    cuda.gpus = 0
    assert not training.cuda_available() and not training.uses_cuda("auto")
    assert training.resolve_precision("auto", "auto", fork_safe=True) == "32-true"


def test_auto_devices_on_several_gpus_spawn_workers_never_relaunch_argv(cuda) -> None:
    assert training.device_count("auto", "auto") == 4
    assert training.resolve_strategy("auto", "auto", "auto") == "ddp_spawn"  # not Lightning's ddp
    assert training.resolve_strategy("ddp_fork", "gpu", "auto") == "ddp_fork"
    assert training.resolve_strategy("auto", "cpu", "auto") == "auto"  # CPU: one process
    cuda.gpus = 1
    assert training.resolve_strategy("auto", "auto", "auto") == "auto"
    cuda.gpus = 0
    assert training.resolve_strategy("auto", "auto", "auto") == "auto"
    assert training.resolve_strategy("auto", "cpu", 2) == "ddp_spawn"


def test_in_a_notebook_auto_uses_one_gpu_and_explicit_devices_fork(cuda, monkeypatch) -> None:
    cuda.notebook = True
    assert training.resolve_strategy("auto", "auto", "auto") == "auto"  # as Lightning: one GPU
    assert training.resolve_strategy("auto", "auto", 2) == "ddp_fork"
    with pytest.raises(ValueError, match="ddp_spawn cannot start worker processes from a notebook"):
        training.resolve_strategy("ddp_spawn", "auto", 2)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)  # a GPU run in this kernel
    with pytest.raises(ValueError, match="cannot fork its workers: restart the kernel"):
        training.resolve_strategy("auto", "auto", 2)
    assert training.resolve_strategy("auto", "cpu", 2) == "ddp_fork"  # CPU workers can fork


def test_auto_batch_size_and_precision_follow_the_accelerator(cuda, monkeypatch) -> None:
    assert training.resolve_batch_size("auto", "auto") == training.GPU_BATCH_SIZE == 1024
    assert training.resolve_batch_size("auto", "cpu") == training.CPU_BATCH_SIZE == 256
    assert training.resolve_batch_size(64, "auto") == 64
    assert training.resolve_precision("auto", "auto") == "bf16-mixed"
    assert training.resolve_precision("auto", "cpu") == "32-true"
    assert training.resolve_precision("16-mixed", "auto") == "16-mixed"
    cuda.bf16 = False
    assert training.resolve_precision("auto", "cuda") == "32-true"

    # forked workers cannot use CUDA once this process initialised it: ask a subprocess
    def no_cuda_here(*_: Any, **__: Any) -> bool:
        raise AssertionError("would initialise CUDA before forking")

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", no_cuda_here)
    answer = subprocess.CompletedProcess([], 0, stdout="1\n", stderr="")
    monkeypatch.setattr(training.subprocess, "run", lambda *a, **k: answer)
    assert training.resolve_precision("auto", "auto", fork_safe=True) == "bf16-mixed"
    cuda.gpus = 0
    assert training.resolve_batch_size("auto", "auto") == 256
    assert training.resolve_precision("auto", "auto") == "32-true"


def test_on_cuda_the_loaders_pin_memory_and_use_the_gpu_batch(monkeypatch) -> None:
    """The wiring, on CPU: ``uses_cuda`` faked, the loaders ``fit_forecaster`` builds recorded."""
    seen: list[dict[str, Any]] = []
    original = WindowDataset.loader

    def recording(self: WindowDataset, batch_size: int, **kwargs: Any) -> Any:
        seen.append({"batch_size": batch_size, **kwargs})
        return original(self, batch_size, **{**kwargs, "pin_memory": False})  # no CUDA here

    monkeypatch.setattr(WindowDataset, "loader", recording)
    monkeypatch.setattr(training, "uses_cuda", lambda accelerator: True)
    data = _dataset(300)
    config = TrainConfig(max_epochs=1, accelerator="cpu", progress_bar=False)
    fit = fit_forecaster(data, data, load_config(TINY).model, config)
    assert fit.batch_size == 1024 and fit.strategy == "auto" and fit.world_size == 1
    assert [s["pin_memory"] for s in seen] == [True, True]
    assert [s["batch_size"] for s in seen] == [1024, 4096]


def _dataset(rows: int) -> WindowDataset:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, 3, generator=generator)
    return WindowDataset(x, x[:, 0].clone(), torch.arange(9, rows), window=10)


def test_distributed_sampling_keeps_single_gathers_and_splits_the_windows() -> None:
    """What Lightning does to the training loader under DDP: the same loader re-built with a
    ``DistributedSampler`` (``seed`` = the run's seed, ``set_epoch`` every epoch)."""
    from pytorch_lightning.utilities.data import _update_dataloader

    data = _dataset(110)  # 101 windows: rank 0 gets 51, rank 1 gets 50 + one repeated
    loader = data.loader(16, shuffle=True, seed=None)

    def epoch(rank: int, number: int) -> list[torch.Tensor]:
        sampler = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=42)
        sampler.set_epoch(number)
        return list(_update_dataloader(loader, sampler))

    ends: list[int] = []
    for rank in (0, 1):
        batches = epoch(rank, 0)
        assert [len(y) for _, y in batches] == [16, 16, 16, 3]
        assert tuple(batches[0][0].shape) == (16, 10, 3)
        for x, y in batches:  # each window is the gathered slice, its target the last row's
            assert torch.equal(y, x[:, -1, 0])
            ends += [int((data.features[:, 0] == value).nonzero()[0, 0]) for value in y]
    assert len(ends) == 102 and set(ends) == set(data.ends.tolist())
    first, again, later = epoch(0, 0), epoch(0, 0), epoch(0, 1)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0][0], later[0][0])  # reshuffled per epoch


FORK_SCRIPT = """
import numpy as np
from pytorch_lightning.loggers import CSVLogger
from stockpred.config import ModelConfig, TrainConfig
from stockpred.gates import GateMonitor
from stockpred.training import fit_forecaster
from stockpred.windows import WindowDataset
rng = np.random.default_rng(0)
x, y = rng.normal(size=(600, 3)).astype(np.float32), rng.normal(size=600).astype(np.float32)
groups = np.repeat([0, 1], 300)
train = WindowDataset.from_arrays(x[:300], y[:300], groups[:300], 10)
val = WindowDataset.from_arrays(x[300:], y[300:], groups[300:], 10)
monitor = GateMonitor(val.__getitems__(list(range(8)))[0], artifact_epochs=[0])
config = TrainConfig(max_epochs=2, batch_size=32, patience=5, accelerator="cpu", devices=2,
                     progress_bar=False)
fit = fit_forecaster(train, val, ModelConfig(window=10, hidden_size=4, dropout=0.0), config,
                     logger=CSVLogger({folder!r}), callbacks=[monitor])
print("FIT", fit.strategy, fit.world_size, fit.epochs_trained, fit.best_epoch,
      fit.best_val_loss == fit.best_val_loss, [r["epoch"] for r in monitor.history],
      sorted(monitor.snapshots))
"""


@pytest.mark.slow  # starts worker processes
def test_in_an_interactive_session_two_processes_fork_and_return_rank_zeros_results(
    tmp_path: Path,
) -> None:
    """``python -i`` is what Lightning (and this code) sees in a notebook: no spawn there."""
    script = tmp_path / "fit.py"
    script.write_text(FORK_SCRIPT.format(folder=str(tmp_path / "logs")))
    done = subprocess.run(
        [sys.executable, "-i", str(script)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = next((s for s in done.stdout.splitlines() if "FIT" in s), done.stdout + done.stderr)
    assert line.removeprefix(">>> ").startswith("FIT ddp_fork 2 2 "), line
    assert line.endswith("True [0, 1] [0, 1]"), line


TERM_SCRIPT = """
import os
import sys
from pathlib import Path

import numpy as np
import pytorch_lightning as pl

from stockpred.config import ModelConfig, TrainConfig
from stockpred.resume import signals_raise as sigterm_raises
from stockpred.training import fit_forecaster
from stockpred.windows import WindowDataset


class Started(pl.Callback):
    def on_train_epoch_end(self, trainer, pl_module):  # each rank: its pid, once training runs
        path = Path(sys.argv[1]) / f"rank{trainer.global_rank}.pid"
        if not path.exists():
            path.write_text(str(os.getpid()))


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(400, 3)).astype(np.float32), rng.normal(size=400).astype(np.float32)
    data = WindowDataset.from_arrays(x, y, np.zeros(400, dtype=np.int64), 10)
    config = TrainConfig(max_epochs=10_000, patience=10_000, batch_size=32, accelerator="cpu",
                         devices=2, strategy=sys.argv[2], progress_bar=False)
    with sigterm_raises():  # as ``run_training``: SIGTERM raises Terminated in this process
        fit_forecaster(data, data, ModelConfig(window=10, hidden_size=4, dropout=0.0), config,
                       callbacks=[Started()])
"""


def _alive(pid: int) -> bool:
    import psutil  # installed with distributed (prefect-dask)

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow  # trains in worker processes until it is stopped
@pytest.mark.parametrize("strategy", ["ddp_spawn", "ddp_fork"])
def test_sigterm_to_the_main_process_stops_the_workers(tmp_path: Path, strategy: str) -> None:
    """Lightning handles SIGTERM only inside the workers: the main process, stopped while they
    train (10,000 epochs here), must stop them and exit, not wait for them to finish."""
    script = tmp_path / "train.py"
    script.write_text(TERM_SCRIPT)
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), strategy],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 180  # imports and worker start-up, on a busy machine
        while len(pids) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            pids = [int(p.read_text()) for p in tmp_path.glob("rank*.pid")]
        assert len(pids) == 2, f"training did not start: {process.communicate(timeout=60)}"
        assert all(_alive(pid) for pid in pids)
        process.send_signal(signal.SIGTERM)
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"still running 30 s after SIGTERM; workers alive: {list(map(_alive, pids))}"
            )
        assert process.returncode != 0 and "Terminated: terminated by SIGTERM" in err, err[-3000:]
        assert not [pid for pid in pids if _alive(pid)], "a worker survived the main process"
    finally:
        for pid in [*pids, process.pid]:  # nothing left behind, whatever failed
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=30)
