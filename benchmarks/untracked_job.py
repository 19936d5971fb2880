"""The default main job's own work, with no Prefect and no MLflow: the baseline arm of the
orchestration benchmark (``benchmarks.suite --only orchestration``).

The same ``stockpred`` calls as the training flow's stages — load, features, split and scale,
Lightning training with the gate monitor, gate figures, test predictions of the LSTM and the
baselines, scores and comparison figures — but nothing is logged, registered or rendered into a
report. Lightning's epoch metrics go to a CSV file in a temp folder (the gate monitor needs a logger).

    .venv/bin/python -m benchmarks.untracked_job
"""

from __future__ import annotations

import io
import tempfile
import time


def main() -> None:
    started = time.perf_counter()
    import matplotlib.pyplot as plt
    from pytorch_lightning.loggers import CSVLogger

    from stockpred.config import PipelineConfig
    from stockpred.data import load_prices
    from stockpred.evaluate import comparison_figure, comparison_table, predicted_vs_actual_figure
    from stockpred.features import make_features, make_target
    from stockpred.gate_plots import gate_artifacts
    from stockpred.gates import GateMonitor, diagnostic_indices
    from stockpred.pipeline import score_predictions, test_predictions, validation_metrics
    from stockpred.prepare import prepare
    from stockpred.split import TRAIN, VAL
    from stockpred.train import fit_forecaster

    config = PipelineConfig().with_overrides({"train.progress_bar": False})
    data, window = config.data, config.model.window
    prices = load_prices(data.tickers, data.start, data.end, source=data.source)
    prepared = prepare(make_features(prices, config.features),
                       make_target(prices, config.features.horizon), config)  # fmt: skip
    train, val = prepared.dataset(TRAIN, window), prepared.dataset(VAL, window)
    diagnostic = diagnostic_indices(len(val), config.gates.batch_size)
    monitor = GateMonitor(val.__getitems__(diagnostic)[0],
                          artifact_epochs=config.gates.artifact_epochs)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="stockpred-untracked-") as logs:
        fit = fit_forecaster(train, val, config.model, config.train,
                             logger=CSVLogger(logs), callbacks=[monitor])  # fmt: skip
    row = int(val.ends[diagnostic[monitor.sample_index]])
    for _, item in gate_artifacts(monitor, prepared.price_path(row, window)):
        if hasattr(item, "savefig"):
            item.savefig(io.BytesIO(), format="png")  # rendered as logging would, then dropped
            plt.close(item)
    predictions, _ = test_predictions(prepared, fit.model, config)
    scores, metrics = score_predictions(predictions, config)
    metrics.update(validation_metrics(prepared, fit.model, config))
    table = comparison_table(scores)
    horizon, cost = config.features.horizon, config.evaluation.cost_bps
    for figure in (predicted_vs_actual_figure(predictions, horizon),
                   comparison_figure(predictions, table, horizon, cost)):  # fmt: skip
        figure.savefig(io.BytesIO(), format="png")
        plt.close(figure)
    print(f"untracked job: test/rmse {metrics['test/rmse']:.6f}, "
          f"{time.perf_counter() - started:.1f} s after imports began")  # fmt: skip


if __name__ == "__main__":
    main()
