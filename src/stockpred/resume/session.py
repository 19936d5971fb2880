"""One tracked training run's lifecycle, with resume: ``open_run`` is the ``with`` block
``run_training`` trains inside.

A new run is created with its config; a resumed one is checked (not finished meanwhile, same
data) and reopened. Inside the block this process holds the run's owner lock and SIGTERM/Ctrl-C
raise; the block ends the run FINISHED, FAILED or KILLED (interruptions say how to resume), then
releases the lock and restores the signal handlers, and deletes the checkpoints of a finished
run. MLflow only through ``stockpred.tracking``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from stockpred import tracking
from stockpred.config import ConfigError, PipelineConfig
from stockpred.data.lineage import DataRecord
from stockpred.resume.checkpoints import checkpoint_epoch
from stockpred.resume.interrupted import resumable_run
from stockpred.resume.lock import discard, discard_if_empty, last_checkpoint, owner_lock
from stockpred.resume.signals import Terminated, signals_raise

log = logging.getLogger(__name__)

# settings that may differ between a run and its resume (they do not change what is trained:
# a resume checks that the data it loads is the data the run was trained on)
RESUME_MAY_CHANGE = frozenset({"train.progress_bar", "data.refresh"})


class DataChangedError(ValueError):
    """A resumed run would train on other data than it was started on."""


@dataclass(frozen=True)
class RunHandle:
    """The run being trained: its id, config and checkpoint folder."""

    run_id: str
    config: PipelineConfig
    checkpoints: Path
    resumed: bool


def resume_target(ref: str, config: PipelineConfig | None) -> tuple[str, PipelineConfig]:
    """The run ``ref`` names and the config it was started with (``RESUME_MAY_CHANGE`` from
    ``config``, which must otherwise equal it)."""
    experiment = (config or PipelineConfig()).tracking.experiment
    run_id = resumable_run(ref, experiment)
    saved = tracking.load_run_config(run_id)
    if config is not None:
        given, kept = config.flat(), saved.flat()
        differ = [k for k in kept if k not in RESUME_MAY_CHANGE and given.get(k) != kept[k]]
        if differ:
            shown = ", ".join(f"{k} (run: {kept[k]!r}, given: {given.get(k)!r})" for k in differ)
            raise ConfigError(
                f"a resumed run keeps the config it was started with; these settings differ: "
                f"{shown}. Resume without them, or start a new run"
            )
        saved = saved.with_overrides({k: given[k] for k in RESUME_MAY_CHANGE})
    return run_id, saved


@contextlib.contextmanager
def open_run(
    config: PipelineConfig,
    data: DataRecord,
    prices: pd.DataFrame,
    *,
    tags: Mapping[str, str] | None = None,
    resume_id: str | None = None,
) -> Iterator[RunHandle]:
    """Create (or, with ``resume_id``, check and reopen) the run and yield it; see the module.

    A resume whose ``data`` differ from what the run was trained on raises ``DataChangedError``
    before the run is touched.
    """
    locked = False  # this process holds the run's owner lock: its folder is ours to clean up
    run_id = resume_id
    # ``owned`` holds the owner lock and unwinds after ``stack``, which ends the MLflow run: the
    # run is never seen RUNNING without a live owner, and its folder is cleaned up under the lock
    with contextlib.ExitStack() as owned:
        owned.enter_context(signals_raise())
        try:
            with contextlib.ExitStack() as stack:
                if resume_id is None:
                    run_id = stack.enter_context(tracking.tracked_run(config, tags=tags))
                    checkpoints = owned.enter_context(owner_lock(run_id))
                    locked = True
                else:
                    checkpoints = owned.enter_context(owner_lock(resume_id))
                    locked = True
                    marks = _resume_tags(resume_id)  # under the lock: still what it was
                    _check_same_data(resume_id, config, data, prices)
                    stack.enter_context(tracking.reopen_run(resume_id, {**marks, **(tags or {})}))
                assert run_id is not None
                try:
                    yield RunHandle(run_id, config, checkpoints, resumed=resume_id is not None)
                except (SystemExit, KeyboardInterrupt) as exc:
                    if isinstance(exc, SystemExit) and not isinstance(
                        exc.__context__, KeyboardInterrupt
                    ):
                        raise
                    # a Ctrl-C while another SIGINT handler than ours was in charge (Lightning
                    # turns one it catches in ``fit`` into ``sys.exit(1)``)
                    raise interrupted(run_id, None) from None
                except Terminated as exc:
                    raise interrupted(run_id, exc) from None
                except BaseException as exc:
                    signum = orchestrator_signal(exc)
                    if signum is None:
                        raise
                    # a flow's SIGTERM, raised by Prefect's handler (in charge there, not ours)
                    stopped = Terminated(f"terminated by {signal.Signals(signum).name}", signum)
                    raise interrupted(run_id, stopped) from None
        except BaseException:
            # a new run's folder without checkpoints goes; a resumed run's stays as it was
            if locked and resume_id is None and run_id is not None:
                discard_if_empty(run_id)
            raise
        discard(run_id)  # finished: the model is logged, the checkpoints are not needed


def orchestrator_signal(exc: BaseException) -> int | None:
    """The signal number of an orchestrator's termination exception (Prefect's
    ``TerminationSignal``, known by its name and ``signal``: this layer imports no Prefect)."""
    signum = getattr(exc, "signal", None)
    if type(exc).__name__ == "TerminationSignal" and isinstance(signum, int):
        return signum
    return None


def interrupted(run_id: str | None, exc: BaseException | None) -> BaseException:
    """What a run stopped by a signal raises, saying how to resume it: ``Terminated`` for
    SIGTERM, ``KeyboardInterrupt`` for Ctrl-C (``exc`` None or a SIGINT ``Terminated``): what a
    notebook, a shell or a caller expects of Ctrl-C."""
    signum = getattr(exc, "signum", signal.SIGINT)
    what = exc or "interrupted by Ctrl-C (SIGINT)"
    hint = (
        f"{what}: MLflow run {run_id} is KILLED, its checkpoints kept; resume it with "
        f"`stockpred train --resume {run_id}`"
    )
    if signum == signal.SIGINT:
        return KeyboardInterrupt(hint)
    return Terminated(hint, signum)


def _resume_tags(run_id: str) -> dict[str, str]:
    """Checked with the owner lock held: the run was not finished meanwhile (by the process
    that held it when it was looked up); the tags that mark the resume."""
    run = tracking.get_run(run_id)
    if run.info.status == "FINISHED":
        discard(run_id)  # the folder that taking the lock made again
        raise ValueError(f"run {run_id} finished meanwhile: there is nothing to resume")
    if run.data.tags.get("run.kind") == tracking.SWEEP_TRIAL:
        log.warning(
            "stockpred: warning: run %s is a trial of sweep run %s; resumed on its own, its "
            "result will not be in the sweep's trials table or best-trial choice",
            run_id,
            run.data.tags.get("mlflow.parentRunId", "?"),
        )
    last = last_checkpoint(run_id)
    return {"resumed_from_epoch": str(checkpoint_epoch(last))} if last else {}


def _check_same_data(
    run_id: str, config: PipelineConfig, seen: DataRecord, prices: pd.DataFrame
) -> None:
    """Refuse to resume a run on data that differ from those it was trained on (new days,
    revised prices, another cache), naming what changed and what to do instead."""
    recorded = tracking.recorded_data(run_id, seen.name)
    now = {"rows": seen.rows, "range": seen.range}
    changed = [
        f"{key} {recorded[key]} -> {now[key]}"
        for key in ("rows", "range")
        if key in recorded and recorded[key] != now[key]
    ]
    if "digest" in recorded:
        values_differ = recorded["digest"] != seen.digest
    elif "dataset_digest" in recorded:  # a run from before the data.digest tag
        values_differ = recorded["dataset_digest"] != tracking.dataset_digest(prices.reset_index())
    else:  # stopped before its data were recorded: nothing was trained on them
        values_differ = False
    if not changed and not values_differ:
        return
    what = ", ".join(changed) if changed else "the same rows with other values"
    data = config.data
    refresh = (
        f"; or, if the price cache still holds the days it was trained on, resume on the cache "
        f"alone: `stockpred train --resume {run_id} --set data.refresh=false`"
        if data.source == "yfinance" and data.refresh
        else ""
    )
    raise DataChangedError(
        f"run {run_id} cannot be resumed: its data ({seen.name}) changed since it was trained "
        f"({what}), so its checkpoint was fitted on other data; nothing was changed in the "
        f"run. Start a new run with the same settings instead{refresh}"
    )
