"""Diebold-Mariano, the panel DM, per-series DM counts and the model confidence set on known
answers: hand-computed statistics and planted loss differentials."""

import numpy as np
import pandas as pd
import pytest

from stockpred.forecast_tests import (
    block_bootstrap_counts,
    diebold_mariano,
    dm_counts,
    model_confidence_set,
    panel_dm,
)


def test_diebold_mariano_by_hand() -> None:
    # d = 1,2,3,4: mean 2.5, gamma0 1.25, gamma1 0.3125, Bartlett weight 1/2 at lag 1:
    # long-run variance 1.5625, of the mean 0.390625, t = 2.5 / 0.625 = 4
    t, p = diebold_mariano(np.array([1.0, 2, 3, 4]), np.zeros(4), horizon=1)
    assert t == pytest.approx(4.0)
    assert p == pytest.approx(6.334248e-5, rel=1e-5)
    t_swapped, _ = diebold_mariano(np.zeros(4), np.array([1.0, 2, 3, 4]), horizon=2)
    assert t_swapped == pytest.approx(-4.0)  # lag max(h - 1, 1) = 1 as well


def _panel(days: int, tickers: int, shift: float, seed: int = 0) -> pd.DataFrame:
    """Losses of two models on ``tickers`` series: ``b`` = ``a`` + ``shift`` + noise."""
    rng = np.random.default_rng(seed)
    dates = np.repeat(pd.bdate_range("2020-01-01", periods=days), tickers)
    a = rng.exponential(1.0, days * tickers)
    return pd.DataFrame(
        {
            "date": dates,
            "ticker": np.tile([f"T{i}" for i in range(tickers)], days),
            "a": a,
            "b": a + shift + rng.normal(0, 0.5, days * tickers),
        }
    )


def test_the_panel_dm_is_dm_on_the_per_date_mean_differential() -> None:
    losses = _panel(400, 5, shift=0.1)
    t, p = panel_dm(losses, "a", "b")
    diff = (losses["a"] - losses["b"]).groupby(losses["date"]).mean().to_numpy()
    assert (t, p) == pytest.approx(diebold_mariano(diff, np.zeros(len(diff))))
    # the planted differential: b is worse by 0.1 a row, noise sd 0.5 / sqrt(5) a date
    assert t == pytest.approx(-0.1 / (0.5 / np.sqrt(5) / np.sqrt(400)), rel=0.15)
    assert p < 1e-6
    t_swapped, _ = panel_dm(losses, "b", "a")
    assert t_swapped == pytest.approx(-t)


def test_dm_counts_wins_ties_and_losses_per_series() -> None:
    worse = _panel(400, 3, shift=0.3, seed=1)  # b clearly worse on every series
    assert dm_counts(worse, "a", "b") == (3, 0, 0)
    assert dm_counts(worse, "b", "a") == (0, 0, 3)
    same = _panel(400, 3, shift=0.0, seed=2)
    same["b"] = same["a"]  # no differential: no test, a tie on every series
    assert dm_counts(same, "a", "b") == (0, 3, 0)


def test_block_bootstrap_counts_draw_n_rows_in_wrapped_blocks() -> None:
    counts = block_bootstrap_counts(10, 50, 4, np.random.default_rng(0))
    assert counts.shape == (50, 10)
    np.testing.assert_array_equal(counts.sum(axis=1), 10)
    # block 1 is the iid bootstrap; a block as long as the data draws every row once
    np.testing.assert_array_equal(block_bootstrap_counts(5, 3, 5, np.random.default_rng(0)), 1)


def test_the_mcs_keeps_every_model_when_losses_are_equal() -> None:
    rng = np.random.default_rng(0)
    loss = rng.exponential(1.0, 500)
    equal = model_confidence_set(pd.DataFrame({"a": loss, "b": loss, "c": loss}))
    assert equal.pvalues == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert equal.members(0.25) == ("a", "b", "c")


def test_the_mcs_drops_a_clearly_worse_model_and_its_pvalues_are_monotone() -> None:
    rng = np.random.default_rng(3)
    n = 750
    common = rng.exponential(1.0, n)  # the losses share the days' difficulty, as real ones do
    losses = pd.DataFrame(
        {
            "good": common + rng.normal(0, 0.2, n),
            "also_good": common + rng.normal(0, 0.2, n) + 0.002,
            "bad": common + rng.normal(0, 0.2, n) + 0.3,
            "worse": common + rng.normal(0, 0.2, n) + 0.6,
        }
    )
    mcs = model_confidence_set(losses, replications=500, block=5, seed=0)
    assert mcs.eliminated[:2] == ("worse", "bad")
    assert mcs.pvalues["worse"] < 0.01 and mcs.pvalues["bad"] < 0.01
    assert mcs.members(0.10) == ("good", "also_good")
    assert mcs.members(0.25) == ("good", "also_good")
    # monotone: the later a model is eliminated, the higher (or equal) its p-value
    ordered = [mcs.pvalues[m] for m in mcs.eliminated]
    assert ordered == sorted(ordered)
    survivor = next(m for m in losses.columns if m not in mcs.eliminated)
    assert mcs.pvalues[survivor] == 1.0
    # the same seed gives the same set
    again = model_confidence_set(losses, replications=500, block=5, seed=0)
    assert again.pvalues == mcs.pvalues
