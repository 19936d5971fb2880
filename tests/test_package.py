"""Importing stockpred turns off the usage reporting of MLflow and Prefect for the process."""

import subprocess
import sys

import pytest

CODE = """
import os
import stockpred, stockpred.tracking
from mlflow.telemetry.utils import is_telemetry_disabled
print(is_telemetry_disabled(), os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"])
"""


@pytest.mark.slow  # starts a Python subprocess
def test_mlflow_telemetry_and_prefect_analytics_are_off() -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}  # none of the CI or test settings
    out = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["True", "false"]


def test_the_ui_command_keeps_a_path_with_spaces_as_one_argument(monkeypatch, tmp_path) -> None:
    from stockpred import tracking

    home = tmp_path / "my project"
    monkeypatch.setenv("STOCKPRED_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    argv = tracking.ui_argv()
    assert argv[argv.index("--default-artifact-root") + 1] == str(home / "mlflow" / "artifacts")
    assert f"sqlite:///{home}/mlflow/mlflow.db" in argv
