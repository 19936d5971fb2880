"""The scheduled deployments: registered on a real Prefect server, run by a real ``serve`` process,
and ``prefect.yaml`` deployed with the real ``prefect deploy`` CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.flows import load_flow_from_entrypoint
from prefect.settings import PREFECT_API_URL

from flows import deploy
from stockpred import tracking
from stockpred.config import PipelineConfig, load_config
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[2]
NAMES = {"daily/after-close": deploy.DAILY_CRON, "train/weekly-retrain": deploy.WEEKLY_CRON}


@pytest.fixture
def in_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # entrypoints are relative to the project folder


@pytest.fixture
def by_name(in_root: None) -> dict[str, Any]:
    return {f"{d.flow_name}/{d.name}": d for d in deploy.deployments()}


def _cron(deployment: Any) -> tuple[str, str | None, bool]:
    (schedule,) = deployment.schedules
    return schedule.schedule.cron, schedule.schedule.timezone, schedule.active


def test_the_schedules_run_after_the_us_close_and_on_saturdays(by_name) -> None:
    assert set(by_name) == set(NAMES)
    daily, weekly = by_name["daily/after-close"], by_name["train/weekly-retrain"]
    assert _cron(daily) == ("30 17 * * 1-5", "America/New_York", True)
    assert _cron(weekly) == ("0 6 * * 6", "America/New_York", True)
    assert daily.parameters == {"model": "stockpred-lstm", "max_stale_days": 5}
    config = load_config(weekly.parameters["config"])
    assert config.train.progress_bar is False and config.evaluation.register_model
    defaults = PipelineConfig()
    assert not defaults.evaluation.register_model  # a run registers only when asked
    same = {"train": defaults.train, "evaluation": defaults.evaluation}
    assert config.model_copy(update=same) == defaults


def test_deployments_register_with_schedules_parameters_and_a_config_form(
    prefect_server: None, by_name
) -> None:
    for deployment in by_name.values():
        deployment.apply()
    with get_client(sync_client=True) as client:
        for name, cron in NAMES.items():
            stored = client.read_deployment_by_name(name)
            expected = by_name[name]
            assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in stored.schedules] == [
                (cron, "America/New_York", True)
            ]
            assert stored.parameters == expected.parameters
            assert set(stored.tags) == set(expected.tags) and "stockpred" in stored.tags
            assert stored.entrypoint == expected.entrypoint and stored.enforce_parameter_schema
        schema = client.read_deployment_by_name("train/weekly-retrain").parameter_openapi_schema
    # the UI renders a form from this schema: one section per config model, with the defaults
    assert schema["properties"]["config"]["$ref"] == "#/definitions/PipelineConfig"
    assert {"PipelineConfig", "DataConfig", "TrainConfig", "TrackingConfig"} <= set(
        schema["definitions"]
    )
    data = schema["definitions"]["DataConfig"]["properties"]
    assert data["source"]["enum"] == ["sample", "yfinance", "files"]
    # the documented trigger passes "report": false: the server checks runs against this schema
    from prefect.utilities.schema_tools.validation import is_valid

    for report in (False, "off", "background"):
        assert is_valid({"config": {"tracking": {"report": report}}}, schema), report
    assert not is_valid({"config": {"tracking": {"report": "never"}}}, schema)


def test_prefect_yaml_matches_the_served_deployments(by_name) -> None:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert spec["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $PWD }}"}}
    ]
    assert {d["name"] for d in spec["deployments"]} == {d.name for d in by_name.values()}
    for entry in spec["deployments"]:
        (served,) = [d for d in by_name.values() if d.name == entry["name"]]
        assert entry["entrypoint"] == served.entrypoint
        assert load_flow_from_entrypoint(entry["entrypoint"]).name == served.flow_name
        (schedule,) = entry["schedules"]
        assert (schedule["cron"], schedule["timezone"], schedule["active"]) == _cron(served)
        assert entry["tags"] == served.tags
        assert " ".join(entry["description"].split()) == served.description
        assert entry["work_pool"]["name"] == "stockpred-process"
        params = entry["parameters"]
        if "config" in params:  # fields left out take the defaults: compare validated configs
            assert load_config(params["config"]) == load_config(served.parameters["config"])
            params = {**params, "config": served.parameters["config"]}
        assert params == served.parameters


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), **extra}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["PREFECT_LOGGING_LEVEL"] = "INFO"
    return env


def test_prefect_deploy_registers_prefect_yaml_on_a_process_pool(
    prefect_server: None, tmp_path: Path
) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate

    with get_client(sync_client=True) as client:
        client.create_work_pool(
            WorkPoolCreate(name="stockpred-process", type="process"), overwrite=True
        )
    prefect = Path(sys.executable).with_name("prefect")
    done = subprocess.run(
        [str(prefect), "--no-prompt", "deploy", "--all"],
        cwd=ROOT,
        env=_env(PWD=str(ROOT), PREFECT_HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with get_client(sync_client=True) as client:
        for name, cron in NAMES.items():
            stored = client.read_deployment_by_name(name)
            assert stored.work_pool_name == "stockpred-process", name
            assert [(s.schedule.cron, s.schedule.timezone) for s in stored.schedules] == [
                (cron, "America/New_York")
            ]
            (step,) = stored.pull_steps
            directory = step["prefect.deployments.steps.set_working_directory"]["directory"]
            assert Path(directory) == ROOT
        weekly = client.read_deployment_by_name("train/weekly-retrain")
    assert load_config(weekly.parameters["config"]).train.progress_bar is False


@pytest.mark.slow
@pytest.mark.timeout(3 * 600)  # 809 s measured at a load of 20-27: more than the suite's 600 s
def test_a_run_triggered_by_hand_is_executed_by_the_serving_process(
    prefect_server: None, isolated_store: Path, tmp_path: Path
) -> None:
    run_name = f"deploy-{uuid.uuid4().hex[:8]}"
    # a partial config, as the docs' trigger passes: it overrides the deployment's config field
    # by field, so the retrain still registers (evaluation.register_model is the deployment's)
    # and still trains its task (volatility); "report": false as the docs write it
    partial = {
        "data": TINY["data"],
        "model": TINY["model"],
        "train": TINY["train"],
        "gates": {"enabled": False},  # the gates are tested elsewhere; this is about the run
        "tracking": {"experiment": "tests", "run_name": run_name, "report": False},
        "evaluation": {"registered_name": "deploy-test"},
    }
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "flows.deploy", "--poll-seconds", "1"],
            cwd=ROOT,
            env=_env(PREFECT_HOME=str(tmp_path / "prefect-home")),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_served(server, log)
        flow_run = run_deployment(
            "train/weekly-retrain",
            parameters={"config": partial},
            timeout=0,  # created only: its state is awaited below, with a loaded machine's limit
        )
        state = _final_state(flow_run.id, server, log)
        assert state.is_completed(), f"{state}\n{log.read_text()[-4000:]}"
    finally:
        # what systemd or `kill` send: handled like Ctrl-C (pause the schedules, stop; with
        # --local-server the server is stopped too, see local_server's test)
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=LOADED_LIMIT_S)
        except subprocess.TimeoutExpired:
            server.kill()
            code = server.wait()
    assert code == 0, f"SIGTERM did not stop serve cleanly ({code}):\n{log.read_text()[-3000:]}"
    assert "paused" in log.read_text()  # the schedules were paused on the way out
    runs = tracking.search_runs("tests", filter_string=f"attributes.run_name = '{run_name}'")
    assert runs["status"].tolist() == ["FINISHED"]
    version = tracking.client().get_model_version_by_alias("deploy-test", "champion")
    assert version.run_id == runs["run_id"].iloc[0]  # registered and promoted by the retrain
    trained = tracking.load_run_config(version.run_id)
    assert trained.evaluation.register_model and trained.target.kind == "volatility"
    assert trained.train.progress_bar is False and trained.model.hidden_size == 8
    assert trained.tracking.report == "off"
    tags = tracking.run_tags(version.run_id)
    assert tags["mlflow.source.type"] == "JOB"  # a deployment's run: a job, not a local run
    assert tags["mlflow.source.name"] == "prefect flow train/weekly-retrain"


# Limits that fit a loaded 2-core machine (load 8-15 measured): the waits below end on events
# (the log's line, the run's final state, the process's exit); these only bound a hang.
LOADED_LIMIT_S = 300


def _final_state(flow_run_id: Any, server: subprocess.Popen[bytes], log: Path) -> Any:
    """The flow run's state once final, polled while the serving process lives."""
    deadline = time.monotonic() + 3 * LOADED_LIMIT_S
    while True:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run_id).state
        if state is not None and state.is_final():
            return state
        assert server.poll() is None, (
            f"serve exited ({server.returncode}):\n{log.read_text()[-4000:]}"
        )
        assert time.monotonic() < deadline, f"run not final ({state}):\n{log.read_text()[-4000:]}"
        time.sleep(0.5)


def _wait_until_served(
    server: subprocess.Popen[bytes], log: Path, timeout: float = LOADED_LIMIT_S
) -> None:
    deadline = time.monotonic() + timeout
    while "being served" not in log.read_text():
        assert server.poll() is None, f"serve exited early:\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"serve did not start:\n{log.read_text()[-4000:]}"
        time.sleep(0.5)


def test_serving_without_a_server_says_what_to_do_and_changes_no_signal_handler(capsys) -> None:
    import signal

    from prefect.settings import temporary_settings

    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with temporary_settings(restore_defaults={PREFECT_API_URL}):
            assert deploy.main([]) == 2
        after = {s: signal.getsignal(s) for s in before}
    finally:  # a leaked handler would turn a later test's SIGTERM into a KeyboardInterrupt
        for signum, handler in before.items():
            signal.signal(signum, handler)
    assert after == before
    err = capsys.readouterr().err
    assert "set PREFECT_API_URL" in err and "--local-server" in err and "make serve" in err


@pytest.mark.slow
def test_the_local_server_keeps_its_database_in_the_project_and_stops(isolated_store) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with deploy.local_server(port=port) as api_url:
        assert api_url == f"http://127.0.0.1:{port}/api" and deploy._healthy(api_url)
        # the UI's page calls the API named in its settings: this server's, not port 4200's
        ui = httpx.get(f"http://127.0.0.1:{port}/ui-settings", timeout=10).json()
        assert ui["api_url"] == api_url
        with deploy.local_server(port=port) as again:  # a second `make serve` reuses it
            assert again == api_url
        assert deploy._healthy(api_url)
    assert not deploy._healthy(api_url)
    assert (isolated_store / ".prefect" / "prefect.db").is_file()
