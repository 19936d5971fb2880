"""Training against a remote MLflow tracking server (``mlflow server`` on 127.0.0.1), read back over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.train_flow import train_flow
from stockpred import tracking
from stockpred.config import PipelineConfig
from stockpred.pipeline import run_training

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, **params: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}?{urllib.parse.urlencode(params)}", timeout=30) as reply:
        return json.loads(reply.read())


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``mlflow server`` with a SQLite backend and proxied artifacts in a temp folder."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    log = (root / "server.log").open("w")
    mlflow = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen(
        [
            str(mlflow),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root / 'server.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=root,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                tracking.check_server(url, timeout=1)
                break
            except tracking.TrackingUnavailableError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError(
                        f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}"
                    ) from None
                time.sleep(0.5)
        yield url, root / "artifacts"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_the_training_flow_logs_to_a_remote_server_readable_over_http(
    prefect_server: None,
    mlflow_server: tuple[str, Path],
    tiny_config: PipelineConfig,
    isolated_store: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, artifacts = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    config = tiny_config.with_overrides({"tracking.experiment": "remote"})

    outcome = train_flow(config)

    assert outcome["tracking_uri"] == url
    run = _get(f"{url}/api/2.0/mlflow/runs/get", run_id=outcome["run_id"])["run"]
    assert run["info"]["status"] == "FINISHED"
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert metrics["test/rmse"] == pytest.approx(outcome["metrics"]["test/rmse"])
    assert "gates/l0/forget/mean" in metrics
    history = _get(
        f"{url}/api/2.0/mlflow/metrics/get-history", run_id=outcome["run_id"], metric_key="val/loss"
    )["metrics"]
    assert sorted(m["step"] for m in history) == list(range(len(history)))  # one per epoch
    # artifacts went through the server into its artifact destination, not the project store
    listed = _get(f"{url}/api/2.0/mlflow/artifacts/list", run_id=outcome["run_id"])
    names = {item["path"] for item in listed.get("files", [])}
    assert {"config.json", "preprocessing.json", "evaluation", "gates"} <= names
    assert list(artifacts.rglob("config.json"))
    assert not list((isolated_store / "mlflow").rglob("remote"))


def test_a_server_that_is_down_stops_the_run_before_any_work(
    tiny_config: PipelineConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens here
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    started = time.monotonic()
    with pytest.raises(tracking.TrackingUnavailableError, match=r"not reachable.*nothing was run"):
        run_training(tiny_config)
    assert time.monotonic() - started < 10  # MLflow's own retries would take minutes


@pytest.mark.parametrize("program", ["stockpred.cli train", "flows.train_flow"])
def test_the_command_reports_a_down_server_in_one_line(program: str, isolated_store: Path) -> None:
    """``stockpred train`` and the flow (``make run``): one line, before Prefect or torch start."""
    url = f"http://127.0.0.1:{_free_port()}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": url, "STOCKPRED_HOME": str(isolated_store)}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", *program.split(), "--epochs", "1", "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert f"MLflow tracking server {url} is not reachable" in done.stderr
    assert "temporary server" not in done.stderr + done.stdout  # no Prefect server was started
