import dataclasses
import logging
import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from stockpred import figures, gates, report, tracking
from stockpred.config import PipelineConfig, load_config
from stockpred.pipeline import RunContext, render_diagnostics
from stockpred.tasks import TASKS
from tests.conftest import TINY


def _raw_run(run_id: str, window: int, val_loss: float, lstm: float, model: bool = True) -> dict:
    """A row as ``tracking.search_runs`` lays it out."""
    return {
        "run_id": run_id,
        "run_name": "same-name",
        "status": "FINISHED",
        "model_uri": f"models:/m-{run_id}" if model else None,
        "params.data.tickers": "^GSPC",
        "params.model.window": str(window),
        "params.model.hidden_size": "8",
        "metrics.val/best_loss": val_loss,
        "metrics.test/rmse": lstm,
        "metrics.test/mae": lstm / 2,
        "metrics.test/dir_acc": 0.5,
        "metrics.baseline/zero/test/rmse": 0.02,
        "metrics.baseline/zero/test/mae": 0.01,
        "metrics.baseline/zero/test/dir_acc": 0.45,
    }


@pytest.fixture
def runs() -> pd.DataFrame:
    return report.tidy_runs(
        pd.DataFrame(
            [
                _raw_run("aaaaaa01", 10, val_loss=0.9, lstm=0.019),
                _raw_run("bbbbbb02", 20, val_loss=0.8, lstm=0.021),
                _raw_run("cccccc03", 30, val_loss=0.7, lstm=0.018, model=False),
            ]
        )
    )


def test_tidy_runs_gives_settings_and_scores_per_run_with_nan_for_what_is_missing(runs) -> None:
    assert list(runs["window"]) == [10, 20, 30]
    assert runs.loc[0, "lstm_rmse"] == 0.019
    assert runs.loc[0, "rmse_vs_zero"] == pytest.approx(0.95)
    assert runs["ridge_rmse"].isna().all()  # never logged
    assert runs["epochs"].isna().all()
    # equal run names still get distinct labels
    assert runs["label"].is_unique
    assert runs.loc[1, "label"] == "same-name bbbbbb (lstm, w20, h8)"
    assert (runs["task"] == "return").all() and (runs["relative_name"] == "rmse_vs_zero").all()
    assert runs["relative"].equals(runs["rmse_vs_zero"]) and runs["qlike_vs_har"].isna().all()


def test_model_scores_skips_models_a_run_did_not_score_and_the_grid_keeps_run_order(runs) -> None:
    scores = report.model_scores(runs)
    assert len(scores) == 3 * 2  # lstm and zero per run; no mean, ridge or ar metrics
    first = scores[scores["run_id"] == "aaaaaa01"].set_index("model")
    assert first.loc["zero", "rmse_vs_zero"] == 1.0
    assert first.loc["lstm", "mae"] == pytest.approx(0.0095)
    grid = report.score_table(scores)
    assert list(grid.index) == list(runs["label"])
    assert list(grid.columns) == ["lstm", "zero"]
    assert grid.iloc[1]["lstm"] == pytest.approx(1.05)


def test_the_best_run_is_picked_by_the_champion_rule_among_comparable_runs() -> None:
    def tracked(tickers: list[str], skill: float, val_loss: float) -> dict:
        config = PipelineConfig().with_overrides(
            {"tracking.experiment": "best-run", "data.tickers": tickers, "target.kind": "return"}
        )
        with tracking.tracked_run(config) as run_id:
            tracking.log_metrics(run_id, {"val/rmse_vs_zero": skill})
        return _raw_run(run_id, 10, val_loss=val_loss, lstm=0.02)

    newest = tracked(["^GSPC"], 0.99, val_loss=0.1)
    best = tracked(["^GSPC"], 0.95, val_loss=0.9)  # a worse loss, a better selection metric
    other = tracked(["^GSPC", "^IXIC"], 0.5, val_loss=0.01)  # other tickers: not comparable
    unlogged = {**tracked(["^GSPC"], 0.1, val_loss=0.01), "model_uri": None}
    runs = report.tidy_runs(pd.DataFrame([newest, best, other, unlogged]))
    picked = report.best_run(runs)
    assert picked["run_id"] == best["run_id"] and picked["selection"] == pytest.approx(0.95)
    assert picked["selection_metric"] == "val/rmse_vs_zero"
    assert report.best_run(runs, like=other["run_id"])["run_id"] == other["run_id"]
    with pytest.raises(LookupError, match="has a logged model"):
        report.best_run(runs[runs["model_uri"].isna()])


def test_metrics_table_tabulates_every_model_of_a_run() -> None:
    metrics = {
        "test/rmse": 0.9,
        "test/mae": 0.5,
        "test/dir_acc": 0.55,
        "baseline/zero/test/rmse": 1.0,
        "baseline/zero/test/mae": 0.6,
        "baseline/zero/test/dir_acc": 0.45,
        "train/loss": 3.0,
    }
    table = report.metrics_table(metrics)
    assert list(table.index) == ["lstm", "zero"]
    assert table.loc["lstm", "rmse_vs_zero"] == pytest.approx(0.9)
    assert table.loc["zero", "dir_acc"] == 0.45


def test_run_filter_matches_the_params_as_the_config_logs_them() -> None:
    where = report.run_filter(tickers=["^gspc", "^IXIC"], window=20, params={"train.seed": 7})
    assert where == (
        "attributes.status = 'FINISHED' and params.`train.seed` = '7' and "
        "params.`data.tickers` = '^GSPC,^IXIC' and params.`model.window` = '20'"
    )
    assert report.run_filter(tickers="^GSPC", status=None) == "params.`data.tickers` = '^GSPC'"


def _logged_run(config: PipelineConfig, rmse: float, fail: bool = False) -> str:
    """A run with the config's params and a few test metrics, without training anything."""
    try:
        with tracking.tracked_run(config) as run_id:
            tracking.log_metrics(run_id, {"test/rmse": rmse, "baseline/zero/test/rmse": 1.0})
            if fail:
                raise RuntimeError("stopped")
    except RuntimeError:
        pass
    return run_id


def test_search_runs_finds_finished_runs_by_their_config_newest_first() -> None:
    base = load_config({**TINY, "tracking": {"experiment": "report-search"}})
    first = _logged_run(base, 0.9)
    wide = _logged_run(base.with_overrides({"model.window": 20}), 0.8)
    one = _logged_run(base.with_overrides({"data.tickers": ["^GSPC"]}), 1.1)
    _logged_run(base, 0.7, fail=True)
    with tracking.tracked_run(base):  # finished, but never evaluated
        pass

    everything = report.search_runs("report-search")
    assert list(everything["run_id"]) == [one, wide, first]  # not the failed or unscored run
    by_window = report.search_runs("report-search", window=20)
    assert list(by_window["run_id"]) == [wide]
    assert by_window.loc[0, "rmse_vs_zero"] == pytest.approx(0.8)
    assert list(report.search_runs("report-search", tickers="^GSPC")["run_id"]) == [one]
    with pytest.raises(LookupError, match="no experiment named 'nothing-here'"):
        report.search_runs("nothing-here")


def test_volatility_and_gru_runs_are_listed_compared_and_charted_like_return_runs() -> None:
    base = load_config({**TINY, "tracking": {"experiment": "report-tasks"}})
    returns = _logged_run(base, 0.9)
    volatility = base.with_overrides({"target.kind": "volatility", "model.arch": "gru"})
    with tracking.tracked_run(volatility) as vol:
        metrics = {"test/qlike": 0.3, "test/mse_log": 0.5, "baseline/har/test/qlike": 0.4}
        tracking.log_metrics(vol, {**metrics, "baseline/har/test/mse_log": 0.6})

    runs = report.search_runs("report-tasks")
    assert list(runs["run_id"]) == [vol, returns]  # the volatility run is not left out
    assert list(runs["task"]) == ["volatility", "return"] and list(runs["arch"]) == ["gru", "lstm"]
    assert list(runs["relative_name"]) == ["qlike_vs_har", "rmse_vs_zero"]
    assert list(runs["relative"]) == pytest.approx([0.75, 0.9])
    assert list(report.search_runs("report-tasks", task="volatility")["run_id"]) == [vol]
    assert list(report.search_runs("report-tasks", arch="gru")["run_id"]) == [vol]
    scores = report.model_scores(runs)
    mine = scores[scores["run_id"] == vol].set_index("model")
    assert list(mine.index) == ["lstm", "har"] and mine.loc["har", "relative"] == 1.0
    assert mine.loc["lstm", "mse_log"] == 0.5
    grid = report.score_table(scores)
    assert grid.loc[runs.loc[0, "label"], "lstm"] == pytest.approx(0.75)
    assert grid.loc[runs.loc[1, "label"], "lstm"] == pytest.approx(0.9)
    left = figures.run_comparison_figure(scores).axes[0]
    assert "qlike_vs_har" in left.get_xlabel() and "rmse_vs_zero" in left.get_xlabel()
    assert report.run_summary(vol)["relative"] == pytest.approx(0.75)


def test_the_latest_gate_run_skips_newer_runs_without_gate_diagnostics() -> None:
    config = load_config({**TINY, "tracking": {"experiment": "report-gates"}})
    with pytest.raises(LookupError, match="no finished run with gate diagnostics"):
        report.latest_gate_run("report-gates")
    with tracking.tracked_run(config) as gated:
        tracking.log_metrics(gated, {"gates/l0/forget/mean": 0.6})
    with tracking.tracked_run(config):  # e.g. a walk-forward parent: no gates
        pass
    assert report.latest_gate_run("report-gates") == gated


def test_metric_history_reads_back_every_step() -> None:
    config = load_config({**TINY, "tracking": {"experiment": "report-history"}})
    with tracking.tracked_run(config) as run_id:
        for epoch, loss in enumerate([3.0, 2.0, 1.5]):
            tracking.log_metrics(run_id, {"train/loss": loss, "val/loss": loss + 1}, step=epoch)
    history = tracking.load_metric_history(run_id, "train/loss", "val/loss")
    assert list(history["key"]) == ["train/loss"] * 3 + ["val/loss"] * 3
    assert list(history["step"]) == [0, 1, 2, 0, 1, 2]
    assert list(history["value"]) == [3.0, 2.0, 1.5, 4.0, 3.0, 2.5]
    assert tracking.load_run_config(run_id) == config
    assert tracking.list_artifact_paths(run_id) == ["config.json"]


def test_gate_summary_is_one_row_per_layer_and_gate_at_the_last_epoch() -> None:
    records = [
        (epoch, layer, gate, stat, 10 * epoch + layer + 0.1 * i)
        for epoch in (0, 1)
        for layer in (0, 1)
        for i, (gate, stat) in enumerate(
            [(g, s) for g in gates.GATES for s in ("mean", "sat_left")]
            + [("forget", "timescale"), ("cell_state", "norm_end")]
        )
    ]
    stats = pd.DataFrame.from_records(records, columns=["epoch", "layer", "gate", "stat", "value"])
    table = report.gate_summary(stats)
    assert list(table.index) == [(layer, g) for layer in (0, 1) for g in gates.GATES]
    assert list(table.columns) == ["mean", "sat_left", "timescale"]
    assert table.loc[(1, "forget"), "mean"] == pytest.approx(11.2)
    assert table.loc[(0, "forget"), "timescale"] == pytest.approx(10.8)
    assert np.isnan(table.loc[(0, "input"), "timescale"])
    assert report.gate_summary(stats, epoch=0).loc[(0, "input"), "mean"] == 0.0


def test_timescale_table_summarises_each_layers_forget_units() -> None:
    units = pd.DataFrame(
        {
            "epoch": 3,
            "layer": [0, 0, 0, 0, 1, 1],
            "gate": ["forget"] * 4 + ["forget", "input"],
            "timescale": [0.5, 2.0, 4.0, 30.0, 12.0, np.nan],
        }
    )
    table = report.timescale_table(units, window=10)
    assert list(table.index) == [(3, 0), (3, 1)]
    assert table.loc[(3, 0), "units"] == 4
    assert table.loc[(3, 0), "median_days"] == 3.0
    assert table.loc[(3, 0), "share_below_1_day"] == 0.25
    assert table.loc[(3, 0), "share_above_10_days"] == 0.25
    assert table.loc[(3, 1), "share_above_10_days"] == 1.0


def test_split_table_lists_parts_and_embargoes_in_time_order(tiny_config) -> None:
    prepared = report.prepare_run_data(tiny_config)
    table = report.split_table(prepared)
    assert list(table["part"]) == ["train", "embargo", "validation", "embargo", "test"]
    dates = np.unique(prepared.dates)
    assert table["trading_days"].sum() == len(dates)
    assert list(table.loc[table["part"] == "embargo", "trading_days"]) == [tiny_config.embargo] * 2
    assert table["rows"].sum() == len(prepared.dates)  # two tickers: twice the dates
    assert str(table.loc[4, "last"]) == str(dates[-1])[:10]


def test_inject_parameters_follows_the_parameters_cell_and_replaces_an_old_injection() -> None:
    nb = new_notebook(
        cells=[
            new_markdown_cell("# title"),
            new_code_cell("run_id = None", metadata={"tags": ["parameters"]}),
            new_code_cell("print(run_id)"),
        ]
    )
    once = report.inject_parameters(nb, {"run_id": "abc"})
    twice = report.inject_parameters(once, {"run_id": "xyz", "epochs": [0, 2]})
    assert [c.source for c in nb.cells] == ["# title", "run_id = None", "print(run_id)"]
    assert len(twice.cells) == 4
    assert twice.cells[2].source == "# Injected parameters\nrun_id = 'xyz'\nepochs = [0, 2]"
    assert twice.cells[2].metadata["tags"] == ["injected-parameters"]
    plain = report.inject_parameters(new_notebook(cells=[new_code_cell("x")]), {"a": 1})
    assert plain.cells[0].source.endswith("a = 1")
    with pytest.raises(ValueError, match="identifiers"):
        report.inject_parameters(nb, {"not a name": 1})


def test_the_report_notebook_is_found_and_has_a_parameters_cell() -> None:
    nb = nbformat.read(report.notebooks_dir() / report.REPORT_NOTEBOOK, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "run_id = None" in tagged[0].source


@pytest.mark.slow  # executes the notebook in a kernel
def test_a_failed_report_leaves_the_run_a_warning_and_an_error_tag(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config({**TINY, "tracking": {"experiment": "report-failure", "report": True}})
    with tracking.tracked_run(config) as run_id, caplog.at_level(logging.WARNING):
        # nothing was trained: the notebook fails at its first gate artifact
        assert render_diagnostics(RunContext(run_id, config, tmp_path)) is None
    run = tracking.client().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["report.error"].startswith("ReportError: 03-gate-diagnostics.ipynb")
    assert "LookupError" in run.data.tags["report.error"]
    assert "no gate artifacts" in run.data.tags["report.error"]
    assert "diagnostics report not attached" in caplog.text
    assert "report" not in {Path(p).parts[0] for p in tracking.list_artifact_paths(run_id)}


def test_no_report_is_rendered_when_it_is_switched_off(tmp_path: Path) -> None:
    config = load_config({**TINY, "tracking": {"experiment": "report-off", "report": False}})
    with tracking.tracked_run(config) as run_id:
        assert render_diagnostics(RunContext(run_id, config, tmp_path)) is None
    assert "report.error" not in tracking.client().get_run(run_id).data.tags
    gates_off = config.with_overrides({"tracking.report": True, "gates.enabled": False})
    assert render_diagnostics(RunContext(run_id, gates_off, tmp_path)) is None


VOLATILITY_METRICS = {
    "test/qlike": 0.30,
    "baseline/har/test/qlike": 0.40,
    "baseline/gjr/test/qlike": 0.25,
    "baseline/rw/test/qlike": 0.60,
    "test/dm_vs_har/t": -2.5,
    "test/dm_vs_har/p": 0.012,
    "test/dm_vs_gjr/t": 1.2,
    "test/dm_vs_gjr/p": 0.23,
    "test/dm_vs_rw/t": -4.0,
    "test/dm_vs_rw/p": 0.0001,
}


def test_the_verdict_says_what_was_beaten_by_how_much_and_with_what_uncertainty() -> None:
    task = TASKS["volatility"]
    compared = report.comparisons(VOLATILITY_METRICS, task)
    assert [c.baseline for c in compared] == ["rw", "har", "gjr"]  # the task's order
    har = compared[1]
    assert (har.t, har.p) == (-2.5, 0.012) and har.change_pct == pytest.approx(-25.0)
    verdict = report.verdict_html(compared, task)
    # it leads with the strongest baseline, the same sentence as the task's verdict
    lead = (
        "<b>LSTM vs the strongest baseline, gjr: QLIKE 0.3 vs 0.25 (ratio 1.200; DM t +1.20, "
        "p 0.230): no significant difference at 5%.</b>"
    )
    assert verdict.startswith(f'<p class="verdict">{lead}')
    assert lead in report.verdict_html(compared, task, VOLATILITY_METRICS)
    assert "The LSTM beat 2 of its 3 baselines on test QLIKE (rw, har)." in verdict
    assert "Against the reference har its QLIKE is 25.0% lower (0.3 vs 0.4)" in verdict
    assert "against the best baseline, gjr, 20.0% higher" in verdict
    assert "better than 2 and worse than 0 of the 3 baselines beyond chance" in verdict
    assert "against har t = -2.50, p = 0.012; against gjr t = +1.20, p = 0.230" in verdict
    everything = {**VOLATILITY_METRICS, "baseline/gjr/test/qlike": 0.35}
    assert "beat all 3 baselines" in report.verdict_html(report.comparisons(everything, task), task)
    assert "No verdict" in report.verdict_html([], task)


def test_the_return_tasks_uncertainty_is_a_dm_test_on_the_logged_forecasts() -> None:
    rng = np.random.default_rng(0)
    dates = pd.bdate_range("2020-01-01", periods=200)
    actual = rng.normal(0, 0.01, 200)
    predictions = pd.DataFrame(
        {"date": dates, "ticker": "A", "actual": actual, "lstm": actual * 0.5, "zero": 0.0}
    )
    metrics = {"test/rmse": 0.005, "baseline/zero/test/rmse": 0.01}
    (zero,) = report.comparisons(metrics, TASKS["return"], predictions)
    assert zero.baseline == "zero" and zero.t < -3 and zero.p < 0.01  # half the error, clearly
    table = report.comparison_table_html(metrics, TASKS["return"], [zero])
    assert table.count("<tr>") == 3 and "font-weight:bold" in table  # header, lstm (bold), zero


def test_the_market_memory_sentence_sets_garch_beside_the_network() -> None:
    metrics = {
        "gates/l0/timescale/median": 3.0,
        "gates/l1/timescale/median": 12.5,
        "market/garch_persistence": 0.97,
        "market/garch_half_life_days": 22.76,
        "market/garch_timescale_days": 32.83,
        "market/garch_tickers": 2.0,
        "market/har_weight_1d": 0.2,
        "market/har_weight_5d": 0.3,
        "market/har_weight_22d": 0.5,
        "market/har_share_22d": 0.5,
    }
    ablation = pd.DataFrame(
        {"band": ["lt_2", "10_50"], "low": [0.0, 10.0], "high": [2.0, 50.0], "units": [3, 5]}
    ).assign(delta_loss=[0.001, 0.04])
    text = report.memory_html(metrics, "volatility", ablation)
    assert "The network remembers about 12.5 trading days" in text  # the last layer
    assert "layer 0: 3.0 days; layer 1: 12.5 days" in text
    assert "GARCH says volatility's half-life here is 22.8 trading days" in text
    assert "α + β = 0.970" in text and "factor e in 32.8 days" in text
    assert "costs the most is τ 10–50 days (5 units" in text
    assert "50% of its weight on the 22-day mean" in text
    returns = report.memory_html(metrics, "return")
    assert "forecasts returns, so no volatility model was fitted" in returns
    assert "GARCH says" not in returns


def _executed_notebook() -> nbformat.NotebookNode:
    """A notebook as nbclient leaves it: code with outputs, a parameters cell, an injection."""
    nb = new_notebook(
        cells=[
            new_markdown_cell("# Results\n\nc<sub>t</sub> = f<sub>t</sub> · c<sub>t−1</sub>"),
            new_markdown_cell("Run me in JupyterLab.", metadata={"tags": ["notebook-only"]}),
            new_code_cell("run_id = None", metadata={"tags": ["parameters"]}),
            new_code_cell("run_id = 'abc123'", metadata={"tags": ["injected-parameters"]}),
            new_code_cell("import secret_module_name"),  # no output: not in the report
            new_code_cell("show_verdict(run_id)"),
        ]
    )
    nb.cells[-1].outputs = [
        nbformat.v4.new_output(
            "display_data", data={"text/html": "<p>The LSTM beat 2 of 3</p>", "text/plain": "x"}
        )
    ]
    return nb


@pytest.mark.slow  # executes the notebook in a kernel
def test_the_report_html_has_no_code_and_loads_nothing_from_the_network() -> None:
    nb = _executed_notebook()
    html = report.notebook_html(nb, "a title")
    assert "The LSTM beat 2 of 3" in html and "c<sub>t</sub>" in html
    for code in ("show_verdict", "secret_module_name", "run_id = ", "Run me in JupyterLab"):
        assert code not in html, code
    body = html.split("</style>")[-1]
    # the lab template renders a markdown cell inside an input area too: only that one is left
    assert body.count('class="jp-InputArea') == 1 and "injected-parameters" not in html
    assert "jp-CodeMirrorEditor" not in body and "hl-ipython3" not in body
    assert "jp-InputPrompt" not in body
    # no script, module or stylesheet fetched from a URL (MathJax, require.js, Mermaid)
    assert not re.findall(r"<script[^>]*\bsrc=", html)
    assert not re.findall(r"<link[^>]*href=[\"']?https?:", html)
    scripts = " ".join(re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.S))
    assert "http" not in scripts and "mathjax" not in html.lower()
    assert len(nb.cells) == 6  # the notebook itself is left as it was
    assert [c.cell_type for c in report.report_cells(nb).cells] == ["markdown", "code"]


@pytest.mark.slow  # executes the notebook in a kernel
def test_a_figure_is_embedded_with_its_caption() -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.subplots().plot([0, 1])
    html = report.figure_html(fig, "<b>Figure.</b> A line & a dot")
    assert html.count('src="data:image/png;base64,') == 1
    assert "<figcaption" in html and "<b>Figure.</b> A line & a dot" in html
    assert 'alt="Figure. A line &amp; a dot"' in html


def test_the_calm_and_turbulent_windows_are_the_test_windows_of_least_and_most_volatility(
    tiny_config,
) -> None:
    from stockpred.models import LSTMForecaster
    from stockpred.split import TEST

    prepared = report.prepare_run_data(tiny_config)
    torch.manual_seed(0)
    model = LSTMForecaster(len(prepared.feature_names), hidden_size=4, num_layers=2).eval()
    shocks = report.shock_windows(model, prepared, epoch=2)
    ends = prepared.dataset(TEST).ends.numpy()
    vol = report.window_volatility(prepared, ends)
    assert f"{100 * np.nanmin(vol):.0f}% annualised" in shocks.calm_label
    assert f"{100 * np.nanmax(vol):.0f}% annualised" in shocks.turbulent_label
    assert np.nanmax(vol) > 2 * np.nanmin(vol)
    assert shocks.turbulent.sample["forget"].shape == (2, tiny_config.model.window, 4)
    assert shocks.turbulent_path[0] == 100.0 and len(shocks.calm_path) == tiny_config.model.window
    # one units table over all test windows, so both heatmaps sort their rows alike
    pd.testing.assert_frame_equal(shocks.calm.units, shocks.turbulent.units)


def test_window_volatility_is_each_windows_own_returns_and_nan_where_a_price_is_missing(
    tiny_config,
) -> None:
    from stockpred.split import TEST

    prepared = report.prepare_run_data(tiny_config)
    ends = prepared.dataset(TEST).ends.numpy()
    window = prepared.window
    expected = [
        np.sqrt(252 * np.mean(np.diff(np.log(prepared.close[e - window + 1 : e + 1])) ** 2))
        for e in ends
    ]
    np.testing.assert_allclose(report.window_volatility(prepared, ends), expected, rtol=1e-9)
    close = prepared.close.copy()
    close[ends[3]] = np.nan  # the last day of window 3, inside the next few windows too
    holed = dataclasses.replace(prepared, close=close)
    vol = report.window_volatility(holed, ends)
    assert np.isnan(vol[3]) and np.isfinite(vol[0])


def test_the_shock_windows_are_the_same_replayed_in_small_batches(tiny_config) -> None:
    from stockpred.models import LSTMForecaster

    prepared = report.prepare_run_data(tiny_config)
    torch.manual_seed(0)
    model = LSTMForecaster(len(prepared.feature_names), hidden_size=4, num_layers=2).eval()
    whole = report.shock_windows(model, prepared, epoch=2, replay_mb=1000)
    batched = report.shock_windows(model, prepared, epoch=2, replay_mb=0.01)  # a few windows
    assert batched.calm_label == whole.calm_label
    pd.testing.assert_frame_equal(batched.calm.units, whole.calm.units, atol=1e-5)
    for gate, sample in whole.turbulent.sample.items():
        np.testing.assert_allclose(batched.turbulent.sample[gate], sample, atol=1e-6)
        np.testing.assert_allclose(
            batched.calm.histograms[gate], whole.calm.histograms[gate], atol=1e-4
        )


def test_a_large_universe_is_named_in_one_line() -> None:
    assert report.tickers_text(["A", "B"]) == "A, B"
    names = [f"S{i:03d}" for i in range(50)]
    assert report.tickers_text(names, shown=3) == "50 tickers (S000, S001, S002 and 47 more)"


def _per_ticker_forecasts(tickers: int, rows: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frames = []
    for i in range(tickers):
        actual = rng.normal(0, 0.01, rows)
        # ticker i: the LSTM's error grows 1.3x a ticker, the reference (zero) is alike everywhere
        frames.append(
            pd.DataFrame(
                {
                    "date": pd.bdate_range("2020-01-01", periods=rows),
                    "ticker": f"T{i:02d}",
                    "actual": actual,
                    "lstm": actual + rng.normal(0, 0.001 * 1.3**i, rows),
                    "zero": 0.0,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_the_per_ticker_table_ranks_every_ticker_by_its_loss_ratio() -> None:
    task = TASKS["return"]
    table = report.ticker_scores(_per_ticker_forecasts(4), task)
    assert list(table["ticker"]) == ["T00", "T01", "T02", "T03"]  # best ratio first
    assert list(table["windows"]) == [60] * 4
    part = _per_ticker_forecasts(4).query("ticker == 'T02'")
    mse = float(np.mean((part["lstm"] - part["actual"]) ** 2))
    assert table.loc[2, "lstm"] == pytest.approx(mse)
    assert table.loc[2, "ratio"] == pytest.approx(mse / float(np.mean(part["actual"] ** 2)))


def test_the_report_shows_the_k_best_and_worst_of_a_large_universe_and_every_one_of_a_small() -> (
    None
):
    task = TASKS["return"]
    small = report.tickers_html(_per_ticker_forecasts(4), task, k=3)
    assert all(f"T0{i}" in small for i in range(4)) and "<img" not in small
    large = report.tickers_html(_per_ticker_forecasts(40), task, k=3)
    shown = set(re.findall(r">(T\d\d)<", large))  # the table cells, not the image data
    assert shown == {"T00", "T01", "T02", "T37", "T38", "T39"}
    assert large.count("<img") == 1 and "of 40 tickers" in large
    assert "no test forecasts" in report.tickers_html(None, task)
