"""Prefect's temporary server on a busy machine: every flow has the same long start limit, and a
start that fails is one line saying what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flows.server import STARTUP_ENV, STARTUP_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ("ingest_flow", "predict_flow", "daily_flow", "sweep_flow", "train_flow")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", STARTUP_ENV)}
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    return {**env, "PYTHONPATH": path, "PREFECT_HOME": str(tmp_path / "prefect"), **extra}


def test_every_flow_gives_the_temporary_server_the_same_long_start_limit(tmp_path) -> None:
    code = (
        "import importlib, sys; importlib.import_module('flows.' + sys.argv[1]); "
        "from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as s; "
        "print(s.value())"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, name],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=_env(tmp_path),
        )
        for name in FLOWS
    ]
    limits = [proc.communicate(timeout=300)[0].strip() for proc in procs]
    assert limits == [str(STARTUP_TIMEOUT_S)] * len(FLOWS)


def test_a_limit_set_in_the_environment_is_kept(tmp_path) -> None:
    code = (
        "import flows.ingest_flow; "
        "from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as s; "
        "print(s.value())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(tmp_path, **{STARTUP_ENV: "400"}),
        timeout=300,
    )
    assert out.stdout.strip() == "400"


def test_a_server_that_does_not_start_in_time_is_one_line_saying_what_to_do(tmp_path) -> None:
    # a limit of 1 s: the server (about 10 s to start on 2 cores) cannot make it
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.ingest_flow",
            "--tickers",
            "AAA",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(tmp_path, **{STARTUP_ENV: "1"}),
        timeout=300,
    )
    assert out.returncode == 1, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("stockpred: error: Prefect's temporary server did not start within 1 s")
    assert "PREFECT_API_URL=http://127.0.0.1:4200/api" in last
    assert "Traceback" not in out.stderr and "stdout:" not in out.stderr


def test_the_temporary_server_runs_in_its_own_process_group() -> None:
    """So a terminal's Ctrl-C reaches the flow, not the server it reports its run through."""
    import socket

    from prefect.server.api.server import SubprocessASGIServer

    from flows.server import detach_server_from_ctrl_c

    detach_server_from_ctrl_c()
    detach_server_from_ctrl_c()  # idempotent: wrapped once
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = SubprocessASGIServer(port=port)
    process = server._run_uvicorn_command()  # Prefect's private name, wrapped by flows.server
    try:
        assert os.getpgid(process.pid) == process.pid != os.getpgid(0)
    finally:
        process.kill()
        process.wait()
        SubprocessASGIServer._instances.pop(port, None)
