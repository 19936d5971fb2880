import json
import os
import subprocess
import sys

import pytest

from stockpred.cli import main

HEAVY = ("torch", "pytorch_lightning", "lightning", "prefect", "mlflow")


@pytest.mark.slow  # starts a Python subprocess
def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\nfrom stockpred import cli\n"
        "for argv in (['--help'], ['train', '--help']):\n"
        "    try: cli.main(argv)\n    except SystemExit: pass\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--epochs" in out.stdout and "--tickers" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow  # starts a Python subprocess
def test_a_bad_training_option_is_refused_before_anything_heavy_is_imported() -> None:
    code = (
        "import sys\nfrom stockpred import cli\nrc = cli.main(['train', '--window', '1'])\n"
        f"print(rc, sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "model.window" in out.stderr
    assert out.stdout.strip().splitlines()[-1] == "2 []"


def test_config_prints_the_resolved_config(capsys) -> None:
    assert (
        main(["config", "--window", "30", "--tickers", "^GSPC", "--set", "train.patience=2"]) == 0
    )
    config = json.loads(capsys.readouterr().out)
    assert config["model"]["window"] == 30
    assert config["data"]["tickers"] == ["^GSPC"]
    assert config["train"]["patience"] == 2


def test_a_bad_value_is_one_line_and_exit_2(capsys) -> None:
    assert main(["train", "--window", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.window" in err and "Traceback" not in err
    assert main(["config", "--set", "nonsense"]) == 2


@pytest.mark.slow  # starts a subprocess
def test_an_unknown_ticker_is_a_clear_error_not_a_traceback(isolated_store) -> None:
    env = {**os.environ, "STOCKPRED_HOME": str(isolated_store)}
    out = subprocess.run(
        [sys.executable, "-m", "stockpred.cli", "train", "--tickers", "ZZZZ"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 1
    assert "no ticker(s) ['ZZZZ']" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_sample_stock_needs_the_stocks_universe(capsys) -> None:
    assert main(["train", "--tickers", "AAPL"]) == 2  # refused before anything starts
    err = capsys.readouterr().err
    assert "indices universe has no ['AAPL']" in err and "data.universe=stocks" in err
    assert main(["config", "--universe", "stocks"]) == 0
    data = json.loads(capsys.readouterr().out)["data"]
    assert data["universe"] == "stocks"
    assert data["tickers"] == ["AAPL", "GOOG", "IBM", "MSFT", "FB"]
    assert main(["config", "--universe", "stocks", "--tickers", "^GSPC"]) == 2
    assert "stocks universe has no ['^GSPC']" in capsys.readouterr().err


def test_the_files_source_takes_a_path_and_every_ticker(capsys, tmp_path) -> None:
    argv = ["config", "--source", "files", "--path", str(tmp_path), "--tickers", "*"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)["data"]
    assert data["source"] == "files" and data["path"] == str(tmp_path)
    assert data["tickers"] == ["*"]
    assert main(["config", "--source", "files"]) == 2
    assert "data.path" in capsys.readouterr().err
    assert main(["config", "--tickers", "*"]) == 2
    assert "needs data.source 'files'" in capsys.readouterr().err


def test_synth_refuses_a_bad_layout_and_prints_what_it_wrote(capsys, tmp_path) -> None:
    import pytest

    with pytest.raises(SystemExit):
        main(["synth", "--out", str(tmp_path), "--layout", "wide"])
    assert (
        main(["synth", "--tickers", "3", "--days", "50", "--out", str(tmp_path), "--ragged"]) == 0
    )
    out = capsys.readouterr().out
    assert f"{tmp_path}/prices.parquet" in out and "3 tickers x 50 business days" in out


def test_fetch_fills_the_cache_and_reports_failures_in_one_line(
    monkeypatch, tmp_path, capsys
) -> None:
    from stockpred.data import yahoo
    from tests.data.fake_yahoo import FakeYahoo

    fake = FakeYahoo(["AAA"])
    monkeypatch.setattr(yahoo, "_yfinance_download", lambda: fake)
    argv = [
        "fetch",
        "AAA",
        "--start",
        "2020-01-01",
        "--end",
        "2020-03-31",
        "--cache-dir",
        str(tmp_path),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "AAA" in out and "fetched" in out and "2020-03-31" in out
    assert main([*argv[:1], "NOPE", *argv[2:]]) == 1
    err = capsys.readouterr().err
    assert err.startswith("stockpred: error: NOPE: Yahoo returned no rows") and err.count("\n") == 1


def test_a_config_folder_is_one_line_and_exit_2(tmp_path, capsys) -> None:
    assert main(["config", "--config", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"stockpred: config error: config file {tmp_path} is a folder: give a JSON file in it\n"
    )


def test_the_backtest_prints_mean_pm_std_and_each_folds_dates() -> None:
    import pandas as pd

    from stockpred.cli import backtest_table

    dates = {"train_start": "2010-01-04", "train_end": "2013-03-01", "val_start": "2013-03-19"}
    dates |= {"val_end": "2013-12-13", "test_start": "2014-01-02", "test_end": "2014-07-02"}
    folds = pd.DataFrame([{"fold": 0, "model": m, **dates} for m in ("lstm", "zero")])
    summary = pd.DataFrame(
        {
            "model": ["lstm", "zero"],
            "rmse_vs_zero_mean": [1.02224, 1.0],
            "rmse_vs_zero_std": [0.00731, 0.0],
            "ic_mean": [0.05, float("nan")],  # the IC of a constant forecast
            "ic_std": [float("nan"), float("nan")],  # one fold: no spread
        }
    )
    lines = backtest_table(folds, summary).splitlines()
    assert lines[0].split() == ["model", "rmse_vs_zero", "ic"]
    assert lines[1].split() == ["lstm", "1.0222", "±", "0.0073", "0.0500"]
    assert lines[2].split() == ["zero", "1.0000", "±", "0.0000", "-"]
    assert "nan" not in "\n".join(lines).lower()
    assert lines[3] == (
        "fold 0: train 2010-01-04..2013-03-01, val 2013-03-19..2013-12-13, "
        "test 2014-01-02..2014-07-02"
    )
    assert len({len(line) for line in lines[:3]}) == 1  # aligned columns


def test_ui_takes_host_and_port_and_names_a_busy_port_before_starting(capsys) -> None:
    import socket

    from stockpred.cli import build_parser
    from stockpred.tracking import ui_argv

    args = build_parser().parse_args(["ui", "--port", "5001", "--host", "0.0.0.0"])
    assert (args.host, args.port) == ("0.0.0.0", 5001)
    assert build_parser().parse_args(["ui"]).port == 5000
    command = ui_argv(host="0.0.0.0", port=5001)
    assert command[command.index("--port") + 1] == "5001"
    assert command[command.index("--host") + 1] == "0.0.0.0"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["ui", "--port", str(port)]) == 1
    out, err = capsys.readouterr()
    assert err == (
        f"stockpred: error: port {port} is in use on 127.0.0.1 (another MLflow UI?): pass "
        f"--port {port + 1}, or stop what is listening there\n"
    )
    assert out == ""  # refused before the UI's command was printed or started
