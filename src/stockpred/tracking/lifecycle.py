"""A run's lifecycle: created with its config, ended FINISHED, FAILED or KILLED with the error
recorded, reopened for a resume; and the few queries that find and end runs.

Every function takes an explicit ``run_id``, so logging works from any thread or process.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import random
import socket
import sys
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import (
    MLFLOW_GIT_COMMIT,
    MLFLOW_RUN_NOTE,
    MLFLOW_SOURCE_NAME,
    MLFLOW_SOURCE_TYPE,
    MLFLOW_USER,
)

from stockpred.config import PipelineConfig
from stockpred.tracking.mlflow_internals import generate_run_name
from stockpred.tracking.store import check_server, client, experiment_id, git_commit, tracking_uri
from stockpred.tracking.writers import log_params, set_tags

OWNER_HOST_TAG = "stockpred.host"
OWNER_PID_TAG = "stockpred.pid"
SWEEP_TRIAL = "sweep_trial"  # the ``run.kind`` tag of a sweep's trial runs
# Prefect sets this in the process of a deployment's flow run (a scheduled or triggered job)
PREFECT_FLOW_RUN_ENV = "PREFECT__FLOW_RUN_ID"


@contextmanager
def tracked_run(
    config: PipelineConfig, tags: Mapping[str, str] | None = None, run_name: str | None = None
) -> Iterator[str]:
    """Start a run for ``config`` (params and tags logged) and yield its id.

    The run ends FINISHED when the block completes, or FAILED (KILLED when stopped from outside:
    Ctrl-C, SIGTERM) with the error recorded in the ``error`` tag and an ``error.txt`` artifact
    — never left RUNNING by this process (a SIGKILL leaves it RUNNING: see ``interrupted_runs``).
    The run is tagged with its owner's host and pid, and with MLflow's standard source tags
    (``source_tags``; ``tags`` may override them, e.g. a flow naming itself).
    """
    check_server()
    mlflow_client = client()
    commit = git_commit()
    run_tags = {
        "tickers": ",".join(config.data.tickers),
        "source": config.data.source,
        **({"git_commit": commit} if commit else {}),
        **source_tags(commit),
        **_owner_tags(),
        **(tags or {}),
    }
    run = mlflow_client.create_run(
        experiment_id(config.tracking.experiment),
        run_name=run_name or config.tracking.run_name or _fresh_run_name(),
        tags=run_tags,
    )
    run_id = run.info.run_id
    with _ending_run(run_id):
        log_params(run_id, config.flat())
        mlflow_client.log_dict(run_id, config.model_dump(mode="json"), "config.json")
        yield run_id


def _fresh_run_name() -> str:
    """MLflow's adjective-noun-number name, drawn from fresh entropy: Lightning seeds Python's
    ``random`` with the training seed, which would otherwise repeat names within a process."""
    state = random.getstate()
    random.seed()
    try:
        return generate_run_name()
    finally:
        random.setstate(state)


def source_tags(commit: str | None = None) -> dict[str, str]:
    """MLflow's standard tags of where a run came from: ``mlflow.source.name`` (the command, e.g.
    ``stockpred train``, ``pytest``, ``notebook``), ``mlflow.source.type`` (``JOB`` inside a
    Prefect deployment's flow run, else ``LOCAL``), ``mlflow.source.git.commit`` and
    ``mlflow.user``."""
    tags = {
        MLFLOW_SOURCE_NAME: source_name(sys.argv),
        MLFLOW_SOURCE_TYPE: "JOB" if os.environ.get(PREFECT_FLOW_RUN_ENV) else "LOCAL",
        **({MLFLOW_GIT_COMMIT: commit} if commit else {}),
    }
    # no user name in some environments (e.g. a bare container)
    with contextlib.suppress(OSError, KeyError):
        tags[MLFLOW_USER] = getpass.getuser()
    return tags


def source_name(argv: list[str]) -> str:
    """What started this process, readably: ``stockpred train``, ``pytest``, ``notebook``,
    ``flows/train_flow.py``."""
    path = argv[0] if argv and argv[0] else "python"
    program, parent = os.path.basename(path), os.path.basename(os.path.dirname(path))
    if program == "__main__.py":  # python -m <package>
        program, parent = parent, ""
    if "ipykernel" in program or any("ipykernel" in arg for arg in argv[1:2]):
        return "notebook"
    if program == "stockpred":
        return f"stockpred {argv[1]}" if len(argv) > 1 and not argv[1].startswith("-") else program
    if "pytest" in program:
        return "pytest"
    return f"{parent}/{program}" if parent in ("flows", "notebooks", "scripts") else program


def _owner_tags() -> dict[str, str]:
    """Who runs the run: checked later to tell a live run from one whose process died."""
    return {OWNER_HOST_TAG: socket.gethostname(), OWNER_PID_TAG: str(os.getpid())}


@contextmanager
def _ending_run(run_id: str) -> Iterator[None]:
    """End the run FINISHED when the block completes. On an error (an ``Exception``) end it
    FAILED; when it is stopped from outside (Ctrl-C, SIGTERM, an orchestrator's cancellation,
    ``sys.exit``: any other ``BaseException``) end it KILLED. Either way the error goes into the
    ``error`` tag and an ``error.txt`` artifact."""
    mlflow_client = client()
    try:
        yield
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}"
        mlflow_client.set_tag(run_id, "error", message[:5000])
        mlflow_client.log_text(run_id, traceback.format_exc(), "error.txt")
        mlflow_client.set_terminated(run_id, "FAILED" if isinstance(exc, Exception) else "KILLED")
        raise
    else:
        mlflow_client.set_terminated(run_id, "FINISHED")


@contextmanager
def reopen_run(run_id: str, tags: Mapping[str, str] | None = None) -> Iterator[str]:
    """Set an interrupted run RUNNING again, owned by this process, and yield its id; it ends
    like a ``tracked_run``. Its params and ``config.json`` stay as they were; its last error
    moves to the ``resume.previous_error`` tag; ``resume.count`` counts the resumes."""
    check_server()
    mlflow_client = client()
    run = mlflow_client.get_run(run_id)
    before = run.data.tags
    new_tags = {
        **_owner_tags(),
        "resume.count": str(int(before.get("resume.count", "0")) + 1),
        "resume.previous_status": run.info.status,
        **({"resume.previous_error": before["error"][:5000]} if "error" in before else {}),
        **(tags or {}),
    }
    if "error" in before:
        mlflow_client.delete_tag(run_id, "error")
    set_tags(run_id, new_tags)
    mlflow_client.update_run(run_id, status="RUNNING")
    with _ending_run(run_id):
        yield run_id


def set_description(run_id: str, markdown: str) -> None:
    """The run's description, shown at the top of its MLflow page (``mlflow.note.content``)."""
    client().set_tag(run_id, MLFLOW_RUN_NOTE, markdown)


def get_run(run_id: str) -> Run:
    """The run ``run_id``; ``LookupError`` if the store has none."""
    try:
        return client().get_run(run_id)
    except MlflowException:
        raise LookupError(f"no MLflow run {run_id!r} at {tracking_uri()}") from None


def unfinished_runs(experiment: str, max_results: int = 200) -> list[Run]:
    """Runs of ``experiment`` that are not FINISHED, newest first (none if it does not exist)."""
    mlflow_client = client()
    found = mlflow_client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return list(
        mlflow_client.search_runs(
            [found.experiment_id],
            filter_string="attributes.status != 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=max_results,
        )
    )


def end_run(run_id: str, status: str, error: str | None = None) -> None:
    """Mark a run ended with ``status`` (e.g. KILLED), recording ``error`` in its tag."""
    mlflow_client = client()
    if error:
        mlflow_client.set_tag(run_id, "error", error[:5000])
    mlflow_client.set_terminated(run_id, status)


def run_tags(run_id: str) -> dict[str, Any]:
    """A run's tags."""
    return dict(get_run(run_id).data.tags)
