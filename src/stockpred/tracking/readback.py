"""Reading runs back: configs, metrics and their history, gate tables, artifacts, models."""

from __future__ import annotations

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
from mlflow.exceptions import MlflowException
from torch import nn

from stockpred.config import PipelineConfig, load_config
from stockpred.models import LSTMForecaster
from stockpred.tracking.store import client, tracking_uri
from stockpred.tracking.writers import ARCHITECTURE_FILE, WEIGHTS_FILE

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
    return load_config(download_artifact(run_id, "config.json"))


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


def load_model(model_uri: str, *, allow_pickle: bool | None = None) -> nn.Module:
    """A logged model (``models:/<id>``, ``models:/<name>@<alias>``, ``models:/<name>/<n>``),
    on the CPU in eval mode, rebuilt from its weights and architecture: no pickle is loaded.

    A model logged without them (not an ``LSTMForecaster``, or by an older stockpred) is loaded
    by unpickling only with ``allow_pickle`` (default: ``$STOCKPRED_ALLOW_PICKLE=1``), since an
    unpickled file runs whatever code its author put in it.
    """
    location = _model_location(model_uri)
    weights: str | None
    shape: str | None
    try:
        weights = download_artifacts(artifact_uri=f"{location}/extra_files/{WEIGHTS_FILE}")
        shape = download_artifacts(artifact_uri=f"{location}/extra_files/{ARCHITECTURE_FILE}")
    except MlflowException:
        weights = shape = None
    if weights is not None and shape is not None:
        model = LSTMForecaster(**json.loads(Path(shape).read_text()))
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return model.eval()
    if allow_pickle is None:
        allow_pickle = os.environ.get(ALLOW_PICKLE_ENV, "") == "1"
    if not allow_pickle:
        raise UnsafeModelError(
            f"{model_uri} has no weights-only copy (extra_files/{WEIGHTS_FILE}): loading it "
            "would unpickle it, which runs any code its author put in it. Retrain it with this "
            f"stockpred, or, only if you trust who logged it, set {ALLOW_PICKLE_ENV}=1"
        )
    logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
    model = mlflow.pytorch.load_model(model_uri, map_location="cpu")
    return model.eval()


def _model_location(model_uri: str) -> str:
    """The artifact location of the LoggedModel a ``models:/`` URI names."""
    mlflow_client = client()
    ref = model_uri.removeprefix("models:/")
    if not model_uri.startswith("models:/") or not ref:
        raise ValueError(f"expected a models:/ URI, got {model_uri!r}")
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
            # a local store leaves model_id empty; the source is the LoggedModel's own URI
            source = str(found.source or "")
            model_id = found.model_id or (source.removeprefix("models:/") or None)
        if not model_id:
            raise LookupError(f"{model_uri} names a version without a logged model")
        return str(mlflow_client.get_logged_model(model_id).artifact_location)
    except MlflowException as exc:
        raise LookupError(f"no model {model_uri} at {tracking_uri()}: {exc.message}") from None


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
