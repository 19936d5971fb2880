"""Every notebook, executed headless against small tracked runs: no cell may fail, figures must show."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest

from stockpred import report, tracking
from stockpred.config import load_config
from stockpred.pipeline import run_training
from tests.conftest import TINY

EXPERIMENT = "notebook-tests"
NOTEBOOKS = sorted(path.name for path in report.notebooks_dir().glob("*.ipynb"))
MIN_IMAGES = {  # the figures each notebook draws
    "01-data-and-features.ipynb": 4,
    "02-train-from-notebook.ipynb": 2,
    "03-gate-diagnostics.ipynb": 13,  # with memory by use and the memory-value curve
    "04-compare-runs.ipynb": 3,
}


@pytest.fixture(scope="module")
def runs() -> list[str]:
    """Two tiny tracked runs: an LSTM on returns, and a GRU on volatility with another window,
    which notebook 04 lists and compares beside it (no report: the notebooks are the test)."""
    config = load_config({**TINY, "tracking": {"experiment": EXPERIMENT, "report": False}})
    # the second only feeds the comparison: no gate diagnostics, 2 epochs
    sweep = config.with_overrides(
        {
            "model.window": 15,
            "train.max_epochs": 2,
            "gates.enabled": False,
            "target.kind": "volatility",
            "model.arch": "gru",
        }
    )
    return [run_training(config).run_id, run_training(sweep).run_id]


def _parameters(name: str, runs: list[str]) -> dict[str, Any]:
    if name.startswith("03"):
        return {"run_id": runs[0]}
    if name.startswith("04"):
        return {"experiment": EXPERIMENT}
    return {}


def _outputs(nb: nbformat.NotebookNode) -> list[dict[str, Any]]:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]


def _text(nb: nbformat.NotebookNode) -> str:
    parts = [o.get("text", "") for o in _outputs(nb)]
    parts += [o.get("data", {}).get(kind, "") for o in _outputs(nb) for kind in _TEXT]
    return "\n".join(parts)


_TEXT = ("text/plain", "text/html")


def _images(nb: nbformat.NotebookNode) -> list[str]:
    """Every PNG the notebook shows, as base64: its outputs and those embedded in HTML."""
    data = [o.get("data", {}) for o in _outputs(nb)]
    pngs = [d["image/png"] for d in data if "image/png" in d]
    for d in data:
        pngs += re.findall(r'src="data:image/png;base64,([^"]+)"', d.get("text/html", ""))
    return pngs


def _image_count(nb: nbformat.NotebookNode) -> int:
    """PNG outputs, and PNGs embedded in HTML outputs (the report's captioned figures)."""
    data = [o.get("data", {}) for o in _outputs(nb)]
    return sum("image/png" in d for d in data) + sum(
        d.get("text/html", "").count('src="data:image/png;base64,') for d in data
    )


def test_the_notebooks_are_committed_without_outputs() -> None:
    assert sorted(MIN_IMAGES) == NOTEBOOKS
    for name in NOTEBOOKS:
        nb = nbformat.read(report.notebooks_dir() / name, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, (name, cell.id)


@pytest.mark.slow  # trains runs, executes the notebook in a kernel
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_notebook_runs_headless_and_shows_its_figures(
    name: str, runs: list[str], tmp_path: Path
) -> None:
    path = report.notebooks_dir() / name
    if name.startswith("03"):  # run from another folder: the store is found all the same
        path = tmp_path / name
        path.write_text((report.notebooks_dir() / name).read_text())
    # execute_notebook raises CellExecutionError at the first failing cell
    nb = report.execute_notebook(path, _parameters(name, runs))
    outputs = _outputs(nb)
    assert not [o for o in outputs if o.output_type == "error"]
    assert _image_count(nb) >= MIN_IMAGES[name]
    shown = _images(nb)
    assert len(shown) == len(set(shown)), "a figure is shown twice"  # e.g. pyplot + the return
    if name.startswith("03"):
        assert runs[0] in _text(nb)  # it reports on the run it was given
        assert "By use, the forecast looks back about" in _text(nb)
        _check_report(report.notebook_html(nb, "report"), nb)
    if name.startswith("04"):
        assert "2 finished run(s) in experiment 'notebook-tests'" in _text(nb)
        assert "qlike_vs_har" in _text(nb) and "rmse_vs_zero" in _text(nb)  # both tasks listed
        assert "gru" in _text(nb)
        assert "largest gap to the forecasts logged at training time" in _text(nb)


@pytest.mark.slow  # trains runs
def test_the_loaded_model_reproduces_the_forecasts_logged_at_training(runs: list[str]) -> None:
    run_id = runs[1]
    uri = tracking.load_run_record(run_id)["model_uri"]
    fresh = report.predict_test_windows(run_id, tracking.load_model(uri))
    logged = report.load_test_predictions(run_id)
    pd.testing.assert_frame_equal(fresh, logged[["date", "ticker", "actual", "lstm"]])
    assert fresh["ticker"].nunique() == 2 and len(fresh) > 100


def _check_report(html: str, nb: nbformat.NotebookNode) -> None:
    """The report a return run gets: verdict first, then the evaluation, then the gates; no code."""
    body = html.split("</style>")[-1]
    markdown = sum(cell.cell_type == "markdown" for cell in report.report_cells(nb).cells)
    assert body.count('class="jp-InputArea') == markdown  # only markdown; no code cell's input
    assert "hl-ipython3" not in body and "injected-parameters" not in html
    assert "report.verdict_html" not in html and "tracking.load_run_config" not in html
    assert not re.findall(r"<script[^>]*\bsrc=", html)  # nothing from a CDN
    verdict = body.index('class="verdict"')
    assert re.search(r"The LSTM beat (all|none|\d+ of)", body[verdict:])
    assert "Diebold–Mariano tests" in body[verdict:]
    evaluation = body.index("The LSTM beside its baselines on the test period")
    forecasts = body.index("Forecasts against outcomes, per ticker")
    spectrum = body.index("Memory-timescale spectrum")
    assert verdict < evaluation < spectrum and forecasts < spectrum
    assert "no volatility model was fitted" in body  # a return run: said, and still rendered
    assert "Gates over the most turbulent test window" in body
    assert body.count("<figcaption") >= 11
    assert body.count('src="data:image/png;base64,') == body.count("<figcaption")  # each captioned
