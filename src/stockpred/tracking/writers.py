"""Writing into a run: params, metrics, tags, artifacts, figures, tables, datasets, the model,
and the Lightning logger that streams epoch metrics into an existing run."""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mlflow.pyfunc
import pandas as pd
import torch
from matplotlib.figure import Figure
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import DatasetInput, InputTag, Metric, Param
from mlflow.models import Model
from mlflow.models.model import ModelInfo
from mlflow.types import ColSpec, Schema
from pytorch_lightning.loggers import MLFlowLogger
from torch import nn

from stockpred.data.lineage import DataRecord
from stockpred.tracking.mlflow_internals import dataset_entity
from stockpred.tracking.store import client, retrying, tracking_uri


def log_params(run_id: str, params: Mapping[str, Any]) -> None:
    """Log parameters (``None`` shown as an empty string)."""
    items = [Param(k, "" if v is None else str(v)) for k, v in params.items()]
    client().log_batch(run_id, params=items)


def log_metrics(run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log a batch of metrics at ``step``."""
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
    """Log a matplotlib figure as an image artifact (closed if pyplot holds it)."""
    client().log_figure(run_id, figure, artifact_file)
    plt.close(figure)  # a no-op for our figures (pyplot never holds them); frees a notebook's


TABLE_DIGITS = 4  # significant digits of a float in a table artifact: read, not recomputed from


def log_table(run_id: str, table: pd.DataFrame, artifact_file: str) -> None:
    """Log a DataFrame as a table artifact (rendered by the MLflow UI), floats rounded to
    ``TABLE_DIGITS`` significant digits (full precision is in the run's metrics)."""
    client().log_table(run_id, rounded(table), artifact_file)


def rounded(table: pd.DataFrame, digits: int = TABLE_DIGITS) -> pd.DataFrame:
    """``table`` with every float rounded to ``digits`` significant digits (variances of 1e-4
    keep their digits, unlike a fixed number of decimals)."""
    out = table.copy()
    for column in out.columns[[kind == "f" for kind in out.dtypes.map(lambda d: d.kind)]]:
        out[column] = [float(f"{v:.{digits}g}") if v == v else v for v in out[column]]
    return out


def log_dataset(
    run_id: str,
    *,
    name: str,
    digest: str,
    rows: int,
    columns: list[str],
    source: str,
    context: str = "training",
) -> None:
    """Record dataset lineage as a run input: a short name, a digest of every value, the
    columns and the source. Built from those, not from the frame, so it costs the same at
    500 tickers as at 2 (profiling a 1,000,000-row frame took ~8 s)."""
    with warnings.catch_warnings():
        # "source can be interpreted in multiple ways"
        warnings.simplefilter("ignore", UserWarning)
        resolved = resolve_dataset_source(source)
    schema = Schema([ColSpec("string", column) for column in columns])
    # abstract only in its type hints: MetaDataset has no profile, by design (no data held)
    dataset = MetaDataset(resolved, name=name, digest=digest, schema=schema)  # type: ignore[abstract]
    tags = [InputTag("mlflow.data.context", context), InputTag("stockpred.rows", str(rows))]
    client().log_inputs(run_id, datasets=[DatasetInput(dataset_entity(dataset), tags=tags)])


def log_data_record(run_id: str, record: DataRecord, prices: pd.DataFrame, source: str) -> None:
    """The run's dataset input and its ``data.*`` tags (rows, range, digest) for ``prices``."""
    log_dataset(
        run_id,
        name=record.name,
        digest=record.digest,
        rows=len(prices),
        columns=[*prices.index.names, *prices.columns],
        source=source,
    )
    set_tags(run_id, record.tags())


WEIGHTS_FILE = "state_dict.pt"  # the weights alone: loads with torch.load(weights_only=True)
ARCHITECTURE_FILE = "architecture.json"  # what rebuilds the module around them
WEIGHTS_FOLDER = "artifacts"  # where a pyfunc keeps its artifacts, in the LoggedModel's folder
SERVED_MODEL = Path(__file__).with_name("served_model.py")  # the pyfunc's code (no pickle)


def log_model(run_id: str, model: nn.Module, input_example: Any, name: str = "model") -> str:
    """Log a forecaster with its signature and input example; returns its model URI.

    What is stored is the weights (``state_dict.pt``) and the constructor's arguments
    (``architecture.json``): ``load_model`` reads only those. MLflow's own copy (for
    ``mlflow.pyfunc.load_model`` and ``mlflow models serve``) is "models from code": the pyfunc's
    model is ``served_model.py``, which rebuilds the forecaster from the same two files. Nothing
    is pickled, so a model version on a shared store runs no stored pickle when loaded.
    """
    architecture = getattr(model, "architecture", None)
    if not callable(architecture):
        raise TypeError(
            f"{type(model).__name__} has no architecture(): stockpred logs a model as its "
            "weights and constructor arguments, never as a pickle"
        )
    # The LoggedModel goes to the active experiment (else "Default", under ./mlruns): the run's.
    mlflow.set_experiment(experiment_id=client().get_run(run_id).info.experiment_id)
    with tempfile.TemporaryDirectory(prefix="stockpred-model-") as folder:
        weights, shape = Path(folder) / WEIGHTS_FILE, Path(folder) / ARCHITECTURE_FILE
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, weights)
        shape.write_text(json.dumps(architecture()))
        info = _log_pyfunc(run_id, name, weights, shape, input_example)
    return str(info.model_uri)


def _log_pyfunc(
    run_id: str, name: str, weights: Path, shape: Path, input_example: Any
) -> ModelInfo:
    """The pyfunc from code: ``Model.log`` is what ``mlflow.pyfunc.log_model`` calls, and it
    also takes the run to log into."""
    return Model.log(
        None,
        flavor=mlflow.pyfunc,
        name=name,
        run_id=run_id,
        python_model=str(SERVED_MODEL),
        artifacts={"weights": str(weights), "architecture": str(shape)},
        input_example=input_example,
        # Pinned rather than inferred: inference imports the model in a subprocess (slow).
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
    )


def lightning_logger(run_id: str) -> RunLogger:
    """A Lightning logger that writes epoch metrics into an existing run without ending it."""
    return RunLogger(tracking_uri=tracking_uri(), run_id=run_id)


class RunLogger(MLFlowLogger):
    """Lightning's MLflow logger bound to a run this project owns; it pickles into ``ddp_spawn``
    worker processes (a module-level class)."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        # Epoch-level metrics carry "epoch": use it as the step, so UI charts are per epoch.
        if "epoch" in metrics:
            step = int(metrics["epoch"])
            metrics = {k: v for k, v in metrics.items() if k != "epoch"}
        # a busy or briefly unreachable store is waited for (bounded), not a failed training
        retrying(super().log_metrics, metrics, step)

    # The run belongs to ``tracked_run``: Lightning must not mark it finished after ``fit``.
    def finalize(self, status: str = "success") -> None:
        return None


def log_artifact(run_id: str, path: Path, artifact_path: str | None = None) -> None:
    """Log a local file as an artifact of the run."""
    client().log_artifact(run_id, str(path), artifact_path)


def log_artifact_object(run_id: str, item: Figure | pd.DataFrame, artifact_file: str) -> None:
    """Log a matplotlib figure as an image, or a DataFrame as a Parquet file, at ``artifact_file``."""
    if not isinstance(item, pd.DataFrame):
        log_figure(run_id, item, artifact_file)
        return
    path = Path(artifact_file)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / path.name
        item.to_parquet(local, index=False)
        log_artifact(run_id, local, str(path.parent) if path.parent.parts else None)
