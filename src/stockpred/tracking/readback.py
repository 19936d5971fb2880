"""Reading runs back: configs, metrics and their history, gate tables, artifacts, models."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import mlflow.artifacts
import mlflow.pytorch
import pandas as pd
from mlflow.data.digest_utils import compute_pandas_digest
from torch import nn

from stockpred.config import PipelineConfig, load_config
from stockpred.tracking.store import client, tracking_uri


def load_dict(run_id: str, artifact_file: str) -> dict[str, Any]:
    """A JSON artifact of a run (e.g. ``config.json``, ``preprocessing.json``)."""
    return json.loads(download_artifact(run_id, artifact_file).read_text())


def load_gate_stats(run_id: str) -> pd.DataFrame:
    """Per-epoch gate statistics of a run: columns epoch, layer, gate, stat, value."""
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


def load_model(model_uri: str) -> nn.Module:
    """A logged PyTorch model (``models:/...`` or ``runs:/...``), on the CPU in eval mode."""
    client()  # sets the tracking URI that resolves ``models:/`` URIs
    logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
    model = mlflow.pytorch.load_model(model_uri, map_location="cpu")
    return model.eval()


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
