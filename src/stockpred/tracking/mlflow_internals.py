"""The one module that uses MLflow's private API, each use explained; a test
(``tests/tracking/test_mlflow_internals.py``) breaks when MLflow changes one of them.

- ``mlflow.utils.name_utils._generate_random_name``: MLflow's adjective-noun-number run names,
  which the client API (``create_run``) does not draw by itself.
- ``Dataset._to_mlflow_entity``: the entity ``MlflowClient.log_inputs`` takes; the fluent
  ``mlflow.log_input`` would need an active run, and every function here takes a run id instead.
"""

from __future__ import annotations

from mlflow.data.dataset import Dataset
from mlflow.entities import Dataset as DatasetEntity
from mlflow.utils.name_utils import _generate_random_name


def generate_run_name() -> str:
    """A fresh adjective-noun-number run name, as the MLflow UI would give."""
    return _generate_random_name()


def dataset_entity(dataset: Dataset) -> DatasetEntity:
    """The tracking entity of an MLflow dataset, for ``MlflowClient.log_inputs``."""
    return dataset._to_mlflow_entity()
