"""Reading runs back: configs, metrics and their history, gate tables, artifacts, models."""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import mlflow.artifacts
import mlflow.pytorch
import pandas as pd
import torch
from mlflow.artifacts import download_artifacts
from mlflow.data.digest_utils import compute_pandas_digest
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from torch import nn

from stockpred.config import PipelineConfig, load_config
from stockpred.models import MODELS, load_architecture
from stockpred.tracking.store import client, tracking_uri
from stockpred.tracking.writers import ARCHITECTURE_FILE, WEIGHTS_FILE, WEIGHTS_FOLDER

ALLOW_PICKLE_ENV = "STOCKPRED_ALLOW_PICKLE"


def load_dict(run_id: str, artifact_file: str) -> dict[str, Any]:
    """A JSON artifact of a run (e.g. ``config.json``, ``preprocessing.json``)."""
    return json.loads(download_artifact(run_id, artifact_file).read_text())


def load_gate_stats(run_id: str) -> pd.DataFrame:
    """Per-epoch gate statistics of a run: columns epoch, layer, gate, stat, value."""
    mlflow_client = client()
    # per-layer statistics only: gates/l<k>/<gate>/<stat> (not gates/ablation/...)
    layered = re.compile(r"^gates/l\d+/[^/]+/[^/]+$")
    keys = sorted(k for k in mlflow_client.get_run(run_id).data.metrics if layered.match(k))
    records = []
    for key in keys:
        _, layer, gate, stat = key.split("/")
        for point in mlflow_client.get_metric_history(run_id, key):
            records.append((point.step, int(layer[1:]), gate, stat, point.value))
    frame = pd.DataFrame.from_records(records, columns=["epoch", "layer", "gate", "stat", "value"])
    return frame.sort_values(["epoch", "layer", "gate", "stat"], ignore_index=True)


def load_gate_units(run_id: str, epoch: int | None = None) -> pd.DataFrame:
    """The per-unit gate table of a run at ``epoch`` (default: the last one logged)."""
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
    client()  # sets the tracking URI that resolves the run's artifact location
    local = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=artifact_path, tracking_uri=tracking_uri()
    )
    return Path(local)


def load_run_config(run_id: str) -> PipelineConfig:
    """The validated config a run was trained with (its ``config.json`` artifact)."""
    logged = json.loads(download_artifact(run_id, "config.json").read_text())
    if isinstance(logged, dict) and "target" not in logged:
        # logged before tasks existed, when every run forecast returns (now not the default)
        logged["target"] = {"kind": "return"}
    return load_config(logged)


def load_metric_history(run_id: str, *keys: str) -> pd.DataFrame:
    """Every logged value of the metrics ``keys`` of a run: columns key, step, value."""
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


def runs_tagged(key: str, value: str, max_results: int = 1000) -> list[str]:
    """Ids of the runs of every experiment in the store whose tag ``key`` equals ``value``."""
    mlflow_client = client()
    experiments = [e.experiment_id for e in mlflow_client.search_experiments()]
    if not experiments:
        return []
    runs = mlflow_client.search_runs(
        experiments, filter_string=f"tags.`{key}` = '{value}'", max_results=max_results
    )
    return [run.info.run_id for run in runs]


def _run_record(run: Any) -> dict[str, Any]:
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


class UnsafeModelError(ValueError):
    """A model that could only be loaded by unpickling it (which runs code)."""


class DamagedModelError(ValueError):
    """A model version whose weights-only files cannot be what they claim: one line naming the
    file, the version and what to do."""


class NonFiniteModelError(DamagedModelError):
    """A model version whose weights hold NaN or inf: every forecast it made would be NaN."""


MAX_ARCHITECTURE_BYTES = 64 * 1024  # a few keys of JSON; anything larger is not ours
WEIGHTS_SLACK_BYTES = 1 << 20  # torch's zip container around the tensors (headers, names)
FIX = (
    "retrain it (`stockpred train --register`) or point the champion alias at another version "
    "(the MLflow UI's model page, or MlflowClient().set_registered_model_alias)"
)


def load_model(model_uri: str, *, allow_pickle: bool | None = None) -> nn.Module:
    """A logged model (``models:/<id>``, ``models:/<name>@<alias>``, ``models:/<name>/<n>``),
    on the CPU in eval mode, rebuilt from its weights and architecture: no pickle is loaded.

    The architecture names its ``arch`` (``stockpred.models.MODELS``; none: an LSTM logged
    before the GRU existed). Damaged files (truncated, foreign, wrong shape, an architecture larger than its weights)
    raise ``DamagedModelError`` and weights holding NaN or inf ``NonFiniteModelError``, each one
    line naming the file and the version. A model logged without a weights-only copy (by an older
    stockpred) is loaded by unpickling only with ``allow_pickle`` (default:
    ``$STOCKPRED_ALLOW_PICKLE=1``), since an unpickled file runs whatever code its author put in it.
    """
    location, label = _model_location(model_uri)
    files = _weights_only_files(location)
    if files is not None:
        return rebuild_model(label, *files)
    if allow_pickle is None:
        allow_pickle = os.environ.get(ALLOW_PICKLE_ENV, "") == "1"
    if not allow_pickle:
        raise UnsafeModelError(
            f"{label} has no weights-only copy ({WEIGHTS_FILE}): loading it would unpickle it, "
            "which runs any code its author put in it. Retrain it with this stockpred, or, only "
            f"if you trust who logged it, set {ALLOW_PICKLE_ENV}=1"
        )
    logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
    model = mlflow.pytorch.load_model(model_uri, map_location="cpu")
    return model.eval()


# where a LoggedModel keeps the weights-only copy: the pyfunc's artifacts (models from code),
# or extra_files/ beside MLflow's pickle (stockpred before the pyfunc)
WEIGHTS_FOLDERS = (WEIGHTS_FOLDER, "extra_files")


def _weights_only_files(location: str) -> tuple[Path | None, Path | None] | None:
    """Local copies of (weights, architecture) of the model at ``location``; None when neither
    exists (a model logged without them), a missing one as None."""
    for folder in WEIGHTS_FOLDERS:
        found = [_download_or_none(f"{location}/{folder}/{name}") for name in FILES]
        if any(path is not None for path in found):
            return found[0], found[1]
    return None


FILES = (WEIGHTS_FILE, ARCHITECTURE_FILE)


def _download_or_none(artifact_uri: str) -> Path | None:
    try:
        return Path(download_artifacts(artifact_uri=artifact_uri))
    except (MlflowException, OSError):
        return None


def rebuild_model(label: str, weights: Path | None, shape: Path | None) -> nn.Module:
    """The forecaster of ``label`` (in eval mode) from its architecture and weights files, each
    checked before use: the architecture's parameter count against the weights' size before
    anything is allocated, ``torch.load(weights_only=True)``, then keys, shapes and finiteness."""
    for name, path in zip(FILES, (weights, shape), strict=True):
        if path is None or not path.is_file():
            raise DamagedModelError(f"{label}: {name} is missing; {FIX}")
    assert weights is not None and shape is not None
    arguments = _architecture(label, shape)
    size = weights.stat().st_size
    with torch.device("meta"):  # shapes only: a huge hidden size allocates nothing here
        skeleton = _construct(label, arguments)
    needed = sum(p.numel() * p.element_size() for p in skeleton.state_dict().values())
    if needed > size or size > 2 * needed + WEIGHTS_SLACK_BYTES:
        raise DamagedModelError(
            f"{label}: {ARCHITECTURE_FILE} {arguments} needs {needed:,} bytes of weights but "
            f"{WEIGHTS_FILE} holds {size:,}: the files do not belong together; {FIX}"
        )
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises many types for a foreign file; none runs code
        raise DamagedModelError(
            f"{label}: {WEIGHTS_FILE} is not a weights file ({type(exc).__name__}: "
            f"{_first_line(exc)}); {FIX}"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise DamagedModelError(
            f"{label}: {WEIGHTS_FILE} holds a {type(state).__name__}, not named tensors; {FIX}"
        )
    model = _construct(label, arguments)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # missing or unexpected keys, wrong shapes
        raise DamagedModelError(
            f"{label}: {WEIGHTS_FILE} does not fit {ARCHITECTURE_FILE} ({_first_line(exc)}); {FIX}"
        ) from None
    bad = sum(int((~torch.isfinite(v)).sum()) for v in model.state_dict().values())
    if bad:
        total = sum(v.numel() for v in model.state_dict().values())
        raise NonFiniteModelError(
            f"{label}: {WEIGHTS_FILE} holds {bad:,} NaN or infinite weights of {total:,} (a "
            f"diverged training or a damaged file): it would forecast NaN; {FIX}"
        )
    return model.eval()


def load_version_run(label: str, run_id: str) -> tuple[PipelineConfig, dict[str, Any], Run]:
    """The config, ``preprocessing.json`` and run of a model version's run (``label``: e.g.
    ``stockpred-lstm v3``); ``DamagedModelError`` saying so when the run was deleted or its files
    are gone (a champion whose run nobody can inspect is not used)."""
    try:
        run = client().get_run(run_id)
    except MlflowException:
        raise DamagedModelError(
            f"{label}: its run {run_id} is gone from the store; {FIX}"
        ) from None
    if run.info.lifecycle_stage == "deleted":
        raise DamagedModelError(f"{label}: its run {run_id} was deleted; {FIX}")
    found: dict[str, Any] = {}
    for name in ("config.json", "preprocessing.json"):
        try:
            found[name] = download_artifact(run_id, name)
        except (MlflowException, OSError) as exc:
            raise DamagedModelError(
                f"{label}: its run {run_id} has no readable {name} ({_first_line(exc)}); {FIX}"
            ) from None
    try:
        preprocessing = json.loads(found["preprocessing.json"].read_text())
    except (ValueError, RecursionError) as exc:
        raise DamagedModelError(
            f"{label}: preprocessing.json of run {run_id} is not JSON ({_first_line(exc)}); {FIX}"
        ) from None
    return load_config(found["config.json"]), preprocessing, run


def _architecture(label: str, path: Path) -> dict[str, Any]:
    """The constructor arguments in ``architecture.json``: a small JSON object of known keys."""
    size = path.stat().st_size
    if size > MAX_ARCHITECTURE_BYTES:
        raise DamagedModelError(
            f"{label}: {ARCHITECTURE_FILE} is {size:,} bytes (at most "
            f"{MAX_ARCHITECTURE_BYTES:,}); {FIX}"
        )
    try:
        arguments = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise DamagedModelError(
            f"{label}: {ARCHITECTURE_FILE} is not JSON ({_first_line(exc)}); {FIX}"
        ) from None
    if not isinstance(arguments, dict):
        raise DamagedModelError(f"{label}: {ARCHITECTURE_FILE} is not a JSON object; {FIX}")
    arch = arguments.get("arch", "lstm")
    if not isinstance(arch, str) or arch not in MODELS:
        raise DamagedModelError(
            f"{label}: {ARCHITECTURE_FILE} names an unknown model {arch!r} (known: "
            f"{', '.join(MODELS)}); {FIX}"
        )
    known = set(inspect.signature(MODELS[arch]).parameters) | {"arch"}
    if unknown := sorted(set(arguments) - known):
        raise DamagedModelError(
            f"{label}: {ARCHITECTURE_FILE} has keys the model does not take ({', '.join(map(str, unknown))}); {FIX}"
        )
    for key, value in arguments.items():
        if key == "arch":
            continue
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise DamagedModelError(
                f"{label}: {ARCHITECTURE_FILE} {key}={value!r} is not a size; {FIX}"
            )
    return arguments


def _construct(label: str, arguments: dict[str, Any]) -> nn.Module:
    try:
        return load_architecture(arguments)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DamagedModelError(
            f"{label}: {ARCHITECTURE_FILE} does not build a model ({_first_line(exc)}); {FIX}"
        ) from None


def _first_line(exc: BaseException) -> str:
    """The exception's text on one line (torch's span several), at most 300 characters."""
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__


def _model_location(model_uri: str) -> tuple[str, str]:
    """The artifact location of the LoggedModel a ``models:/`` URI names, and a label for
    messages (``stockpred-lstm v3``, or the URI when it names no version)."""
    mlflow_client = client()
    ref = model_uri.removeprefix("models:/")
    if not model_uri.startswith("models:/") or not ref:
        raise ValueError(f"expected a models:/ URI, got {model_uri!r}")
    label = model_uri
    try:
        model_id: str | None
        if ref.startswith("m-") and "/" not in ref and "@" not in ref:
            model_id = ref
        else:
            if "@" in ref:
                name, alias = ref.split("@", 1)
                found = mlflow_client.get_model_version_by_alias(name, alias)
            else:
                name, version = ref.rsplit("/", 1)
                found = mlflow_client.get_model_version(name, version)
            label = f"{name} v{found.version} ({model_uri})"
            # a local store leaves model_id empty; the source is the LoggedModel's own URI
            source = str(found.source or "")
            model_id = found.model_id or (source.removeprefix("models:/") or None)
        if not model_id:
            raise LookupError(f"{model_uri} names a version without a logged model")
        logged = mlflow_client.get_logged_model(model_id)
    except MlflowException as exc:
        if label != model_uri:  # the version exists; what it points at is gone
            raise DamagedModelError(
                f"{label}: its logged model is gone ({_first_line(exc)}); {FIX}"
            ) from None
        raise LookupError(f"no model {model_uri} at {tracking_uri()}: {exc.message}") from None
    return str(logged.artifact_location), label


def recorded_data(run_id: str, name: str) -> dict[str, str]:
    """What a run recorded of the data it was trained on: ``rows``, ``range`` and ``digest``
    (its ``data.*`` tags), and ``dataset_digest``, MLflow's digest of its input dataset ``name``
    (of the first 10,000 rows and the row count only). Keys it did not record are left out."""
    run = client().get_run(run_id)
    found = {
        key: run.data.tags[f"data.{key}"]
        for key in ("rows", "range", "digest")
        if f"data.{key}" in run.data.tags
    }
    for item in run.inputs.dataset_inputs if run.inputs else []:
        if item.dataset.name == name:
            found["dataset_digest"] = item.dataset.digest
    return found


def dataset_digest(frame: pd.DataFrame) -> str:
    """MLflow's digest of a frame logged with ``log_dataset``."""
    return compute_pandas_digest(frame)
