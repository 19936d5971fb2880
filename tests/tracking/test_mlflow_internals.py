"""The private MLflow names ``stockpred.tracking.mlflow_internals`` relies on."""

import re

from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import Dataset as DatasetEntity

from stockpred.tracking.mlflow_internals import dataset_entity, generate_run_name


def test_run_names_are_mlflows_adjective_noun_number() -> None:
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d+", generate_run_name())


def test_a_dataset_becomes_the_entity_log_inputs_takes() -> None:
    source = resolve_dataset_source("sample")
    entity = dataset_entity(MetaDataset(source, name="prices", digest="abc123"))  # type: ignore[abstract]
    assert isinstance(entity, DatasetEntity)
    assert (entity.name, entity.digest) == ("prices", "abc123")
