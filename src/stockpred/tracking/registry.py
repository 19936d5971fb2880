"""The model registry: versions of a registered model, and the champion rule.

Aliases, not the deprecated stages: the ``champion`` alias marks the version the daily forecast
uses. A new version takes it only if it beats the champion on the task's selection metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlflow.exceptions import MlflowException

from stockpred.tracking.store import client, tracking_uri
from stockpred.tracking.writers import set_tags

CHAMPION = "champion"


@dataclass(frozen=True)
class Promotion:
    """What registering a run's model did: its version, and whether it became the champion."""

    name: str
    version: str
    promoted: bool
    reason: str


def register_model(run_id: str, model_uri: str, name: str, metric: str) -> Promotion:
    """Register the run's model as a new version of ``name``; move the ``champion`` alias to it
    only if it beats the current champion on ``metric`` (the task's selection metric; lower is
    better).

    The decision and its reason are tagged on the version and the run. Aliases, not stages.
    """
    mlflow_client = client()
    challenger = mlflow_client.get_run(run_id).data.metrics.get(metric)
    if challenger is None:
        raise ValueError(f"run {run_id} has no {metric} metric to compare champions by")
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
        promoted, reason = True, f"first version: champion with {metric} {challenger:.6f}"
    else:
        held = mlflow_client.get_run(str(champion.run_id)).data.metrics.get(metric, math.inf)
        promoted = challenger < held
        verb = "beats" if promoted else "does not beat"
        reason = f"{metric} {challenger:.6f} {verb} champion v{champion.version}'s {held:.6f}"
    if promoted:
        mlflow_client.set_registered_model_alias(name, CHAMPION, version)
    decision = "promoted" if promoted else "not promoted"
    mlflow_client.set_model_version_tag(name, version, "promotion", f"{decision}: {reason}")
    set_tags(
        run_id,
        {
            "registry.model": name,
            "registry.version": str(version),
            "registry.promotion": f"{decision}: {reason}",
        },
    )
    return Promotion(name, str(version), promoted, reason)


class NoChampionError(LookupError):
    """No model version carries the ``champion`` alias yet."""


def champion_version(name: str) -> tuple[str, str]:
    """(version, run id) of the version of ``name`` aliased ``champion``; ``NoChampionError``
    saying what to do when there is none."""
    try:
        version = client().get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        raise NoChampionError(
            f"no '{CHAMPION}' version of model {name!r} in {tracking_uri()}: "
            "train one first (`make run`), or check the model name"
        ) from exc
    return str(version.version), str(version.run_id)
