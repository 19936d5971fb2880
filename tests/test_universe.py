"""``stockpred synth``: a deterministic synthetic universe that the files source reads back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stockpred.cli import main
from stockpred.data import load_prices, validate_prices
from stockpred.universe import synthetic_universe, write_universe


def test_it_is_deterministic_for_a_seed_and_differs_across_seeds() -> None:
    one = synthetic_universe(5, 300, seed=3)
    pd.testing.assert_frame_equal(one, synthetic_universe(5, 300, seed=3))
    assert not np.allclose(one["close"], synthetic_universe(5, 300, seed=4)["close"])


def test_ohlcv_relations_hold_and_it_validates() -> None:
    prices = synthetic_universe(5, 300, seed=0, ragged=True)
    assert (prices["high"] >= prices[["open", "close"]].max(axis=1)).all()
    assert (prices["low"] <= prices[["open", "close"]].min(axis=1)).all()
    assert (prices[["open", "high", "low", "close"]] > 0).all().all()
    assert prices["volume"].dtype == np.int64 and (prices["volume"] > 0).all()
    pd.testing.assert_frame_equal(validate_prices(prices), prices)
    dates = prices.index.get_level_values("date")
    assert (dates.dayofweek < 5).all()
    starts = prices.index.to_frame(index=False).groupby("ticker")["date"].min()
    assert starts.iloc[0] == pd.Timestamp("2000-01-03") and starts.nunique() > 1  # ragged


def test_the_market_factor_correlates_tickers_and_volume_follows_big_moves() -> None:
    prices = synthetic_universe(20, 1000, seed=1)
    returns = np.log(prices["close"]).groupby(level="ticker").diff()
    wide = returns.unstack().dropna()
    corr = np.corrcoef(wide.to_numpy().T)
    assert corr[np.triu_indices(20, 1)].mean() > 0.1
    move = returns.abs().dropna()
    assert np.corrcoef(move, np.log(prices["volume"].loc[move.index]))[0, 1] > 0.1


@pytest.mark.parametrize(
    ("layout", "fmt"),
    [("long", "parquet"), ("long", "csv"), ("per-ticker", "parquet"), ("per-ticker", "csv")],
)
def test_the_files_source_reads_back_what_synth_wrote(tmp_path, capsys, layout, fmt) -> None:
    argv = [
        "synth",
        "--tickers",
        "5",
        "--days",
        "300",
        "--seed",
        "7",
        "--layout",
        layout,
        "--format",
        fmt,
        "--out",
    ]
    assert main([*argv, str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "wrote 5 tickers x 300 business days" in out and "1,500 rows" in out
    assert "--source files --path" in out
    assert main([*argv, str(tmp_path / "b")]) == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == (["prices." + fmt] if layout == "long" else [f"S00{i}.{fmt}" for i in range(5)])
    for name in files:  # the same bytes twice
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    loaded = load_prices(
        ["*"], "2000-01-01", "2002-12-31", source="files", path=str(tmp_path / "a")
    )
    expected = synthetic_universe(5, 300, seed=7)
    assert loaded.index.equals(expected.index)
    np.testing.assert_allclose(loaded.to_numpy(), expected.to_numpy(), rtol=1e-6)
    assert (loaded["high"] >= loaded[["open", "close"]].max(axis=1)).all()
    assert (loaded["low"] <= loaded[["open", "close"]].min(axis=1)).all()


def test_ragged_per_ticker_files_read_back_with_their_own_starts(tmp_path) -> None:
    prices = synthetic_universe(5, 300, seed=2, ragged=True)
    write_universe(prices, tmp_path, "per-ticker", "parquet")
    loaded = load_prices(
        ["S001", "S003"], "2000-01-01", "2002-12-31", source="files", path=str(tmp_path)
    )
    pd.testing.assert_frame_equal(loaded, prices.loc[loaded.index])
    assert len(loaded) == len(prices.xs("S001", level="ticker")) + len(
        prices.xs("S003", level="ticker")
    )
