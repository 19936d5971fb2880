"""Prefect's temporary API server on a busy machine: one start limit for every flow, and a start
that fails said in one line.

A flow called without ``PREFECT_API_URL`` starts a temporary server (a uvicorn subprocess) and
waits for it at most ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` (Prefect's default,
20 s, is too short on a loaded 2-core machine: 73 s was measured there). With ``PREFECT_API_URL``
set the flows use that server and start none.
"""

from __future__ import annotations

import functools
import os
import subprocess
import types
from collections.abc import Callable
from typing import Any

STARTUP_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
STARTUP_TIMEOUT_S = 180  # above the 73 s measured at a load of 8-15 on 2 cores
_PREFECT_TIMEOUT = "Timed out while attempting to connect to ephemeral Prefect API server"


class ServerStartError(ConnectionError):
    """Prefect's temporary server did not answer in time; the message says what to do."""


def lengthen_server_start() -> None:
    """Give the temporary server ``STARTUP_TIMEOUT_S`` to start, unless the environment sets a
    limit (kept as it is). Called before Prefect reads its settings (``flows/__init__.py``)."""
    os.environ.setdefault(STARTUP_ENV, str(STARTUP_TIMEOUT_S))


def startup_timeout() -> int:
    """The start limit in force, in seconds."""
    try:
        return int(float(os.environ.get(STARTUP_ENV, STARTUP_TIMEOUT_S)))
    except ValueError:
        return STARTUP_TIMEOUT_S


def one_line_start_failure(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with Prefect's server-start timeout (a RuntimeError carrying the server's whole
    output) raised as one ``ServerStartError`` line saying what to do."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RuntimeError as exc:
            if _PREFECT_TIMEOUT not in str(exc):
                raise
            raise ServerStartError(
                f"Prefect's temporary server did not start within {startup_timeout()} s (a busy "
                "machine?): run `make serve` in another shell and set PREFECT_API_URL="
                "http://127.0.0.1:4200/api, or allow longer with "
                f"{STARTUP_ENV}=300"
            ) from None

    return call


def detach_server_from_ctrl_c() -> None:
    """Start Prefect's temporary server in a process group of its own: a terminal's Ctrl-C
    (sent to the whole foreground group) then reaches only the flow, which ends its run KILLED
    and reports it through the server still up, instead of retrying a dead server for minutes.
    The flow process stops the server at exit as before. Wraps Prefect's private
    ``SubprocessASGIServer._run_uvicorn_command`` (checked by tests/flows/test_server.py)."""
    from prefect.server.api import server as prefect_server

    cls = prefect_server.SubprocessASGIServer
    original = cls._run_uvicorn_command
    if getattr(original, "_own_group", False):
        return
    own_group = types.SimpleNamespace(Popen=functools.partial(subprocess.Popen, process_group=0))

    def run_uvicorn(self: Any) -> Any:
        prefect_server.subprocess = own_group  # type: ignore[assignment]
        try:
            return original(self)
        finally:
            prefect_server.subprocess = subprocess

    run_uvicorn._own_group = True  # type: ignore[attr-defined]
    cls._run_uvicorn_command = run_uvicorn  # type: ignore[method-assign]
