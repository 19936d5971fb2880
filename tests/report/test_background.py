"""The diagnostics report inline, in a background process after the run, or failed: the run's
``report.status`` tag says which, and the report is where the result says."""

import time
from pathlib import Path

import pytest

from stockpred import tracking
from stockpred.config import ConfigError, load_config
from stockpred.pipeline import run_training
from stockpred.report import background
from tests.conftest import TINY


def _config(experiment: str, report: str) -> dict:
    return {
        **TINY,
        "train": {**TINY["train"], "max_epochs": 1, "limit_train_batches": 4},
        "tracking": {"experiment": experiment, "report": report, "log_model": False},
    }


def _report_files(run_id: str) -> list[str]:
    return tracking.list_artifact_paths(run_id, "report")


def test_the_report_mode_takes_three_names_and_the_old_booleans_and_refuses_the_rest() -> None:
    assert load_config().tracking.report == "background"
    modes = {v: load_config({"tracking": {"report": v}}).tracking.report for v in (True, False)}
    assert modes == {True: "inline", False: "off"}
    assert load_config({"tracking": {"report": " Inline "}}).tracking.report == "inline"
    with pytest.raises(ConfigError) as info:
        load_config({"tracking": {"report": "later"}})
    message = str(info.value)
    assert "\n" not in message and message.startswith("tracking.report: must be one of")
    assert "background, inline, off" in message and "'later'" in message


@pytest.mark.slow  # trains, renders in a kernel
def test_inline_attaches_the_report_before_the_run_returns() -> None:
    result = run_training(load_config(_config("report-inline", "inline")))
    assert _report_files(result.run_id) == [background.ARTIFACT]
    assert result.report == f"{background.ARTIFACT} (attached)"
    tags = tracking.get_run(result.run_id).data.tags
    assert tags[background.STATUS_TAG] == background.ATTACHED


@pytest.mark.slow  # trains, renders in a subprocess
def test_background_returns_a_finished_run_and_the_report_then_appears() -> None:
    result = run_training(load_config(_config("report-background", "background")))
    run = tracking.get_run(result.run_id)
    # the run is finished and returned while the renderer (a fresh interpreter that must import
    # stockpred and start a kernel) has not attached anything yet
    assert run.info.status == "FINISHED"
    assert run.data.tags[background.STATUS_TAG] == background.PENDING
    assert _report_files(result.run_id) == []
    assert result.report.startswith(background.ARTIFACT) and "background" in result.report
    deadline = time.monotonic() + 300  # generous: a loaded 2-core machine
    status = background.PENDING
    while status == background.PENDING and time.monotonic() < deadline:
        time.sleep(1)
        status = tracking.get_run(result.run_id).data.tags[background.STATUS_TAG]
    log_file = run.data.tags[background.LOG_TAG]
    # the log and the queue's lock sit in the project's store, not the machine's temp folder
    assert Path(log_file).parent == background.reports_dir() == tracking.store_dir() / "reports"
    assert (background.reports_dir() / background.QUEUE_FILE).is_file()
    assert status == background.ATTACHED, Path(log_file).read_text()[-2000:]
    assert _report_files(result.run_id) == [background.ARTIFACT]
    html = tracking.download_artifact(result.run_id, background.ARTIFACT).read_text()
    assert result.run_id in html and "Traceback" not in html
    assert tracking.get_run(result.run_id).info.status == "FINISHED"


@pytest.mark.slow  # executes the notebook in a kernel
def test_a_failing_render_sets_the_status_failed_with_its_reason() -> None:
    config = load_config(_config("report-failed", "background"))
    with tracking.tracked_run(config) as run_id:
        pass  # nothing trained: the notebook fails at its first gate artifact
    assert background.main([run_id]) == 1
    tags = tracking.get_run(run_id).data.tags
    assert tags[background.STATUS_TAG].startswith("failed: ReportError: 03-gate-diagnostics")
    assert "no gate artifacts" in tags[background.STATUS_TAG]
    assert _report_files(run_id) == []
