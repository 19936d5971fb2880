"""``flows.warm``: the flow's command line starts Prefect's temporary server while it imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import httpx
from flows.warm import warm_start
from prefect.server.api.server import SubprocessASGIServer

started = warm_start(["json"])
server = SubprocessASGIServer()  # the one a flow call in this process would use
try:
    health = httpx.get(f"{server.api_url}/health", timeout=10).status_code
    print("started", started, "running", server.running, "health", health)
finally:
    server.stop()
"""


@pytest.mark.slow
def test_without_an_api_url_it_leaves_the_flows_server_up(tmp_path: Path) -> None:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "started True running True health 200" in done.stdout


def test_with_an_api_url_it_only_imports() -> None:
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.warm import warm_start

    before = dict(SubprocessASGIServer._instances)
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert warm_start(["json"]) is False
    assert SubprocessASGIServer._instances == before  # no server started
