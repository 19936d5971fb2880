"""A registered model name MLflow would refuse after training is refused by the config check."""

import subprocess
import sys

import pytest

from stockpred.config import ConfigError, load_config


@pytest.mark.parametrize("name", ["team/lstm", "lstm:v2", "lstm@champion", "..", "-x", "a b"])
def test_a_name_mlflow_refuses_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match=r"evaluation\.registered_name: a registered model name"):
        load_config({"evaluation": {"registered_name": name}})


def test_the_default_and_plain_names_pass() -> None:
    for name in ("stockpred-lstm", "vol_har.2", "A1"):
        assert load_config({"evaluation": {"registered_name": name}}).evaluation.registered_name


def test_train_refuses_it_before_loading_or_training() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stockpred.cli",
            "train",
            "--register",
            "--set",
            "evaluation.registered_name=team/lstm",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("stockpred: config error: evaluation.registered_name: "), (
        done.stderr
    )
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
