"""The model registry: versions of a registered model, and the one champion rule.

Aliases, not the deprecated stages: the ``champion`` alias marks the version the daily forecast
uses. The rule, used by the registry, the sweep and the runs notebook alike:

- like with like: a challenger is compared with the champion only when both forecast the same
  task for the same tickers from the same data source at the same horizon (``comparable``); a
  version that is not comparable is registered but never promoted;
- on the same window: the champion is re-scored on the challenger's own validation period
  (``rescore``, provided by the pipeline, which owns the computation), not judged on the number
  it computed on its own period years ago;
- by the task's selection metric only (lower is better unless the task says otherwise).

The decision and its evidence are tagged on the run (``registry.promotion``,
``registry.evidence``) and on the version (``promotion``, ``evidence``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlflow.exceptions import MlflowException

from stockpred.config import PipelineConfig
from stockpred.tracking.readback import load_run_config
from stockpred.tracking.store import client, registry_lock, tracking_uri
from stockpred.tracking.writers import set_tags

CHAMPION = "champion"
PROMOTION_TAG = "registry.promotion"
EVIDENCE_TAG = "registry.evidence"
# Runs logged before the config had a target section all forecast returns: a fact about old
# runs, not a default (the default task is ``TargetConfig``'s).
LEGACY_TASK = "return"

# (champion model URI, champion run id) -> the champion's selection metric on the challenger's
# validation windows
Rescore = Callable[[str, str], float]


@dataclass(frozen=True)
class Promotion:
    """What registering a run's model did: its version, and whether it became the champion."""

    name: str
    version: str
    promoted: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def decision(self) -> str:
        """``promoted: <reason>`` or ``not promoted: <reason>``."""
        return f"{'promoted' if self.promoted else 'not promoted'}: {self.reason}"


MODEL_DESCRIPTION = (
    "stockpred's LSTM forecasters, one version per registered training run (`stockpred train "
    "--register`, the weekly retrain). The `champion` alias marks the version that `stockpred "
    "predict` and the daily flow forecast with; a new version takes it only if the champion is "
    "comparable (same task, tickers, source, horizon) and the new one beats it on the task's "
    "selection metric, the champion re-scored on the new version's validation period. Each "
    "version's description and its `promotion` and `evidence` tags say what happened."
)


def version_description(promotion: Promotion, run_name: str) -> str:
    """A model version's description: what it forecasts, its score, and the registry's decision."""
    ev = promotion.evidence
    window = f" (validation {ev['window']})" if ev.get("window") else ""
    return (
        f"{ev.get('task', LEGACY_TASK)} task on {ev.get('tickers', '?')} ({ev.get('source', '?')}"
        f", horizon {ev.get('horizon', '?')}), from run {run_name}: {ev['metric']} "
        f"{ev['challenger']:.6g}{window}. {promotion.decision[0].upper()}"
        f"{promotion.decision[1:]}."
    )


def task_kind(config: PipelineConfig) -> str:
    """The task a config trains (``config.target.kind``; a config without one: ``LEGACY_TASK``)."""
    target = getattr(config, "target", None)
    return str(getattr(target, "kind", None) or LEGACY_TASK)


def identity(config: PipelineConfig) -> dict[str, str]:
    """What two runs must share to be compared: task, tickers, data source, horizon."""
    return {
        "task": task_kind(config),
        "tickers": ",".join(sorted(config.data.tickers)),
        "source": config.data.source,
        "horizon": str(config.features.horizon),
    }


def comparable(reference: PipelineConfig, candidate: PipelineConfig) -> str | None:
    """None when ``candidate`` may be compared with ``reference``; otherwise why not, as
    ``"trained on <what reference was>; this run on <what candidate is>"``."""
    ours, theirs = identity(reference), identity(candidate)
    differ = [key for key in ours if ours[key] != theirs[key]]
    if not differ:
        return None
    if differ == ["tickers"]:
        return f"trained on {ours['tickers']}; this run on {theirs['tickers']}"
    was = ", ".join(f"{key} {ours[key]}" for key in differ)
    now = ", ".join(f"{key} {theirs[key]}" for key in differ)
    return f"trained on {was}; this run on {now}"


def decide(
    metric: str,
    challenger: float,
    champion: float,
    champion_label: str,
    lower_is_better: bool = True,
    window: str = "",
) -> tuple[bool, str]:
    """Whether ``challenger`` beats ``champion`` on ``metric`` (both scored on the same window),
    and the sentence that says so."""
    promoted = challenger < champion if lower_is_better else challenger > champion
    if not math.isfinite(challenger):
        promoted = False
    verb = "beats" if promoted else "does not beat"
    where = f" on this run's validation period {window}" if window else ""
    return promoted, f"{metric} {challenger:.6f} {verb} {champion_label}'s {champion:.6f}{where}"


def register_model(
    run_id: str,
    model_uri: str,
    name: str,
    metric: str,
    *,
    challenger_config: PipelineConfig,
    rescore: Rescore,
    lower_is_better: bool = True,
) -> Promotion:
    """Register the run's model as a new version of ``name``; move the ``champion`` alias to it
    only if the champion is comparable (``comparable``) and the new model beats it on ``metric``
    (the task's selection metric), the champion re-scored by ``rescore`` on this run's validation
    windows.

    The decision and its evidence are tagged on the version and the run. Aliases, not stages.
    """
    mlflow_client = client()
    run = mlflow_client.get_run(run_id)
    challenger = run.data.metrics.get(metric)
    if challenger is None:
        raise ValueError(f"run {run_id} has no {metric} metric to compare champions by")
    params = run.data.params
    window = (
        f"{params['split.val_start']}..{params['split.val_end']}"
        if "split.val_start" in params and "split.val_end" in params
        else ""
    )
    # one registration at a time: the version number, the champion read, the comparison and
    # the alias move happen under one lock, so two runs finishing together are judged in turn
    with registry_lock(name):
        return _register_locked(
            mlflow_client,
            run_id,
            model_uri,
            name,
            metric,
            challenger,
            window,
            run_name=run.info.run_name or run_id,
            challenger_config=challenger_config,
            rescore=rescore,
            lower_is_better=lower_is_better,
        )


def _register_locked(
    mlflow_client: Any,
    run_id: str,
    model_uri: str,
    name: str,
    metric: str,
    challenger: float,
    window: str,
    *,
    run_name: str,
    challenger_config: PipelineConfig,
    rescore: Rescore,
    lower_is_better: bool,
) -> Promotion:
    """Create the version and apply the champion rule; the caller holds ``registry_lock``."""
    try:
        mlflow_client.create_registered_model(name, description=MODEL_DESCRIPTION)
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
        if not mlflow_client.get_registered_model(name).description:  # never overwrite a user's
            mlflow_client.update_registered_model(name, description=MODEL_DESCRIPTION)
    try:
        champion = mlflow_client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        champion = None
    # A tracking server checks that a logged model's source names its model id
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    version = str(
        mlflow_client.create_model_version(
            name, model_uri, run_id=run_id, model_id=model_id
        ).version
    )
    evidence: dict[str, Any] = {
        "metric": metric,
        "challenger": challenger,
        "window": window,
        **identity(challenger_config),
    }
    if champion is None:
        promoted, reason = True, f"first version: champion with {metric} {challenger:.6f}"
    else:
        label = f"champion v{champion.version}"
        champion_run = str(champion.run_id)
        evidence.update({"champion_version": str(champion.version), "champion_run": champion_run})
        try:
            why = comparable(load_run_config(champion_run), challenger_config)
        except (LookupError, ValueError, MlflowException) as exc:
            # a champion whose run was deleted cannot be compared; the new version is kept
            why = f"unreadable ({' '.join(str(exc).split())[:200]})"
        if why is not None:
            promoted, reason = False, f"{label} was {why}: not comparable"
        else:
            own = mlflow_client.get_run(champion_run).data.metrics.get(metric, math.nan)
            evidence["champion_own_period"] = own
            try:
                held = float(rescore(f"models:/{name}/{champion.version}", champion_run))
            except (ValueError, KeyError, LookupError, MlflowException) as exc:
                promoted = False
                reason = f"{label} could not be re-scored on this run's validation windows: {exc}"
            else:
                evidence["champion_rescored"] = held
                promoted, reason = decide(metric, challenger, held, label, lower_is_better, window)
    if promoted:
        mlflow_client.set_registered_model_alias(name, CHAMPION, version)
    evidence["promoted"] = promoted
    promotion = Promotion(name, version, promoted, reason, evidence)
    text = json.dumps(evidence, sort_keys=True, default=str)
    mlflow_client.update_model_version(
        name, version, description=version_description(promotion, run_name)
    )
    mlflow_client.set_model_version_tag(name, version, "promotion", promotion.decision)
    mlflow_client.set_model_version_tag(name, version, "evidence", text)
    set_tags(
        run_id,
        {
            "registry.model": name,
            "registry.version": version,
            PROMOTION_TAG: promotion.decision,
            EVIDENCE_TAG: text,
        },
    )
    return promotion


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
            "train and register one first (`stockpred train --register`; `make run` alone does "
            "not register), or check the model name"
        ) from exc
    return str(version.version), str(version.run_id)
