"""A flow run with the report switched on carries the executed gate notebook as HTML."""

from typing import Any

import pytest

from flows.train_flow import train_flow
from stockpred import tracking
from stockpred.config import load_config
from tests.conftest import TINY
from tests.flows.conftest import completed_task_names


@pytest.fixture(scope="module")
def reported_run(prefect_server: None) -> dict[str, Any]:
    config = load_config(
        {
            **TINY,
            "train": {**TINY["train"], "max_epochs": 2},
            "tracking": {"experiment": "report-flow", "report": True},
        }
    )
    return train_flow(config)


def test_the_run_has_its_gate_report_as_html_with_embedded_figures(reported_run) -> None:
    run_id = reported_run["run_id"]
    assert tracking.list_artifact_paths(run_id, "report") == ["report/gate-diagnostics.html"]
    html = tracking.download_artifact(run_id, "report/gate-diagnostics.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert run_id in html
    assert html.count('src="data:image/png;base64,') >= 6
    assert "Traceback" not in html
    run = tracking.client().get_run(run_id)
    assert run.info.status == "FINISHED" and "report.error" not in run.data.tags


def test_the_report_ran_as_a_task_of_the_flow(reported_run) -> None:
    names = completed_task_names()
    assert "render-diagnostics" in names
