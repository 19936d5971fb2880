"""Every notebook, executed headless against small tracked runs: no cell may fail, figures must show."""

from __future__ import annotations

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
    "03-gate-diagnostics.ipynb": 6,
    "04-compare-runs.ipynb": 3,
}


@pytest.fixture(scope="module")
def runs() -> list[str]:
    """Two tiny tracked runs that differ in window (no report: the notebooks are the test)."""
    config = load_config({**TINY, "tracking": {"experiment": EXPERIMENT, "report": False}})
    # the second only feeds the comparison: no gate diagnostics, 2 epochs
    sweep = config.with_overrides(
        {"model.window": 15, "train.max_epochs": 2, "gates.enabled": False}
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
    parts += [o.get("data", {}).get("text/plain", "") for o in _outputs(nb)]
    return "\n".join(parts)


def test_the_notebooks_are_committed_without_outputs() -> None:
    assert sorted(MIN_IMAGES) == NOTEBOOKS
    for name in NOTEBOOKS:
        nb = nbformat.read(report.notebooks_dir() / name, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, (name, cell.id)


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
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= MIN_IMAGES[name]
    if name.startswith("03"):
        assert runs[0] in _text(nb)  # it reports on the run it was given
    if name.startswith("04"):
        assert "2 finished run(s) in experiment 'notebook-tests'" in _text(nb)
        assert "largest gap to the forecasts logged at training time" in _text(nb)


def test_the_loaded_model_reproduces_the_forecasts_logged_at_training(runs: list[str]) -> None:
    run_id = runs[1]
    uri = tracking.load_run_record(run_id)["model_uri"]
    fresh = report.predict_test_windows(run_id, tracking.load_model(uri))
    logged = report.load_test_predictions(run_id)
    pd.testing.assert_frame_equal(fresh, logged[["date", "ticker", "actual", "lstm"]])
    assert fresh["ticker"].nunique() == 2 and len(fresh) > 100
