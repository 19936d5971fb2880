"""The flows' command lines: ``--help`` before Prefect, plain text, expected tracebacks kept off
the terminal."""

import logging
import subprocess
import sys

import pytest

from flows.cli import PARSERS, _ExpectedTracebacks

HEAVY = ("prefect", "torch", "mlflow", "pytorch_lightning")


@pytest.mark.slow  # starts Python subprocesses
def test_every_flow_answers_help_before_prefect_loads() -> None:
    code = (
        "import runpy, sys\n"
        f"for module in {sorted(PARSERS)!r}:\n"
        "    sys.argv = [module, '--help']\n"
        "    try: runpy.run_module('flows.' + module, run_name='__main__')\n"
        "    except SystemExit: pass\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.count("usage: python -m flows.") == len(PARSERS)
    assert "--max-stale-days N" in out.stdout and "--epochs" in out.stdout
    assert "``" not in out.stdout and ":class:" not in out.stdout  # no docstring markup
    assert out.stdout.strip().splitlines()[-1] == "[]"


def _record(error: BaseException | None) -> logging.LogRecord:
    exc_info = (type(error), error, None) if error else None
    return logging.LogRecord("prefect.flow_runs", logging.ERROR, "", 0, "failed", (), exc_info)


def test_only_expected_errors_lose_their_console_traceback() -> None:
    quiet = _ExpectedTracebacks()
    assert not quiet.filter(_record(LookupError("no champion")))
    assert not quiet.filter(_record(ConnectionError("server down")))
    assert quiet.filter(_record(RuntimeError("a bug")))  # a bug keeps its traceback
    assert quiet.filter(_record(None))
