"""Where runs live: the tracking URI, the client, experiments, and whether a server answers.

Default store: ``sqlite:///<project>/mlflow/mlflow.db`` with artifacts in
``<project>/mlflow/artifacts`` (never the deprecated file store); ``MLFLOW_TRACKING_URI``
overrides it (e.g. a team server).
"""

from __future__ import annotations

import errno
import functools
import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import quote

import mlflow
from filelock import FileLock
from filelock import Timeout as FileLockTimeout
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from stockpred.paths import project_root


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


def ui_argv(uri: str | None = None, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """The command (as a list) that opens the MLflow UI on the local store ``uri``, bound to
    ``host:port``; the mlflow beside this interpreter (``.venv/bin/mlflow``) needs no activation."""
    uri = uri or tracking_uri()
    beside = Path(sys.executable).parent / "mlflow"
    program = str(beside) if beside.exists() else "mlflow"
    return [
        program,
        "ui",
        "--backend-store-uri",
        uri,
        "--default-artifact-root",
        str(store_dir() / "artifacts"),
        "--host",
        host,
        "--port",
        str(port),
    ]


def ui_command(uri: str | None = None) -> str:
    """The shell command that opens the MLflow UI on ``uri`` (quoted for a shell)."""
    uri = uri or tracking_uri()
    if not is_local_store(uri):
        return f"open {uri} in a browser"
    return shlex.join(ui_argv(uri))


UI_MODE = "workflowType=machine_learning"  # the MLflow UI's model-training mode (not GenAI)


def run_url(experiment: str, run_id: str, uri: str | None = None) -> str:
    """The run's page in the MLflow UI: on the tracking server, or on the local UI that
    ``ui_command`` opens (http://127.0.0.1:5000), in the UI's model-training mode.

    MLflow 3's UI opens in its GenAI mode unless the page's ``workflowType`` parameter (or the
    browser's stored choice) says otherwise; the experiment's ``mlflow.experimentKind`` tag does
    not choose the mode (seen in MLflow 3.17's UI)."""
    uri = uri or tracking_uri()
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment}/runs/{run_id}?{UI_MODE}"


def runs_url(experiment: str, metric: str, ascending: bool = True, uri: str | None = None) -> str:
    """The experiment's runs table in the MLflow UI, sorted by ``metric`` (best first).

    MLflow 3's UI keeps the sort in the page's address (``orderByKey``, ``orderByAsc``) but the
    table's columns and Compare's chosen metric only in the browser's storage: no project or
    experiment setting chooses them, so the link sorts by the headline and the docs say how to
    add its column."""
    uri = uri or tracking_uri()
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    key = quote(f"metrics.`{metric}`", safe="")
    order = f"orderByKey={key}&orderByAsc={'true' if ascending else 'false'}"
    return f"{base}/#/experiments/{experiment}/runs?{UI_MODE}&{order}"


class TrackingUnavailableError(ConnectionError):
    """The MLflow tracking server named by ``MLFLOW_TRACKING_URI`` does not answer."""


def check_server(uri: str | None = None, timeout: float = 5.0) -> None:
    """Fail fast, with what to do, when a remote tracking server is down.

    MLflow's own client retries a dead server with backoff for minutes; a run should instead
    stop before any data is loaded or any epoch is trained. Local stores need no check.
    """

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
_CREATED: set[str] = set()  # local stores whose tables this process has created or checked
STORE_LOCK_TIMEOUT_S = 600.0  # creating the tables takes seconds; a loaded machine, minutes


class StoreNotWritableError(OSError):
    """The local MLflow store (its folder or database) cannot be written."""


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for an in-memory database)."""
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if uri.startswith("sqlite:///") and path and path != ":memory:" else None


def create_store(uri: str) -> None:
    """Create (or check) the tables of the SQLite store ``uri``, one process at a time.

    MLflow creates an empty store's tables on a client's first call; two processes starting
    together on a new store both migrate it and one dies in alembic. Under a file lock beside
    the database (``mlflow.db.lock``) the first creates the tables and the others find them.
    A store that cannot be written is ``StoreNotWritableError``, one line naming the path.
    """
    database = sqlite_path(uri)
    if database is None:
        return
    lock = FileLock(f"{database}.lock", timeout=STORE_LOCK_TIMEOUT_S)
    try:
        with lock:
            _check_writable(database)
            inner = MlflowClient(tracking_uri=uri)
            inner.search_experiments(max_results=1)  # the tracking tables
            inner.search_registered_models(max_results=1)  # the registry's (same database)
    except FileLockTimeout:
        raise TrackingUnavailableError(
            f"another process held {lock.lock_file} for {STORE_LOCK_TIMEOUT_S:.0f} s while "
            "creating the MLflow store; nothing was run: retry once it has finished"
        ) from None
    except PermissionError as exc:  # the lock file: the folder is read-only
        raise _not_writable(database, exc) from None


def _check_writable(database: Path) -> None:
    """A read-only store is refused here, not retried as a busy one at its first write
    (opened for appending, which writes nothing: ``os.access`` says yes to root even where
    the file system or an immutable flag says no)."""
    if database.exists():
        try:
            with database.open("ab"):
                pass
        except OSError as exc:
            raise _not_writable(database, exc) from None


def _not_writable(database: Path, exc: OSError) -> StoreNotWritableError:
    return StoreNotWritableError(
        errno.EACCES,
        f"the MLflow store {database} cannot be written ({exc.strerror or exc}): make its "
        "folder and database writable, or point MLFLOW_TRACKING_URI at a store you can write",
        str(database),
    )


def client() -> MlflowClient:
    """A client on the configured store (creating the local folder on first use).

    The first client of a tracking server in a process checks that it answers, so a server that
    is down is one clear error at the first MLflow call, not minutes of retries.
    """
    uri = tracking_uri()
    if is_local_store(uri):
        (store_dir() / "artifacts").mkdir(parents=True, exist_ok=True)
        if uri not in _CREATED:
            create_store(uri)
            _CREATED.add(uri)
    elif uri not in _ANSWERED:
        check_server(uri)
        _ANSWERED.add(uri)
    mlflow.set_tracking_uri(uri)
    return cast(MlflowClient, RetryingClient(MlflowClient(tracking_uri=uri)))


RETRY_FOR_S = 180.0  # how long a busy or unreachable store is waited for, then a clear error
_T = TypeVar("_T")


# what SQLite says of a database it could open only for reading (permissions, a read-only
# mount, an immutable file): not a busy store, so not waited for
READ_ONLY = ("attempt to write a readonly database", "disk I/O error")
# what MLflow's REST client says when a server it reached before no longer answers
LOST_SERVER = ("Max retries exceeded", "Connection refused", "Connection aborted")


def transient(exc: BaseException) -> bool:
    """A store that is busy (SQLite locked by another process) or briefly unreachable."""
    text = str(exc)
    if isinstance(exc, MlflowException):
        return (
            exc.error_code in ("TEMPORARILY_UNAVAILABLE",)
            or "database is locked" in text
            # a tracking server that stopped answering mid-run (MLflow's own retries gave up)
            or any(lost in text for lost in LOST_SERVER)
        )
    return isinstance(exc, ConnectionError | TimeoutError) or type(exc).__name__ in (
        "ConnectionError",  # requests'
        "MaxRetryError",
        "ReadTimeout",
        "ConnectTimeout",
    )


def retrying(call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``call(*args, **kwargs)``, retried with backoff while the store is busy or unreachable,
    for up to ``RETRY_FOR_S`` seconds; then ``TrackingUnavailableError`` saying what to do."""
    deadline = time.monotonic() + RETRY_FOR_S
    delay = 0.5
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            database = sqlite_path(tracking_uri())
            said = [phrase for phrase in READ_ONLY if phrase in str(exc)]
            if database is not None and said:
                raise _not_writable(database, OSError(said[0])) from None
            if not transient(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise TrackingUnavailableError(
                    f"the MLflow store {tracking_uri()} stayed busy or unreachable for "
                    f"{RETRY_FOR_S:.0f} s ({type(exc).__name__}: {str(exc)[:200]}); a training "
                    "run keeps its checkpoints: once the store answers, `stockpred interrupted` "
                    "lists it and `stockpred train --resume RUN_ID` continues it"
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 15.0)


class RetryingClient:
    """An ``MlflowClient`` whose every call is ``retrying``: a store locked for a minute by
    another process, or a server restarting, does not fail a training in progress."""

    def __init__(self, inner: MlflowClient) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute
        return functools.partial(retrying, attribute)


REGISTRY_LOCK_TIMEOUT_S = 900.0  # a registration re-scores the champion: minutes when loaded


@contextmanager
def registry_lock(name: str) -> Iterator[None]:
    """Held while a version of registered model ``name`` is created, judged and maybe made
    champion: a file lock beside the SQLite database (for a tracking server, in the project's
    ``mlflow/`` folder, so it orders the registrations of this machine only)."""
    uri = tracking_uri()
    database = sqlite_path(uri) if is_local_store(uri) else None
    folder = database.parent if database is not None else store_dir()
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / f"registry-{_safe_name(name)}.lock"))
    try:
        lock.acquire(timeout=REGISTRY_LOCK_TIMEOUT_S)
    except FileLockTimeout:
        raise TrackingUnavailableError(
            f"another registration of {name!r} held {lock.lock_file} for "
            f"{REGISTRY_LOCK_TIMEOUT_S:.0f} s; the run and its model are logged: register it "
            "later (the run's model URI with `stockpred.pipeline.register_run`)"
        ) from None
    try:
        yield
    finally:
        lock.release()


# MLflow 3's UI shows an experiment in model-training or GenAI mode by this experiment tag
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"  # the UI's other mode: "genai_development"


def experiment_id(name: str) -> str:
    """The id of experiment ``name``, created (artifacts under ``mlflow/artifacts``) if new, and
    marked a model-training experiment (``mlflow.experimentKind``) unless someone chose a kind."""
    mlflow_client = client()
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        if EXPERIMENT_KIND_TAG not in found.tags:
            mlflow_client.set_experiment_tag(
                found.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING
            )
        return found.experiment_id
    location = None
    if is_local_store(tracking_uri()):
        location = (store_dir() / "artifacts" / _safe_name(name)).as_uri()
    return mlflow_client.create_experiment(
        name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING}
    )


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "default"


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
