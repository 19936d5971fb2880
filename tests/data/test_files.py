"""The ``files`` source on tiny literal files: layouts, formats, ragged and close-only data, and
a clear error (file, row, column) for every malformed case."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stockpred.data import DataError, UnknownTickerError, load_prices

ROWS = [  # three days of two tickers, long format
    ("2020-01-02", "AAA", 10.0, 11.0, 9.5, 10.5, 100),
    ("2020-01-03", "AAA", 10.5, 11.5, 10.0, 11.0, 120),
    ("2020-01-06", "AAA", 11.0, 11.2, 10.1, 10.2, 90),
    ("2020-01-02", "BBB", 50.0, 51.0, 49.0, 50.5, 1000),
    ("2020-01-03", "BBB", 50.5, 52.0, 50.0, 51.5, 1100),
    ("2020-01-06", "BBB", 51.5, 51.9, 48.0, 48.5, 1500),
]
HEADER = ["date", "ticker", "open", "high", "low", "close", "volume"]


def long_frame() -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=HEADER)


def write(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def load(path: Path, tickers=("AAA", "BBB"), start="2020-01-01", end="2020-12-31", **kw):
    return load_prices(list(tickers), start, end, source="files", path=str(path), **kw)


def write_csv_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_long_file_loads_like_any_source(tmp_path, suffix) -> None:
    prices = load(write(long_frame(), tmp_path / f"prices{suffix}"))
    assert list(prices.index.names) == ["date", "ticker"]
    assert list(prices.columns) == ["open", "high", "low", "close", "volume"]
    assert prices.dtypes["volume"] == np.int64 and prices.dtypes["close"] == np.float64
    assert len(prices) == 6 and prices.index.is_monotonic_increasing
    assert prices.loc[(pd.Timestamp("2020-01-06"), "BBB"), "close"] == 48.5


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_folder_of_per_ticker_files_takes_tickers_from_file_names(tmp_path, suffix) -> None:
    for ticker, part in long_frame().groupby("ticker"):
        write(part.drop(columns="ticker"), tmp_path / f"{ticker}{suffix}")
    prices = load(tmp_path)
    pd.testing.assert_frame_equal(prices, load(write(long_frame(), tmp_path / "x" / "all.csv")))
    assert load(tmp_path, tickers=["bbb"]).index.get_level_values("ticker").unique().tolist() == [
        "BBB"
    ]  # tickers are case-insensitive


def test_headers_are_case_insensitive_and_adj_close_adjusts_like_the_sample(tmp_path) -> None:
    frame = long_frame().rename(columns=str.title).rename(columns={"Ticker": "Symbol"})
    frame["Adj Close"] = frame["Close"] / 2
    prices = load(write(frame, tmp_path / "p.csv"))
    first = prices.loc[(pd.Timestamp("2020-01-02"), "AAA")]
    assert first["close"] == 5.25 and first["open"] == 5.0 and first["high"] == 5.5
    assert first["volume"] == 100  # volume as recorded


def test_ragged_histories_keep_each_tickers_own_dates(tmp_path) -> None:
    frame = long_frame().drop(index=[0, 5])  # AAA starts later, BBB ends earlier
    prices = load(write(frame, tmp_path / "p.parquet"))
    dates = prices.index.to_frame(index=False).groupby("ticker")["date"].agg(["min", "max"])
    assert dates.loc["AAA", "min"] == pd.Timestamp("2020-01-03")
    assert dates.loc["BBB", "max"] == pd.Timestamp("2020-01-03")
    cut = load(write(long_frame(), tmp_path / "q.csv"), start="2020-01-03", end="2020-01-04")
    assert len(cut) == 2  # start and end inclusive, per ticker


def test_star_takes_every_ticker_and_the_default_tickers_are_refused_naming_the_file(
    tmp_path,
) -> None:
    path = write(long_frame(), tmp_path / "p.csv")
    assert sorted(load(path, tickers=["*"]).index.get_level_values("ticker").unique()) == [
        "AAA",
        "BBB",
    ]
    with pytest.raises(UnknownTickerError, match=r"no ticker\(s\) \['\^GSPC', '\^IXIC'\]") as e:
        load(path, tickers=["^GSPC", "^IXIC"])
    assert "it holds AAA, BBB" in str(e.value) and "data.tickers" in str(e.value)


def test_a_ticker_without_rows_in_the_window_says_what_it_covers(tmp_path) -> None:
    path = write(long_frame(), tmp_path / "p.csv")
    with pytest.raises(DataError, match=r"AAA: no rows between 2021-01-01 and 2021-12-31.*covers"):
        load(path, start="2021-01-01", end="2021-12-31")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_close_only_data_load_with_the_other_columns_nan(tmp_path, suffix) -> None:
    path = write(long_frame()[["date", "ticker", "close"]], tmp_path / f"p{suffix}")
    prices = load(path)
    assert list(prices.columns) == ["open", "high", "low", "close", "volume"]
    assert prices[["open", "high", "low", "volume"]].isna().all().all()
    assert prices["close"].notna().all()
    with_volume = load(write(long_frame().drop(columns=["open", "high", "low"]), path))
    assert with_volume.dtypes["volume"] == np.int64


def test_close_only_data_are_still_checked(tmp_path) -> None:
    frame = long_frame()[["date", "ticker", "close"]]
    frame.loc[4, "close"] = -1.0
    with pytest.raises(DataError, match=r"p.csv row 5 \(line 6\) \(2020-01-03 BBB\): non-finite"):
        load(write(frame, tmp_path / "p.csv"))
    dropped = pytest.warns(UserWarning, match=r"dropped 1 bad row")
    with dropped:
        assert len(load(tmp_path / "p.csv", on_bad_rows="drop")) == 5


def test_a_column_some_files_lack_is_left_out_for_all_with_a_warning(tmp_path) -> None:
    frame = long_frame()
    write(frame[frame.ticker == "AAA"].drop(columns="ticker"), tmp_path / "AAA.csv")
    write(frame[frame.ticker == "BBB"][["date", "close"]], tmp_path / "BBB.csv")
    with pytest.warns(UserWarning, match=r"BBB.csv lack.*open/high/low/volume"):
        prices = load(tmp_path)
    assert prices["open"].isna().all() and prices["close"].notna().all()


def _bad_csv(tmp_path: Path, row: int, column: str, value: str) -> Path:
    frame = long_frame().astype({column: object})
    frame.loc[row, column] = value
    return write(frame, tmp_path / "prices.csv")


@pytest.mark.parametrize(
    ("row", "column", "value", "message"),
    [
        (3, "close", "abc", r"prices.csv row 4 \(line 5\): close is not a number \('abc'\)"),
        (1, "volume", "12x", r"prices.csv row 2 \(line 3\): volume is not a number \('12x'\)"),
        (2, "date", "2020-13-45", r"prices.csv row 3 \(line 4\): date is not a date"),
        (5, "ticker", "A B", r"prices.csv row 6 \(line 7\): ticker 'A B' is not a ticker"),
        (0, "high", "9.0", r"prices.csv row 1 .*2020-01-02 AAA\): high below open/close"),
    ],
)
def test_a_malformed_value_names_file_row_and_column(tmp_path, row, column, value, message):
    with pytest.raises(DataError, match=message):
        load(_bad_csv(tmp_path, row, column, value))


def test_a_missing_column_names_the_file_and_what_it_has(tmp_path) -> None:
    path = write(long_frame().drop(columns="close"), tmp_path / "prices.parquet")
    with pytest.raises(DataError, match=r"prices.parquet: no close column \(it has \['date'"):
        load(path)
    path = write(long_frame().drop(columns="date"), tmp_path / "p.csv")
    with pytest.raises(DataError, match=r"p.csv: no date column"):
        load(path)


def test_duplicates_within_and_across_files_are_refused(tmp_path) -> None:
    twice = pd.concat([long_frame(), long_frame().iloc[[4]]], ignore_index=True)
    with pytest.raises(DataError, match=r"prices.csv rows 5 and 7: duplicate .*2020-01-03, BBB"):
        load(write(twice, tmp_path / "prices.csv"))
    folder = tmp_path / "folder"
    write(long_frame(), folder / "one.csv")
    write(long_frame().iloc[3:], folder / "two.parquet")
    with pytest.raises(DataError, match=r"one.csv and folder/two.parquet both hold ticker BBB"):
        load(folder)
    write(long_frame().iloc[:3].drop(columns="ticker"), tmp_path / "per" / "AAA.csv")
    write(long_frame().iloc[:3].drop(columns="ticker"), tmp_path / "per" / "AAA.parquet")
    with pytest.raises(DataError, match=r"both hold AAA"):
        load(tmp_path / "per", tickers=["AAA"])


def test_empty_missing_and_unreadable_paths_are_clear(tmp_path) -> None:
    with pytest.raises(DataError, match=r"does not exist"):
        load(tmp_path / "nope.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"holds no .parquet, .csv, .csv.gz files .it is empty"):
        load(tmp_path / "empty")
    write_csv_text(tmp_path / "empty" / "notes.txt", "hello")
    with pytest.raises(DataError, match=r"holds no .*found \['notes.txt'\]"):
        load(tmp_path / "empty")
    with pytest.raises(DataError, match=r"blank.csv is empty"):
        load(write_csv_text(tmp_path / "blank.csv", ""))
    with pytest.raises(DataError, match=r"header.csv is empty: it has a header but no rows"):
        load(write_csv_text(tmp_path / "header.csv", ",".join(HEADER) + "\n"))
    with pytest.raises(DataError, match=r"not a .parquet, .csv, .csv.gz file"):
        load(write_csv_text(tmp_path / "prices.xlsx", "x"))
    with pytest.raises(DataError, match=r"broken.parquet cannot be read"):
        load(write_csv_text(tmp_path / "broken.parquet", "not parquet"))
    with pytest.raises(DataError, match=r"needs a path"):
        load_prices(["AAA"], "2020-01-01", "2020-12-31", source="files")


def test_a_per_ticker_file_needs_a_ticker_name_and_its_own_ticker(tmp_path) -> None:
    write(long_frame().iloc[:3].drop(columns="ticker"), tmp_path / "a" / "bad name.csv")
    with pytest.raises(DataError, match=r"no ticker column, and the file name 'bad name'"):
        load(tmp_path / "a", tickers=["*"])
    frame = long_frame().iloc[:3].drop(columns="ticker")
    write(frame.assign(ticker=["AAA", "AAA", "BBB"]), tmp_path / "b" / "AAA.parquet")
    # a ticker column makes it a long file; it then holds AAA and BBB
    assert len(load(tmp_path / "b", tickers=["*"])) == 3


def test_unrequested_per_ticker_files_are_not_read(tmp_path) -> None:
    write(long_frame().iloc[:3].drop(columns="ticker"), tmp_path / "AAA.csv")
    write_csv_text(tmp_path / "ZZZ.csv", "date,close\n2020-01-02,abc\n")
    assert len(load(tmp_path, tickers=["AAA"])) == 3
    with pytest.raises(DataError, match=r"ZZZ.csv row 1"):
        load(tmp_path, tickers=["*"])


def test_a_saved_load_prices_frame_reads_back(tmp_path) -> None:
    prices = load(write(long_frame(), tmp_path / "p.csv"))
    prices.to_parquet(tmp_path / "saved.parquet")  # (date, ticker) index, as the pipeline saves
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = load(tmp_path / "saved.parquet")
    pd.testing.assert_frame_equal(again, prices)


def test_csv_dates_with_a_utc_offset_keep_their_local_calendar_day(tmp_path) -> None:
    text = "date,ticker,close\n" + "".join(
        f"2020-01-0{day}T00:00:00{offset},AAA,{day}\n"
        for day, offset in ((2, "+09:00"), (3, "+09:00"), (6, "-05:00"), (7, "Z"))
    )
    prices = load(write_csv_text(tmp_path / "p.csv", text), tickers=["AAA"])
    days = prices.index.get_level_values("date").strftime("%Y-%m-%d").tolist()
    assert days == ["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07"]
    assert prices["close"].tolist() == [2.0, 3.0, 6.0, 7.0]  # each row on its own day
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(["2020-01-02", "2020-01-03"]).tz_localize("Asia/Tokyo"),
            "ticker": "AAA",
            "close": [2.0, 3.0],
        }
    )
    parquet = load(write(frame, tmp_path / "p.parquet"), tickers=["AAA"])
    assert parquet.index.get_level_values("date").strftime("%Y-%m-%d").tolist() == days[:2]


def test_a_fifo_as_the_data_path_is_refused_without_waiting(tmp_path) -> None:
    import os

    fifo = tmp_path / "prices.csv"
    os.mkfifo(fifo)  # nobody writes: opening it to read would block forever
    with pytest.raises(DataError, match="is not a regular file"):
        load(fifo)


def test_a_line_longer_than_a_block_is_one_line_naming_the_file(tmp_path) -> None:
    from stockpred.data import files

    path = tmp_path / "p.csv"
    path.write_text("x" * (files.BLOCK_BYTES + 10))  # no line break at all
    with pytest.raises(DataError, match=r"p.csv: line 1 is longer than 1024 KiB"):
        load(path)
    path.write_text("date,ticker,close\n2020-01-02,AAA,1\n" + "9" * (3 * files.BLOCK_BYTES))
    with pytest.raises(DataError, match=r"p.csv: a line is longer than 1024 KiB"):
        load(path, tickers=["AAA"])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_only_the_requested_tickers_rows_are_kept(tmp_path, monkeypatch, suffix) -> None:
    from stockpred.data import files

    others = pd.DataFrame(
        [(f"2020-01-{d:02d}", f"T{t}", 1.0, 1.0, 1.0, 1.0, 1) for t in range(40) for d in (2, 3)],
        columns=HEADER,
    )
    path = write(pd.concat([others, long_frame()]), tmp_path / f"p{suffix}")
    monkeypatch.setattr(files, "MAX_ROWS", 10)  # far fewer than the file's 86 rows
    prices = load(path)
    assert len(prices) == 6
    assert sorted(prices.index.get_level_values("ticker").unique()) == ["AAA", "BBB"]
    with pytest.raises(DataError, match=r"more than 10 rows of the requested tickers"):
        load(path, tickers=["*"])
    with pytest.raises(UnknownTickerError, match=r"holds AAA, BBB, T0, T1, T10"):
        load(path, tickers=["ZZZ"])  # the tickers not read are still named


def test_a_malformed_cell_after_unrequested_rows_names_its_row_in_the_file(tmp_path) -> None:
    rows = [("2020-01-02", "CCC", 1.0, 1.0, 1.0, 1.0, 1)] * 3 + ROWS
    frame = pd.DataFrame(rows, columns=HEADER).astype({"close": object})
    frame.loc[5, "close"] = "1O.5"  # the file's row 6: the third of AAA, after 3 of CCC
    with pytest.raises(DataError, match=r"p.csv row 6 \(line 7\): close is not a number"):
        load(write(frame, tmp_path / "p.csv"))
