"""The one place that talks to MLflow: where runs live, their lifecycle, writing into them, the
registry and its champion rule, and reading runs back. Nothing else in ``stockpred`` imports
``mlflow``.

- ``store``: tracking URI, client, experiments, a server that does not answer;
- ``runs``: a run created with its config, ended FINISHED / FAILED / KILLED, reopened to resume;
- ``writers``: params, metrics, tags, artifacts, figures, datasets, the model, Lightning's logger;
- ``registry``: model versions and the ``champion`` alias;
- ``readback``: configs, metrics, gate tables, artifacts and models of tracked runs.
"""

from stockpred.tracking.readback import (
    UnsafeModelError,
    dataset_digest,
    download_artifact,
    list_artifact_paths,
    load_dict,
    load_gate_stats,
    load_gate_units,
    load_metric_history,
    load_model,
    load_run_config,
    load_run_record,
    recorded_data,
    search_runs,
)
from stockpred.tracking.registry import (
    CHAMPION,
    NoChampionError,
    Promotion,
    champion_version,
    register_model,
)
from stockpred.tracking.runs import (
    OWNER_HOST_TAG,
    OWNER_PID_TAG,
    SWEEP_TRIAL,
    end_run,
    get_run,
    reopen_run,
    run_tags,
    tracked_run,
    unfinished_runs,
)
from stockpred.tracking.store import (
    TrackingUnavailableError,
    check_server,
    client,
    experiment_id,
    git_commit,
    is_local_store,
    store_dir,
    tracking_uri,
    ui_argv,
    ui_command,
)
from stockpred.tracking.writers import (
    RunLogger,
    lightning_logger,
    log_artifact,
    log_artifact_object,
    log_data_record,
    log_dataset,
    log_dict,
    log_figure,
    log_metrics,
    log_model,
    log_params,
    log_table,
    set_tags,
)

__all__ = [
    "CHAMPION",
    "OWNER_HOST_TAG",
    "OWNER_PID_TAG",
    "SWEEP_TRIAL",
    "NoChampionError",
    "Promotion",
    "RunLogger",
    "TrackingUnavailableError",
    "UnsafeModelError",
    "champion_version",
    "check_server",
    "client",
    "dataset_digest",
    "download_artifact",
    "end_run",
    "experiment_id",
    "get_run",
    "git_commit",
    "is_local_store",
    "lightning_logger",
    "list_artifact_paths",
    "load_dict",
    "load_gate_stats",
    "load_gate_units",
    "load_metric_history",
    "load_model",
    "load_run_config",
    "load_run_record",
    "log_artifact",
    "log_artifact_object",
    "log_data_record",
    "log_dataset",
    "log_dict",
    "log_figure",
    "log_metrics",
    "log_model",
    "log_params",
    "log_table",
    "recorded_data",
    "register_model",
    "reopen_run",
    "run_tags",
    "search_runs",
    "set_tags",
    "store_dir",
    "tracked_run",
    "tracking_uri",
    "ui_argv",
    "ui_command",
    "unfinished_runs",
]
