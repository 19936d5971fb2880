"""The prediction flow end to end: a trained champion, the sample data, a real Prefect server."""

import datetime as dt
import json
import os
import subprocess
import sys
import warnings

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

from flows.predict_flow import predict_flow
from stockpred.data import DataError
from stockpred.pipeline import run_training
from stockpred.predict import (
    InSampleWarning,
    NoChampionError,
    forecast_line,
    forecast_table,
    predict_next,
    predict_next_warning_line,
    target_date,
)
from stockpred.tracking import get_run


@pytest.fixture(scope="module")
def champion(tiny_config_module):
    config = tiny_config_module.with_overrides(
        {
            "evaluation.registered_name": "predict-test",
            "evaluation.register_model": True,
            "gates.enabled": False,
        }
    )
    return run_training(config)


@pytest.fixture(scope="module")
def tiny_config_module():
    from stockpred.config import load_config
    from tests.conftest import TINY

    return load_config(TINY)


def test_it_predicts_each_ticker_with_the_champion(
    prefect_server, champion, isolated_store
) -> None:
    path = predict_flow("predict-test", dt.date(2014, 12, 31))
    frame = pd.read_parquet(path)
    assert sorted(frame["ticker"]) == ["^GSPC", "^IXIC"]
    assert (frame["as_of"] == "2014-12-31").all() and (frame["model_version"] == "1").all()
    assert (frame["target_date"] == "2015-01-01").all()  # the next weekday (holidays unknown)
    assert (frame["run_id"] == champion.run_id).all()
    assert frame["direction"].isin(["up", "down"]).all()
    assert ((frame["predicted_log_return"] > 0) == (frame["direction"] == "up")).all()
    assert frame["predicted_log_return"].abs().lt(0.2).all()  # a daily return, not a price
    with get_client(sync_client=True) as client:
        tables = [a for a in client.read_artifacts() if a.key == "predictions"]
    rows = max(tables, key=lambda a: a.created).data  # newest; the server lists newest first
    rows = json.loads(rows) if isinstance(rows, str) else rows
    assert {r["ticker"] for r in rows} == {"^GSPC", "^IXIC"}
    assert {"log return", "direction", "target_date"} <= set(rows[0])  # labelled, rounded
    assert len(rows[0]["log return"]) == len("+0.0012")


@pytest.mark.slow  # trains the champion (module fixture)
@pytest.mark.filterwarnings("ignore::stockpred.predict.InSampleWarning")  # asserted below
def test_the_same_inputs_give_the_same_forecast(champion) -> None:
    first = predict_next("predict-test", dt.date(2014, 6, 30))
    again = predict_next("predict-test", dt.date(2014, 6, 30))
    pd.testing.assert_frame_equal(first, again)


def test_no_champion_is_a_clear_error() -> None:
    with pytest.raises(NoChampionError, match="no 'champion' version of model 'nobody'"):
        predict_next("nobody", dt.date(2014, 12, 31))


@pytest.mark.slow  # trains the champion (module fixture)
def test_stale_data_is_refused(champion) -> None:
    match = r"latest row is 2018-12-31, 15 days before 2019-01-15 .* --as-of 2018-12-31$"
    with pytest.raises(DataError, match=match):
        predict_next("predict-test", dt.date(2019, 1, 15), max_stale_days=5)  # the sample ends


def test_the_target_date_is_the_horizons_weekday() -> None:
    friday = dt.date(2014, 6, 27)
    assert target_date(friday, 1) == dt.date(2014, 6, 30)  # Monday
    assert target_date(friday, 5) == dt.date(2014, 7, 4)
    assert target_date(dt.date(2014, 6, 30), 1) == dt.date(2014, 7, 1)


@pytest.mark.slow  # trains the champion (module fixture)
def test_an_as_of_inside_the_champions_fit_period_warns_in_one_line(champion, capsys) -> None:
    val_end = dt.date.fromisoformat(get_run(champion.run_id).data.params["split.val_end"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", InSampleWarning)
        predict_next("predict-test", dt.date(2014, 12, 31))  # after val_end (the test period)
    with pytest.warns(InSampleWarning, match=f"through {val_end}, after the as-of date"):
        predict_next("predict-test", val_end - dt.timedelta(days=30))
    predict_next_warning_line("predict-test", val_end - dt.timedelta(days=30), 5)
    err = capsys.readouterr().err
    assert err == (
        f"stockpred: warning: predict-test v1 was trained and selected on data through {val_end}, "
        f"after the as-of date {val_end - dt.timedelta(days=30)}: these forecasts are in-sample, "
        "not what it would have said then\n"
    )


def test_a_failing_flow_ends_with_its_one_line_message(prefect_server, isolated_store) -> None:
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    env["STOCKPRED_HOME"] = str(isolated_store)
    done = subprocess.run(
        [sys.executable, "-m", "flows.predict_flow", "--model", "nobody", "--as-of", "2014-12-31"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("stockpred: error: no 'champion' version of model 'nobody'"), last
    assert last.endswith("`make run` alone does not register), or check the model name")
    assert "`stockpred train --register`" in last
    assert "Traceback" not in done.stderr  # it went to the flow run's log only


def _version_with(champion, name: str, change: str) -> None:
    """A champion of ``name``: the trained champion's model, logged into the same run (so its
    config and scaling are the real ones), then its weights file changed as ``change`` says."""
    from pathlib import Path

    import torch

    from stockpred import tracking

    model = tracking.load_model("models:/predict-test@champion")
    example = torch.zeros(2, 10, model.lstm.input_size).numpy()
    uri = tracking.log_model(champion.run_id, model, example)
    state = model.state_dict()
    if change == "overflow":  # finite weights whose forecast overflows float32 to inf:
        top = model.lstm.num_layers - 1  # every gate of the top layer open, so h is about +1
        state[f"lstm.bias_ih_l{top}"].fill_(100.0)
        state["head.weight"].fill_(3e38)  # about 9 x 3e38 > float32's 3.4e38
        state["head.bias"].fill_(3e38)
    else:
        state["head.bias"].fill_(float(change))
    client = tracking.client()
    model_id = uri.removeprefix("models:/")
    location = client.get_logged_model(model_id).artifact_location
    torch.save(state, Path(location.removeprefix("file://")) / "artifacts" / "state_dict.pt")
    client.create_registered_model(name)
    version = client.create_model_version(name, uri, run_id=champion.run_id, model_id=model_id)
    client.set_registered_model_alias(name, "champion", str(version.version))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("nan", "predict-nan v1 (models:/predict-nan@champion): state_dict.pt holds 1 NaN"),
        ("inf", "predict-inf v1 (models:/predict-inf@champion): state_dict.pt holds 1 NaN"),
        ("overflow", "predict-overflow v1 forecast inf for ^GSPC as of 2014-12-31: not a number"),
    ],
)
def test_a_forecast_that_is_not_finite_is_an_error_never_a_result(
    prefect_server, champion, isolated_store, capsys, change: str, expected: str
) -> None:
    from flows.daily_flow import daily_flow
    from stockpred.cli import main

    name = f"predict-{change}"
    _version_with(champion, name, change)
    capsys.readouterr()  # MLflow's lines while logging it
    folder = isolated_store / "predictions"
    before = sorted(folder.glob("*")) if folder.exists() else []
    code = main(["predict", "--model", name, "--as-of", "2014-12-31"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith(f"stockpred: error: {expected}"), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for flow in (predict_flow, daily_flow):
        state = flow(name, dt.date(2014, 12, 31), return_state=True)
        assert state.is_failed() and expected in state.message, state.message
    after = sorted(folder.glob("*")) if folder.exists() else []
    assert after == before  # no parquet written


def test_forecasts_read_in_a_forecasters_units() -> None:
    from stockpred.tasks import TASKS

    keys = {"ticker": "^GSPC", "as_of": "2018-12-31", "target_date": "2019-01-01"}
    model = {"horizon_days": 1, "model": "stockpred-lstm", "model_version": "1", "run_id": "r"}
    columns = TASKS["volatility"].forecast_columns([8.5841e-05])
    row = {**keys, **{k: float(v[0]) for k, v in columns.items()}, **model}
    assert forecast_line(row) == (
        "^GSPC    for 2019-01-01: daily variance 8.584e-05, annualised vol 14.7% "
        "(as of 2018-12-31, stockpred-lstm v1)"
    )
    table = forecast_table(pd.DataFrame([row]))
    assert list(table.columns) == [
        "ticker",
        "as_of",
        "target_date",
        "daily variance",
        "annualised vol",
        "model_version",
    ]
    assert table.iloc[0]["annualised vol"] == "14.7%"
    columns = TASKS["return"].forecast_columns(pd.Series([0.0024]).to_numpy())
    row = {**keys, **{k: v[0] for k, v in columns.items()}, **model}
    assert "log return +0.0024, direction up" in forecast_line(row)
