"""Every figure of the project, one habit (``common``): data, evaluation, gates, runs.

The notebooks call these; the pipeline logs them. Each returns a ``matplotlib.figure.Figure``.
"""

from stockpred.figures.comparison import (
    loss_curves_figure,
    run_comparison_figure,
    sweep_figure,
    sweep_trials_figure,
)
from stockpred.figures.data import (
    correlation_figure,
    feature_histograms_figure,
    feature_unit,
    prices_figure,
    split_timeline_figure,
)
from stockpred.figures.evaluation import comparison_figure, fold_figure, predicted_vs_actual_figure
from stockpred.figures.gate_plots import (
    ablation_figure,
    gate_artifacts,
    heatmap_figure,
    histogram_figure,
    saturation_figure,
    timescale_figure,
    timescale_spectrum_figure,
    trajectory_figure,
)

__all__ = [
    "ablation_figure",
    "comparison_figure",
    "correlation_figure",
    "feature_histograms_figure",
    "feature_unit",
    "fold_figure",
    "gate_artifacts",
    "heatmap_figure",
    "histogram_figure",
    "loss_curves_figure",
    "predicted_vs_actual_figure",
    "prices_figure",
    "run_comparison_figure",
    "saturation_figure",
    "split_timeline_figure",
    "sweep_figure",
    "sweep_trials_figure",
    "timescale_figure",
    "timescale_spectrum_figure",
    "trajectory_figure",
]
