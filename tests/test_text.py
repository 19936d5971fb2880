import socket
import subprocess
import sys

import pytest

from stockpred.config import ConfigError, PipelineConfig
from stockpred.text import printable

FORGED = "nightly\n\x1b[31mERROR: the store is corrupt, run rm -rf mlflow/\x1b[0m\u202e"


def test_control_characters_are_shown_escaped_on_one_line() -> None:
    shown = printable(FORGED)
    assert "\n" not in shown and "\x1b" not in shown and "\u202e" not in shown
    assert shown == (
        "nightly\\n\\x1b[31mERROR: the store is corrupt, run rm -rf mlflow/\\x1b[0m\\u202e"
    )
    assert printable("fold-3 ünïcode €") == "fold-3 ünïcode €"  # printable text untouched


@pytest.mark.parametrize("field", ["tracking.run_name", "tracking.experiment"])
def test_a_name_with_control_characters_is_refused_by_the_config(field: str) -> None:
    with pytest.raises(ConfigError, match=f"{field}: must not hold control characters"):
        PipelineConfig().with_overrides({field: FORGED})


def test_interrupted_runs_list_a_forged_name_on_one_line(capsys) -> None:
    from stockpred import tracking
    from stockpred.cli import main

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()  # a pid now dead
    experiment = "forged-names"
    run = tracking.client().create_run(tracking.experiment_id(experiment), run_name="x")
    client = tracking.client()
    client.set_tag(run.info.run_id, "mlflow.runName", FORGED)
    client.set_tag(run.info.run_id, tracking.OWNER_HOST_TAG, socket.gethostname())
    client.set_tag(run.info.run_id, tracking.OWNER_PID_TAG, gone)
    main(["interrupted", "--experiment", experiment])
    out = capsys.readouterr().out
    assert run.info.run_id in out  # listed (a RUNNING run whose process is gone)
    assert "\x1b" not in out and not any(line.startswith("ERROR") for line in out.splitlines())
    assert "nightly\\n\\x1b[31mERR" in out  # the name, escaped (cut to its column)
