"""The training flow: ``run_training`` with each stage as a Prefect task.

Run it with ``python -m flows.train_flow [options]`` (the options of ``stockpred train``);
``make run`` does this on the embedded sample.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

if __name__ == "__main__":  # --help and bad options answer before Prefect loads (seconds)
    from flows.cli import parse_early

    parse_early("train_flow", sys.argv[1:])

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import deployment, flow_run

from flows.warm import warm_start
from stockpred import tracking
from stockpred.config import PipelineConfig, load_config, override_fields
from stockpred.pipeline import TrainingResult, load_data, run_training
from stockpred.resume.interrupted import resumable_run
from stockpred.text import printable


def _transient(_task: Any, _run: Any, state: Any) -> bool:
    # Bad input (unknown ticker, bad range) will not fix itself; network hiccups might.
    return not isinstance(state.data, ValueError)


def as_task(stage: Callable[..., Any]) -> Callable[..., Any]:
    """One pipeline stage as a Prefect task (data loading retries on transient errors)."""
    retries = {"retries": 2, "retry_delay_seconds": [5, 30], "retry_condition_fn": _transient}
    return task(
        stage,
        name=stage.__name__.replace("_", "-"),
        cache_policy=NO_CACHE,  # stages pass in-memory objects; nothing to persist or cache
        **(retries if stage is load_data else {}),
    )


@flow(name="train", log_prints=True)
def train_flow(
    config: PipelineConfig = PipelineConfig(),  # noqa: B008
    resume: str | None = None,
    resume_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train and evaluate the LSTM on the configured data; the run is tracked in MLflow.

    ``resume``: an interrupted run's id (or ``last``) to continue from its last checkpoint, in
    the same MLflow run and with the config it was started with: ``config`` is then not used,
    and ``resume_overrides`` may change what a resume may (``train.progress_bar``,
    ``data.refresh``).
    """
    tags = source_tags()
    if resume is None:
        config = deployment_config(config)
        result = run_training(config, runner=as_task, tags=tags)
    else:
        print(f"resuming MLflow run {resume!r} with its own config; the config parameter is unused")
        kept = None
        if resume_overrides:
            run_id = resumable_run(resume, config.tracking.experiment)
            kept = tracking.load_run_config(run_id).with_overrides(resume_overrides)
        result = run_training(kept, runner=as_task, resume=resume, tags=tags)
    create_markdown_artifact(
        markdown=run_markdown(result),
        key="training-run",
        description=f"MLflow run {result.run_id}",
    )
    return result.as_dict()


def deployment_config(config: PipelineConfig) -> PipelineConfig:
    """In a deployment's run, the run's ``config`` overrides the deployment's field by field.

    Prefect replaces a parameter whole, so a partial ``config`` passed to a run (``prefect
    deployment run --param config='{"train": {...}}'``) would otherwise drop every setting of the
    deployment's own config, such as the weekly retrain's registration. Outside a deployment
    (a flow called directly) the config is used as given.
    """
    if not deployment.id:
        return config
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        base = client.read_deployment(deployment.id).parameters.get("config")
        given = client.read_flow_run(flow_run.id).parameters.get("config")
    if not isinstance(base, dict) or not isinstance(given, dict):
        return config
    return load_config(override_fields(base, given))


def source_tags() -> dict[str, str]:
    """MLflow's source tags for a run of this flow: a scheduled or triggered deployment's run is
    a ``JOB``, a flow called from a shell or notebook ``LOCAL``."""
    name = deployment.name
    return {
        "mlflow.source.name": f"prefect flow train/{name}" if name else "prefect flow train",
        "mlflow.source.type": "JOB" if deployment.id else "LOCAL",
    }


def run_markdown(result: TrainingResult) -> str:
    """The Prefect artifact: the verdict against the strongest baseline, the registry's
    decision and the test metrics beside the baselines, then where the run is."""
    return "\n".join(
        [
            f"# Training run `{printable(result.run_name)}`",
            "",
            result.markdown(),
            "",
            *([f"- MLflow run: [{result.run_id}]({result.run_url})"] if result.run_url else []),
            f"- run URI: `runs:/{result.run_id}` (experiment `{result.experiment}`)",
            f"- tracking: `{result.tracking_uri}`",
            f"- model: `{result.model_uri}`",
            *([f"- report: {result.report}"] if result.report else []),
            "",
            f"Open the MLflow UI: `{result.ui_command}`",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the ``stockpred train`` options, run the flow, print the run summary."""
    from flows.cli import run_reporting, train_parser
    from stockpred.cli import config_from_args, resume_overrides, resume_run_id

    args = train_parser().parse_args(argv)

    def _run() -> None:
        # a bad option or a tracking server that is down fails here, before anything starts
        tracking.check_server()
        if args.resume:
            resume = resume_run_id(args, may_set=True)
            config = PipelineConfig()  # unused: the run keeps its own
            overrides = {
                **resume_overrides(args),
                **({"train.progress_bar": False} if args.no_progress else {}),
            }
        else:
            resume, config, overrides = None, config_from_args(args), {}
        warm_start()
        outcome = train_flow(config, resume=resume, resume_overrides=overrides or None)
        result = TrainingResult(**outcome)
        print(result.summary())
        if result.report:  # tracking.report: attached, or where the background render puts it
            print(f"report       {result.report}")

    return run_reporting(_run)


if __name__ == "__main__":
    sys.exit(main())
