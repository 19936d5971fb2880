import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from stockpred import figures
from stockpred.split import chronological_split


@pytest.fixture
def prices() -> pd.DataFrame:
    dates = pd.bdate_range("2020-01-01", periods=200)
    close = {"AAA": 50 * np.exp(np.linspace(0, 0.2, 200)), "BBB": np.linspace(10, 5, 200)}
    frames = [
        pd.DataFrame({"close": values}, index=pd.MultiIndex.from_product([dates, [ticker]]))
        for ticker, values in close.items()
    ]
    return pd.concat(frames).rename_axis(["date", "ticker"]).sort_index()


def test_prices_are_rebased_to_100_per_ticker_with_returns_below(prices) -> None:
    fig = figures.prices_figure(prices)
    top, bottom = fig.axes
    assert isinstance(fig, Figure)
    assert [line.get_label() for line in top.lines] == ["AAA", "BBB"]
    assert [line.get_ydata()[0] for line in top.lines] == [100, 100]
    assert top.lines[1].get_ydata()[-1] == pytest.approx(50)
    assert top.get_yscale() == "log" and "log scale" in top.get_ylabel()
    assert bottom.lines[0].get_ydata()[1] == pytest.approx(100 * 0.2 / 199)  # log return in %


def test_the_split_timeline_shades_each_part_and_both_embargoes(prices) -> None:
    dates = prices.index.get_level_values("date").unique()
    split = chronological_split(dates, 0.2, 0.2, embargo=5)
    ax = figures.split_timeline_figure(prices, split).axes[0]
    spans = [(p.get_x(), p.get_x() + p.get_width()) for p in ax.patches]
    expected = [
        split.train,
        split.val,
        split.test,
        (split.train[1], split.val[0]),
        (split.val[1], split.test[0]),
    ]
    np.testing.assert_allclose(spans, [[mdates.date2num(d) for d in pair] for pair in expected])
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["AAA", "BBB", "train", "validation", "test", "embargo (5 trading days)"]
    counts = [t.get_text() for t in ax.texts]
    assert counts == ["train\n110 days", "validation\n40 days", "test\n40 days"]


def test_loss_curves_show_both_losses_and_the_best_epoch() -> None:
    history = pd.DataFrame(
        {
            "key": ["train/loss"] * 3 + ["val/loss"] * 3,
            "step": [0, 1, 2] * 2,
            "value": [1.0, 0.8, 0.7, 1.2, 0.9, 1.1],
        }
    )
    ax = figures.loss_curves_figure(history).axes[0]
    train, val, best = ax.lines
    assert list(train.get_ydata()) == [1.0, 0.8, 0.7]
    assert list(val.get_ydata()) == [1.2, 0.9, 1.1]
    assert best.get_label() == "best epoch (1)" and list(best.get_xdata()) == [1, 1]


def test_the_correlation_heatmap_shows_the_frames_correlations() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    frame = pd.DataFrame({"a": x, "b": -x + rng.normal(size=300), "c": rng.normal(size=300)})
    ax = figures.correlation_figure(frame).axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), frame.corr().to_numpy())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]


def test_feature_histograms_draw_one_panel_per_column_and_label_units() -> None:
    index = pd.MultiIndex.from_product([range(50), ["X", "Y"]], names=["date", "ticker"])
    frame = pd.DataFrame({"ret_1d": np.arange(100) / 100, "rsi_14": 0.5, "target": 0.0}, index)
    fig = figures.feature_histograms_figure(frame)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["ret_1d", "rsi_14", "target"]
    assert [ax.get_xlabel() for ax in visible] == [
        "log return",
        "RSI scaled to [-1, 1]",
        "forward log return",
    ]
    assert figures.feature_unit("vol_20d") == "std of daily log returns"
    assert figures.feature_unit("unknown") == ""


def test_timescales_are_sorted_per_layer_and_epoch_against_the_window() -> None:
    units = pd.DataFrame(
        {
            "epoch": [0, 0, 0, 4, 4, 4],
            "layer": 0,
            "gate": "forget",
            "timescale": [2.0, 5.0, np.inf, 3.0, 1.0, 8.0],
        }
    )
    ax = figures.timescale_figure(units, window=10).axes[0]
    epoch0, epoch4, window, one_day = ax.lines
    assert list(epoch0.get_ydata()) == [1e4, 5.0, 2.0]  # an infinite timescale drawn at the top
    assert list(epoch4.get_ydata()) == [8.0, 3.0, 1.0]
    assert list(window.get_ydata()) == [10, 10] and list(one_day.get_ydata()) == [1, 1]


def test_run_comparison_bars_are_each_models_error_relative_to_zero() -> None:
    scores = pd.DataFrame(
        {
            "label": ["r1", "r1", "r2", "r2"],
            "model": ["lstm", "zero", "lstm", "zero"],
            "rmse_vs_zero": [0.99, 1.0, 1.02, 1.0],
            "dir_acc": [0.52, 0.45, 0.49, 0.47],
        }
    )
    left, right = figures.run_comparison_figure(scores).axes
    assert [bar.get_width() for bar in left.patches] == pytest.approx([0.99, 1.02, 1.0, 1.0])
    assert [bar.get_width() for bar in right.patches] == pytest.approx([0.52, 0.49, 0.45, 0.47])
    assert [t.get_text() for t in left.get_yticklabels()] == ["r1", "r2"]


def test_a_sweep_draws_one_line_per_hue_value_ordered_by_the_setting() -> None:
    runs = pd.DataFrame(
        {
            "window": [40, 20, 20, 40],
            "hidden_size": [8, 8, 16, 16],
            "rmse_vs_zero": [1.01, 0.99, 1.0, 1.02],
        }
    )
    ax = figures.sweep_figure(runs).axes[0]
    h8, h16, zero = ax.lines
    assert h8.get_label() == "hidden_size = 8"
    assert list(h8.get_xdata()) == [20, 40] and list(h8.get_ydata()) == [0.99, 1.01]
    assert list(h16.get_ydata()) == [1.0, 1.02]
    assert list(zero.get_ydata()) == [1, 1]


def test_the_forecast_figure_has_one_row_per_ticker_with_labelled_axes() -> None:
    frame = pd.DataFrame(
        {
            "date": list(pd.bdate_range("2020-01-01", periods=5)) * 2,
            "ticker": ["A"] * 5 + ["B"] * 5,
            "actual": np.linspace(-0.01, 0.01, 10),
            "lstm": np.zeros(10),
            "ridge": np.zeros(10),
        }
    )
    fig = figures.predicted_vs_actual_figure(frame, horizon=1)
    assert len(fig.axes) == 6  # per ticker: realised, the forecast on its own axis, the scatter
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(titled) == 4 and all(ax.get_xlabel() and ax.get_ylabel() for ax in titled)
    assert all(ax.get_ylabel() for ax in fig.axes)  # the forecasts' own axis is labelled too


def test_the_timescale_spectrum_has_labelled_log_axes_and_marks_1_44_and_the_window() -> None:
    from stockpred.figures.gate_plots import timescale_spectrum_figure

    units = pd.DataFrame(
        {
            "epoch": [0, 0, 0, 7, 7, 7] * 2,
            "layer": [0] * 6 + [1] * 6,
            "gate": "forget",
            "timescale": [1.4, 1.5, 1.44, 3.0, 40.0, np.inf] * 2,
        }
    )
    fig = timescale_spectrum_figure(units, window=20)
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and "trading days" in ax.get_ylabel() and ax.get_xlabel()
    first, last, untrained, window = ax.lines
    assert list(first.get_ydata()) == [1.4, 1.44, 1.5]  # sorted by timescale
    assert list(last.get_ydata()) == [3.0, 40.0, 1e6]  # an infinite timescale at the cap
    assert list(untrained.get_ydata()) == pytest.approx([1.4427, 1.4427], abs=1e-4)
    assert list(window.get_ydata()) == [20, 20]
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["epoch 0", "epoch 7"]


def test_the_ablation_bars_are_each_bands_loss_change_per_unit() -> None:
    from stockpred.figures.gate_plots import ablation_figure

    table = pd.DataFrame(
        {
            "band": ["lt_2", "2_10", "gt_10"],
            "low": [0.0, 2.0, 10.0],
            "high": [2.0, 10.0, np.inf],
            "units": [5, 3, 0],
            "delta_loss": [0.01, 0.2, 0.0],
        }
    )
    ax = ablation_figure(table, "qlike").axes[0]
    assert [bar.get_height() for bar in ax.patches] == pytest.approx([0.002, 0.2 / 3, 0.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["< 2", "2–10", "> 10"]
    assert "qlike" in ax.get_ylabel() and "per unit" in ax.get_ylabel() and ax.get_xlabel()
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["5 units\nΔ +0.01", "3 units\nΔ +0.2", "0 units"]


def _units(sat_left: float = 0.0, sat_right: float = 0.0, layers: int = 2) -> pd.DataFrame:
    from stockpred.gates import GATES

    return pd.DataFrame(
        [
            {
                "epoch": 3,
                "layer": layer,
                "gate": gate,
                "unit": unit,
                "mean": 0.9 - 0.1 * unit if gate == "forget" else 0.5,
                "sat_left": sat_left if (layer, gate, unit) == (0, "forget", 0) else 0.0,
                "sat_right": sat_right if (layer, gate, unit) == (0, "forget", 0) else 0.0,
            }
            for layer in range(layers)
            for gate in GATES
            for unit in range(4)
        ]
    )


def _texts(fig: Figure) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_the_saturation_plot_says_so_when_nothing_saturated() -> None:
    quiet = figures.saturation_figure(_units())
    assert len(quiet.axes) == 1  # one note, not 8 panels of points at (0, 0)
    assert "No unit saturated at epoch 3" in _texts(quiet)
    some = figures.saturation_figure(_units(sat_right=0.4))
    assert len(some.axes) == 8
    # layer 0: only the forget gate saturated, the other panels say they did not
    assert [bool(ax.texts) for ax in some.axes[:4]] == [True, False, True, True]


def test_trajectories_start_fractions_at_zero_and_do_not_stretch_a_flat_timescale() -> None:
    from stockpred.gates import history_to_frame

    rows = [
        {
            "epoch": epoch,
            **{
                f"gates/l0/{g}/{s}": 0.0
                for g in ("input", "cell", "output")
                for s in ("sat_left", "sat_right")
            },
            **{f"gates/l0/{g}/mean": 0.5 for g in ("input", "forget", "cell", "output")},
            "gates/l0/forget/sat_left": 0.0,
            "gates/l0/forget/sat_right": 0.0,
            "gates/l0/forget/timescale": tau,
            "gates/l0/timescale/median": tau,
        }
        for epoch, tau in enumerate([1.406, 1.412, 1.409])
    ]
    fig = figures.trajectory_figure(history_to_frame(rows))
    mean, right, left, tau = fig.axes
    assert mean.get_ylim() == pytest.approx((-1.02, 1.02))
    assert right.get_ylim()[0] == 0 and left.get_ylim()[0] == 0  # no negative fractions
    low, high = tau.get_ylim()
    assert low == 0 and high >= 2 * 1.412  # 1.406..1.412 stays a flat line
    assert "span over epochs: 1.41–1.41 days" in _texts(fig)


def test_heatmap_rows_are_units_sorted_by_mean_forget_activation() -> None:
    from stockpred.figures.gate_plots import unit_order
    from stockpred.gates import GATES, GateSnapshot

    units = _units(layers=1)
    units.loc[units["gate"] == "forget", "mean"] = [0.2, 0.9, 0.5, 0.7]  # units 0..3
    steps = 5
    sample = {g: np.tile(np.arange(4.0) / 10, (1, steps, 1)) for g in GATES}  # value = unit / 10
    snap = GateSnapshot(epoch=1, units=units, sample=sample, histograms={}, edges={})
    assert list(unit_order(snap)[0]) == [1, 3, 2, 0]
    fig = figures.heatmap_figure(snap, np.linspace(100, 101, steps))
    forget = next(ax for ax in fig.axes if ax.get_title() == "layer 0 · forget gate f")
    rows = forget.get_images()[0].get_array()[:, 0]
    assert list(np.round(rows * 10)) == [1, 3, 2, 0]  # longest memory on top
    assert "longest memory on top" in forget.get_ylabel()


def test_the_folds_figure_labels_each_fold_with_its_test_dates_in_readable_type() -> None:
    rows = [
        {
            "fold": fold,
            "model": model,
            "test_start": f"202{fold}-01-02",
            "test_end": f"202{fold}-06-30",
            "qlike": 1.0 + 0.1 * fold,
            "qlike_vs_har": value,
        }
        for fold in range(2)
        for model, value in (("lstm", 0.9), ("har", 1.0))
    ]
    fig = figures.fold_figure(pd.DataFrame(rows), ["lstm", "har"], {}, "qlike_vs_har")
    assert len(fig.axes) == 1  # the volatility task has no Sharpe panel
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["fold 0\n2020-01-02\nto 2020-06-30", "fold 1\n2021-01-02\nto 2021-06-30"]
    assert min(t.get_fontsize() for t in ax.get_xticklabels()) >= 10
    assert ax.get_ylabel() == "test QLIKE / QLIKE(har)"


def test_forecasts_much_smaller_than_the_outcomes_get_an_axis_of_their_own_scale() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "date": pd.bdate_range("2020-01-01", periods=50),
            "ticker": "A",
            "actual": rng.normal(0, 0.02, 50),
            "lstm": rng.normal(0, 0.0002, 50),  # 1% of the realised moves
        }
    )
    axes = {ax.get_ylabel(): ax for ax in figures.predicted_vs_actual_figure(frame, 1).axes}
    realised, forecast = axes["realised return (%)"], axes["LSTM forecast (%)"]
    forecast_span = np.ptp(forecast.get_ylim())
    assert forecast_span < 0.1 * np.ptp(realised.get_ylim())  # visible: not flat on 0
    assert forecast_span >= np.ptp(frame["lstm"] * 100)
