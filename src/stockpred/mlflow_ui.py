"""Start the MLflow UI on the project's tracking store: a busy port is one line before anything
starts, a line says it is starting, and ``ready`` once it answers (``stockpred ui``)."""

from __future__ import annotations

import errno
import shlex
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

UI_HOST, UI_PORT = "127.0.0.1", 5000
UI_STARTUP_SECONDS = 60  # measured 58-80 s from launch to /health on 2 busy cores (README)


def check_port_free(host: str, port: int) -> None:
    """Raise ``ValueError`` (one line) if ``host:port`` cannot be bound (in use, or not an
    address of this machine), before anything is started on it."""
    if not 0 < port < 65536:
        raise ValueError(f"--port {port}: give a port between 1 and 65535")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ValueError(
                    f"port {port} is in use on {host} (another MLflow UI?): pass --port "
                    f"{port + 1}, or stop what is listening there"
                ) from None
            raise ValueError(
                f"cannot listen on {host}:{port} ({exc.strerror}): pass --host "
                "127.0.0.1 or an address of this machine"
            ) from None


def wait_until_ready(url: str, alive: Callable[[], bool], timeout: float) -> bool:
    """Poll ``url`` (the UI's ``/health``) until it answers 200 (True), ``alive()`` turns False
    or ``timeout`` seconds pass (False). A bound port is not enough: MLflow's workers answer
    tens of seconds after its server starts listening."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


def start_ui(host: str = UI_HOST, port: int = UI_PORT) -> None:
    """Start the MLflow UI on the project's store at ``host:port``: one line if the port is
    busy, a line while it starts, ``ready`` once it answers; returns when it stops."""
    check_port_free(host, port)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://{shown}:{port}"
    print(
        f"starting the MLflow UI on {url}; it takes ~{UI_STARTUP_SECONDS} s to accept "
        "connections (Ctrl-C stops it)",
        flush=True,
    )
    from stockpred.tracking import store_dir, ui_argv  # after the message: MLflow takes seconds

    (store_dir() / "artifacts").mkdir(parents=True, exist_ok=True)
    command = ui_argv(host=host, port=port)  # a list: paths with spaces stay whole
    print(shlex.join(command), flush=True)
    server = subprocess.Popen(command)
    try:
        if wait_until_ready(f"{url}/health", lambda: server.poll() is None, 600):
            print(f"ready: open {url}", flush=True)
        code = server.wait()
    except KeyboardInterrupt:  # the UI got the same Ctrl-C; let it finish shutting down
        server.wait(timeout=30)
        raise
    if code:
        raise ConnectionError(f"the MLflow UI exited with code {code} (its log is above)")
