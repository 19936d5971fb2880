"""The sweep flow: a grid or random search, each trial a Prefect task and a nested MLflow run.

Run it with ``python -m flows.sweep_flow --grid model.hidden_size=8,16 train.learning_rate=1e-3,3e-3``
(random search: ``--random 8 --grid train.learning_rate=log:1e-4..1e-2 model.hidden_size=16,32``;
parallel trials in Dask worker processes: ``--dask --max-parallel 4``), plus any ``stockpred train``
option for the base config.

The parent MLflow run is created first; every trial is a task that trains one child run
(``mlflow.parentRunId`` = the parent). A failed trial is a FAILED child run and a row in the
table; the others go on. The flow ends Failed only if no trial finished.

Runners: ``threads`` (the default) runs one trial at a time in this process: Lightning's
``seed_everything`` seeds process-global RNGs (Python, NumPy, torch) and sets process-global
determinism flags, and matplotlib's pyplot state is global, so two trials in threads of one
process would break each other's reproducibility. ``dask`` runs trials in separate worker
processes (a LocalCluster of ``max_parallel`` processes, or the scheduler at ``dask_address`` /
``$STOCKPRED_DASK_ADDRESS``): parallel and still reproducible per seed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, Literal

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

if __name__ == "__main__":  # --help and bad options answer before Prefect loads (seconds)
    from flows.cli import parse_early

    parse_early("sweep_flow", sys.argv[1:])

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from flows.runners import dask_address, dask_runner
from stockpred.config import ConfigError, PipelineConfig, read_json_file
from stockpred.sweep import (
    SearchSpace,
    SweepError,
    SweepResult,
    Trial,
    TrialOutcome,
    failed_outcome,
    load_space,
    parse_values,
    run_sweep,
    run_trial,
    trials,
)
from stockpred.tasks import TASKS
from stockpred.text import printable

DEFAULT_SPACE = SearchSpace(
    params={"model.hidden_size": (32, 64), "train.learning_rate": (1e-3, 3e-3)}
)


@task(name="trial", task_run_name="trial-{trial.number}", cache_policy=NO_CACHE)
def trial_task(trial: Trial, parent_id: str) -> TrialOutcome:
    """Train one trial as a child MLflow run of the sweep (its stages run inside this task)."""
    return run_trial(trial, parent_id)


@flow(name="sweep-trials", validate_parameters=False)
def trials_flow(trial_list: list[Trial], parent_id: str) -> list[TrialOutcome]:
    """Submit every trial at once to this subflow's task runner; collect outcomes, failures too."""
    futures = [trial_task.submit(trial, parent_id) for trial in trial_list]
    outcomes = []
    for trial, future in zip(trial_list, futures, strict=True):
        try:
            outcomes.append(future.result())
        except Exception as exc:  # this trial failed; the child run is FAILED, the rest go on
            print(f"trial {trial.number} failed: {type(exc).__name__}: {exc}")
            outcomes.append(failed_outcome(trial, parent_id, exc))
    return outcomes


def task_runner_for(
    runner: str, max_parallel: int | None, n_trials: int, address: str | None = None
) -> Any:
    """The subflow's task runner; raises ``ConfigError`` for a combination that is not safe."""
    if runner == "threads":
        if max_parallel not in (None, 1):
            raise ConfigError(
                f"max_parallel={max_parallel} needs the dask runner (--dask): trials in threads "
                "of one process share the global RNGs that seed_everything sets, so they would "
                "not be reproducible"
            )
        return ThreadPoolTaskRunner(max_workers=1)
    if runner == "dask":
        if max_parallel is not None and max_parallel < 1:
            raise ConfigError(f"max_parallel must be >= 1 (got {max_parallel})")
        workers = max_parallel or min(n_trials, os.cpu_count() or 1)
        return dask_runner(address, n_workers=max(1, min(workers, n_trials)))
    raise ConfigError(f"runner must be 'threads' or 'dask' (got {runner!r})")


@flow(name="sweep", log_prints=True)
def sweep_flow(
    config: PipelineConfig = PipelineConfig(),  # noqa: B008
    space: SearchSpace = DEFAULT_SPACE,
    runner: Literal["threads", "dask"] = "threads",
    max_parallel: int | None = None,
    dask_address: str | None = None,
) -> dict[str, Any]:
    """Train one trial per point of ``space`` as child runs of one MLflow run; log the best."""
    space = load_space(space)
    trial_list = trials(config, space)  # every bad value is reported before anything runs
    tasks = task_runner_for(runner, max_parallel, len(trial_list), dask_address)
    print(f"{space.describe()}; runner {runner}")

    def execute(trial_list: Sequence[Trial], parent_id: str) -> list[TrialOutcome]:
        subflow = trials_flow.with_options(task_runner=tasks)
        return subflow(list(trial_list), parent_id)

    result = run_sweep(
        config,
        space,
        execute=execute,
        on_parent=lambda run_id: print(f"MLflow parent run {run_id}"),
    )
    create_markdown_artifact(
        markdown=sweep_markdown(result),
        key="sweep",
        description=f"sweep {printable(result.run_name)}: {len(result.outcomes)} trials",
    )
    best = result.best
    print(
        f"best: trial {best.number} {best.overrides} ({best.selection_metric} {best.score:.4f}, "
        f"run {best.run_id}); {len(result.failed)} of {len(result.outcomes)} trials failed"
    )
    return {
        "run_id": result.run_id,
        "run_name": result.run_name,
        "best_trial": result.best.number,
        "best_run_id": result.best.run_id,
        "best_overrides": result.best.overrides,
        "failed": [o.number for o in result.failed],
        "table": result.table.to_dict("records"),
        "summary": result.summary(),
    }


def sweep_markdown(result: SweepResult) -> str:
    """The Prefect artifact: the space, the best trial and the table, best first."""
    table = result.table.sort_values("rank")
    swept = [c for c in table.columns if "." in c]
    selection, test = result.best.selection_metric, f"test/{TASKS[result.task].relative_name}"
    head = ["rank", "trial", "status", *swept, selection, test, "run id"]
    lines = [
        f"# Sweep `{printable(result.run_name)}`",
        "",
        f"- MLflow parent run: `{result.run_id}`",
        f"- space: {result.space}",
        f"- best: trial {result.best.number}, chosen by {selection} on the validation "
        "period (test metrics are shown, never used to choose)",
        *([f"- registry: {result.registry}"] if result.registry else []),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in table.to_dict("records"):
        cells = [
            row["rank"],
            row["trial"],
            row["status"],
            *(row[c] for c in swept),
            row[selection],
            row[test],
            f"`{row['run_id']}`",
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    failed = [o for o in result.outcomes if o.error]
    if failed:
        lines += ["", "Failed trials:", *(f"- trial {o.number}: {o.error[:300]}" for o in failed)]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "-" if value != value else f"{value:.4g}"
    return "-" if value is None else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the search space, runner and ``stockpred train`` options; run the sweep flow."""
    from flows.cli import run_reporting, sweep_parser
    from stockpred.cli import config_from_args

    args = sweep_parser().parse_args(argv)

    def _run() -> None:
        config = config_from_args(args)
        space = _space_from_args(args)
        runner = "dask" if (args.dask or args.dask_address) else "threads"
        address = dask_address(args.dask_address) if runner == "dask" else None
        trial_list = trials(config, space)  # errors here, before Prefect or MLflow start
        task_runner_for(runner, args.max_parallel, len(trial_list), address)
        try:
            outcome = sweep_flow(config, space, runner, args.max_parallel, address)
        except SweepError as exc:
            raise ValueError(str(exc)) from None
        print(outcome["summary"])

    return run_reporting(_run)


def _space_from_args(args: Any) -> SearchSpace:
    """The search space from ``--space FILE`` or ``--grid ... [--random N]``."""
    if args.space:
        if args.grid or args.random:
            raise ConfigError("give either --space FILE or --grid/--random, not both")
        return load_space(read_json_file(args.space, "search space file"))
    if not args.grid:
        raise ConfigError("say what to vary: --grid model.hidden_size=8,16 ... (or --space FILE)")
    params = dict(parse_values(spec, random=args.random is not None) for spec in args.grid)
    if args.random is not None:
        return load_space(
            {
                "method": "random",
                "n_trials": args.random,
                "seed": args.random_seed,
                "params": params,
            }
        )
    return load_space({"params": params})


if __name__ == "__main__":
    sys.exit(main())
