"""The default main job's own work, with no Prefect and no MLflow: the baseline arm of the
orchestration benchmark (``benchmarks.suite --only orchestration``).

The untracked core run (``stockpred.experiment``) with the same stages as the training flow —
load, features, split and scale, Lightning training with the gate monitor, gate figures, test
predictions of the LSTM and the baselines, scores and the task's figures — but nothing is logged,
registered or rendered into a report. Lightning's epoch metrics go to a CSV file in a temp folder
(the gate monitor needs a logger).

    .venv/bin/python -m benchmarks.untracked_job
"""

from __future__ import annotations

import io
import tempfile
import time


def main() -> None:
    started = time.perf_counter()
    from pytorch_lightning.loggers import CSVLogger

    from stockpred import experiment
    from stockpred.config import PipelineConfig
    from stockpred.figures.gate_plots import gate_artifacts
    from stockpred.tasks import task_for

    # the return task, as the suite's tracked and flow jobs (--target return) and the published
    # figures
    config = PipelineConfig().with_overrides({"train.progress_bar": False, "target.kind": "return"})
    prepared = experiment.build(experiment.load_prices(config.data), config)
    diagnostics = experiment.gate_diagnostics(prepared, config.gates)
    assert diagnostics is not None
    with tempfile.TemporaryDirectory(prefix="stockpred-untracked-") as logs:
        fitted = experiment.fit(
            prepared, config, logger=CSVLogger(logs), callbacks=[diagnostics.monitor]
        )
    path, label = diagnostics.window(prepared)
    for _, item in gate_artifacts(diagnostics.monitor, path, label):
        if hasattr(item, "savefig"):
            item.savefig(io.BytesIO(), format="png")  # rendered as logging would, then dropped
    evaluation = experiment.evaluate(
        prepared,
        fitted.model,
        config,
        val_predictions=experiment.kept_val_predictions(prepared, fitted),
    )
    task = task_for(config)
    for figure in task.figures(evaluation.predictions, evaluation.scores, config).values():
        figure.savefig(io.BytesIO(), format="png")
    print(
        f"untracked job: test/rmse {evaluation.metrics['test/rmse']:.6f}, "
        f"{time.perf_counter() - started:.1f} s after imports began"
    )


if __name__ == "__main__":
    main()
