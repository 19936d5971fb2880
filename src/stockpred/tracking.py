"""The one place that talks to MLflow: where runs live, and logging and loading them.

Default store: ``sqlite:///<project>/mlflow/mlflow.db`` with artifacts in ``<project>/mlflow/artifacts``
(never the deprecated file store); ``MLFLOW_TRACKING_URI`` overrides it (e.g. a team server).
Every function takes an explicit ``run_id``, so logging works from any thread or process.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import subprocess
import sys
import traceback
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow.tracking import MlflowClient

from stockpred.paths import project_root

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from pytorch_lightning.loggers import MLFlowLogger
    from torch import nn

    from stockpred.config import PipelineConfig


def store_dir() -> Path:
    """``<project>/mlflow``: the local SQLite store and its artifacts."""
    return project_root() / "mlflow"


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else the project's SQLite store."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{store_dir() / 'mlflow.db'}"


def is_local_store(uri: str) -> bool:
    """Whether the URI is a store on this machine (SQLite), whose artifacts we place ourselves."""
    return uri.startswith("sqlite:")


def ui_command(uri: str | None = None) -> str:
    """The shell command that opens the MLflow UI on ``uri`` (bound to 127.0.0.1)."""
    uri = uri or tracking_uri()
    if not is_local_store(uri):
        return f"open {uri} in a browser"
    # the mlflow beside this interpreter (.venv/bin/mlflow) works without activating the venv
    beside = Path(sys.executable).parent / "mlflow"
    program = str(beside) if beside.exists() else "mlflow"
    return (
        f"{program} ui --backend-store-uri {uri} "
        f"--default-artifact-root {store_dir() / 'artifacts'} --host 127.0.0.1 --port 5000"
    )


class TrackingUnavailableError(ConnectionError):
    """The MLflow tracking server named by ``MLFLOW_TRACKING_URI`` does not answer."""


def check_server(uri: str | None = None, timeout: float = 5.0) -> None:
    """Fail fast, with what to do, when a remote tracking server is down.

    MLflow's own client retries a dead server with backoff for minutes; a run should instead
    stop before any data is loaded or any epoch is trained. Local stores need no check.
    """
    import urllib.error
    import urllib.request

    uri = uri or tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return
    health = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        problem = f"HTTP {exc.code} from {health}"
    except (OSError, ValueError) as exc:
        problem = f"{type(getattr(exc, 'reason', exc)).__name__}: {getattr(exc, 'reason', exc)}"
    raise TrackingUnavailableError(
        f"MLflow tracking server {uri} is not reachable ({problem}); nothing was run. Start it "
        "(e.g. `mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///mlflow.db`), "
        "fix MLFLOW_TRACKING_URI, or unset it to track into the project's local store"
    )


_ANSWERED: set[str] = set()  # tracking servers that answered once in this process


def client() -> MlflowClient:
    """A client on the configured store (creating the local folder on first use).

    The first client of a tracking server in a process checks that it answers, so a server that
    is down is one clear error at the first MLflow call, not minutes of retries.
    """
    uri = tracking_uri()
    if is_local_store(uri):
        (store_dir() / "artifacts").mkdir(parents=True, exist_ok=True)
    elif uri not in _ANSWERED:
        check_server(uri)
        _ANSWERED.add(uri)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


def experiment_id(name: str) -> str:
    """The id of experiment ``name``, created (artifacts under ``mlflow/artifacts``) if new."""
    mlflow_client = client()
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if is_local_store(tracking_uri()):
        location = (store_dir() / "artifacts" / _safe_name(name)).as_uri()
    return mlflow_client.create_experiment(name, artifact_location=location)


@contextmanager
def tracked_run(
    config: PipelineConfig, tags: Mapping[str, str] | None = None, run_name: str | None = None
) -> Iterator[str]:
    """Start a run for ``config`` (params and tags logged) and yield its id.

    The run ends FINISHED when the block completes, or FAILED (KILLED when stopped from outside:
    Ctrl-C, SIGTERM) with the error recorded in the ``error`` tag and an ``error.txt`` artifact
    — never left RUNNING by this process (a SIGKILL leaves it RUNNING: see ``interrupted_runs``).
    The run is tagged with its owner's host and pid.
    """
    check_server()
    mlflow_client = client()
    run_tags = {
        "tickers": ",".join(config.data.tickers),
        "source": config.data.source,
        **({"git_commit": commit} if (commit := git_commit()) else {}),
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
    import random

    from mlflow.utils.name_utils import _generate_random_name

    state = random.getstate()
    random.seed()
    try:
        return _generate_random_name()
    finally:
        random.setstate(state)


# --- Resuming interrupted runs (see stockpred.resume for the checkpoint folder and its lock) ---
OWNER_HOST_TAG = "stockpred.host"
OWNER_PID_TAG = "stockpred.pid"
RESUMABLE_STATUSES = ("RUNNING", "FAILED", "KILLED")
SWEEP_TRIAL = "sweep_trial"  # the ``run.kind`` tag of a sweep's trial runs


def _owner_tags() -> dict[str, str]:
    """Who runs the run: checked later to tell a live run from one whose process died."""
    import socket

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


@dataclass(frozen=True)
class InterruptedRun:
    """A run that stopped before it finished, and whether ``stockpred train --resume`` can
    continue it here."""

    run_id: str
    run_name: str
    status: str  # RUNNING (its process is gone), FAILED or KILLED
    started: str  # local time, YYYY-MM-DD HH:MM
    why: str
    checkpoint_epoch: int | None  # the last completed epoch saved; None: starts from epoch 0
    resumable: bool  # its checkpoint folder is on this machine
    sweep_trial: bool = False  # a trial of a sweep: ``--resume last`` passes it over

    @property
    def resume_command(self) -> str:
        """The command that continues it."""
        return f"stockpred train --resume {self.run_id}"


def owner_alive(run: Any) -> bool | None:
    """Whether the process that owns a RUNNING run is alive: its checkpoint folder's lock when
    the folder is here, else its pid when it ran on this machine; None when it cannot tell."""
    import socket

    from stockpred import resume

    alive = resume.owner_alive(run.info.run_id)
    if alive is not None:
        return alive
    host, pid = run.data.tags.get(OWNER_HOST_TAG), run.data.tags.get(OWNER_PID_TAG)
    if not pid or host != socket.gethostname():
        return None
    return resume.pid_alive(int(pid))


def interrupted_runs(experiment: str = "stockpred", max_results: int = 200) -> list[InterruptedRun]:
    """Runs of ``experiment`` that stopped before finishing, newest first: RUNNING runs whose
    process is gone (dangling after a SIGKILL, a crash or a reboot), and FAILED or KILLED runs
    that kept a checkpoint. A RUNNING run whose owner may be alive (started on another machine
    and with no checkpoint folder here) is left out."""
    import datetime as dt

    from stockpred import resume

    mlflow_client = client()
    found = mlflow_client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = mlflow_client.search_runs(
        [found.experiment_id],
        filter_string="attributes.status != 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=max_results,
    )
    out = []
    for run in runs:
        run_id, status, tags = run.info.run_id, run.info.status, run.data.tags
        has_folder = resume.run_dir(run_id).is_dir()
        last = resume.last_checkpoint(run_id)
        if status == "RUNNING":
            if owner_alive(run) is not False:
                continue
            owner = f"{tags.get(OWNER_PID_TAG, '?')} on {tags.get(OWNER_HOST_TAG, '?')}"
            why = f"its process ({owner}) is gone"
        elif status in RESUMABLE_STATUSES and last is not None:
            why = tags.get("error", status)
        else:
            continue
        try:
            epoch = resume.checkpoint_epoch(last) if last else None
        except ValueError as exc:
            epoch, why = None, f"{why}; {exc}"
        started = dt.datetime.fromtimestamp(run.info.start_time / 1000)  # local time
        trial = tags.get("run.kind") == SWEEP_TRIAL
        out.append(InterruptedRun(run_id, run.info.run_name, status, f"{started:%Y-%m-%d %H:%M}",
                                  why, epoch, has_folder, trial))  # fmt: skip
    return out


def resumable_run(ref: str, experiment: str = "stockpred") -> str:
    """The id of the run that ``--resume REF`` continues: ``REF`` itself, or for ``last`` the
    newest resumable interrupted run of ``experiment`` that is not a sweep's trial (resumed on
    its own, a trial's result would be missing from its sweep's table: name it to resume it).
    Raises ``LookupError``/``ValueError`` saying why not (finished, unknown, trained elsewhere,
    still running)."""
    from mlflow.exceptions import MlflowException

    from stockpred import resume

    if ref == "last":
        found = [run for run in interrupted_runs(experiment) if run.resumable]
        alone = [run for run in found if not run.sweep_trial]
        if not alone:
            trials = (f"; {len(found)} interrupted sweep trial(s) are left to their sweep (resume "
                      "one by its id)" if found else "")  # fmt: skip
            raise LookupError(
                f"no interrupted run to resume in experiment {experiment!r} at {tracking_uri()}"
                f"{trials} (`stockpred interrupted --experiment {experiment}` lists them)"
            )
        return alone[0].run_id
    folder = resume.run_dir(ref)  # checks that it looks like a run id
    try:
        run = client().get_run(ref)
    except MlflowException:
        raise LookupError(f"no MLflow run {ref!r} at {tracking_uri()}") from None
    status = run.info.status
    if run.info.lifecycle_stage != "active":
        raise ValueError(f"run {ref} is deleted; restore it in the MLflow UI to resume it")
    if status == "FINISHED":
        raise ValueError(f"run {ref} is FINISHED: there is nothing to resume")
    if not folder.is_dir():
        raise LookupError(
            f"run {ref} ({status}) has no checkpoint folder {folder}: only runs trained by "
            "`stockpred train` (run_training) on this machine, and not finished, can be resumed"
        )
    if status == "RUNNING" and owner_alive(run):
        raise resume.RunBusy(
            f"run {ref} is still RUNNING in a live process (pid {run.data.tags.get(OWNER_PID_TAG)}"
            f" on {run.data.tags.get(OWNER_HOST_TAG)}): wait for it, or stop it first"
        )
    return ref


def abandon_run(run_id: str, force: bool = False) -> str:
    """Give up on an interrupted run: a dangling RUNNING one ends KILLED; its checkpoints are
    deleted. Returns its status now.

    Refuses a RUNNING run unless its process is known to be gone (``owner_alive`` is False); a
    run whose owner cannot be checked from here (started on another machine, seen through a
    shared tracking server) needs ``force``, and its process may well still be training it.
    """
    from mlflow.exceptions import MlflowException

    from stockpred import resume

    resume.run_dir(run_id)  # checks that it looks like a run id
    mlflow_client = client()
    try:
        run = mlflow_client.get_run(run_id)
    except MlflowException:
        raise LookupError(f"no MLflow run {run_id!r} at {tracking_uri()}") from None
    if run.info.status == "RUNNING":
        alive = owner_alive(run)
        tags = run.data.tags
        owner = f"pid {tags.get(OWNER_PID_TAG, '?')} on {tags.get(OWNER_HOST_TAG, '?')}"
        if alive:
            raise resume.RunBusy(f"run {run_id} is RUNNING in a live process ({owner}): stop it")
        if alive is None and not force:
            raise resume.RunBusy(
                f"run {run_id} is RUNNING and whether its process ({owner}) is alive cannot be "
                "checked from this machine: it may still be training. Stop it there, or, if you "
                f"know it is gone, `stockpred interrupted --abandon {run_id} --force`"
            )
    with contextlib.ExitStack() as stack:
        if resume.run_dir(run_id).is_dir():  # RunBusy while a process trains or resumes it
            stack.enter_context(resume.owner_lock(run_id))
        if run.info.status == "RUNNING":
            why = "its process was gone" if alive is False else "forced: its process unknown"
            mlflow_client.set_tag(run_id, "error", f"abandoned: {why}")
            mlflow_client.set_terminated(run_id, "KILLED")
        resume.discard(run_id)  # under the lock: nobody can be using the folder
    return mlflow_client.get_run(run_id).info.status


def log_params(run_id: str, params: Mapping[str, Any]) -> None:
    """Log parameters (``None`` shown as an empty string)."""
    from mlflow.entities import Param

    items = [Param(k, "" if v is None else str(v)) for k, v in params.items()]
    client().log_batch(run_id, params=items)


def log_metrics(run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log a batch of metrics at ``step``."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
    client().log_batch(run_id, metrics=items)


def set_tags(run_id: str, tags: Mapping[str, str]) -> None:
    """Set run tags."""
    mlflow_client = client()
    for key, value in tags.items():
        mlflow_client.set_tag(run_id, key, value)


def log_dict(run_id: str, data: dict[str, Any], artifact_file: str) -> None:
    """Log a JSON/YAML artifact."""
    client().log_dict(run_id, data, artifact_file)


def log_figure(run_id: str, figure: Figure, artifact_file: str) -> None:
    """Log a matplotlib figure as an image artifact and close it."""
    import matplotlib.pyplot as plt

    client().log_figure(run_id, figure, artifact_file)
    plt.close(figure)


def log_table(run_id: str, table: pd.DataFrame, artifact_file: str) -> None:
    """Log a DataFrame as a table artifact (rendered by the MLflow UI)."""
    client().log_table(run_id, table, artifact_file)


def log_dataset(
    run_id: str, frame: pd.DataFrame, name: str, source: str, context: str = "training"
) -> None:
    """Record dataset lineage (name, digest, schema, source) as a run input."""
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag

    with warnings.catch_warnings():
        # "source can be interpreted in multiple ways" and the integer-column schema hint
        warnings.simplefilter("ignore", UserWarning)
        entity = mlflow.data.from_pandas(frame, source=source, name=name)._to_mlflow_entity()
    tags = [InputTag("mlflow.data.context", context)]
    client().log_inputs(run_id, datasets=[DatasetInput(entity, tags=tags)])


def recorded_data(run_id: str, name: str) -> dict[str, str]:
    """What a run recorded of the data it was trained on: ``rows``, ``range`` and ``digest``
    (its ``data.*`` tags), and ``dataset_digest``, MLflow's digest of its input dataset ``name``
    (of the first 10,000 rows and the row count only). Keys it did not record are left out."""
    run = client().get_run(run_id)
    found = {key: run.data.tags[f"data.{key}"] for key in ("rows", "range", "digest")
             if f"data.{key}" in run.data.tags}  # fmt: skip
    for item in run.inputs.dataset_inputs if run.inputs else []:
        if item.dataset.name == name:
            found["dataset_digest"] = item.dataset.digest
    return found


def dataset_digest(frame: pd.DataFrame) -> str:
    """MLflow's digest of a frame logged with ``log_dataset``."""
    from mlflow.data.digest_utils import compute_pandas_digest

    return compute_pandas_digest(frame)


def log_model(run_id: str, model: nn.Module, input_example: Any, name: str = "model") -> str:
    """Log a PyTorch model with its signature and input example; returns its model URI."""
    import mlflow.pytorch
    import torch

    # mlflow.pytorch warns that pickled models run code when loaded; we log our own class.
    logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
    # The LoggedModel goes to the active experiment (else "Default", under ./mlruns): the run's.
    mlflow.set_experiment(experiment_id=client().get_run(run_id).info.experiment_id)
    info = mlflow.pytorch.log_model(
        model,
        name=name,
        input_example=input_example,
        run_id=run_id,
        # Pinned rather than inferred: inference imports the model in a subprocess (slow).
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        # Pickle keeps the batch dimension dynamic (torch.export specialises it to the example).
        serialization_format="pickle",
    )
    return info.model_uri


def lightning_logger(run_id: str) -> MLFlowLogger:
    """A Lightning logger that writes epoch metrics into an existing run without ending it.

    Its class is ``stockpred.tracking.RunLogger`` (built on first use: Lightning is a heavy
    import), so the logger pickles into ``ddp_spawn`` worker processes.
    """
    return _run_logger_class()(tracking_uri=tracking_uri(), run_id=run_id)


def __getattr__(name: str) -> Any:  # PEP 562: lets pickle find RunLogger by name
    if name == "RunLogger":
        return _run_logger_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _run_logger_class() -> type[MLFlowLogger]:
    from pytorch_lightning.loggers import MLFlowLogger

    class RunLogger(MLFlowLogger):
        def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
            # Epoch-level metrics carry "epoch": use it as the step, so UI charts are per epoch.
            if "epoch" in metrics:
                step = int(metrics["epoch"])
                metrics = {k: v for k, v in metrics.items() if k != "epoch"}
            super().log_metrics(metrics, step)

        # The run belongs to ``tracked_run``: Lightning must not mark it finished after ``fit``.
        def finalize(self, status: str = "success") -> None:
            return None

    RunLogger.__qualname__ = "RunLogger"
    return RunLogger


CHAMPION = "champion"
PROMOTION_METRIC = "val/rmse_vs_zero"  # skill over the zero forecast: comparable across runs


@dataclass(frozen=True)
class Promotion:
    """What registering a run's model did: its version, and whether it became the champion."""

    name: str
    version: str
    promoted: bool
    reason: str


def register_model(run_id: str, model_uri: str, name: str) -> Promotion:
    """Register the run's model as a new version of ``name``; move the ``champion`` alias to it
    only if it beats the current champion on ``val/rmse_vs_zero`` (lower is better).

    The decision and its reason are tagged on the version and the run. Aliases, not stages.
    """
    from mlflow.exceptions import MlflowException

    mlflow_client = client()
    challenger = mlflow_client.get_run(run_id).data.metrics.get(PROMOTION_METRIC)
    if challenger is None:
        raise ValueError(f"run {run_id} has no {PROMOTION_METRIC} metric to compare champions by")
    try:
        mlflow_client.create_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    # A tracking server checks that a logged model's source names its model id
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    version = mlflow_client.create_model_version(
        name, model_uri, run_id=run_id, model_id=model_id
    ).version
    try:
        champion = mlflow_client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        champion = None
    if champion is None:
        promoted, reason = True, f"first version: champion with {PROMOTION_METRIC} {challenger:.6f}"
    else:
        held = mlflow_client.get_run(champion.run_id).data.metrics.get(PROMOTION_METRIC, math.inf)
        promoted = challenger < held
        verb = "beats" if promoted else "does not beat"
        reason = (f"{PROMOTION_METRIC} {challenger:.6f} {verb} champion v{champion.version}'s "
                  f"{held:.6f}")  # fmt: skip
    if promoted:
        mlflow_client.set_registered_model_alias(name, CHAMPION, version)
    decision = "promoted" if promoted else "not promoted"
    mlflow_client.set_model_version_tag(name, version, "promotion", f"{decision}: {reason}")
    set_tags(run_id, {"registry.model": name, "registry.version": str(version),
                      "registry.promotion": f"{decision}: {reason}"})  # fmt: skip
    return Promotion(name, str(version), promoted, reason)


def load_dict(run_id: str, artifact_file: str) -> dict[str, Any]:
    """A JSON artifact of a run (e.g. ``config.json``, ``preprocessing.json``)."""
    import json

    return json.loads(download_artifact(run_id, artifact_file).read_text())


def git_commit() -> str | None:
    """The project's current git commit, if it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=project_root(),
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "default"


def log_artifact(run_id: str, path: Path, artifact_path: str | None = None) -> None:
    """Log a local file as an artifact of the run."""
    client().log_artifact(run_id, str(path), artifact_path)


def log_artifact_object(run_id: str, item: Figure | pd.DataFrame, artifact_file: str) -> None:
    """Log a matplotlib figure as an image, or a DataFrame as a Parquet file, at ``artifact_file``."""
    import tempfile

    import pandas as pd

    if not isinstance(item, pd.DataFrame):
        log_figure(run_id, item, artifact_file)
        return
    path = Path(artifact_file)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / path.name
        item.to_parquet(local, index=False)
        log_artifact(run_id, local, str(path.parent) if path.parent.parts else None)


def load_gate_stats(run_id: str) -> pd.DataFrame:
    """Per-epoch gate statistics of a run: columns epoch, layer, gate, stat, value."""
    import pandas as pd

    mlflow_client = client()
    keys = sorted(k for k in mlflow_client.get_run(run_id).data.metrics if k.startswith("gates/"))
    records = []
    for key in keys:
        _, layer, gate, stat = key.split("/")
        for point in mlflow_client.get_metric_history(run_id, key):
            records.append((point.step, int(layer[1:]), gate, stat, point.value))
    frame = pd.DataFrame.from_records(records, columns=["epoch", "layer", "gate", "stat", "value"])
    return frame.sort_values(["epoch", "layer", "gate", "stat"], ignore_index=True)


def load_gate_units(run_id: str, epoch: int | None = None) -> pd.DataFrame:
    """The per-unit gate table of a run at ``epoch`` (default: the last one logged)."""
    import re

    import pandas as pd

    files = {
        int(match.group(1)): item.path
        for item in client().list_artifacts(run_id, "gates")
        if (match := re.search(r"units_epoch_(\d+)\.parquet$", item.path))
    }
    if not files:
        raise LookupError(f"run {run_id} has no gate tables (was it trained with gates.enabled?)")
    chosen = max(files) if epoch is None else epoch
    if chosen not in files:
        raise LookupError(f"run {run_id} has gate tables for epochs {sorted(files)}, not {epoch}")
    return pd.read_parquet(download_artifact(run_id, files[chosen]))


def list_artifact_paths(run_id: str, folder: str | None = None) -> list[str]:
    """The paths of a run's artifacts directly under ``folder`` (the top level by default)."""
    return sorted(item.path for item in client().list_artifacts(run_id, folder))


def download_artifact(run_id: str, artifact_path: str) -> Path:
    """A local copy of one artifact (file or folder) of a run."""
    import mlflow.artifacts

    client()  # sets the tracking URI that resolves the run's artifact location
    local = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=artifact_path, tracking_uri=tracking_uri()
    )
    return Path(local)


def load_run_config(run_id: str) -> PipelineConfig:
    """The validated config a run was trained with (its ``config.json`` artifact)."""
    from stockpred.config import load_config

    return load_config(download_artifact(run_id, "config.json"))


def load_metric_history(run_id: str, *keys: str) -> pd.DataFrame:
    """Every logged value of the metrics ``keys`` of a run: columns key, step, value."""
    import pandas as pd

    mlflow_client = client()
    records = [
        (key, point.step, point.value)
        for key in keys
        for point in mlflow_client.get_metric_history(run_id, key)
    ]
    frame = pd.DataFrame.from_records(records, columns=["key", "step", "value"])
    return frame.sort_values(["key", "step"], ignore_index=True)


def load_run_record(run_id: str) -> dict[str, Any]:
    """One run as a flat record, laid out like a row of ``search_runs``."""
    return _run_record(client().get_run(run_id))


def search_runs(
    experiment: str = "stockpred", filter_string: str = "", max_results: int = 1000
) -> pd.DataFrame:
    """Runs of ``experiment``, newest first, one row each, in ``mlflow.search_runs``' layout.

    Columns: run_id, run_name, status, start_time, model_uri (the run's logged model, or None),
    then ``params.*``, ``metrics.*`` (latest values) and ``tags.*``.
    """
    import pandas as pd

    mlflow_client = client()
    found = mlflow_client.get_experiment_by_name(experiment)
    if found is None:
        raise LookupError(f"no experiment named {experiment!r} at {tracking_uri()}")
    runs = mlflow_client.search_runs(
        [found.experiment_id],
        filter_string=filter_string,
        order_by=["attributes.start_time DESC"],
        max_results=max_results,
    )
    columns = ["run_id", "run_name", "status", "start_time", "model_uri"]
    return pd.DataFrame([_run_record(run) for run in runs], columns=None if runs else columns)


def _run_record(run: Any) -> dict[str, Any]:
    import pandas as pd

    models = run.outputs.model_outputs if run.outputs else []
    return {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "status": run.info.status,
        "start_time": pd.Timestamp(run.info.start_time, unit="ms"),
        "model_uri": f"models:/{models[0].model_id}" if models else None,
        **{f"params.{k}": v for k, v in run.data.params.items()},
        **{f"metrics.{k}": v for k, v in run.data.metrics.items()},
        **{f"tags.{k}": v for k, v in run.data.tags.items()},
    }


def load_model(model_uri: str) -> nn.Module:
    """A logged PyTorch model (``models:/...`` or ``runs:/...``), on the CPU in eval mode."""
    import mlflow.pytorch

    client()  # sets the tracking URI that resolves ``models:/`` URIs
    logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
    model = mlflow.pytorch.load_model(model_uri, map_location="cpu")
    return model.eval()
