"""A universe of 100 synthetic stocks, written for the ``files`` source by ``stockpred synth``'s
generator, trains end to end through the flow under the Prefect test server."""

from pathlib import Path

from flows.train_flow import train_flow
from stockpred import tracking
from stockpred.config import load_config
from stockpred.universe import synthetic_universe, write_universe
from tests.conftest import TINY


def test_a_100_ticker_universe_trains_through_the_flow(
    prefect_server: None, tmp_path: Path
) -> None:
    write_universe(synthetic_universe(100, 400, seed=1, ragged=True), tmp_path / "universe")
    config = load_config(
        {
            **TINY,
            "data": {
                "source": "files",
                "path": str(tmp_path / "universe"),
                "tickers": ["*"],
                "start": "2000-01-03",
                "end": "2001-12-31",
            },
            "train": {**TINY["train"], "max_epochs": 1, "limit_train_batches": 3},
            "gates": {"enabled": False},
            "tracking": {"experiment": "tests-universe", "report": False, "log_model": False},
        }
    )
    outcome = train_flow(config)
    run = tracking.get_run(outcome["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["baseline/zero/test/rmse"] > 0
    assert run.data.metrics["test/ic_cross_sectional"] == 1.0  # >= 3 tickers: IC per date
    [dataset] = run.inputs.dataset_inputs
    # short at any size, and the dates are the data's (400 days from 2000-01-03), not the config's
    assert dataset.dataset.name == "files:100 tickers:2000-01-03..2001-07-13"
    assert run.data.tags["data.rows"] == str(int(run.data.tags["data.rows"]))
